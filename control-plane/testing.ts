/**
 * Test harness for the control plane (used by control-plane/*.test.ts; e2e has its own): a temp
 * directory with a fleet CA, server and client certificates, a release key and trust.json, a
 * `releases/` directory source, a controllable clock, and a real HTTPS + mTLS server on loopback
 * with an undici client per certificate.
 */
import { mkdtempSync, rmSync, writeFileSync, mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Agent, request } from 'undici';
import { createFleetCa, mintHostCert, mintOperatorCert, mintServerCert, type CertAndKey, type FleetCa, type MintOptions } from '../cli/pki.ts';
import { signBytes } from '../release/crypto.ts';
import { canonicalBytes } from '../release/jcs.ts';
import type { FleetResolved, Revocations } from '../release/schema.ts';
import { mintHostKey, mintReleaseKey, trustFor, writeTrustFile, type ReleaseKey } from '../fixtures/keys.ts';
import { signArtifact, writeSigned, type SignedArtifact } from '../fixtures/artifacts.ts';
import { createApp } from './app.ts';
import { loadStartupMaterial, resolveConfig, type Config } from './config.ts';
import { silentLogger } from './log.ts';
import { listenHttps, type ListeningServer } from './server.ts';
import { ControlPlane } from './service.ts';
import { createSource } from './sources.ts';
import { Store } from './store.ts';
import { toBase64 } from '../release/crypto.ts';
import type { HostReport, ConfirmedRecord } from './api.ts';

/** RFC 3339 UTC without milliseconds, as CI stamps signedAt. */
export const stamp = (ms: number): string => new Date(Math.floor(ms / 1000) * 1000).toISOString().replace(/\.\d{3}Z$/, 'Z');

export class Clock {
  constructor(public ms: number) {}
  readonly now = (): number => this.ms;
  advance(ms: number): void {
    this.ms += ms;
  }
}

export type Env = {
  dir: string;
  ca: FleetCa;
  server: CertAndKey;
  release: ReleaseKey;
  releasesDir: string;
  trustFile: string;
  files: { caCert: string; cert: string; key: string };
  clock: Clock;
  /** Sign and publish a fleet (or revocations) into `releases/` with signedAt = clock now (or `signedAt`). */
  publish(value: FleetResolved | Revocations, opts?: { signedAt?: string; kind?: 'fleet' | 'revocations'; key?: ReleaseKey }): SignedArtifact;
  hostCert(name: string, opts?: MintOptions): CertAndKey;
  operatorCert(name?: string): CertAndKey;
  /** The configuration a test CP starts with (JSON-level overrides merged in). */
  config(over?: Record<string, unknown>): Config;
  cleanup(): void;
};

const certCache = new Map<string, CertAndKey>();
// RSA key generation dominates test time: one CA and server certificate per test process.
let sharedPki: { ca: FleetCa; server: CertAndKey } | null = null;

export function makeEnv(prefix = 'nixfleet-cp-'): Env {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  sharedPki ??= (() => {
    const ca = createFleetCa({ commonName: 'test fleet CA' });
    return { ca, server: mintServerCert(ca, {}) };
  })();
  const { ca, server } = sharedPki;
  const release = mintReleaseKey('ed25519', 7);
  const releasesDir = join(dir, 'releases');
  mkdirSync(releasesDir);
  const files = { caCert: join(dir, 'ca.pem'), cert: join(dir, 'server.pem'), key: join(dir, 'server.key') };
  writeFileSync(files.caCert, ca.certPem);
  writeFileSync(files.cert, server.certPem);
  writeFileSync(files.key, server.keyPem);
  const trustFile = writeTrustFile(dir, trustFor(release));
  const clock = new Clock(Math.floor(Date.now() / 1000) * 1000);
  const caTag = ca.certPem.slice(-80);
  const env: Env = {
    dir,
    ca,
    server,
    release,
    releasesDir,
    trustFile,
    files,
    clock,
    publish(value, opts = {}) {
      const kind = opts.kind ?? ('hosts' in value ? 'fleet' : 'revocations');
      const signed = signArtifact(value, opts.key ?? release, { signedAt: opts.signedAt ?? stamp(clock.ms) });
      writeSigned(releasesDir, signed, kind === 'fleet' ? 'fleet.resolved.json' : 'revocations.json');
      return signed;
    },
    hostCert(name, opts = {}) {
      const key = `${caTag}|host|${name}|${opts.notBefore?.getTime() ?? ''}`;
      let c = certCache.get(key);
      if (c === undefined) {
        c = mintHostCert(ca, name, opts);
        certCache.set(key, c);
      }
      return c;
    },
    operatorCert(name = 'alice') {
      const key = `${caTag}|operator|${name}`;
      let c = certCache.get(key);
      if (c === undefined) {
        c = mintOperatorCert(ca, name);
        certCache.set(key, c);
      }
      return c;
    },
    config(over = {}) {
      const r = resolveConfig({
        listenHost: '127.0.0.1',
        listenPort: 0,
        tlsCertFile: files.cert,
        tlsKeyFile: files.key,
        clientCaFile: files.caCert,
        trustFile,
        dbPath: join(dir, 'cp.sqlite'),
        source: { type: 'dir', dir: releasesDir },
        // Tests drive reconcile passes explicitly; the debounce timer would race them.
        reconcileDebounceMs: 3_600_000,
        ...over,
      });
      if (!r.ok) throw new Error(r.error.message);
      return r.value;
    },
    cleanup() {
      rmSync(dir, { recursive: true, force: true });
    },
  };
  return env;
}

export type RunningCp = {
  cp: ControlPlane;
  store: Store;
  server: ListeningServer;
  url: string;
  config: Config;
  stop(): Promise<void>;
};

/** Start a real control plane (store, source, service, Hono app, HTTPS mTLS listener) on loopback. */
export async function startCp(env: Env, over: Record<string, unknown> = {}): Promise<RunningCp> {
  const config = env.config(over);
  const material = loadStartupMaterial(config);
  if (!material.ok) throw new Error(material.error.message);
  const store = new Store(config.dbPath);
  const source = createSource(config.source, { maxBytes: config.maxArtifactBytes, timeoutMs: config.fetchTimeoutMs, cacheDir: join(env.dir, 'git-cache') });
  const cp = new ControlPlane({ config, store, source, trust: material.value.trust, now: env.clock.now, log: silentLogger });
  await cp.start({ timers: false });
  const app = createApp({ service: cp, maxBodyBytes: config.maxBodyBytes, retryAfterSecs: config.retryAfterSecs, logError: () => {} });
  const server = await listenHttps(app, material.value.tls, config.listenHost, config.listenPort, { keepAliveSecs: config.keepAliveSecs, onTlsConnection: (s) => cp.metrics.tlsConnection(s) });
  return {
    cp,
    store,
    server,
    url: `https://localhost:${server.port}`,
    config,
    async stop() {
      await server.close();
      await cp.stop();
      store.close();
    },
  };
}

export type Reply = { status: number; headers: Record<string, string | string[] | undefined>; body: unknown; raw: Buffer };

/** An HTTPS client presenting `cert` (or none), trusting the fleet CA for the server. */
export class Client {
  private readonly agent: Agent;
  constructor(
    private readonly base: string,
    caPem: string,
    cert: CertAndKey | null,
  ) {
    this.agent = new Agent({ connect: { ca: caPem, ...(cert !== null ? { cert: cert.certPem, key: cert.keyPem } : {}) } });
  }

  async call(method: string, path: string, body?: unknown, headers: Record<string, string> = {}): Promise<Reply> {
    const init: Parameters<typeof request>[1] = { method: method as 'GET', dispatcher: this.agent, headers: { ...headers } };
    if (body !== undefined) {
      const streamed = typeof body === 'object' && body !== null && Symbol.asyncIterator in body;
      init.body = typeof body === 'string' || body instanceof Uint8Array || streamed ? (body as string) : JSON.stringify(body);
      (init.headers as Record<string, string>)['content-type'] ??= 'application/json';
    }
    const res = await request(this.base + path, init);
    const raw = Buffer.from(await res.body.arrayBuffer());
    let parsed: unknown = null;
    const ct = String(res.headers['content-type'] ?? '');
    if (ct.includes('json') && raw.length > 0 && res.headers['content-encoding'] === undefined) parsed = JSON.parse(raw.toString('utf8'));
    return { status: res.statusCode, headers: res.headers, body: parsed, raw };
  }

  close(): Promise<void> {
    return this.agent.close();
  }
}

/** The ed25519 host key of fixture host `i` (same seed as sampleFleet({withPubkeys: true})). */
export function hostKeyOf(i: number, name: string): { sign(value: unknown): string } {
  const k = mintHostKey(i, name);
  return {
    sign(value: unknown): string {
      const bytes = canonicalBytes(value);
      if (!bytes.ok) throw new Error('not canonicalizable');
      return toBase64(signBytes(bytes.value, { algorithm: 'ed25519', secretKey: k.secretKey }));
    },
  };
}

export function report(hostname: string, event: HostReport['event'], rolloutId: string | null, closureHash: string | null, atMs: number, message = ''): HostReport {
  return { hostname, event, rolloutId, closureHash, at: new Date(atMs).toISOString(), message };
}

export function confirmedRecord(hostname: string, rolloutId: string, closureHash: string, atMs: number): ConfirmedRecord {
  return { hostname, rolloutId, closureHash, confirmedAt: new Date(atMs).toISOString() };
}
