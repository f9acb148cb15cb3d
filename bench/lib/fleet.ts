/**
 * A benchmark fleet on disk, laid out exactly as the control plane is deployed (SPEC §2.4, §5):
 * fleet CA certificate (no key), server certificate and key, trust.json with the release public
 * key, and a `releases/` directory source holding the signed `fleet.resolved.json{,.sig}`.
 *
 * The fleet is the fixtures' generated fleet (`sampleFleet`): hosts `host-0000…`, round-robin over
 * the channels, waves by tag, soak 0, with Ed25519 host keys (`withPubkeys`) so that reports and
 * confirmed records are signed and verified as in production. Generation 1 closures are what the
 * hosts run; generation 2 is the release the rollout benchmark deploys.
 */
import { createPrivateKey, sign as nodeSign, type KeyObject } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fakeClosure, hostName, sampleFleet, signFleet, writeSigned, type SignedArtifact } from '../../fixtures/artifacts.ts';
import { mintHostKey, mintReleaseKey, trustFor, writeTrustFile, type ReleaseKey } from '../../fixtures/keys.ts';
import type { FleetResolved } from '../../protocol/schema.ts';
import { defaultCacheDir, type BenchPki } from './certs.ts';

export const CHANNELS = ['stable', 'beta', 'edge', 'lts'] as const;
export const WAVES = 5;

export type BenchFleet = {
  readonly hosts: number;
  readonly names: readonly string[];
  /** Generation → fleet with every host's closure of that generation. */
  fleet(generation: number): FleetResolved;
  closure(name: string, generation: number): string;
};

/** A fixture host's Ed25519 key (`mintHostKey(i)`): the seed and the OpenSSH public line. */
export type HostKeyRecord = { seedHex: string; publicHex: string; openssh: string };

const HOST_KEYS_VERSION = 1;
/** Keys are derived for this many hosts at once, so every smaller fleet is a prefix of one file. */
const HOST_KEYS_BATCH = 10_000;

/**
 * The fixtures' host keys for hosts `0 … n-1`, cached under `.bench-cache/`: `mintHostKey` derives
 * each public key with @noble (≈ 1 ms each), which is 10 s for 10,000 hosts on every run otherwise.
 */
export function hostKeys(n: number, cacheDir: string = defaultCacheDir(), batch: number = HOST_KEYS_BATCH): HostKeyRecord[] {
  const size = Math.max(n, batch);
  const file = join(cacheDir, `host-keys-v${HOST_KEYS_VERSION}-${size}.json`);
  if (existsSync(file)) {
    const cached = JSON.parse(readFileSync(file, 'utf8')) as HostKeyRecord[];
    if (cached.length === size) return cached.slice(0, n);
  }
  const keys: HostKeyRecord[] = [];
  for (let i = 0; i < size; i++) {
    const k = mintHostKey(i, hostName(i));
    keys.push({ seedHex: Buffer.from(k.secretKey).toString('hex'), publicHex: Buffer.from(k.publicKey).toString('hex'), openssh: k.openssh });
  }
  mkdirSync(cacheDir, { recursive: true });
  const tmp = `${file}.${process.pid}.tmp`;
  writeFileSync(tmp, JSON.stringify(keys));
  renameSync(tmp, file);
  return keys.slice(0, n);
}

/**
 * The generated fleet of `n` hosts, 4 channels, 5 waves, soak 0, with host public keys: the same
 * value as `sampleFleet({…, withPubkeys: true})` (checked by fleet.test.ts), with the keys from
 * the cache (repeated when there are fewer keys than hosts).
 */
export function benchFleet(n: number, keys: readonly HostKeyRecord[] = hostKeys(n)): BenchFleet {
  const base = sampleFleet({ hosts: n, channels: [...CHANNELS], waves: WAVES, soakMinutes: 0, closures: true, withPubkeys: false });
  if (keys.length === 0 && n > 0) throw new Error('benchFleet: no host keys');
  // Fewer keys than hosts: they repeat (a 100,000-host fleet reuses the 10,000 cached keys; only
  // hosts with a bench certificate ever sign anything).
  for (let i = 0; i < n; i++) base.hosts[hostName(i)]!.pubkey = keys[i % keys.length]!.openssh;
  const names = Object.keys(base.hosts).sort();
  return {
    hosts: n,
    names,
    fleet(generation) {
      const f = structuredClone(base);
      for (const [name, h] of Object.entries(f.hosts)) h.closureHash = fakeClosure(name, generation);
      return f;
    },
    closure: (name, generation) => fakeClosure(name, generation),
  };
}

/** Names of the first `n` fixture hosts (`host-0000`, …), the order certificates are minted in. */
export function fleetNames(n: number): string[] {
  return Array.from({ length: n }, (_, i) => hostName(i));
}

export type CpFiles = {
  dir: string;
  releasesDir: string;
  configFile: string;
  dbPath: string;
  caCertFile: string;
  release: ReleaseKey;
  /** Sign `fleet` with signedAt = now (seconds) and publish it into `releases/`. */
  publish(fleet: FleetResolved, nowMs: number): SignedArtifact;
};

/** RFC 3339 UTC without milliseconds, as CI stamps signedAt. */
export const stamp = (ms: number): string => new Date(Math.floor(ms / 1000) * 1000).toISOString().replace(/\.\d{3}Z$/, 'Z');

/**
 * Write the control plane's files under `dir` and its JSON configuration (`cp.json`).
 * `config` overrides settings (e.g. `reconcileDebounceMs`, `agentPollIntervalSecs`).
 */
export function writeCpFiles(dir: string, pki: BenchPki, port: number, config: Record<string, unknown> = {}): CpFiles {
  mkdirSync(dir, { recursive: true });
  const releasesDir = join(dir, 'releases');
  mkdirSync(releasesDir, { recursive: true });
  const caCertFile = join(dir, 'ca.pem');
  writeFileSync(caCertFile, pki.ca.certPem); // the certificate only: the CA key never goes to the CP
  writeFileSync(join(dir, 'server.pem'), pki.server.certPem);
  writeFileSync(join(dir, 'server.key'), pki.server.keyPem, { mode: 0o600 });
  const release = mintReleaseKey('ed25519', 4242);
  const trustFile = writeTrustFile(dir, trustFor(release));
  const dbPath = join(dir, 'cp.sqlite');
  const configFile = join(dir, 'cp.json');
  writeFileSync(
    configFile,
    JSON.stringify({
      listenHost: '127.0.0.1',
      listenPort: port,
      tlsCertFile: join(dir, 'server.pem'),
      tlsKeyFile: join(dir, 'server.key'),
      clientCaFile: caCertFile,
      trustFile,
      source: { type: 'dir', dir: releasesDir },
      dbPath,
      logLevel: 'warn',
      ...config,
    }),
  );
  return {
    dir,
    releasesDir,
    configFile,
    dbPath,
    caCertFile,
    release,
    publish(fleet, nowMs) {
      const signed = signFleet(fleet, release, stamp(nowMs));
      writeSigned(releasesDir, signed);
      return signed;
    },
  };
}

/**
 * A fixture host's Ed25519 key (the one whose public half is `hosts[h].pubkey` in the fleet) in
 * Node's native signer. Ed25519 signatures are deterministic (RFC 8032), so these are
 * byte-identical to the fixtures' @noble signatures; native signing only keeps the simulated
 * agents cheap (≈ 0.05 ms instead of ≈ 2 ms).
 */
export function hostSigningKey(k: HostKeyRecord): KeyObject {
  const b64url = (hex: string) => Buffer.from(hex, 'hex').toString('base64url');
  return createPrivateKey({ key: { kty: 'OKP', crv: 'Ed25519', d: b64url(k.seedHex), x: b64url(k.publicHex) }, format: 'jwk' });
}

/** Raw 64-byte Ed25519 signature, base64, over `bytes`. */
export function signEd25519B64(key: KeyObject, bytes: Uint8Array): string {
  return nodeSign(null, bytes, key).toString('base64');
}
