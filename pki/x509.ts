/**
 * The fleet PKI on @peculiar/x509 over Node's WebCrypto (issue 16): ECDSA P-256 keys, PKCS#10
 * certificate requests, and the **host-issuance intermediate** the control plane may hold.
 *
 * The intermediate is constrained three ways, each checked by OpenSSL when a client certificate
 * it issued is presented (never by us):
 * - `basicConstraints cA, pathLenConstraint 0`: it cannot create another CA;
 * - `extKeyUsage clientAuth` on the CA certificate itself: OpenSSL refuses any certificate under
 *   it for another purpose (a server certificate it signed does not verify as one);
 * - `nameConstraints` (critical), permitted subtree `directoryName O=nixfleet, OU=host`: every
 *   subject it signs must start with exactly those RDNs, so a certificate with `OU=operator`
 *   fails chain verification (X509_V_ERR_PERMITTED_VIOLATION) even when signed by its key.
 * Host certificates it issues are therefore `O=nixfleet, OU=host, CN=<hostname>` (in that RDN
 * order: name constraints on directory names are prefix matches).
 *
 * ASN.1 is encoded by @peculiar/asn1-* (the encoding layer of @peculiar/x509), never by hand.
 * Time is a parameter (`now`, `notBefore`). Everything goes in and out as PEM.
 */
import { x509 } from './x509-lib.ts';
import { AsnConvert } from '@peculiar/asn1-schema';
import { GeneralName as AsnGeneralName, GeneralSubtree, GeneralSubtrees, Name as AsnName, NameConstraints, id_ce_nameConstraints } from '@peculiar/asn1-x509';
import { createPrivateKey, createPublicKey, randomBytes, webcrypto } from 'node:crypto';
import { err, ok, type Result } from '../protocol/result.ts';
import { isHostname } from '../protocol/vocab.ts';

type CryptoKey = webcrypto.CryptoKey;
type CryptoKeyPair = webcrypto.CryptoKeyPair;


const DAY_MS = 86_400_000;
const EC = { name: 'ECDSA', namedCurve: 'P-256' } as const;
const ECDSA_SHA256 = { name: 'ECDSA', hash: 'SHA-256' } as const;
const RSA_SHA256 = { name: 'RSASSA-PKCS1-v1_5', hash: 'SHA-256' } as const;

/** The subject prefix an issuance intermediate may sign (and nothing else). */
export const HOST_SUBJECT_PREFIX = 'O=nixfleet, OU=host';
/** Default lifetime of a certificate the intermediate issues (issue 16: short-lived). */
export const DEFAULT_HOST_CERT_DAYS = 30;

/** A certificate with its private key, both PEM (the key PKCS#8). */
export type CertKeyPem = { readonly certPem: string; readonly keyPem: string };

export type IssuedCert = {
  readonly certPem: string;
  /** Lower-case hex. */
  readonly serial: string;
  readonly notBefore: Date;
  readonly notAfter: Date;
};

/** X.509 serial: 16 random bytes, positive, no leading zero byte (RFC 5280 §4.1.2.2). */
export function newSerial(): string {
  const b = randomBytes(16);
  b[0] = (b[0]! & 0x7f) | 0x01;
  return b.toString('hex');
}

/** Whole seconds: X.509 times carry no milliseconds, so a reported Date matches its certificate. */
export const floorToSecond = (d: Date): Date => new Date(Math.floor(d.getTime() / 1000) * 1000);

/** A fresh ECDSA P-256 key pair (extractable: it is written to a 0600 file by the caller). */
export async function generateEcKey(): Promise<{ keys: CryptoKeyPair; keyPem: string }> {
  const keys = (await webcrypto.subtle.generateKey(EC, true, ['sign', 'verify'])) as CryptoKeyPair;
  const der = await webcrypto.subtle.exportKey('pkcs8', keys.privateKey);
  return { keys, keyPem: x509.PemConverter.encode(der, 'PRIVATE KEY') };
}

/**
 * A PEM private key (PKCS#1, SEC1 or PKCS#8; RSA or P-256) as a WebCrypto signing key with the
 * algorithm that goes with it. Node reads the PEM; WebCrypto takes its PKCS#8 export.
 */
export async function importSigningKey(keyPem: string): Promise<{ key: CryptoKey; algorithm: typeof ECDSA_SHA256 | typeof RSA_SHA256; publicKey: CryptoKey }> {
  const ko = createPrivateKey(keyPem);
  const pkcs8 = ko.export({ type: 'pkcs8', format: 'der' });
  const spki = createPublicKey(ko).export({ type: 'spki', format: 'der' });
  if (ko.asymmetricKeyType === 'rsa') {
    const imp = { name: 'RSASSA-PKCS1-v1_5', hash: 'SHA-256' };
    return { key: await webcrypto.subtle.importKey('pkcs8', pkcs8, imp, false, ['sign']), algorithm: RSA_SHA256, publicKey: await webcrypto.subtle.importKey('spki', spki, imp, true, ['verify']) };
  }
  if (ko.asymmetricKeyType === 'ec' && ko.asymmetricKeyDetails?.namedCurve === 'prime256v1') {
    return { key: await webcrypto.subtle.importKey('pkcs8', pkcs8, EC, false, ['sign']), algorithm: ECDSA_SHA256, publicKey: await webcrypto.subtle.importKey('spki', spki, EC, true, ['verify']) };
  }
  throw new Error(`unsupported signing key type ${ko.asymmetricKeyType ?? 'unknown'} (RSA or ECDSA P-256)`);
}

/** A CSR for `hostname` (subject CN) over the key pair, signed by it (proof of possession). */
export async function createCsr(hostname: string, keys: CryptoKeyPair): Promise<string> {
  if (!isHostname(hostname)) throw new Error(`hostname ${JSON.stringify(hostname)} is not a valid name`);
  const csr = await x509.Pkcs10CertificateRequestGenerator.create({ name: [{ CN: [hostname] }], keys, signingAlgorithm: ECDSA_SHA256 });
  return csr.toString('pem');
}

export type CsrErrorCode = 'CSR_UNREADABLE' | 'CSR_SIGNATURE_INVALID' | 'CSR_KEY_TYPE' | 'CSR_SUBJECT';
export type CsrError = { code: CsrErrorCode; message: string };

export type ParsedCsr = {
  /** Subject CN: the one hostname the request names. */
  readonly hostname: string;
  readonly publicKey: x509.PublicKey;
  /** DER of the whole request (what the SSH host key signs a digest of). */
  readonly der: Uint8Array;
};

const PEM_CSR = /^-----BEGIN CERTIFICATE REQUEST-----\r?\n[A-Za-z0-9+/=\r\n]+-----END CERTIFICATE REQUEST-----\r?\n?$/;

/**
 * A PEM PKCS#10 request from outside: exactly one PEM block, an ECDSA P-256 key, a valid
 * self-signature, and a subject that is exactly one CN holding a valid hostname.
 */
export async function parseCsr(pem: string): Promise<Result<ParsedCsr, CsrError>> {
  if (!PEM_CSR.test(pem)) return err({ code: 'CSR_UNREADABLE', message: 'csr must be one PEM "CERTIFICATE REQUEST" block' });
  let csr: x509.Pkcs10CertificateRequest;
  try {
    csr = new x509.Pkcs10CertificateRequest(pem);
  } catch (e) {
    return err({ code: 'CSR_UNREADABLE', message: `csr is not a PKCS#10 request (${e instanceof Error ? e.message : String(e)})` });
  }
  const alg = csr.publicKey.algorithm as { name?: string; namedCurve?: string };
  // The library maps id-ecPublicKey + the prime256v1 OID (RFC 5480 §2.1.1) to ECDSA / P-256.
  if (alg.name !== 'ECDSA' || alg.namedCurve !== 'P-256') {
    return err({ code: 'CSR_KEY_TYPE', message: `the CSR key must be ECDSA P-256, not ${alg.name ?? 'unknown'}${alg.namedCurve !== undefined ? ` ${alg.namedCurve}` : ''}` });
  }
  let valid = false;
  try {
    valid = await csr.verify();
  } catch {
    valid = false;
  }
  if (!valid) return err({ code: 'CSR_SIGNATURE_INVALID', message: 'the CSR is not signed by its own key' });
  const json = csr.subjectName.toJSON();
  const cns = json.flatMap((rdn) => Object.entries(rdn)).filter(([k]) => k === 'CN');
  if (json.length !== 1 || cns.length !== 1 || cns[0]![1].length !== 1) return err({ code: 'CSR_SUBJECT', message: `the CSR subject must be exactly one CN (the hostname), not ${JSON.stringify(csr.subject)}` });
  const hostname = cns[0]![1][0]!;
  if (!isHostname(hostname)) return err({ code: 'CSR_SUBJECT', message: `the CSR CN ${JSON.stringify(hostname)} is not a valid hostname` });
  return ok({ hostname, publicKey: csr.publicKey, der: new Uint8Array(csr.rawData) });
}

/** The permitted-subtree extension: only subjects starting with O=nixfleet, OU=host. */
function hostNameConstraints(): x509.Extension {
  const base = new AsnGeneralName({ directoryName: AsnConvert.parse(new x509.Name(HOST_SUBJECT_PREFIX).toArrayBuffer(), AsnName) });
  const nc = new NameConstraints({ permittedSubtrees: new GeneralSubtrees([new GeneralSubtree({ base })]) });
  return new x509.Extension(id_ce_nameConstraints, true, AsnConvert.serialize(nc));
}

export type IssuanceCaOptions = {
  /** Subject CN; default `nixfleet host issuance`. */
  commonName?: string;
  /** Default 365. */
  validityDays?: number;
  now?: Date;
};

/**
 * Create the host-issuance intermediate, signed by the fleet root CA (whose key stays with the
 * operator: this runs on the operator's machine, never on the CP). Its own key is ECDSA P-256.
 */
export async function createIssuanceCa(root: CertKeyPem, opts: IssuanceCaOptions = {}): Promise<CertKeyPem> {
  const now = floorToSecond(opts.now ?? new Date());
  const validityDays = opts.validityDays ?? 365;
  if (!Number.isInteger(validityDays) || validityDays < 1) throw new Error('validityDays must be a positive integer');
  const rootCert = new x509.X509Certificate(root.certPem);
  const signer = await importSigningKey(root.keyPem);
  const { keys, keyPem } = await generateEcKey();
  const cn = opts.commonName ?? 'nixfleet host issuance';
  const cert = await x509.X509CertificateGenerator.create({
    serialNumber: newSerial(),
    subject: `CN=${cn}, OU=host-issuance, O=nixfleet`,
    issuer: rootCert.subjectName,
    notBefore: now,
    notAfter: new Date(now.getTime() + validityDays * DAY_MS),
    publicKey: keys.publicKey,
    signingKey: signer.key,
    signingAlgorithm: signer.algorithm,
    extensions: [
      new x509.BasicConstraintsExtension(true, 0, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign | x509.KeyUsageFlags.digitalSignature, true),
      new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.clientAuth], false),
      hostNameConstraints(),
      await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
      await x509.AuthorityKeyIdentifierExtension.create(signer.publicKey),
    ],
  });
  return { certPem: cert.toString('pem'), keyPem };
}

/**
 * URI subjectAltName prefix recording when the host last *proved* its identity (enrolment by SSH
 * host key or token, or an operator-minted certificate): a renewal copies it from the certificate
 * it renews, so a revocation whose `notBefore` is later covers every certificate renewed from an
 * identity proven before it — even one renewed after `notBefore` but before the CP loaded the
 * revocation (issue 16). Only the CP writes it (a CSR's requested extensions are never copied);
 * it can only make a certificate *more* revocable (control-plane/identity.ts takes the earlier of
 * it and notBefore). Milliseconds since the epoch: no colon to escape in the URI.
 */
export const PROVEN_AT_URI_PREFIX = 'urn:nixfleet:proven-at-ms:';

export type LeafOptions = {
  /** Default {@link DEFAULT_HOST_CERT_DAYS}. */
  validityDays?: number;
  /** When the identity was last proven ({@link PROVEN_AT_URI_PREFIX}); absent: no such name. */
  provenAt?: Date;
  /** Default `now`. */
  notBefore?: Date;
  now?: Date;
};

/**
 * Sign a client certificate (clientAuth) with the given subject. Internal building block of
 * {@link issueHostCert}; exported for tests that show what the constraints refuse (an issuing
 * key used to sign an `OU=operator` subject).
 */
export async function signClientCert(issuer: CertKeyPem, subject: string, publicKey: CryptoKey | x509.PublicKey, opts: LeafOptions = {}): Promise<IssuedCert> {
  const now = floorToSecond(opts.now ?? new Date());
  const notBefore = floorToSecond(opts.notBefore ?? now);
  const validityDays = opts.validityDays ?? DEFAULT_HOST_CERT_DAYS;
  if (!(validityDays > 0)) throw new Error('validityDays must be positive');
  const notAfter = floorToSecond(new Date(notBefore.getTime() + validityDays * DAY_MS));
  const issuerCert = new x509.X509Certificate(issuer.certPem);
  const signer = await importSigningKey(issuer.keyPem);
  const pub = publicKey instanceof x509.PublicKey ? await publicKey.export(EC, ['verify']) : publicKey;
  const serial = newSerial();
  const cert = await x509.X509CertificateGenerator.create({
    serialNumber: serial,
    subject,
    issuer: issuerCert.subjectName,
    notBefore,
    notAfter,
    publicKey: pub,
    signingKey: signer.key,
    signingAlgorithm: signer.algorithm,
    extensions: [
      new x509.BasicConstraintsExtension(false, undefined, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true),
      new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.clientAuth], false),
      await x509.SubjectKeyIdentifierExtension.create(pub),
      await x509.AuthorityKeyIdentifierExtension.create(signer.publicKey),
      ...(opts.provenAt !== undefined ? [new x509.SubjectAlternativeNameExtension([{ type: 'url', value: `${PROVEN_AT_URI_PREFIX}${opts.provenAt.getTime()}` }], false)] : []),
    ],
  });
  return { certPem: cert.toString('pem'), serial, notBefore, notAfter };
}

/**
 * Issue a host certificate `O=nixfleet, OU=host, CN=<hostname>` for a public key (from a CSR the
 * caller has already checked). Nothing else can be issued through this function.
 */
export async function issueHostCert(issuer: CertKeyPem, hostname: string, publicKey: CryptoKey | x509.PublicKey, opts: LeafOptions = {}): Promise<IssuedCert> {
  if (!isHostname(hostname)) throw new Error(`hostname ${JSON.stringify(hostname)} is not a valid name`);
  return signClientCert(issuer, `${HOST_SUBJECT_PREFIX}, CN=${hostname}`, publicKey, opts);
}

/** Validity of a PEM certificate (for renewal at half-life), or null when unreadable. */
export function certValidity(certPem: string): { notBeforeMs: number; notAfterMs: number } | null {
  try {
    const c = new x509.X509Certificate(certPem);
    return { notBeforeMs: c.notBefore.getTime(), notAfterMs: c.notAfter.getTime() };
  } catch {
    return null;
  }
}

/** What the control plane checks of the intermediate it is given (control-plane/config.ts). */
export type IssuanceCaFacts = { isCa: boolean; pathLength: number | null; clientAuthOnly: boolean; hostNameConstrained: boolean };

/** Read the constraints of a would-be issuance intermediate; null when the PEM is unreadable. */
export function readIssuanceCaFacts(certPem: string): IssuanceCaFacts | null {
  let c: x509.X509Certificate;
  try {
    c = new x509.X509Certificate(certPem);
  } catch {
    return null;
  }
  const bc = c.getExtension(x509.BasicConstraintsExtension);
  const eku = c.getExtension(x509.ExtendedKeyUsageExtension);
  const ncExt = c.extensions.find((e) => e.type === id_ce_nameConstraints);
  let hostNameConstrained = false;
  if (ncExt !== undefined && ncExt.critical) {
    try {
      const nc = AsnConvert.parse(ncExt.value, NameConstraints);
      const permitted = nc.permittedSubtrees ?? [];
      const want = new x509.Name(HOST_SUBJECT_PREFIX).toString();
      hostNameConstrained = permitted.length > 0 && permitted.every((s) => s.base.directoryName !== undefined && new x509.Name(AsnConvert.serialize(s.base.directoryName)).toString() === want);
    } catch {
      hostNameConstrained = false;
    }
  }
  const usages = [...(eku?.usages ?? [])].map(String);
  return { isCa: bc?.ca === true, pathLength: bc?.pathLength ?? null, clientAuthOnly: usages.length === 1 && usages[0] === '1.3.6.1.5.5.7.3.2', hostNameConstrained };
}
