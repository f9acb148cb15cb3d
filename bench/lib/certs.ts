/**
 * Certificates for a benchmark fleet of up to 10,000 hosts, minted once and cached under
 * `.bench-cache/` (gitignored).
 *
 * The fleet CA and the control plane's server certificate come from `cli/pki.ts`, exactly as in
 * production. The host certificates have the same layout as `mintHostCert` (subject
 * CN = hostname, OU `host`, O `nixfleet`; the same extensions, each with its own random serial), but
 * are minted on a fast path, for two measured reasons (see docs/performance.md):
 *
 * - `mintHostCert` generates a fresh RSA-2048 key per certificate (≈ 160 ms each here: 27 min for
 *   10,000). The bench uses ONE host key pair for every host certificate. The CP identifies a host
 *   by the certificate (CN, OU, serial, CA signature), never by its key, so sharing the key changes
 *   no code path; it only makes the client side cheaper to set up.
 * - node-forge signs in pure JavaScript (≈ 20 ms per RSA-2048 signature here: 3.5 min). node-forge
 *   still builds the certificate (TBSCertificate ASN.1 and the final DER); the signature over the
 *   DER of the TBSCertificate is made by Node's native `crypto.sign` (≈ 1 ms).
 *
 * node-forge cannot put an EC key in a certificate (its SubjectPublicKeyInfo encoder is RSA-only),
 * so EC host keys were not an option without hand-written ASN.1.
 */
import { createHash, createPrivateKey, generateKeyPairSync, randomBytes, sign as nodeSign } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import forge from 'node-forge';
import { createFleetCa, mintServerCert, type FleetCa } from '../../cli/pki.ts';

const { pki, asn1 } = forge;

/** Bump when the layout of the cached file or of the certificates changes. */
const CACHE_VERSION = 1;
const DAY_MS = 86_400_000;
const HOST_VALIDITY_DAYS = 365;

export type HostCert = { readonly name: string; readonly certPem: string; readonly serial: string };

export type BenchPki = {
  readonly ca: FleetCa;
  /** The control plane's server certificate and key (SAN localhost, 127.0.0.1). */
  readonly server: { readonly certPem: string; readonly keyPem: string };
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

/**
 * A host certificate minter for one CA and one shared host public key. Same subject and
 * extensions as `cli/pki.ts` `mintHostCert`; signature by Node's native RSA.
 */
export function hostCertMinter(ca: FleetCa, hostPublicKeyPem: string): (name: string, nowMs: number) => HostCert {
  const caCert = pki.certificateFromPem(ca.certPem);
  const caKey = createPrivateKey(ca.keyPem);
  const publicKey = pki.publicKeyFromPem(hostPublicKeyPem);
  const caKeyId = caCert.generateSubjectKeyIdentifier().getBytes();
  return (name, nowMs) => {
    const cert = pki.createCertificate();
    cert.publicKey = publicKey;
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
    // What cert.sign() does, with the RSA signature made natively instead of in JavaScript.
    cert.signatureOid = cert.siginfo.algorithmOid = pki.oids['sha256WithRSAEncryption']!;
    // getTBSCertificate is public node-forge API (x509.js) missing from @types/node-forge.
    const tbs = (pki as unknown as { getTBSCertificate(c: forge.pki.Certificate): forge.asn1.Asn1 }).getTBSCertificate(cert);
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
  const { publicKey, privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048, publicExponent: 0x10001 });
  const hostKeyPem = privateKey.export({ type: 'pkcs8', format: 'pem' }).toString();
  const minter = hostCertMinter(ca, publicKey.export({ type: 'spki', format: 'pem' }).toString());
  const hosts = names.map((n) => minter(n, nowMs));
  return { ca, server: { certPem: server.certPem, keyPem: server.keyPem }, hostKeyPem, hosts };
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
      return { ca: cached.ca, server: cached.server, hostKeyPem: cached.hostKeyPem, hosts: cached.hosts, minted: false, mintMs: 0 };
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
