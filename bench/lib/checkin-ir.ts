/**
 * Instructions per steady check-in, the control plane against the bare Node mTLS server
 * (bench/lib/bare-server.ts), both under callgrind (bench/lib/callgrind.ts): the same comparison as
 * bench/lib/checkin-cpu.ts, counted in instructions, which do not move with the machine's load.
 *
 * Each server runs under Valgrind with instrumentation off while the CP loads its fleet and every
 * live host makes its first two check-ins (checkin-cpu.ts's `startVariant`), and while a closed
 * loop warms both up (V8's tiers). Then instrumentation goes on, one unmeasured `count` phase
 * settles the code, and each round zeroes the counters, runs a `count` phase — `connections` new
 * connections, each making `checkinsPerConnection` check-ins, one handshake per
 * `checkinsPerConnection` as in checkin-cpu.ts — and reads the instructions. Rounds alternate CP and
 * bare server; the figure is the median of the rounds' ratios.
 *
 * What a count leaves out: cache misses, branch mispredictions and the kernel (system calls are
 * not counted: the TLS records' writes and reads in the kernel are in neither figure). The CP's
 * timers run on wall time, which Valgrind stretches ≈ 50×: their intervals are stretched alike
 * (`TIMERS`), and `cpIdleIr` shows what is left of them.
 */
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startBareServer, type BareServer } from './bare-server.ts';
import { CALLGRIND_NODE_ARGS, callgrindWrapper, dump, instructions, instrument, zero } from './callgrind.ts';
import { loadBenchPki } from './certs.ts';
import { checkinCounts, startVariant, steadyBodies, stopServers, type Running } from './checkin-cpu.ts';
import { benchFleet, fleetNames, hostKeys } from './fleet.ts';
import { MAX_HOSTS, sampleCheckin, writeLoadClientInit } from './load.ts';
import { startLoadClient, type LoadClient, type PhaseSpec, type RequestTemplate } from './load-client.ts';

export type CheckinIrOptions = {
  liveHosts: number;
  fleetHosts: number;
  rounds: number;
  /** Connections of a `count` phase (all open at once). */
  connections: number;
  checkinsPerConnection: number;
  /**
   * `count` phases per server with instrumentation off before any is counted. V8 takes a while to
   * settle: natively the CP still optimised 2–10 functions per 5 s after 80,000 steady check-ins
   * (Node's own per-connection functions are called once per `checkinsPerConnection` check-ins),
   * and one TurboFan compile under callgrind is about as many instructions as 100 check-ins.
   */
  warmupPhases: number;
  /** Control planes to count, each from its checkout (default: this one, labelled `cp`). */
  variants?: { label: string; root: string }[];
  /** After the rounds, one more count per server written as a callgrind profile into this directory. */
  dumpDir?: string;
};

/**
 * Per check-in: `cpIr`, `bareIr` and their ratio; `cpIdleIr`: what the CP counts idle for as long as
 * its window took, per check-in of the window (its timers; included in `cpIr`).
 */
export type CheckinIrRound = { cpIr: number; bareIr: number; ratio: number; cpIdleIr: number; quietShare: number };

export type CheckinIrVariant = {
  label: string;
  rounds: CheckinIrRound[];
  median: { cpIrPerCheckin: number; bareIrPerRequest: number; ratio: number };
  /** (max − min) / median of the CP's and the bare server's counts over the rounds. */
  spread: { cp: number; bare: number; ratio: number };
};

export type CheckinIrResult = { liveHosts: number; fleetHosts: number; checkinsPerRound: number; nodeArgs: string[]; variants: CheckinIrVariant[]; wallMs: number };

/**
 * The CP's timers at 50× their defaults, as Valgrind stretches its wall time about 50×: a window
 * then covers about as many of them per check-in as natively.
 * - The artefact poll (60 s → 3,000 s): a poll hashes the whole artefact (≈ 70 million
 *   instructions at 10,000 hosts), which natively is nothing per check-in, and under callgrind fell
 *   in one window and not the next.
 * - The reconcile pass (10 s → 500 s): at 10 s a pass over the 10,000-host fleet fell in a window
 *   as many times as its wall time allowed (the counts moved by up to 47 % between rounds). It can
 *   wait since quiet check-ins are folded into the mirror once per host (mirror.ts `touchLater`):
 *   what waits for the pass is bounded by the live hosts, not by the check-ins.
 */
const TIMERS = { pollIntervalSecs: 3000, reconcileIntervalSecs: 500 };

const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const spread = (xs: number[]): number => Math.round(((Math.max(...xs) - Math.min(...xs)) / median(xs)) * 1000) / 1000;
const pause = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/**
 * One `count` phase of `lc` from zeroed counters, the closes let through; then `read` (the counts,
 * or a dump). A phase with errors fails the run: the count would cover fewer check-ins.
 */
async function counted<T>(pid: number, lc: LoadClient, phase: Extract<PhaseSpec, { kind: 'count' }>, read: (pid: number) => T): Promise<{ read: T; completed: number; wallMs: number }> {
  zero(pid);
  const t0 = performance.now();
  const r = await lc.run(phase);
  if (r.errors > 0) throw new Error(`count phase: ${r.errors} errors: ${r.sampleErrors.join(' | ')}`);
  await pause(500);
  return { read: read(pid), completed: r.completed, wallMs: performance.now() - t0 };
}

/** Instructions of `pid` while no request comes, for up to 10 s, scaled to `ms`: its timers. */
async function idle(pid: number, ms: number): Promise<number> {
  const window = Math.min(ms, 10_000);
  zero(pid);
  await pause(window);
  return (instructions(pid) * ms) / window;
}

export async function runCheckinIr(o: CheckinIrOptions): Promise<CheckinIrResult> {
  const started = performance.now();
  const pki = await loadBenchPki(fleetNames(MAX_HOSTS));
  const fleet = benchFleet(o.fleetHosts, hostKeys(Math.min(o.fleetHosts, MAX_HOSTS)));
  const value = fleet.fleet(1);
  const dir = mkdtempSync(join(tmpdir(), 'nixfleet-bench-checkin-ir-'));
  const bodies = steadyBodies(fleet, o.liveHosts);
  const request: RequestTemplate = { method: 'POST', path: '/v1/agent/checkin', bodies };
  const running: Running[] = [];
  let bare: BareServer | null = null;
  let lcBare: LoadClient | null = null;
  try {
    for (const v of o.variants ?? [{ label: 'cp', root: process.cwd() }]) {
      const runner = { execPath: callgrindWrapper(dir, v.label, o.dumpDir), execArgv: CALLGRIND_NODE_ARGS };
      running.push(await startVariant(v.label, v.root, dir, pki, { liveHosts: o.liveHosts, cpConfig: TIMERS }, (files) => void files.publish(value, Date.now()), request, [], runner));
    }
    const sample = await sampleCheckin(running[0]!.cp.origin, pki, bodies[0]!);
    if (sample.status !== 200) throw new Error(`sample check-in: ${sample.status} ${sample.text}`);
    bare = await startBareServer({ certPem: pki.server.certPem, keyPem: pki.server.keyPem, caPem: pki.ca.certPem, responseBody: sample.text }, CALLGRIND_NODE_ARGS, callgrindWrapper(dir, 'bare', o.dumpDir));
    lcBare = await startLoadClient(writeLoadClientInit(dir, `https://127.0.0.1:${bare.port}`, pki, o.liveHosts));
    const servers = [...running.map((v) => ({ pid: v.cp.pid, lc: v.lc })), { pid: bare.pid, lc: lcBare }];
    const count = (k: number): Extract<PhaseSpec, { kind: 'count' }> => ({ kind: 'count', request, connections: o.connections, checkinsPerConnection: o.checkinsPerConnection, hostOffset: (k * 997) % o.liveHosts });
    // Warm-up, uninstrumented, then two unmeasured counts under instrumentation (new translations;
    // with one, the first round still counted 1.6× the next ones).
    for (const s of servers) {
      for (let k = 0; k < o.warmupPhases; k++) await s.lc.run(count(k + 1));
      instrument(s.pid, true);
      await s.lc.run(count(0));
      await s.lc.run(count(o.warmupPhases + 1));
    }
    const rounds = new Map<string, CheckinIrRound[]>(running.map((v) => [v.label, []]));
    for (let i = 1; i <= o.rounds; i++) {
      for (const v of running) {
        const before = await checkinCounts(v.cp);
        const c = await counted(v.cp.pid, v.lc, count(i), instructions);
        const after = await checkinCounts(v.cp);
        const handled = after.all - before.all;
        const cpIdle = await idle(v.cp.pid, c.wallMs);
        const b = await counted(bare.pid, lcBare, count(i), instructions);
        const cpIr = Math.round(c.read / Math.max(1, c.completed));
        const bareIr = Math.round(b.read / Math.max(1, b.completed));
        rounds.get(v.label)!.push({ cpIr, bareIr, ratio: Math.round((cpIr / bareIr) * 1000) / 1000, cpIdleIr: Math.round(cpIdle / Math.max(1, c.completed)), quietShare: handled > 0 ? Math.round(((after.quiet - before.quiet) / handled) * 1000) / 1000 : Number.NaN });
      }
    }
    if (o.dumpDir !== undefined) {
      for (const s of servers) await counted(s.pid, s.lc, count(o.rounds + 1), (pid) => dump(pid, 'count'));
    }
    const variants: CheckinIrVariant[] = running.map((v) => {
      const rs = rounds.get(v.label)!;
      return {
        label: v.label,
        rounds: rs,
        median: { cpIrPerCheckin: median(rs.map((r) => r.cpIr)), bareIrPerRequest: median(rs.map((r) => r.bareIr)), ratio: median(rs.map((r) => r.ratio)) },
        spread: { cp: spread(rs.map((r) => r.cpIr)), bare: spread(rs.map((r) => r.bareIr)), ratio: spread(rs.map((r) => r.ratio)) },
      };
    });
    return { liveHosts: o.liveHosts, fleetHosts: o.fleetHosts, checkinsPerRound: o.connections * o.checkinsPerConnection, nodeArgs: CALLGRIND_NODE_ARGS, variants, wallMs: Math.round(performance.now() - started) };
  } finally {
    await stopServers(lcBare, bare, running, dir);
  }
}
