/**
 * Certificates for a benchmark fleet of up to 10,000 hosts, minted once and cached under
 * `.bench-cache/` (gitignored).
 *
 * Everything comes from `pki/pki.ts`, exactly as in production: the fleet CA, the control plane's
 * server certificate, an operator certificate, and the host certificates through
 * `hostCertMinter` (the same subject, extensions and signature as `mintHostCert`, each with its
 * own random serial). One measured shortcut (see docs/performance.md): every host certificate is
 * issued for ONE shared ECDSA P-256 key pair. The CP identifies a host by the certificate (CN, OU,
 * serial, CA signature), never by its key, so sharing the key changes no code path; it only makes
 * the load client cheaper to set up (a client loads its key into a TLS context once per identity).
 */
import { createHash, webcrypto } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { createFleetCa, hostCertMinter, mintOperatorCert, mintServerCert, type FleetCa } from '../../pki/pki.ts';
import { generateEcKey } from '../../pki/x509.ts';

/** Bump when the layout of the cached file or of the certificates changes. */
const CACHE_VERSION = 4;
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

async function mint(names: readonly string[], nowMs: number): Promise<Omit<CacheFile, 'version' | 'namesSha256' | 'mintedAt'>> {
  const now = new Date(nowMs);
  const ca = await createFleetCa({ commonName: 'nixfleet-bench-ca', now });
  const server = await mintServerCert(ca, { hostnames: ['localhost', '127.0.0.1'], now });
  const operator = await mintOperatorCert(ca, 'bench-operator', { now });
  const { keys, keyPem: hostKeyPem } = await generateEcKey();
  const minter = await hostCertMinter(ca);
  const hosts: HostCert[] = [];
  // One at a time: WebCrypto runs each signature on the thread pool; 10,000 at once only queue.
  for (const name of names) {
    const c = await minter(name, keys.publicKey as webcrypto.CryptoKey, { now, validityDays: HOST_VALIDITY_DAYS });
    hosts.push({ name, certPem: c.certPem, serial: c.serial });
  }
  return { ca, server: { certPem: server.certPem, keyPem: server.keyPem }, operator: { certPem: operator.certPem, keyPem: operator.keyPem }, hostKeyPem, hosts };
}

/**
 * Certificates for exactly `names` (order kept), from the cache when it holds a still-valid set for
 * the same names, otherwise minted and written atomically to the cache.
 */
export async function loadBenchPki(names: readonly string[], opts: { cacheDir?: string; nowMs?: number } = {}): Promise<BenchPki> {
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
  const m = await mint(names, nowMs);
  const mintMs = performance.now() - started;
  const out: CacheFile = { version: CACHE_VERSION, namesSha256: digest, mintedAt: new Date(nowMs).toISOString(), ...m };
  mkdirSync(dir, { recursive: true });
  const tmp = `${file}.${process.pid}.tmp`;
  writeFileSync(tmp, JSON.stringify(out));
  renameSync(tmp, file);
  return { ...m, minted: true, mintMs };
}
