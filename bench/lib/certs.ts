/**
 * Certificates for a benchmark fleet of up to 10,000 hosts, minted once and cached under
 * `.bench-cache/` (gitignored).
 *
 * The fleet CA and the control plane's server certificate come from `pki/pki.ts`, exactly as in
 * production. The host certificates have the same layout as `mintHostCert` (subject
 * CN = hostname, OU `host`, O `nixfleet`; the same extensions, each with its own random serial), but
 * are minted on a fast path, for two measured reasons (see docs/performance.md):
 *
 * - `mintHostCert` generates a fresh RSA-2048 key per certificate (≈ 160 ms each here: 27 min for
 *   10,000). The bench uses ONE host key pair for every host certificate. The CP identifies a host
 *   by the certificate (CN, OU, serial, CA signature), never by its key, so sharing the key changes
 *   no code path; it only makes the client side cheaper to set up.
 * - node-forge signs in pure JavaScript (≈ 20 ms per RSA-2048 signature here: 3.5 min). node-forge
 *   still builds the certificate (TBSCertificate ASN.1 and the final DER); the CA's signature over
 *   the DER of the TBSCertificate is made by Node's native `crypto.sign` (≈ 1 ms).
 * - The shared host key is ECDSA P-256, not RSA-2048: a client must load its key into a TLS
 *   context once per identity, and OpenSSL takes ≈ 1.6 ms to load an RSA-2048 key (2.7 ms per
 *   context in all) against ≈ 0.3 ms for P-256; with 10,000 identities that is the difference
 *   between a load client that keeps up and one that measures itself. node-forge's
 *   SubjectPublicKeyInfo encoder is RSA-only, so the certificate is built around a placeholder
 *   RSA key and the SubjectPublicKeyInfo element of the TBSCertificate is then replaced by the P-256
 *   one that Node exports (DER, parsed by node-forge's ASN.1 reader — no hand-written ASN.1), with
 *   the subjectKeyIdentifier recomputed over it (RFC 5280 §4.2.1.2 method 1). The control plane
 *   never looks at the key type: it reads CN, OU, serial and validity of a certificate the TLS
 *   layer verified against the fleet CA. For the server, verifying a P-256 CertificateVerify costs
 *   slightly more than an RSA one, so this errs on the expensive side for the CP.
 */
import { createHash, createPrivateKey, createPublicKey, generateKeyPairSync, randomBytes, sign as nodeSign } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import forge from 'node-forge';
import { createFleetCa, mintOperatorCert, mintServerCert, type FleetCa } from '../../pki/pki.ts';

const { pki, asn1 } = forge;

/** Bump when the layout of the cached file or of the certificates changes. */
const CACHE_VERSION = 3;
const DAY_MS = 86_400_000;
const HOST_VALIDITY_DAYS = 365;

export type HostCert = { readonly name: string; readonly certPem: string; readonly serial: string };

export type BenchPki = {
  readonly ca: FleetCa;
  /** The control plane's server certificate and key (SAN localhost, 127.0.0.1). */
  readonly server: { readonly certPem: string; readonly keyPem: string };
  /** An operator certificate (OU `operator`, from pki/pki.ts) for the bench's reads of CP state. */
  readonly operator: { readonly certPem: string; readonly keyPem: string };
  /** The one private key shared by every host certificate (PEM, PKCS#8). */
  readonly hostKeyPem: string;
  readonly hosts: readonly HostCert[];
  /** True when this call minted (false: read from the cache). */
  readonly minted: boolean;
  /** Time spent minting in this call (0 when cached). */
  readonly mintMs: number;
};

type CacheFile = {
  version: number;
  namesSha256: string;
  mintedAt: string;
  ca: FleetCa;
  server: { certPem: string; keyPem: string };
  operator: { certPem: string; keyPem: string };
  hostKeyPem: string;
  hosts: HostCert[];
};

/** The default cache directory: `<cwd>/.bench-cache`. */
export function defaultCacheDir(): string {
  return join(process.cwd(), '.bench-cache');
}

function namesDigest(names: readonly string[]): string {
  return createHash('sha256').update(names.join('\n')).digest('hex');
}

/** X.509 serial: 16 random bytes, positive and without a leading zero byte (RFC 5280 §4.1.2.2). */
function newSerial(): string {
  const b = randomBytes(16);
  b[0] = (b[0]! & 0x7f) | 0x01;
  return b.toString('hex');
}

function floorToSecond(ms: number): Date {
  return new Date(Math.floor(ms / 1000) * 1000);
}

/** Any RSA public key: only its place in the TBSCertificate is used, then replaced. */
const PLACEHOLDER_RSA_PUBLIC_KEY = generateKeyPairSync('rsa', { modulusLength: 1024 }).publicKey.export({ type: 'spki', format: 'pem' }).toString();

/**
 * A host certificate minter for one CA and one shared host public key (PEM SPKI, P-256 or RSA).
 * Same subject and extensions as `pki/pki.ts` `mintHostCert`; signature by Node's native RSA.
 */
export function hostCertMinter(ca: FleetCa, hostPublicKeyPem: string): (name: string, nowMs: number) => HostCert {
  const caCert = pki.certificateFromPem(ca.certPem);
  const caKey = createPrivateKey(ca.keyPem);
  const caKeyId = caCert.generateSubjectKeyIdentifier().getBytes();
  const spkiDer = createPublicKey(hostPublicKeyPem).export({ type: 'spki', format: 'der' });
  const spki = asn1.fromDer(spkiDer.toString('binary'));
  // RFC 5280 §4.2.1.2 (1): SHA-1 of the subjectPublicKey BIT STRING value (without the unused-bits byte).
  const spkiBits = (spki.value as forge.asn1.Asn1[])[1]!.value as string;
  const ski = createHash('sha1').update(Buffer.from(spkiBits.slice(1), 'binary')).digest().toString('binary');
  // node-forge only encodes RSA keys: the certificate is built around this placeholder, whose
  // SubjectPublicKeyInfo is then replaced by the real one.
  const placeholder = pki.publicKeyFromPem(PLACEHOLDER_RSA_PUBLIC_KEY);
  return (name, nowMs) => {
    const cert = pki.createCertificate();
    cert.publicKey = placeholder;
    const serial = newSerial();
    cert.serialNumber = serial;
    const notBefore = floorToSecond(nowMs);
    cert.validity.notBefore = notBefore;
    cert.validity.notAfter = new Date(notBefore.getTime() + HOST_VALIDITY_DAYS * DAY_MS);
    cert.setSubject([
      { shortName: 'CN', value: name },
      { shortName: 'OU', value: 'host' },
      { shortName: 'O', value: 'nixfleet' },
    ]);
    cert.setIssuer(caCert.subject.attributes);
    cert.setExtensions([
      { name: 'basicConstraints', cA: false, critical: true },
      { name: 'keyUsage', digitalSignature: true, keyEncipherment: true, critical: true },
      { name: 'extKeyUsage', clientAuth: true },
      { name: 'subjectKeyIdentifier' },
      { name: 'authorityKeyIdentifier', keyIdentifier: caKeyId },
    ]);
    const skiExt = (cert.extensions as { name: string; value: unknown; subjectKeyIdentifier: string }[]).find((e) => e.name === 'subjectKeyIdentifier')!;
    skiExt.value = asn1.create(asn1.Class.UNIVERSAL, asn1.Type.OCTETSTRING, false, ski);
    skiExt.subjectKeyIdentifier = Buffer.from(ski, 'binary').toString('hex');
    // What cert.sign() does, with the real SubjectPublicKeyInfo and a native RSA signature.
    cert.signatureOid = cert.siginfo.algorithmOid = pki.oids['sha256WithRSAEncryption']!;
    // getTBSCertificate is public node-forge API (x509.js) missing from @types/node-forge.
    const tbs = (pki as unknown as { getTBSCertificate(c: forge.pki.Certificate): forge.asn1.Asn1 }).getTBSCertificate(cert);
    // TBSCertificate ::= SEQUENCE { version, serialNumber, signature, issuer, validity, subject, subjectPublicKeyInfo, … }
    (tbs.value as forge.asn1.Asn1[])[6] = spki;
    (cert as unknown as { tbsCertificate: forge.asn1.Asn1 }).tbsCertificate = tbs;
    const tbsDer = Buffer.from(asn1.toDer(tbs).getBytes(), 'binary');
    cert.signature = nodeSign('sha256', tbsDer, caKey).toString('binary');
    return { name, certPem: pki.certificateToPem(cert), serial };
  };
}

function mint(names: readonly string[], nowMs: number): Omit<CacheFile, 'version' | 'namesSha256' | 'mintedAt'> {
  const now = new Date(nowMs);
  const ca = createFleetCa({ commonName: 'nixfleet-bench-ca', now });
  const server = mintServerCert(ca, { hostnames: ['localhost', '127.0.0.1'], now });
  const operator = mintOperatorCert(ca, 'bench-operator', { now });
  const { publicKey, privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const hostKeyPem = privateKey.export({ type: 'pkcs8', format: 'pem' }).toString();
  const minter = hostCertMinter(ca, publicKey.export({ type: 'spki', format: 'pem' }).toString());
  const hosts = names.map((n) => minter(n, nowMs));
  return { ca, server: { certPem: server.certPem, keyPem: server.keyPem }, operator: { certPem: operator.certPem, keyPem: operator.keyPem }, hostKeyPem, hosts };
}

/**
 * Certificates for exactly `names` (order kept), from the cache when it holds a still-valid set for
 * the same names, otherwise minted and written atomically to the cache.
 */
export function loadBenchPki(names: readonly string[], opts: { cacheDir?: string; nowMs?: number } = {}): BenchPki {
  const dir = opts.cacheDir ?? defaultCacheDir();
  const nowMs = opts.nowMs ?? Date.now();
  const digest = namesDigest(names);
  const file = join(dir, `pki-v${CACHE_VERSION}-${names.length}-${digest.slice(0, 16)}.json`);
  if (existsSync(file)) {
    const cached = JSON.parse(readFileSync(file, 'utf8')) as CacheFile;
    // Refuse a set that would expire during a run (server cert and hosts have 365 days).
    const fresh = nowMs - Date.parse(cached.mintedAt) < (HOST_VALIDITY_DAYS - 7) * DAY_MS;
    if (cached.version === CACHE_VERSION && cached.namesSha256 === digest && fresh) {
      return { ca: cached.ca, server: cached.server, operator: cached.operator, hostKeyPem: cached.hostKeyPem, hosts: cached.hosts, minted: false, mintMs: 0 };
    }
  }
  const started = performance.now();
  const m = mint(names, nowMs);
  const mintMs = performance.now() - started;
  const out: CacheFile = { version: CACHE_VERSION, namesSha256: digest, mintedAt: new Date(nowMs).toISOString(), ...m };
  mkdirSync(dir, { recursive: true });
  const tmp = `${file}.${process.pid}.tmp`;
  writeFileSync(tmp, JSON.stringify(out));
  renameSync(tmp, file);
  return { ...m, minted: true, mintMs };
}
