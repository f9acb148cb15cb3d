/**
 * CPU per steady-state check-in, the control plane against the bare Node mTLS server in the same
 * run (issue 19: "≤ 1.5× the bare server"), and the CP's memory with a large fleet loaded.
 *
 * The CP(s) and the bare server run side by side for the whole measurement; their closed-loop
 * windows alternate (CP, bare, CP, bare, …), so that the machine's drift — other people's work on
 * a shared machine — falls on all alike, and the figure is the median over the rounds of each
 * round's ratio. Every check-in of the windows changes nothing: each host reports the closure the
 * fleet declares for it, the same body each time, probes passing, no events.
 *
 * `variants` runs several control planes (e.g. an older checkout: A/B) in the same rounds.
 * `fleetHosts` may exceed the live hosts (certificates exist for `MAX_HOSTS`): the signed artefact
 * then declares every host, and only the first `liveHosts` ever check in — the 100,000-host fleet
 * with most hosts silent.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { liveHeapSample, memoryBreakdown, type MemoryBreakdown } from './agents-run.ts';
import { startBareServer, type BareServer } from './bare-server.ts';
import { loadBenchPki, type BenchPki } from './certs.ts';
import { counterTotal, freePort, startCp, type RunningCp } from './cp.ts';
import { benchFleet, fleetNames, hostKeys, writeCpFiles, type BenchFleet } from './fleet.ts';
import { MAX_HOSTS, sampleCheckin, writeLoadClientInit } from './load.ts';
import { startLoadClient, type LoadClient, type RequestTemplate } from './load-client.ts';
import { procMemory, toMiB } from './stats.ts';

export type CheckinCpuOptions = {
  /** Hosts that check in (≤ MAX_HOSTS: one certificate each). */
  liveHosts: number;
  /** Hosts the signed artefact declares (≥ liveHosts). */
  fleetHosts: number;
  /** Alternating CP / bare windows. */
  rounds: number;
  connections: number;
  warmupMs: number;
  durationMs: number;
  /** Control planes to measure, each from its checkout (default: this one, labelled `cp`). */
  variants?: { label: string; root: string }[];
  /** Write V8 CPU profiles of the CPs and the bare server here (node --cpu-prof). */
  cpuProfDir?: string;
  /** More control-plane settings. */
  cpConfig?: Record<string, unknown>;
};

/**
 * Per request: CPU of the whole process (`cpMs`, `bareMs`), of its JavaScript thread alone
 * (`…MainMs`), in the kernel (`…SysMs`). `quietShare`: the CP's check-ins in the window and its
 * warm-up answered without a decision (control-plane/quiet-checkins.ts), from its /metrics.
 */
export type CheckinCpuRound = { loadAvg1: number; cpMs: number; bareMs: number; ratio: number; cpMainMs: number; bareMainMs: number; cpSysMs: number; bareSysMs: number; quietShare: number; cpRate: number; bareRate: number; cpErrors: number };

export type VariantResult = {
  label: string;
  rounds: CheckinCpuRound[];
  median: { cpMsPerCheckin: number; bareMsPerRequest: number; ratio: number; loadAvg1: number };
  firstContact: { wallMs: number; errors: number };
  memory: {
    /** Start to ready (artefact verified and loaded). */
    readyMs: number;
    afterFirstContact: { rssMiB: number };
    /** After the rounds; peak over the CP's life (VmHWM). */
    end: { rssMiB: number; peakRssMiB: number };
    /** From the CP's own samples (bench/lib/mem-probe.ts); live heap after a full GC forced after the first contacts and after the rounds, outside the measured windows. */
    breakdown: MemoryBreakdown | null;
  };
};

export type CheckinCpuResult = {
  liveHosts: number;
  fleetHosts: number;
  artifactBytes: number;
  checkinResponseBytes: number;
  variants: VariantResult[];
};

/** Check-ins handled and quiet ones so far (the CP's /metrics). */
export async function checkinCounts(cp: RunningCp): Promise<{ all: number; quiet: number }> {
  const text = await cp.metricsText();
  return { all: counterTotal(text, 'nixfleet_checkins_total'), quiet: counterTotal(text, 'nixfleet_checkins_quiet_total') };
}

const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const r3 = (x: number): number => Math.round(x * 1000) / 1000;

export type Running = { label: string; cp: RunningCp; lc: LoadClient; memLog: string; readyMs: number; firstContact: VariantResult['firstContact']; afterFirstRss: number; rounds: CheckinCpuRound[] };

/** Steady check-in bodies of hosts 0 … n-1 (the holders of bench certificates, in that order). */
export function steadyBodies(fleet: BenchFleet, n: number): string[] {
  const observedAt = new Date().toISOString();
  return fleetNames(n).map((name) =>
    JSON.stringify({ hostname: name, currentClosure: fleet.closure(name, 1), bootId: `boot-${name}`, agentVersion: 'bench', probes: [{ name: 'http', ok: true, observedAt }], failedUnits: [], lastOutcome: null }),
  );
}

/** Extra Node options from the environment (an experiment: `CHECKIN_CP_ARGS='--max-semi-space-size=64'`). */
const nodeArgs = (name: string): string[] => (process.env[name] ?? '').split(' ').filter((x) => x !== '');

/** How to run a server's Node: a wrapper program and its flags (bench/lib/callgrind.ts). */
export type NodeRunner = { execPath: string; execArgv: string[] };

/**
 * Start the CP of checkout `root` with the bench fleet published, and bring every live host to the
 * steady state (two sweeps: first contact, then the full decision after it). Exported for
 * bench/lib/checkin-ir.ts.
 */
export async function startVariant(label: string, root: string, dir: string, pki: BenchPki, o: Pick<CheckinCpuOptions, 'liveHosts' | 'cpConfig'>, publish: (files: ReturnType<typeof writeCpFiles>) => void, request: RequestTemplate, prof: string[], runner?: NodeRunner): Promise<Running> {
  const port = await freePort();
  const vdir = join(dir, label);
  const memLog = join(vdir, 'cp-memory.jsonl');
  // offlineAfterSecs: the first contact of 10,000 hosts takes minutes on a loaded machine, and a host
  // back after more than offlineAfterSecs (180 s) is a *relevant* check-in that asks for a reconcile
  // pass; in production a host polls every 60 s and is never that. The windows measure the steady
  // state, so no host may look as if it came back from offline. Artefacts of 100,000 hosts are
  // ≈ 27 MB: past the 16 MiB default limit.
  const files = writeCpFiles(vdir, pki, port, { maxArtifactBytes: 256 * 2 ** 20, offlineAfterSecs: 86_400, ...(o.cpConfig ?? {}) });
  publish(files);
  const cp = await startCp({
    configFile: files.configFile,
    port,
    pki,
    cpRoot: root,
    execArgv: ['--expose-gc', '--import', fileURLToPath(new URL('./mem-probe.ts', import.meta.url)), ...prof, ...(label === 'cp' ? nodeArgs('CHECKIN_CP_ARGS') : []), ...(runner?.execArgv ?? [])],
    ...(runner !== undefined ? { execPath: runner.execPath } : {}),
    env: { NIXFLEET_BENCH_MEMLOG: memLog, NIXFLEET_BENCH_MEMGC: 'signal' },
  });
  try {
    const readyMs = Math.round(await cp.waitReady(600_000));
    const lc = await startLoadClient(writeLoadClientInit(vdir, cp.origin, pki, o.liveHosts));
    // Every live host checks in once. On a machine loaded by others a few connections time out:
    // once more over every host then (those already seen only check in again), so that none of
    // these check-ins falls into a window.
    const sweep = async (what: string): Promise<{ errors: number }> => {
      let r = await lc.run({ kind: 'sweep', request, from: 0, to: o.liveHosts, concurrency: 32 });
      if (r.errors > 0) r = await lc.run({ kind: 'sweep', request, from: 0, to: o.liveHosts, concurrency: 32 });
      if (r.errors > 0) throw new Error(`${label}: ${what}: ${r.errors} errors: ${r.sampleErrors.join(' | ')}`);
      return r;
    };
    const t0 = performance.now();
    const first = await sweep('first contact');
    const firstContact = { wallMs: Math.round(performance.now() - t0), errors: first.errors };
    const afterFirstRss = procMemory(cp.pid).rssBytes;
    // The steady state: a first contact asks for a pass, so the host's next check-in is decided in
    // full, and only the one after it can be quiet (quiet-checkins.ts). Without this second sweep,
    // every host's second check-in fell into a window: 1.1–1.4 % of the windows' check-ins, each a
    // full decision with a commit (quietShare 0.986–0.989 in session 9).
    await sweep('second check-in');
    await liveHeapSample(cp.pid, memLog);
    return { label, cp, lc, memLog, readyMs, firstContact, afterFirstRss, rounds: [] };
  } catch (e) {
    const err = new Error(`${e instanceof Error ? e.message : String(e)}\nCP stderr: ${cp.stderr().slice(-3000)}`);
    await cp.stop();
    throw err;
  }
}

export async function runCheckinCpu(o: CheckinCpuOptions): Promise<CheckinCpuResult> {
  if (o.liveHosts > MAX_HOSTS || o.fleetHosts < o.liveHosts) throw new Error('checkin-cpu: need liveHosts ≤ MAX_HOSTS and fleetHosts ≥ liveHosts');
  const pki = await loadBenchPki(fleetNames(MAX_HOSTS));
  const fleet = benchFleet(o.fleetHosts, hostKeys(Math.min(o.fleetHosts, MAX_HOSTS)));
  const value = fleet.fleet(1);
  const dir = mkdtempSync(join(tmpdir(), `nixfleet-bench-checkin-${o.fleetHosts}-`));
  const prof = o.cpuProfDir === undefined ? [] : ['--cpu-prof', `--cpu-prof-dir=${o.cpuProfDir}`];
  const bodies = steadyBodies(fleet, o.liveHosts);
  const request: RequestTemplate = { method: 'POST', path: '/v1/agent/checkin', bodies };
  let artifactBytes = 0;
  const running: Running[] = [];
  let bare: BareServer | null = null;
  let lcBare: LoadClient | null = null;
  try {
    for (const v of o.variants ?? [{ label: 'cp', root: process.cwd() }]) {
      running.push(await startVariant(v.label, v.root, dir, pki, o, (files) => (artifactBytes = files.publish(value, Date.now()).bytes.length), request, prof));
    }
    const sample = await sampleCheckin(running[0]!.cp.origin, pki, bodies[0]!);
    if (sample.status !== 200) throw new Error(`sample check-in: ${sample.status} ${sample.text}`);
    bare = await startBareServer({ certPem: pki.server.certPem, keyPem: pki.server.keyPem, caPem: pki.ca.certPem, responseBody: sample.text }, [...prof, ...nodeArgs('CHECKIN_BARE_ARGS')]);
    lcBare = await startLoadClient(writeLoadClientInit(dir, `https://127.0.0.1:${bare.port}`, pki, o.liveHosts));
    const phase = { kind: 'closed' as const, request, connections: Math.min(o.connections, o.liveHosts), checkinsPerConnection: 100, warmupMs: o.warmupMs, durationMs: o.durationMs };
    for (let i = 0; i < o.rounds; i++) {
      const hostOffset = (i * 997) % o.liveHosts;
      for (const v of running) {
        const loadAvg1 = Math.round(loadavg()[0]! * 100) / 100;
        const before = await checkinCounts(v.cp);
        const c = await v.lc.run({ ...phase, serverPid: v.cp.pid, hostOffset });
        const after = await checkinCounts(v.cp);
        const handled = after.all - before.all;
        const quietShare = handled > 0 ? r3((after.quiet - before.quiet) / handled) : Number.NaN;
        const b = await lcBare.run({ ...phase, serverPid: bare.pid, hostOffset });
        const cpMs = c.server?.cpuMsPerRequest ?? Number.NaN;
        const bareMs = b.server?.cpuMsPerRequest ?? Number.NaN;
        const cpMainMs = c.server?.mainThreadCpuMsPerRequest ?? Number.NaN;
        const bareMainMs = b.server?.mainThreadCpuMsPerRequest ?? Number.NaN;
        const cpSysMs = c.server?.systemCpuMsPerRequest ?? Number.NaN;
        const bareSysMs = b.server?.systemCpuMsPerRequest ?? Number.NaN;
        v.rounds.push({ loadAvg1, cpMs, bareMs, ratio: r3(cpMs / bareMs), cpMainMs, bareMainMs, cpSysMs, bareSysMs, quietShare, cpRate: c.ratePerSec, bareRate: b.ratePerSec, cpErrors: c.errors + b.errors });
      }
    }
    for (const v of running) await liveHeapSample(v.cp.pid, v.memLog);
    const variants: VariantResult[] = running.map((v) => {
      const end = procMemory(v.cp.pid);
      return {
        label: v.label,
        rounds: v.rounds,
        median: {
          cpMsPerCheckin: r3(median(v.rounds.map((x) => x.cpMs))),
          bareMsPerRequest: r3(median(v.rounds.map((x) => x.bareMs))),
          ratio: r3(median(v.rounds.map((x) => x.ratio))),
          loadAvg1: median(v.rounds.map((x) => x.loadAvg1)),
        },
        firstContact: v.firstContact,
        memory: { readyMs: v.readyMs, afterFirstContact: { rssMiB: toMiB(v.afterFirstRss) }, end: { rssMiB: toMiB(end.rssBytes), peakRssMiB: toMiB(end.peakRssBytes) }, breakdown: memoryBreakdown(v.memLog, 0) },
      };
    });
    return { liveHosts: o.liveHosts, fleetHosts: o.fleetHosts, artifactBytes, checkinResponseBytes: Buffer.byteLength(sample.text), variants };
  } finally {
    await stopServers(lcBare, bare, running, dir);
  }
}

/** Stop the bare server, the CPs and their load clients; remove the run's directory. */
export async function stopServers(lcBare: LoadClient | null, bare: BareServer | null, running: Running[], dir: string): Promise<void> {
  await lcBare?.close();
  await bare?.close();
  for (const v of running) {
    await v.lc.close();
    await v.cp.stop();
  }
  rmSync(dir, { recursive: true, force: true });
}
