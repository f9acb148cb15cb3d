/**
 * Fleet PKI minting on @peculiar/x509 (SPEC §5 identity, §7 `nixfleet pki …`; issue 16: one PKI
 * library, the same one that builds CSRs and the host-issuance intermediate in `./x509.ts`).
 *
 * - fleet CA: self-signed, `basicConstraints cA`, used by the control plane (certificate only — the
 *   CA key never goes to the CP) to verify client certificates, and by agents/the CLI to verify the
 *   CP's server certificate;
 * - server certificate: `serverAuth`, subjectAltName with every DNS name and IP given;
 * - host certificate: subject CN = hostname, OU `host`, `clientAuth`;
 * - operator certificate: subject CN = operator name, OU `operator`, `clientAuth`.
 *
 * Every key is ECDSA P-256 (WebCrypto): key generation costs well under a millisecond, TLS
 * handshakes are cheaper than with RSA at 10,000 hosts, and the key usage is `digitalSignature`
 * alone (ECDHE: no key is ever encrypted to the certificate, so no `keyEncipherment`). A CA key
 * given as RSA (a fleet CA made before this change) still signs: `importSigningKey` takes both.
 *
 * WebCrypto is asynchronous, so minting is too. Reading a certificate is not (`readCertIdentity`,
 * `isIssuedBy`). Everything goes in and out as PEM strings (keys PKCS#8). Time is a parameter
 * (`now`, `notBefore`) so that tests can mint a certificate issued before a revocation's
 * `notBefore` (SPEC §2.3).
 */
import { isIP } from 'node:net';
import { x509 } from './x509-lib.ts';
import type { webcrypto } from 'node:crypto';
import { floorToSecond, generateEcKey, importSigningKey, newSerial, type IssuedCert } from './x509.ts';
import { isHostname } from '../protocol/vocab.ts';

/** A certificate with its private key, both PEM. */
export type CertAndKey = {
  readonly certPem: string;
  readonly keyPem: string;
};

/** The fleet CA as the operator keeps it (certificate + private key). */
export type FleetCa = CertAndKey;

/** A minted end-entity certificate with the identity facts the CP will see. */
export type MintedCert = CertAndKey & {
  /** Lower-case hex. */
  readonly serial: string;
  readonly notBefore: Date;
  readonly notAfter: Date;
};

export type CreateFleetCaOptions = {
  commonName: string;
  /** Default 3650 (ten years). */
  validityDays?: number;
  /** Default: the current time. */
  now?: Date;
};

export type MintOptions = {
  /** Default 365. */
  validityDays?: number;
  /** Start of validity; default `now`. A revocation refuses certificates with notBefore < its notBefore. */
  notBefore?: Date;
  /** Default: the current time. */
  now?: Date;
};

export type ServerCertOptions = MintOptions & {
  /** DNS names and IP addresses for subjectAltName; `localhost` and `127.0.0.1` are always added. */
  hostnames?: readonly string[];
  /** Subject CN; default the first hostname or `nixfleet-control-plane`. */
  commonName?: string;
};

/** The OU values the control plane recognises (SPEC §5). */
export type CertRole = 'host' | 'operator';

type CryptoKey = webcrypto.CryptoKey;

const DAY_MS = 86_400_000;

function checkValidityDays(validityDays: number): void {
  if (!Number.isInteger(validityDays) || validityDays < 1) throw new Error('validityDays must be a positive integer');
}

function checkName(what: string, name: string): void {
  // CN values become identities compared byte-for-byte by the CP; refuse anything surprising
  // (this also keeps `,`, `=` and `+` out of the RFC 4514 subject strings built below).
  if (!isHostname(name)) {
    throw new Error(`${what} ${JSON.stringify(name)} is not a valid name (letters, digits, . _ @ -; at most 63)`);
  }
}

/** Create a self-signed fleet CA. The private key stays with the operator (never on the CP). */
export async function createFleetCa(opts: CreateFleetCaOptions): Promise<FleetCa> {
  const now = floorToSecond(opts.now ?? new Date());
  const validityDays = opts.validityDays ?? 3650;
  checkValidityDays(validityDays);
  if (opts.commonName.length === 0 || opts.commonName.length > 64) throw new Error('commonName must be 1..64 characters');
  const { keys, keyPem } = await generateEcKey();
  // Built as a Name from JSON, not a string: a CA name is free text (spaces, commas).
  const name = new x509.Name([{ CN: [opts.commonName] }, { O: ['nixfleet'] }]);
  const cert = await x509.X509CertificateGenerator.create({
    serialNumber: newSerial(),
    subject: name,
    issuer: name,
    notBefore: now,
    notAfter: new Date(now.getTime() + validityDays * DAY_MS),
    publicKey: keys.publicKey,
    signingKey: keys.privateKey,
    signingAlgorithm: { name: 'ECDSA', hash: 'SHA-256' },
    extensions: [
      new x509.BasicConstraintsExtension(true, undefined, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign | x509.KeyUsageFlags.digitalSignature, true),
      await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
    ],
  });
  return { certPem: cert.toString('pem'), keyPem };
}

type Leaf = MintOptions & {
  subject: string;
  usage: 'serverAuth' | 'clientAuth';
  altNames?: { type: 'dns' | 'ip'; value: string }[];
};

/** A signer of leaf certificates under `ca`: the CA is read and its key imported once. */
async function leafSigner(ca: FleetCa): Promise<(leaf: Leaf, publicKey: CryptoKey) => Promise<IssuedCert>> {
  const caCert = new x509.X509Certificate(ca.certPem);
  const signer = await importSigningKey(ca.keyPem);
  const aki = await x509.AuthorityKeyIdentifierExtension.create(signer.publicKey);
  return async (leaf, publicKey) => {
    const now = floorToSecond(leaf.now ?? new Date());
    const notBefore = floorToSecond(leaf.notBefore ?? now);
    const validityDays = leaf.validityDays ?? 365;
    checkValidityDays(validityDays);
    const notAfter = new Date(notBefore.getTime() + validityDays * DAY_MS);
    const serial = newSerial();
    const extensions: x509.Extension[] = [
      new x509.BasicConstraintsExtension(false, undefined, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true),
      new x509.ExtendedKeyUsageExtension([leaf.usage === 'serverAuth' ? x509.ExtendedKeyUsage.serverAuth : x509.ExtendedKeyUsage.clientAuth], false),
      await x509.SubjectKeyIdentifierExtension.create(publicKey),
      aki,
    ];
    if (leaf.altNames !== undefined && leaf.altNames.length > 0) extensions.push(new x509.SubjectAlternativeNameExtension(leaf.altNames, false));
    const cert = await x509.X509CertificateGenerator.create({
      serialNumber: serial,
      subject: leaf.subject,
      issuer: caCert.subjectName,
      notBefore,
      notAfter,
      publicKey,
      signingKey: signer.key,
      signingAlgorithm: signer.algorithm,
      extensions,
    });
    return { certPem: cert.toString('pem'), serial, notBefore, notAfter };
  };
}

async function mintLeaf(ca: FleetCa, leaf: Leaf): Promise<MintedCert> {
  const sign = await leafSigner(ca);
  const { keys, keyPem } = await generateEcKey();
  return { ...(await sign(leaf, keys.publicKey)), keyPem };
}

/**
 * Host certificates under `ca` for public keys the caller holds, exactly as {@link mintHostCert}
 * makes them (the benchmark mints 10,000 over one shared key: bench/lib/certs.ts).
 */
export async function hostCertMinter(ca: FleetCa): Promise<(hostname: string, publicKey: CryptoKey, opts?: MintOptions) => Promise<IssuedCert>> {
  const sign = await leafSigner(ca);
  return async (hostname, publicKey, opts = {}) => {
    checkName('hostname', hostname);
    return sign({ ...opts, ...clientLeaf(hostname, 'host') }, publicKey);
  };
}

/** Server certificate for the control plane; SAN always includes `localhost` and `127.0.0.1`. */
export async function mintServerCert(ca: FleetCa, opts: ServerCertOptions = {}): Promise<MintedCert> {
  const names = [...new Set([...(opts.hostnames ?? []), 'localhost', '127.0.0.1'])];
  const altNames = names.map((n) => ({ type: isIP(n) !== 0 ? ('ip' as const) : ('dns' as const), value: n }));
  const cn = opts.commonName ?? opts.hostnames?.[0] ?? 'nixfleet-control-plane';
  if (!/^[A-Za-z0-9._:-]{1,64}$/.test(cn)) throw new Error(`server commonName ${JSON.stringify(cn)} is not a host name or address`);
  return mintLeaf(ca, { ...opts, subject: `CN=${cn}, O=nixfleet`, usage: 'serverAuth', altNames });
}

/** Host (agent) client certificate: CN = hostname, OU `host`. */
export async function mintHostCert(ca: FleetCa, hostname: string, opts: MintOptions = {}): Promise<MintedCert> {
  checkName('hostname', hostname);
  return mintClientCert(ca, hostname, 'host', opts);
}

/** Operator client certificate: CN = name, OU `operator`. */
export async function mintOperatorCert(ca: FleetCa, name: string, opts: MintOptions = {}): Promise<MintedCert> {
  checkName('operator name', name);
  return mintClientCert(ca, name, 'operator', opts);
}

// RDN order CN, OU, O as before the move to @peculiar/x509 (operators read "CN=web1, OU=host").
const clientLeaf = (cn: string, role: CertRole) => ({ subject: `CN=${cn}, OU=${role}, O=nixfleet`, usage: 'clientAuth' as const });

function mintClientCert(ca: FleetCa, cn: string, role: CertRole, opts: MintOptions): Promise<MintedCert> {
  return mintLeaf(ca, { ...opts, ...clientLeaf(cn, role) });
}

/** Identity facts of a PEM certificate, as the CP reads them from a TLS peer. */
export type CertIdentity = {
  readonly commonName: string | null;
  readonly organizationalUnit: string | null;
  readonly serial: string;
  readonly notBefore: Date;
  readonly notAfter: Date;
  readonly isCa: boolean;
};

/** Read CN, OU, serial and validity from a PEM certificate. Throws on a malformed PEM. */
export function readCertIdentity(certPem: string): CertIdentity {
  const cert = new x509.X509Certificate(certPem);
  const field = (type: string): string | null => cert.subjectName.getField(type)[0] ?? null;
  return {
    commonName: field('CN'),
    organizationalUnit: field('OU'),
    serial: cert.serialNumber.toLowerCase(),
    notBefore: cert.notBefore,
    notAfter: cert.notAfter,
    isCa: cert.getExtension(x509.BasicConstraintsExtension)?.ca === true,
  };
}

/** True when `certPem` was signed by the CA certificate `caCertPem` (signature check only). */
export async function isIssuedBy(caCertPem: string, certPem: string): Promise<boolean> {
  try {
    const ca = new x509.X509Certificate(caCertPem);
    const cert = new x509.X509Certificate(certPem);
    // signatureOnly: the validity period is not the question here.
    return await cert.verify({ publicKey: ca, signatureOnly: true });
  } catch {
    return false;
  }
}

/**
 * Does this PEM text contain a private key? Used by the control plane to refuse configuration
 * that points at a CA or release private key (SPEC §5: the CP holds no signing key).
 */
export function containsPrivateKeyPem(text: string): boolean {
  return /-----BEGIN (?:RSA |EC |ENCRYPTED |OPENSSH )?PRIVATE KEY-----/.test(text);
}
