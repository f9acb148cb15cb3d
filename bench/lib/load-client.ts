/**
 * The simulated agents for the check-in load, in their OWN process (fork this file through
 * {@link startLoadClient}), so that the server under test and the load generator do not share an
 * event loop or a heap.
 *
 * Identity model (docs/performance.md, "Method"): every simulated host talks over its own TLS
 * connection with its own client certificate (undici `Client`, keep-alive, one request in flight —
 * an agent never pipelines). At most `connections` connections are open at once; each is bound to
 * one host, makes `checkinsPerConnection` check-ins over keep-alive, closes, and its slot moves on
 * to the next host of the fleet (a full TLS handshake with that host's certificate, no session
 * resumption: a new connector per host). Phases:
 *
 * - `sweep`: every host in a range opens its connection and checks in once (first contact);
 * - `closed`: every slot sends its next check-in as soon as the previous one is answered —
 *   the maximum rate (latency here is mostly queueing: Little's law, connections / rate);
 * - `open`: check-ins are scheduled at a fixed rate whatever the answers do, and latency is
 *   measured from the scheduled time (no coordinated omission): the latency at a given load;
 * - `count`: `connections` new connections at once, each to its own host, each making exactly
 *   `checkinsPerConnection` check-ins and closing: a fixed number of requests, with one handshake
 *   in `checkinsPerConnection` as in `closed` (bench/cp-checkin-ir: instructions per check-in);
 * - `handshake`: sequential bare TLS handshakes (connect → secureConnect), no HTTP;
 * - `fetch`: GET a path once per host over a new connection, with and without `If-None-Match`,
 *   counting the bytes the server sent.
 */
import { readFileSync } from 'node:fs';
import { connect as tlsConnect, createSecureContext, type SecureContext } from 'node:tls';
import { fileURLToPath } from 'node:url';
import type { KeyObject } from 'node:crypto';
import { Client } from 'undici';
import type { CheckinRequest, CheckinResponse, ConfirmRequest, HostReport, LastOutcome, ReportRequest } from '../../protocol/api.ts';
import { resumingConnector } from '../../agent/client.ts';
import { fakeClosure } from '../../fixtures/artifacts.ts';
import { canonicalBytes } from '../../protocol/jcs.ts';
import { forkTs, serveChild, type Forked } from './child.ts';
import { hostSigningKey, signEd25519B64, type HostKeyRecord } from './fleet.ts';
import { procCpuMs, summarize, type Summary } from './stats.ts';

/** What the parent writes to a JSON file for the client to read once. */
export type LoadClientInit = {
  origin: string;
  servername: string;
  caPem: string;
  /** The key shared by every bench host certificate (bench/lib/certs.ts). */
  hostKeyPem: string;
  hosts: { name: string; certPem: string }[];
  /** Ed25519 host keys, same order as `hosts` (for signed reports and confirmed records). */
  hostKeys?: HostKeyRecord[];
};

export type RequestTemplate = {
  method: 'GET' | 'POST';
  path: string;
  headers?: Record<string, string>;
  /** One body per host (same order as `init.hosts`), or one body for everyone, or none. */
  bodies?: string[] | string;
};

export type PhaseSpec =
  | { kind: 'sweep'; request: RequestTemplate; from: number; to: number; concurrency: number; keepOpen?: boolean }
  | { kind: 'closed'; request: RequestTemplate; connections: number; checkinsPerConnection: number; warmupMs: number; durationMs: number; hostOffset?: number; serverPid?: number }
  | { kind: 'open'; request: RequestTemplate; connections: number; checkinsPerConnection: number; ratePerSec: number; warmupMs: number; durationMs: number; hostOffset?: number; serverPid?: number }
  | { kind: 'count'; request: RequestTemplate; connections: number; checkinsPerConnection: number; hostOffset?: number }
  | { kind: 'handshake'; count: number; hostOffset?: number }
  | { kind: 'fetch'; path: string; count: number; ifNoneMatch: string | null; hostOffset?: number }
  | AgentsSpec;

/**
 * Simulated agents (bench/cp-rollout): hosts `0 … hosts-1` each poll over their own keep-alive
 * connection every `pollMs` (evenly phased), running `fakeClosure(name, generation)`; on a target
 * they do what agent/ does towards the CP — signed `activation-started` and `activation-switched`
 * reports, then a confirm over a NEW connection with a signed confirmed record and passing probes —
 * and report the new closure from then on. No Nix, no artefact download (docs/performance.md).
 * Runs until the parent sends `stop`.
 */
export type AgentsSpec = {
  kind: 'agents';
  hosts: number;
  pollMs: number;
  generation: number;
  maxMs: number;
  /** Each wait between polls is `pollMs × (1 ± jitter)`, uniformly (agent/: ±20 %); 0 = none. */
  jitter?: number;
  /** Latencies are recorded only for requests sent this long after the phase started (default 0). */
  measureFromMs?: number;
};

export type AgentsResult = {
  kind: 'agents';
  wallMs: number;
  checkins: number;
  checkinStatuses: Record<string, number>;
  checkinLatencyMs: Summary;
  targets: number;
  reportStatuses: Record<string, number>;
  reportLatencyMs: Summary;
  confirmStatuses: Record<string, number>;
  /** Confirm over a new connection: TLS handshake + request. */
  confirmLatencyMs: Summary;
  /** Hosts that confirmed a target during the run. */
  hostsSwitched: number;
  rollbacks: number;
  connectionsOpened: number;
  clientCpuMs: number;
  sampleErrors: string[];
};

export type PhaseResult = {
  kind: PhaseSpec['kind'];
  /** Requests completed inside the measured window. */
  completed: number;
  /** Status code → count, plus `error:<code>` for transport errors. */
  statuses: Record<string, number>;
  errors: number;
  windowMs: number;
  ratePerSec: number;
  latencyMs: Summary;
  /**
   * closed / open: the same without the requests that opened their connection (one in
   * `checkinsPerConnection` pays a full TLS handshake): the latency of a keep-alive check-in.
   */
  keepAliveLatencyMs?: Summary;
  /** New TLS connections opened during the phase (each a full handshake). */
  connectionsOpened: number;
  /** CPU the load client itself used during the phase (to show it was not the bottleneck). */
  clientCpuMs: number;
  /**
   * `closed` / `open` with `serverPid`: the server's CPU inside the measured window exactly
   * (read from /proc by the client at the window's start and end), and per completed request.
   */
  server?: { cpuMs: number; cores: number; cpuMsPerRequest: number; mainThreadCpuMsPerRequest: number; systemCpuMsPerRequest: number };
  /** `fetch` only: bytes received per request, headers + body (HTTP/1.1, before TLS framing). */
  bytesPerRequest?: Summary;
  /** First few non-2xx bodies, for diagnosis. */
  sampleErrors: string[];
};

export type LoadClient = {
  readonly pid: number;
  run(spec: Exclude<PhaseSpec, AgentsSpec>): Promise<PhaseResult>;
  /** Start simulated agents; resolves when `stopAgents()` is called (or `maxMs` passes). */
  agents(spec: AgentsSpec): Promise<AgentsResult>;
  stopAgents(): Promise<void>;
  close(): Promise<void>;
};

/** Fork the load client; `initFile` holds a {@link LoadClientInit} as JSON. */
export async function startLoadClient(initFile: string): Promise<LoadClient> {
  // BENCH_CLIENT_CPU_PROF=DIR profiles the load client itself (is it the bottleneck?).
  const prof = process.env['BENCH_CLIENT_CPU_PROF'];
  const f: Forked = forkTs(fileURLToPath(import.meta.url), prof !== undefined ? { execArgv: ['--cpu-prof', `--cpu-prof-dir=${prof}`] } : {});
  await f.call({ cmd: 'init', initFile });
  return {
    pid: f.pid,
    run: (spec) => f.call<PhaseResult>({ cmd: 'run', spec }, 600_000),
    agents: (spec) => f.call<AgentsResult>({ cmd: 'run', spec }, spec.maxMs + 120_000),
    stopAgents: () => f.call<void>({ cmd: 'stop' }),
    close: () => f.close(),
  };
}

// ---------------------------------------------------------------------------------------------
// Child side
// ---------------------------------------------------------------------------------------------

type Host = { name: string; ctx: SecureContext | null; certPem: string };
/** Pause between confirm attempts that got no answer (agent/config.ts `retryIntervalSecs`, default 5). */
const CONFIRM_RETRY_MS = 5000;
type Slot = { client: Client | null; host: number; used: number };

class Runner {
  private readonly hosts: Host[];
  private readonly url: URL;
  /** Host index → connection a `sweep` with `keepOpen` left open (idle keep-alive, as agents between polls). */
  private readonly held = new Map<number, Client>();
  private stopAgents: (() => void) | null = null;
  constructor(private readonly init: LoadClientInit) {
    this.hosts = init.hosts.map((h) => ({ name: h.name, certPem: h.certPem, ctx: null }));
    this.url = new URL(init.origin);
  }

  private secureContext(i: number): SecureContext {
    const h = this.hosts[i % this.hosts.length]!;
    // One context per host identity, made on first use (as an agent loads its cert once).
    h.ctx ??= createSecureContext({ ca: this.init.caPem, cert: h.certPem, key: this.init.hostKeyPem });
    return h.ctx;
  }

  private client(i: number): Client {
    return new Client(this.init.origin, {
      // As agent/client.ts: the connector keeps the TLS session ticket, so a reconnect resumes.
      // A long connect timeout: under callgrind (bench/cp-checkin-ir) 64 handshakes at once take
      // longer than undici's 10 s.
      connect: resumingConnector({ secureContext: this.secureContext(i), servername: this.init.servername, timeout: 300_000 }),
      keepAliveTimeout: 60_000,
      pipelining: 1,
    });
  }

  private body(t: RequestTemplate, i: number): string | undefined {
    if (t.bodies === undefined) return undefined;
    if (typeof t.bodies === 'string') return t.bodies;
    return t.bodies[i % t.bodies.length];
  }

  /** Ends a running `agents` phase. */
  stop(): void {
    this.stopAgents?.();
  }

  async run(spec: PhaseSpec): Promise<PhaseResult | AgentsResult> {
    if (spec.kind === 'agents') return this.agents(spec);
    const cpu0 = process.cpuUsage();
    const acc = new Acc();
    let windowMs: number;
    switch (spec.kind) {
      case 'sweep':
        windowMs = await this.sweep(spec, acc);
        break;
      case 'closed':
        windowMs = await this.closed(spec, acc);
        break;
      case 'open':
        windowMs = await this.open(spec, acc);
        break;
      case 'count':
        windowMs = await this.count(spec, acc);
        break;
      case 'handshake':
        windowMs = await this.handshakes(spec, acc);
        break;
      case 'fetch':
        windowMs = await this.fetch(spec, acc);
        break;
      default:
        throw new Error(`unknown phase ${(spec as { kind: string }).kind}`);
    }
    await Promise.all(acc.marks);
    const cpu = process.cpuUsage(cpu0);
    const server =
      acc.serverCpu0 !== null && acc.serverCpu1 !== null
        ? {
            cpuMs: acc.serverCpu1 - acc.serverCpu0,
            cores: Math.round(((acc.serverCpu1 - acc.serverCpu0) / windowMs) * 100) / 100,
            cpuMsPerRequest: Math.round(((acc.serverCpu1 - acc.serverCpu0) / Math.max(1, acc.latencies.length)) * 1000) / 1000,
            // The JavaScript thread alone; the rest is V8's helper threads (GC), libuv's pool, etc.
            mainThreadCpuMsPerRequest: Math.round(((acc.serverMain1! - acc.serverMain0!) / Math.max(1, acc.latencies.length)) * 1000) / 1000,
            // In the kernel (system time), all threads: TLS records written and read, the database file.
            systemCpuMsPerRequest: Math.round(((acc.serverSys1! - acc.serverSys0!) / Math.max(1, acc.latencies.length)) * 1000) / 1000,
          }
        : undefined;
    return {
      kind: spec.kind,
      completed: acc.latencies.length,
      statuses: acc.statuses,
      errors: acc.errors,
      windowMs: Math.round(windowMs),
      ratePerSec: Math.round((acc.latencies.length / windowMs) * 1000),
      latencyMs: summarize(acc.latencies),
      ...(acc.reused.length > 0 ? { keepAliveLatencyMs: summarize(acc.reused) } : {}),
      connectionsOpened: acc.connections,
      clientCpuMs: Math.round((cpu.user + cpu.system) / 1000),
      ...(acc.bytes.length > 0 ? { bytesPerRequest: summarize(acc.bytes) } : {}),
      ...(server !== undefined ? { server } : {}),
      sampleErrors: acc.sampleErrors,
    };
  }

  /** Read the server's CPU at `at` (performance.now() time) into `acc` (start or end of window). */
  private markServerCpu(pid: number | undefined, at: number, acc: Acc, which: 'start' | 'end'): void {
    if (pid === undefined) return;
    // The phase can end (its last answer came after `at`) before this timer has fired: the run
    // waits for every mark before it reads them.
    acc.marks.push(
      new Promise<void>((resolve) => {
        setTimeout(() => {
          if (which === 'start') {
            acc.serverCpu0 = procCpuMs(pid);
            acc.serverMain0 = procCpuMs(pid, pid);
            acc.serverSys0 = procCpuMs(pid, undefined, 'system');
          } else {
            acc.serverCpu1 = procCpuMs(pid);
            acc.serverMain1 = procCpuMs(pid, pid);
            acc.serverSys1 = procCpuMs(pid, undefined, 'system');
          }
          resolve();
        }, Math.max(0, at - performance.now()));
      }),
    );
  }

  private async agents(spec: AgentsSpec): Promise<AgentsResult> {
    const cpu0 = process.cpuUsage();
    const t0 = performance.now();
    const checkin = new Acc();
    const reports = new Acc();
    const confirms = new Acc();
    let targets = 0;
    let switched = 0;
    let rollbacks = 0;
    let connections = 0;
    let stopped = false;
    const sleepers = new Set<() => void>();
    const stopAll = (): void => {
      stopped = true;
      for (const w of sleepers) w();
    };
    this.stopAgents = stopAll;
    const maxTimer = setTimeout(stopAll, spec.maxMs);
    const sleep = (ms: number): Promise<void> =>
      new Promise((resolve) => {
        const wake = (): void => {
          clearTimeout(t);
          sleepers.delete(wake);
          resolve();
        };
        const t = setTimeout(wake, ms);
        sleepers.add(wake);
      });
    const keys = this.init.hostKeys;
    if (keys === undefined || keys.length < spec.hosts) throw new Error('agents phase needs init.hostKeys for every host');
    const json = { 'x-nixfleet-protocol': '1', 'content-type': 'application/json' };
    const measureFrom = t0 + (spec.measureFromMs ?? 0);
    const post = async (c: Client, path: string, body: unknown, acc: Acc): Promise<{ status: number; text: string } | null> => {
      const s = performance.now();
      try {
        const r = await c.request({ method: 'POST', path, headers: json, body: JSON.stringify(body) });
        const text = await r.body.text();
        if (s >= measureFrom) acc.latencies.push(performance.now() - s);
        acc.status(String(r.statusCode), r.statusCode >= 300 ? `${path} ${text}` : null);
        return { status: r.statusCode, text };
      } catch (e) {
        acc.status(`error:${(e as { code?: string }).code ?? 'unknown'}`, `${path} ${String(e)}`);
        return null;
      }
    };
    const signed = (key: KeyObject, value: unknown): string => {
      const bytes = canonicalBytes(value);
      if (!bytes.ok) throw new Error('not canonicalizable');
      return signEd25519B64(key, bytes.value);
    };

    const agent = async (i: number): Promise<void> => {
      const name = this.hosts[i]!.name;
      let key: KeyObject | null = null;
      let current = fakeClosure(name, spec.generation);
      let lastOutcome: LastOutcome | null = null;
      await sleep((i / spec.hosts) * spec.pollMs);
      // Made at the agent's first poll, not all up front (a TLS context per identity costs ≈ 1 ms).
      let conn = this.held.get(i);
      if (conn === undefined) {
        conn = this.client(i);
        this.held.set(i, conn);
        connections++;
      }
      while (!stopped) {
        const body: CheckinRequest = {
          hostname: name,
          currentClosure: current,
          bootId: `boot-${i}`,
          probes: [{ name: 'http', ok: true, observedAt: new Date().toISOString() }],
          failedUnits: [],
          lastOutcome,
        };
        const r = await post(conn, '/v1/agent/checkin', body, checkin);
        if (r !== null && r.status === 200) {
          const res = JSON.parse(r.text) as CheckinResponse;
          if (res.rollback !== undefined && res.rollback !== null) rollbacks++;
          const t = res.target;
          if (t !== null && t.closureHash !== current) {
            targets++;
            key ??= hostSigningKey(keys[i]!);
            const rep = (event: HostReport['event']): ReportRequest => {
              const report: HostReport = { hostname: name, event, rolloutId: t.rolloutId, closureHash: t.closureHash, at: new Date().toISOString(), message: '' };
              return { report, signature: signed(key!, report) };
            };
            await post(conn, '/v1/agent/report', rep('activation-started'), reports);
            current = t.closureHash;
            await post(conn, '/v1/agent/report', rep('activation-switched'), reports);
            // SPEC §6: confirm over a NEW connection, never a pooled one; like agent/, retry a
            // confirm that did not get an answer until the confirm deadline.
            const deadlineMs = Date.parse(t.confirmDeadline);
            for (;;) {
              const fresh = this.client(i);
              connections++;
              const record = { hostname: name, rolloutId: t.rolloutId, closureHash: t.closureHash, confirmedAt: new Date().toISOString() };
              const confirm: ConfirmRequest = {
                hostname: name,
                rolloutId: t.rolloutId,
                closureHash: t.closureHash,
                bootId: `boot-${i}`,
                confirmed: { record, signature: signed(key, record) },
                probes: [{ name: 'http', ok: true, observedAt: new Date().toISOString() }],
                failedUnits: [],
              };
              const c = await post(fresh, '/v1/agent/confirm', confirm, confirms);
              void fresh.destroy();
              if (c !== null && c.status === 204) {
                switched++;
                lastOutcome = { rolloutId: t.rolloutId, closureHash: t.closureHash, outcome: 'confirmed', at: record.confirmedAt };
                break;
              }
              if (c !== null || stopped || Date.now() + CONFIRM_RETRY_MS >= deadlineMs) break; // an answer (410, 409 …) is final
              await sleep(CONFIRM_RETRY_MS);
            }
          }
        }
        await sleep(spec.pollMs * (1 + (spec.jitter ?? 0) * (2 * Math.random() - 1)));
      }
    };
    await Promise.all(Array.from({ length: spec.hosts }, (_, i) => agent(i)));
    clearTimeout(maxTimer);
    this.stopAgents = null;
    const cpu = process.cpuUsage(cpu0);
    return {
      kind: 'agents',
      wallMs: Math.round(performance.now() - t0),
      checkins: checkin.latencies.length,
      checkinStatuses: checkin.statuses,
      checkinLatencyMs: summarize(checkin.latencies),
      targets,
      reportStatuses: reports.statuses,
      reportLatencyMs: summarize(reports.latencies),
      confirmStatuses: confirms.statuses,
      confirmLatencyMs: summarize(confirms.latencies),
      hostsSwitched: switched,
      rollbacks,
      connectionsOpened: connections,
      clientCpuMs: Math.round((cpu.user + cpu.system) / 1000),
      sampleErrors: [...checkin.sampleErrors, ...reports.sampleErrors, ...confirms.sampleErrors].slice(0, 8),
    };
  }

  /** One request on `client`; resolves to the status, or -1 on a transport error (counted). */
  private async request(client: Client, t: RequestTemplate, i: number, acc: Acc, record: boolean): Promise<number> {
    const body = this.body(t, i);
    try {
      const res = await client.request({
        method: t.method,
        path: t.path,
        headers: { 'x-nixfleet-protocol': '1', ...(body !== undefined ? { 'content-type': 'application/json' } : {}), ...t.headers },
        ...(body !== undefined ? { body } : {}),
      });
      const text = await res.body.text();
      if (record) acc.status(String(res.statusCode), res.statusCode >= 300 ? text : null);
      return res.statusCode;
    } catch (e) {
      if (record) acc.status(`error:${(e as { code?: string }).code ?? 'unknown'}`, String(e));
      return -1;
    }
  }

  private async sweep(spec: Extract<PhaseSpec, { kind: 'sweep' }>, acc: Acc): Promise<number> {
    let next = spec.from;
    const t0 = performance.now();
    const worker = async (): Promise<void> => {
      while (next < spec.to) {
        const i = next++;
        const c = this.client(i);
        acc.connections++;
        const s = performance.now();
        const status = await this.request(c, spec.request, i, acc, true);
        if (status >= 0) acc.latencies.push(performance.now() - s);
        if (spec.keepOpen === true) this.held.set(i, c);
        else await c.destroy();
      }
    };
    await Promise.all(Array.from({ length: Math.min(spec.concurrency, spec.to - spec.from) }, worker));
    return performance.now() - t0;
  }

  /**
   * Open `n` connections (one per host, from `cursor`) and send one unmeasured request on each,
   * `concurrency` at a time, so that a measured window does not start with a burst of handshakes.
   */
  private async prewarm(n: number, cursor: number, t: RequestTemplate, acc: Acc): Promise<Slot[]> {
    const slots: Slot[] = Array.from({ length: n }, (_, k) => ({ client: this.client(cursor + k), host: cursor + k, used: 1 }));
    acc.connections += n;
    let next = 0;
    const worker = async (): Promise<void> => {
      while (next < slots.length) {
        const s = slots[next++]!;
        await this.request(s.client!, t, s.host, acc, false);
      }
    };
    await Promise.all(Array.from({ length: Math.min(32, n) }, worker));
    return slots;
  }

  private async closed(spec: Extract<PhaseSpec, { kind: 'closed' }>, acc: Acc): Promise<number> {
    let cursor = spec.hostOffset ?? 0;
    const slots = await this.prewarm(spec.connections, cursor, spec.request, acc);
    cursor += spec.connections;
    const t0 = performance.now();
    const from = t0 + spec.warmupMs;
    const until = from + spec.durationMs;
    this.markServerCpu(spec.serverPid, from, acc, 'start');
    this.markServerCpu(spec.serverPid, until, acc, 'end');
    const run = async (slot: Slot): Promise<void> => {
      while (performance.now() < until) {
        if (slot.client === null || slot.used >= spec.checkinsPerConnection) {
          if (slot.client !== null) void slot.client.destroy();
          slot.host = cursor++;
          slot.client = this.client(slot.host);
          slot.used = 0;
          acc.connections++;
        }
        slot.used++;
        const s = performance.now();
        const inWindow = s >= from;
        const status = await this.request(slot.client, spec.request, slot.host, acc, inWindow);
        const e = performance.now();
        if (inWindow && status >= 0 && e <= until) {
          acc.latencies.push(e - s);
          if (slot.used > 1) acc.reused.push(e - s);
        }
        if (status < 0) slot.used = spec.checkinsPerConnection;
      }
    };
    await Promise.all(slots.map(run));
    for (const s of slots) void s.client?.destroy();
    return spec.durationMs;
  }

  private async count(spec: Extract<PhaseSpec, { kind: 'count' }>, acc: Acc): Promise<number> {
    const t0 = performance.now();
    const offset = spec.hostOffset ?? 0;
    const run = async (k: number): Promise<void> => {
      const host = offset + k;
      const client = this.client(host);
      acc.connections++;
      for (let n = 0; n < spec.checkinsPerConnection; n++) {
        const s = performance.now();
        const status = await this.request(client, spec.request, host, acc, true);
        if (status < 0) break;
        const ms = performance.now() - s;
        acc.latencies.push(ms);
        if (n > 0) acc.reused.push(ms);
      }
      await client.close();
    };
    await Promise.all(Array.from({ length: spec.connections }, (_, k) => run(k)));
    return performance.now() - t0;
  }

  private async open(spec: Extract<PhaseSpec, { kind: 'open' }>, acc: Acc): Promise<number> {
    let cursor = spec.hostOffset ?? 0;
    // FIFO: connections take turns, as hosts do; every one is open before the clock starts.
    const idle: Slot[] = await this.prewarm(spec.connections, cursor, spec.request, acc);
    cursor += spec.connections;
    const queue: number[] = [];
    const t0 = performance.now();
    const from = t0 + spec.warmupMs;
    const until = from + spec.durationMs;
    this.markServerCpu(spec.serverPid, from, acc, 'start');
    this.markServerCpu(spec.serverPid, until, acc, 'end');
    const interval = 1000 / spec.ratePerSec;
    let issued = 0;
    let inFlight = 0;
    let done!: () => void;
    const finished = new Promise<void>((r) => (done = r));
    let schedulingOver = false;

    const dispatch = (slot: Slot, scheduledAt: number): void => {
      if (slot.client === null || slot.used >= spec.checkinsPerConnection) {
        if (slot.client !== null) void slot.client.destroy();
        slot.host = cursor++;
        slot.client = this.client(slot.host);
        slot.used = 0;
        acc.connections++;
      }
      slot.used++;
      inFlight++;
      const inWindow = scheduledAt >= from;
      const reused = slot.used > 1;
      void this.request(slot.client, spec.request, slot.host, acc, inWindow).then((status) => {
        inFlight--;
        if (inWindow && status >= 0) {
          acc.latencies.push(performance.now() - scheduledAt);
          if (reused) acc.reused.push(performance.now() - scheduledAt);
        }
        if (status < 0) slot.used = spec.checkinsPerConnection; // reconnect next time
        const q = queue.shift();
        if (q !== undefined) dispatch(slot, q);
        else idle.push(slot);
        if (schedulingOver && inFlight === 0 && queue.length === 0) done();
      });
    };

    await new Promise<void>((resolveSchedule) => {
      const tick = (): void => {
        const now = performance.now();
        const end = Math.min(now, until);
        while (t0 + issued * interval <= end) {
          const at = t0 + issued * interval;
          issued++;
          const s = idle.shift();
          if (s !== undefined) dispatch(s, at);
          else queue.push(at);
        }
        if (now >= until) resolveSchedule();
        else setTimeout(tick, 1);
      };
      tick();
    });
    schedulingOver = true;
    if (inFlight === 0 && queue.length === 0) done();
    await finished;
    for (const s of idle) void s.client?.destroy();
    return spec.durationMs;
  }

  private async handshakes(spec: Extract<PhaseSpec, { kind: 'handshake' }>, acc: Acc): Promise<number> {
    const t0 = performance.now();
    const port = Number(this.url.port);
    for (let k = 0; k < spec.count; k++) {
      const i = (spec.hostOffset ?? 0) + k;
      const ctx = this.secureContext(i);
      const s = performance.now();
      const ok = await new Promise<boolean>((resolve) => {
        const sock = tlsConnect({ host: this.url.hostname, port, secureContext: ctx, servername: this.init.servername });
        sock.once('secureConnect', () => {
          resolve(sock.authorized);
          sock.destroy();
        });
        sock.once('error', () => resolve(false));
      });
      acc.connections++;
      if (ok) {
        acc.latencies.push(performance.now() - s);
        acc.status('handshake', null);
      } else acc.status('error:handshake', 'handshake failed');
    }
    return performance.now() - t0;
  }

  private async fetch(spec: Extract<PhaseSpec, { kind: 'fetch' }>, acc: Acc): Promise<number> {
    const t0 = performance.now();
    for (let k = 0; k < spec.count; k++) {
      const i = (spec.hostOffset ?? 0) + k;
      const c = this.client(i);
      acc.connections++;
      const s = performance.now();
      try {
        const res = await c.request({
          method: 'GET',
          path: spec.path,
          headers: { 'x-nixfleet-protocol': '1', ...(spec.ifNoneMatch !== null ? { 'if-none-match': spec.ifNoneMatch } : {}) },
        });
        const body = Buffer.from(await res.body.arrayBuffer());
        acc.latencies.push(performance.now() - s);
        acc.status(String(res.statusCode), res.statusCode >= 400 ? body.toString('utf8') : null);
        acc.bytes.push(responseHeaderBytes(res.statusCode, res.headers) + body.length);
      } catch (e) {
        acc.status(`error:${(e as { code?: string }).code ?? 'unknown'}`, String(e));
      }
      await c.destroy();
    }
    return performance.now() - t0;
  }
}

/** Bytes of an HTTP/1.1 status line + headers as sent (`name: value\r\n` each, final CRLF). */
function responseHeaderBytes(status: number, headers: Record<string, string | string[] | undefined>): number {
  let n = `HTTP/1.1 ${status} XX\r\n`.length + 2;
  for (const [k, v] of Object.entries(headers)) {
    for (const one of Array.isArray(v) ? v : [v ?? '']) n += k.length + 2 + Buffer.byteLength(one) + 2;
  }
  return n;
}

class Acc {
  latencies: number[] = [];
  /** closed / open: latencies of the requests that did not open their connection (no handshake). */
  reused: number[] = [];
  bytes: number[] = [];
  statuses: Record<string, number> = {};
  errors = 0;
  connections = 0;
  sampleErrors: string[] = [];
  serverCpu0: number | null = null;
  serverCpu1: number | null = null;
  serverMain0: number | null = null;
  serverMain1: number | null = null;
  serverSys0: number | null = null;
  serverSys1: number | null = null;
  /** Pending reads of the server's CPU at the window's start and end. */
  readonly marks: Promise<void>[] = [];
  status(key: string, errorText: string | null): void {
    this.statuses[key] = (this.statuses[key] ?? 0) + 1;
    if (errorText !== null) {
      this.errors++;
      if (this.sampleErrors.length < 5) this.sampleErrors.push(`${key}: ${errorText.slice(0, 300)}`);
    }
  }
}

if (process.argv[1] === fileURLToPath(import.meta.url) && process.send !== undefined) {
  let runner: Runner | null = null;
  serveChild(async (m) => {
    const msg = m as { cmd: 'init'; initFile: string } | { cmd: 'run'; spec: PhaseSpec } | { cmd: 'stop' };
    if (msg.cmd === 'stop') {
      runner?.stop();
      return null;
    }
    if (msg.cmd === 'init') {
      runner = new Runner(JSON.parse(readFileSync(msg.initFile, 'utf8')) as LoadClientInit);
      return true;
    }
    if (runner === null) throw new Error('load client: run before init');
    return runner.run(msg.spec);
  });
}
