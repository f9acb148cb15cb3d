/**
 * The agent's composition root: the ONE place that turns a resolved `Config` into a running
 * `NixfleetAgent` — state directory, trust.json loader, host key, mTLS client to the CP, Nix
 * activation backend, probes, clock, sleep, randomness and boot id.
 *
 * `main.ts` calls `buildAgent(config, { log })` and gets the real host. Tests call the same
 * function and replace only what they must: the real-Nix harness (fixtures/agent-harness.ts)
 * replaces nothing but the log; fast tests pass the in-memory backend and store, a scripted CP and
 * a virtual clock (fixtures/agent-fake-backend.ts `fakeParts`). Whatever is not replaced is built
 * here from the config, exactly as in production.
 */
import type { WhoamiResponse } from '../protocol/enrol.ts';
import { existsSync, readFileSync } from 'node:fs';
import { execFile } from 'node:child_process';
import type { Logger } from '../io/log.ts';
import type { PrivateKey } from '../protocol/crypto.ts';
import { parseJsonStrict } from '../protocol/jcs.ts';
import { err, ok, type Result } from '../protocol/result.ts';
import { parseTrust, type Trust } from '../protocol/schema.ts';
import type { ActivationBackend } from './backend.ts';
import { CpClient, type TlsMaterial } from './client.ts';
import { RenewingClient, renewOnReplicas, singleConnection, type Connection } from './certs.ts';
import type { Config } from './config.ts';
import { loadHostKey } from './hostkey.ts';
import { FailoverClient } from './failover.ts';
import { NixfleetAgent, type AgentDeps, type CpApi } from './loop.ts';
import { AgentMetrics } from './metrics.ts';
import { NixBackend } from './nix.ts';
import { HOST_PROBES, type ProbeRunner } from './probes.ts';
import { hostCheckIo, type CheckIo } from './compliance.ts';
import { FileStateStore, type StateStore } from './state.ts';

/**
 * What a caller may supply instead of the real thing. `log` is required (the daemon timestamps to
 * stderr, tests collect lines); everything else defaults to the production dependency.
 */
export type AgentWiring = {
  log: Logger;
  backend?: ActivationBackend;
  store?: StateStore;
  /** A CP API the caller owns (not closed by `close()`); default an mTLS `CpClient` from `config.tls`. */
  client?: CpApi;
  /** Default: read from `config.hostKeyFile` (null when that is null). */
  hostKey?: PrivateKey | null;
  loadTrust?: AgentDeps['loadTrust'];
  probes?: ProbeRunner;
  now?: () => number;
  sleep?: (ms: number, signal?: AbortSignal) => Promise<void>;
  random?: () => number;
  bootId?: () => string;
  /** Issue 14: reboot the machine (rebootPolicy automatic); default: run `config.rebootCommand`. */
  reboot?: AgentDeps['reboot'];
  /** Issue 15: the runtime compliance checks' view of the host; default the real one under `config.complianceRoot`. */
  checkIo?: CheckIo | null;
};

export type BuiltAgent = {
  agent: NixfleetAgent;
  /** Closes what `buildAgent` opened (the CP client's connection pool). */
  close: () => Promise<void>;
};

/** Why the agent could not be built; all are exit 2 (I/O) for `nixfleet-agent`. */
export type ComposeErrorCode = 'UNREADABLE' | 'HOST_KEY' | 'STATE_DIR';
export type ComposeError = { code: ComposeErrorCode; message: string };

/** Builds the agent from `config`, with the real dependency for everything `wiring` leaves out. */
export function buildAgent(config: Config, wiring: AgentWiring): Result<BuiltAgent, ComposeError> {
  const { log } = wiring;

  // Read everything that can fail first; the client (a connection pool) is opened last, so a
  // refusal leaves nothing open.
  let connect: () => { client: CpApi; close: () => Promise<void> };
  if (wiring.client !== undefined) {
    const given = wiring.client;
    connect = () => ({ client: given, close: async () => {} });
  } else {
    const tls = readTls(config);
    if (!tls.ok) return tls;
    // Issue 17: cpUrl first, then the further replicas in cpUrls (failover.ts: sticky, with backoff).
    const urls = [config.cpUrl, ...config.cpUrls];
    const connectAll = (t: TlsMaterial): Connection => {
      const cs = urls.map((url) => new CpClient({ cpUrl: url, tls: t, requestTimeoutSecs: config.requestTimeoutSecs, maxArtifactBytes: config.maxArtifactBytes }));
      const close = async () => void (await Promise.all(cs.map((c) => c.close())));
      if (cs.length === 1) return singleConnection(cs[0]!);
      const api = new FailoverClient(urls.map((url, i) => ({ url, client: cs[i]! })), { now: wiring.now ?? Date.now, log: (message: string) => log.warn('agent.failover', { message }) });
      // Issue 16: a renewal goes to the replica in use, else the next that answers.
      return { api, renew: (body) => renewOnReplicas(cs, Math.max(0, urls.indexOf(api.currentUrl)), body), close };
    };
    connect = () => {
      if (config.enrol === null) {
        const c = connectAll(tls.value);
        return { client: c.api, close: c.close };
      }
      // Issue 16: with enrolment configured, the certificate renews itself before it expires.
      const c = new RenewingClient({ config, hostKey, connect: connectAll, now: wiring.now ?? Date.now, log }, tls.value);
      return { client: c, close: () => c.close() };
    };
  }

  let hostKey: PrivateKey | null = null;
  if (wiring.hostKey !== undefined) hostKey = wiring.hostKey;
  else if (config.hostKeyFile !== null) {
    const k = loadHostKey(config.hostKeyFile);
    if (!k.ok) return err({ code: 'HOST_KEY', message: `${k.error.code}: ${k.error.message}` });
    hostKey = k.value;
  }

  let store: StateStore;
  if (wiring.store !== undefined) store = wiring.store;
  else {
    try {
      store = new FileStateStore(config.stateDir);
    } catch (e) {
      return err({ code: 'STATE_DIR', message: `state directory ${config.stateDir}: ${(e as Error).message}` });
    }
  }

  const loadTrust = wiring.loadTrust ?? trustLoader(config.trustFile);
  const backend =
    wiring.backend ??
    new NixBackend({
      platform: config.platform,
      profilePath: config.profilePath,
      currentSystemPath: config.currentSystemPath,
      bootedSystemPath: config.bootedSystemPath,
      substituters: config.substituters,
      // Re-read with trust.json every time: a rotated cache key needs no restart.
      cacheKeys: () => {
        const t = loadTrust();
        return t.ok ? t.value.cacheKeys : [];
      },
      nixBinDir: config.nixBinDir,
      agentServicePaths: config.agentServicePaths,
      commandTimeoutSecs: config.commandTimeoutSecs,
      log,
    });

  const { client, close } = connect();
  const agent = new NixfleetAgent({
    config,
    backend,
    store,
    client,
    hostKey,
    loadTrust,
    probes: wiring.probes ?? HOST_PROBES,
    now: wiring.now ?? Date.now,
    sleep: wiring.sleep ?? sleep,
    random: wiring.random ?? Math.random,
    bootId: wiring.bootId ?? (() => readBootId(config.bootIdFile)),
    reboot: wiring.reboot ?? (() => runCommand(config.rebootCommand, config.commandTimeoutSecs * 1000)),
    log,
    checkIo: wiring.checkIo === undefined ? hostCheckIo(config.complianceRoot) : wiring.checkIo,
    ...(config.metricsFile === null ? {} : { observe: metricsWriter(config.hostname, config.metricsFile, log) }),
  });
  return ok({ agent, close });
}

/** Agent metrics (agent/metrics.ts) rewritten to `path` after every cycle; a write failure is logged, never fatal. */
function metricsWriter(hostname: string, path: string, log: Logger): NonNullable<AgentDeps['observe']> {
  const metrics = new AgentMetrics(hostname);
  return async (o) => {
    metrics.observe(o);
    await metrics.writeTo(path).catch((e: unknown) => log.warn('agent.metrics-write-failed', { path, message: e instanceof Error ? e.message : String(e) }));
  };
}

/** Reads `trust.json` (re-read every cycle: rotation needs no restart). */
export function trustLoader(file: string): () => Result<Trust, { code: string; message: string }> {
  return () => {
    if (!existsSync(file)) return { ok: false, error: { code: 'TRUST_MISSING', message: `${file} does not exist` } };
    let bytes: Buffer;
    try {
      bytes = readFileSync(file);
    } catch (e) {
      return { ok: false, error: { code: 'TRUST_INVALID', message: `${file}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}` } };
    }
    // The strict parser: a trust root with a duplicate key is ambiguous, so it is refused.
    const v = parseJsonStrict(bytes, { maxBytes: 1024 * 1024 });
    if (!v.ok) return { ok: false, error: { code: 'TRUST_INVALID', message: `${file}: ${v.error.message}` } };
    return parseTrust(v.value);
  };
}

/**
 * `nixfleet-agent whoami`: ask the CP (cpUrl) what identity it reads from this host's current
 * certificate (issue 16). Reads the TLS material like the agent; one request, then closes.
 */
export async function askWhoami(config: Config): Promise<Result<WhoamiResponse, { code: string; message: string }>> {
  const tls = readTls(config);
  if (!tls.ok) return tls;
  const client = new CpClient({ cpUrl: config.cpUrl, tls: tls.value, requestTimeoutSecs: config.requestTimeoutSecs, maxArtifactBytes: config.maxArtifactBytes });
  try {
    return await client.whoami();
  } finally {
    await client.close();
  }
}

function readTls(config: Config): Result<{ cert: string; key: string; ca: string }, ComposeError> {
  const files = [
    ['cert', config.tls.certFile, 'certificate'],
    ['key', config.tls.keyFile, 'TLS key'],
    ['ca', config.tls.caFile, 'CA certificate'],
  ] as const;
  const out = { cert: '', key: '', ca: '' };
  for (const [field, file, what] of files) {
    try {
      out[field] = readFileSync(file, 'utf8');
    } catch (e) {
      return err({ code: 'UNREADABLE', message: `cannot read ${what} ${file}: ${(e as Error).message}` });
    }
  }
  return ok(out);
}

function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal?.aborted) return resolve();
    const t = setTimeout(done, ms);
    function done() {
      clearTimeout(t);
      signal?.removeEventListener('abort', done);
      resolve();
    }
    signal?.addEventListener('abort', done, { once: true });
  });
}

function readBootId(file: string): string {
  try {
    return readFileSync(file, 'utf8').trim();
  } catch {
    return 'unknown';
  }
}

/** Runs an argv (no shell); ok when it exits 0 (the reboot command returns before the machine goes down). */
export function runCommand(argv: readonly string[], timeoutMs: number): Promise<{ ok: boolean; message: string }> {
  return new Promise((resolve) => {
    execFile(argv[0]!, argv.slice(1), { timeout: timeoutMs, killSignal: 'SIGKILL' }, (error, _stdout, stderr) => {
      if (error === null) resolve({ ok: true, message: `${argv.join(' ')}: exit 0` });
      else resolve({ ok: false, message: `${argv.join(' ')}: ${error.code ?? error.signal ?? error.message} ${String(stderr).trim().slice(-400)}`.trim() });
    });
  });
}
