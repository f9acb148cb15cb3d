/**
 * Fleet PKI minting with node-forge (SPEC §5 identity, §7 `nixfleet pki …`).
 *
 * - fleet CA: self-signed, `basicConstraints cA`, used by the control plane (certificate only — the
 *   CA key never goes to the CP) to verify client certificates, and by agents/the CLI to verify the
 *   CP's server certificate;
 * - server certificate: `serverAuth`, subjectAltName with every DNS name and IP given;
 * - host certificate: subject CN = hostname, OU `host`, `clientAuth`;
 * - operator certificate: subject CN = operator name, OU `operator`, `clientAuth`.
 *
 * Keys are RSA 2048: node-forge has no ECDSA. node-forge delegates RSA key generation to Node's
 * native `crypto.generateKeyPairSync` when it is available (Node ≥ 10.12), which costs tens of
 * milliseconds per key rather than seconds in pure JavaScript; tests may still cache a CA.
 *
 * Everything goes in and out as PEM strings. Time is a parameter (`now`, `notBefore`) so that
 * tests can mint a certificate issued before a revocation's `notBefore` (SPEC §2.3).
 */
import { randomBytes } from 'node:crypto';
import { isIP } from 'node:net';
import forge from 'node-forge';
import { isHostname } from '../protocol/vocab.ts';

const { pki, md } = forge;

/** A certificate with its private key, both PEM. */
export type CertAndKey = {
  readonly certPem: string;
  readonly keyPem: string;
};

/** The fleet CA as the operator keeps it (certificate + private key). */
export type FleetCa = CertAndKey;

/** A minted end-entity certificate with the identity facts the CP will see. */
export type MintedCert = CertAndKey & {
  /** Lower-case hex, no leading zero byte stripped beyond what DER requires. */
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

const DAY_MS = 86_400_000;
const KEY_BITS = 2048;

/** X.509 serial: 16 random bytes, top bit cleared so the INTEGER is positive (RFC 5280 §4.1.2.2). */
function newSerial(): string {
  const b = randomBytes(16);
  b[0] = (b[0]! & 0x7f) | 0x01; // positive and no leading zero byte to strip
  return b.toString('hex');
}

function generateKeys(): forge.pki.rsa.KeyPair {
  // Synchronous call without a callback → node-forge uses Node's native generateKeyPairSync.
  return pki.rsa.generateKeyPair({ bits: KEY_BITS, e: 0x10001 });
}

/** Seconds precision: X.509 UTCTime has no milliseconds, so the Date we report matches the cert. */
function floorToSecond(d: Date): Date {
  return new Date(Math.floor(d.getTime() / 1000) * 1000);
}

function parseCa(ca: FleetCa): { cert: forge.pki.Certificate; key: forge.pki.rsa.PrivateKey } {
  const cert = pki.certificateFromPem(ca.certPem);
  const key = pki.privateKeyFromPem(ca.keyPem) as forge.pki.rsa.PrivateKey;
  return { cert, key };
}

function checkName(what: string, name: string): void {
  // CN values become identities compared byte-for-byte by the CP; refuse anything surprising.
  if (!isHostname(name)) {
    throw new Error(`${what} ${JSON.stringify(name)} is not a valid name (letters, digits, . _ @ -; at most 63)`);
  }
}

/** Create a self-signed fleet CA. The private key stays with the operator (never on the CP). */
export function createFleetCa(opts: CreateFleetCaOptions): FleetCa {
  const now = floorToSecond(opts.now ?? new Date());
  const validityDays = opts.validityDays ?? 3650;
  if (!Number.isInteger(validityDays) || validityDays < 1) throw new Error('validityDays must be a positive integer');
  if (opts.commonName.length === 0 || opts.commonName.length > 64) throw new Error('commonName must be 1..64 characters');
  const keys = generateKeys();
  const cert = pki.createCertificate();
  cert.publicKey = keys.publicKey;
  cert.serialNumber = newSerial();
  cert.validity.notBefore = now;
  cert.validity.notAfter = new Date(now.getTime() + validityDays * DAY_MS);
  const attrs = [
    { shortName: 'CN', value: opts.commonName },
    { shortName: 'O', value: 'nixfleet' },
  ];
  cert.setSubject(attrs);
  cert.setIssuer(attrs);
  cert.setExtensions([
    { name: 'basicConstraints', cA: true, critical: true },
    { name: 'keyUsage', keyCertSign: true, cRLSign: true, digitalSignature: true, critical: true },
    { name: 'subjectKeyIdentifier' },
  ]);
  cert.sign(keys.privateKey, md.sha256.create());
  return { certPem: pki.certificateToPem(cert), keyPem: pki.privateKeyToPem(keys.privateKey) };
}

type Leaf = {
  subject: { shortName: string; value: string }[];
  extKeyUsage: { serverAuth?: boolean; clientAuth?: boolean };
  altNames?: { type: number; value?: string; ip?: string }[];
} & MintOptions;

function mintLeaf(ca: FleetCa, leaf: Leaf): MintedCert {
  const { cert: caCert, key: caKey } = parseCa(ca);
  const now = floorToSecond(leaf.now ?? new Date());
  const notBefore = floorToSecond(leaf.notBefore ?? now);
  const validityDays = leaf.validityDays ?? 365;
  if (!Number.isInteger(validityDays) || validityDays < 1) throw new Error('validityDays must be a positive integer');
  const notAfter = new Date(notBefore.getTime() + validityDays * DAY_MS);
  const keys = generateKeys();
  const cert = pki.createCertificate();
  cert.publicKey = keys.publicKey;
  const serial = newSerial();
  cert.serialNumber = serial;
  cert.validity.notBefore = notBefore;
  cert.validity.notAfter = notAfter;
  cert.setSubject(leaf.subject);
  cert.setIssuer(caCert.subject.attributes);
  const extensions: unknown[] = [
    { name: 'basicConstraints', cA: false, critical: true },
    { name: 'keyUsage', digitalSignature: true, keyEncipherment: true, critical: true },
    { name: 'extKeyUsage', ...leaf.extKeyUsage },
    { name: 'subjectKeyIdentifier' },
    { name: 'authorityKeyIdentifier', keyIdentifier: caCert.generateSubjectKeyIdentifier().getBytes() },
  ];
  if (leaf.altNames !== undefined && leaf.altNames.length > 0) extensions.push({ name: 'subjectAltName', altNames: leaf.altNames });
  cert.setExtensions(extensions as object[]);
  cert.sign(caKey, md.sha256.create());
  return { certPem: pki.certificateToPem(cert), keyPem: pki.privateKeyToPem(keys.privateKey), serial, notBefore, notAfter };
}

/** Server certificate for the control plane; SAN always includes `localhost` and `127.0.0.1`. */
export function mintServerCert(ca: FleetCa, opts: ServerCertOptions = {}): MintedCert {
  const names = [...new Set([...(opts.hostnames ?? []), 'localhost', '127.0.0.1'])];
  const altNames = names.map((n) => (isIP(n) !== 0 ? { type: 7, ip: n } : { type: 2, value: n }));
  const cn = opts.commonName ?? opts.hostnames?.[0] ?? 'nixfleet-control-plane';
  return mintLeaf(ca, {
    ...opts,
    subject: [
      { shortName: 'CN', value: cn },
      { shortName: 'O', value: 'nixfleet' },
    ],
    extKeyUsage: { serverAuth: true },
    altNames,
  });
}

/** Host (agent) client certificate: CN = hostname, OU `host`. */
export function mintHostCert(ca: FleetCa, hostname: string, opts: MintOptions = {}): MintedCert {
  checkName('hostname', hostname);
  return mintClientCert(ca, hostname, 'host', opts);
}

/** Operator client certificate: CN = name, OU `operator`. */
export function mintOperatorCert(ca: FleetCa, name: string, opts: MintOptions = {}): MintedCert {
  checkName('operator name', name);
  return mintClientCert(ca, name, 'operator', opts);
}

function mintClientCert(ca: FleetCa, cn: string, role: CertRole, opts: MintOptions): MintedCert {
  return mintLeaf(ca, {
    ...opts,
    subject: [
      { shortName: 'CN', value: cn },
      { shortName: 'OU', value: role },
      { shortName: 'O', value: 'nixfleet' },
    ],
    extKeyUsage: { clientAuth: true },
  });
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
  const cert = pki.certificateFromPem(certPem);
  const field = (sn: string): string | null => {
    const f = cert.subject.getField(sn) as { value?: unknown } | null;
    return f !== null && typeof f.value === 'string' ? f.value : null;
  };
  const bc = cert.getExtension('basicConstraints') as { cA?: boolean } | undefined;
  return {
    commonName: field('CN'),
    organizationalUnit: field('OU'),
    serial: cert.serialNumber.toLowerCase(),
    notBefore: cert.validity.notBefore,
    notAfter: cert.validity.notAfter,
    isCa: bc?.cA === true,
  };
}

/** True when `certPem` was signed by the CA certificate `caCertPem` (signature check only). */
export function isIssuedBy(caCertPem: string, certPem: string): boolean {
  try {
    return pki.certificateFromPem(caCertPem).verify(pki.certificateFromPem(certPem));
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
