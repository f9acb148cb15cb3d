/**
 * Check-in load against the real control plane, and the same load against a bare Node HTTPS
 * server (SPEC §8, issue 9). See docs/performance.md for the method.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { Client } from 'undici';
import { startBareServer } from './bare-server.ts';
import { loadBenchPki, type BenchPki } from './certs.ts';
import { freePort, startCp, type RunningCp } from './cp.ts';
import { benchFleet, fleetNames, hostKeys, writeCpFiles, type HostKeyRecord } from './fleet.ts';
import { startLoadClient, type LoadClient, type LoadClientInit, type PhaseResult, type RequestTemplate } from './load-client.ts';
import { cpuWindow, procMemory, toMiB, type Summary } from './stats.ts';

export const MAX_HOSTS = 10_000;

export type LoadPlan = {
  /** Concurrently open check-in connections in the closed/open phases. */
  connections: number;
  /** Check-ins per connection before it closes and the slot moves to the next host. */
  checkinsPerConnection: number;
  warmupMs: number;
  durationMs: number;
  /** Fixed rate of the open-loop phase (SPEC §8: 2,000 check-ins/s). */
  openRatePerSec: number;
  /** Sequential bare TLS handshakes measured (0: skip). */
  handshakes: number;
  /** Artefact fetches measured per variant (0: skip). */
  fetches: number;
};

/** The parts of a phase result the report keeps. */
export type PhaseFigures = {
  ratePerSec: number;
  completed: number;
  errors: number;
  statuses: Record<string, number>;
  latencyMs: Summary;
  /** Without the 1 in `checkinsPerConnection` check-ins that paid a TLS handshake. */
  keepAliveLatencyMs: Summary | null;
  server: { cores: number; cpuMsPerRequest: number } | null;
  clientCpuCores: number;
  connectionsOpened: number;
};

function figures(r: PhaseResult): PhaseFigures {
  return {
    ratePerSec: r.ratePerSec,
    completed: r.completed,
    errors: r.errors,
    statuses: r.statuses,
    latencyMs: r.latencyMs,
    keepAliveLatencyMs: r.keepAliveLatencyMs ?? null,
    server: r.server === undefined ? null : { cores: r.server.cores, cpuMsPerRequest: r.server.cpuMsPerRequest },
    clientCpuCores: Math.round((r.clientCpuMs / Math.max(1, r.windowMs)) * 100) / 100,
    connectionsOpened: r.connectionsOpened,
  };
}

export type HandshakeFigures = { count: number; latencyMs: Summary; serverCpuMsPerHandshake: number };

export type LoadResult = {
  hosts: number;
  plan: LoadPlan;
  artifactBytes: number;
  /** The same artefact gzip-compressed (level 6): what Content-Encoding would save (not served so today). */
  artifactGzipBytes: number;
  /** Bytes of the CP's check-in answer (the bare server answers these very bytes). */
  checkinResponseBytes: number;
  checkinResponseSample: string;
  /** Every host opens its own connection and checks in once (then closes it). */
  firstContact: PhaseFigures & { wallMs: number };
  handshake: HandshakeFigures | null;
  closed: PhaseFigures;
  open: PhaseFigures;
  fetch: { full: { bytesPerAgent: number; status: Record<string, number> }; revalidated: { bytesPerAgent: number; status: Record<string, number> }; signatureBytes: number } | null;
  /** After the steady phases (≤ `connections` open); peak over the CP's life. */
  rss: { rssMiB: number; peakRssMiB: number };
  errors: string[];
};

/** Write the load client's init file (hosts `0 … n-1` of the bench PKI, and their Ed25519 keys if given); its path. */
export function writeLoadClientInit(dir: string, origin: string, pki: BenchPki, n: number, hostKeys?: HostKeyRecord[]): string {
  const init: LoadClientInit = {
    origin,
    servername: 'localhost',
    caPem: pki.ca.certPem,
    hostKeyPem: pki.hostKeyPem,
    hosts: pki.hosts.slice(0, n).map((h) => ({ name: h.name, certPem: h.certPem })),
    ...(hostKeys !== undefined ? { hostKeys } : {}),
  };
  const file = join(dir, `load-client-${origin.replace(/\W+/g, '_')}.json`);
  writeFileSync(file, JSON.stringify(init));
  return file;
}

async function handshakes(lc: LoadClient, pid: number, count: number, hostOffset: number): Promise<HandshakeFigures> {
  const w = cpuWindow(pid);
  const r = await lc.run({ kind: 'handshake', count, hostOffset });
  const cpu = w.stop();
  return { count: r.completed, latencyMs: r.latencyMs, serverCpuMsPerHandshake: Math.round((cpu.cpuMs / Math.max(1, r.completed)) * 1000) / 1000 };
}

async function steady(lc: LoadClient, pid: number, plan: LoadPlan, request: RequestTemplate, n: number): Promise<{ closed: PhaseFigures; open: PhaseFigures }> {
  const k = Math.min(plan.connections, n);
  const common = { request, connections: k, checkinsPerConnection: plan.checkinsPerConnection, warmupMs: plan.warmupMs, durationMs: plan.durationMs, serverPid: pid };
  const closed = figures(await lc.run({ kind: 'closed', ...common, hostOffset: 0 }));
  const open = figures(await lc.run({ kind: 'open', ...common, ratePerSec: plan.openRatePerSec, hostOffset: Math.floor(n / 2) }));
  return { closed, open };
}

/** One check-in as host 0, straight from the bench process: the answer's size (for the bare server). */
export async function sampleCheckin(origin: string, pki: BenchPki, body: string): Promise<{ status: number; text: string }> {
  const h = pki.hosts[0]!;
  const c = new Client(origin, { connect: { ca: pki.ca.certPem, cert: h.certPem, key: pki.hostKeyPem, servername: 'localhost' } });
  try {
    const r = await c.request({ method: 'POST', path: '/v1/agent/checkin', headers: { 'content-type': 'application/json', 'x-nixfleet-protocol': '1' }, body });
    return { status: r.statusCode, text: await r.body.text() };
  } finally {
    await c.close();
  }
}

/** The load against the real CP with `n` registered hosts (all of which check in). */
export async function runCpLoad(n: number, plan: LoadPlan, opts: { cpuProfDir?: string } = {}): Promise<LoadResult> {
  const pki = await loadBenchPki(fleetNames(MAX_HOSTS));
  const fleet = benchFleet(n, hostKeys(n));
  const dir = mkdtempSync(join(tmpdir(), `nixfleet-bench-load-${n}-`));
  const port = await freePort();
  const files = writeCpFiles(dir, pki, port);
  const signed = files.publish(fleet.fleet(1), Date.now());
  let cp: RunningCp | null = null;
  let lc: LoadClient | null = null;
  try {
    cp = await startCp({ configFile: files.configFile, port, pki, ...(opts.cpuProfDir !== undefined ? { cpuProfDir: opts.cpuProfDir } : {}) });
    await cp.waitReady(60_000);
    const observedAt = new Date().toISOString();
    // Steady state: every host runs what the fleet declares, probes pass (no rollout work).
    const bodies = fleet.names.map((name) =>
      JSON.stringify({ hostname: name, currentClosure: fleet.closure(name, 1), bootId: `boot-${name}`, agentVersion: 'bench', probes: [{ name: 'http', ok: true, observedAt }], failedUnits: [], lastOutcome: null }),
    );
    const request: RequestTemplate = { method: 'POST', path: '/v1/agent/checkin', bodies };
    const sample = await sampleCheckin(cp.origin, pki, bodies[0]!);
    if (sample.status !== 200) throw new Error(`sample check-in: ${sample.status} ${sample.text}`);
    lc = await startLoadClient(writeLoadClientInit(dir, cp.origin, pki, n));
    const t0 = performance.now();
    const first = await lc.run({ kind: 'sweep', request, from: 0, to: n, concurrency: 32 });
    const firstContact = { ...figures(first), wallMs: Math.round(performance.now() - t0) };
    const handshake = plan.handshakes > 0 ? await handshakes(lc, cp.pid, plan.handshakes, 0) : null;
    const { closed, open } = await steady(lc, cp.pid, plan, request, n);
    let fetch: LoadResult['fetch'] = null;
    if (plan.fetches > 0) {
      const etag = `"${signed.sha256}"`;
      const full = await lc.run({ kind: 'fetch', path: '/v1/artifact', count: plan.fetches, ifNoneMatch: null });
      const reval = await lc.run({ kind: 'fetch', path: '/v1/artifact', count: plan.fetches, ifNoneMatch: etag });
      const sig = await lc.run({ kind: 'fetch', path: '/v1/artifact.sig', count: 1, ifNoneMatch: null });
      fetch = {
        full: { bytesPerAgent: full.bytesPerRequest?.p50 ?? Number.NaN, status: full.statuses },
        revalidated: { bytesPerAgent: reval.bytesPerRequest?.p50 ?? Number.NaN, status: reval.statuses },
        signatureBytes: sig.bytesPerRequest?.p50 ?? Number.NaN,
      };
    }
    const mem = procMemory(cp.pid);
    const errors = [...first.sampleErrors];
    return {
      hosts: n,
      plan,
      artifactBytes: signed.bytes.length,
      artifactGzipBytes: gzipSync(signed.bytes).length,
      checkinResponseBytes: Buffer.byteLength(sample.text),
      checkinResponseSample: sample.text,
      firstContact,
      handshake,
      closed,
      open,
      fetch,
      rss: { rssMiB: toMiB(mem.rssBytes), peakRssMiB: toMiB(mem.peakRssBytes) },
      errors,
    };
  } catch (e) {
    throw new Error(`${e instanceof Error ? e.message : String(e)}\nCP stderr: ${cp?.stderr().slice(-3000) ?? ''}`);
  } finally {
    await lc?.close();
    await cp?.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}

export type BareResult = {
  responseBytes: number;
  handshake: HandshakeFigures | null;
  closed: PhaseFigures;
  open: PhaseFigures;
  rss: { rssMiB: number; peakRssMiB: number };
  /** Memory of idle mTLS keep-alive connections in a plain Node HTTPS server: RSS growth / connection. */
  idleConnection: { held: number; kibPerConnection: number } | null;
};

/** The same steady load against the bare mTLS HTTPS server answering `responseBytes` bytes. */
export async function runBareLoad(n: number, plan: LoadPlan, responseBody: string, holdConnections = 0, opts: { cpuProfDir?: string } = {}): Promise<BareResult> {
  const pki = await loadBenchPki(fleetNames(MAX_HOSTS));
  const fleet = benchFleet(n, hostKeys(n));
  const dir = mkdtempSync(join(tmpdir(), `nixfleet-bench-bare-${n}-`));
  const bare = await startBareServer({ certPem: pki.server.certPem, keyPem: pki.server.keyPem, caPem: pki.ca.certPem, responseBody }, opts.cpuProfDir === undefined ? [] : ['--cpu-prof', `--cpu-prof-dir=${opts.cpuProfDir}`]);
  let lc: LoadClient | null = null;
  try {
    lc = await startLoadClient(writeLoadClientInit(dir, `https://127.0.0.1:${bare.port}`, pki, n));
    const observedAt = new Date().toISOString();
    const bodies = fleet.names.map((name) =>
      JSON.stringify({ hostname: name, currentClosure: fleet.closure(name, 1), bootId: `boot-${name}`, agentVersion: 'bench', probes: [{ name: 'http', ok: true, observedAt }], failedUnits: [], lastOutcome: null }),
    );
    const request: RequestTemplate = { method: 'POST', path: '/v1/agent/checkin', bodies };
    const handshake = plan.handshakes > 0 ? await handshakes(lc, bare.pid, plan.handshakes, 0) : null;
    const { closed, open } = await steady(lc, bare.pid, plan, request, n);
    const mem = procMemory(bare.pid);
    let idleConnection: BareResult['idleConnection'] = null;
    if (holdConnections > 0) {
      const before = procMemory(bare.pid).rssBytes;
      await lc.run({ kind: 'sweep', request, from: 0, to: Math.min(holdConnections, n), concurrency: 32, keepOpen: true });
      const after = procMemory(bare.pid).rssBytes;
      idleConnection = { held: Math.min(holdConnections, n), kibPerConnection: Math.round((after - before) / 1024 / Math.min(holdConnections, n)) };
    }
    return { responseBytes: Buffer.byteLength(responseBody), handshake, closed, open, rss: { rssMiB: toMiB(mem.rssBytes), peakRssMiB: toMiB(mem.peakRssBytes) }, idleConnection };
  } finally {
    await lc?.close();
    await bare.close();
    rmSync(dir, { recursive: true, force: true });
  }
}
