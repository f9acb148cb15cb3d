/**
 * The setup shared by the benchmarks that drive a real control plane with simulated agents
 * (bench/lib/rollout.ts, bench/lib/steady.ts): the bench PKI and host keys, a generation-1 fleet
 * signed into the CP's source directory, the CP process with the memory probe
 * (bench/lib/mem-probe.ts) loaded, and the load client holding every host's identity and key; plus
 * reading the CP's memory samples back.
 */
import { copyFileSync, existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { loadBenchPki, type BenchPki } from './certs.ts';
import { freePort, startCp, type RunningCp } from './cp.ts';
import { benchFleet, fleetNames, hostKeys, writeCpFiles, type BenchFleet, type CpFiles, type HostKeyRecord } from './fleet.ts';
import { MAX_HOSTS, writeLoadClientInit } from './load.ts';
import { startLoadClient, type LoadClient } from './load-client.ts';
import { toMiB } from './stats.ts';

export type AgentsRunOptions = {
  /** Names the temporary directory (`nixfleet-bench-<label>-<hosts>-`). */
  label: string;
  hosts: number;
  /** Control-plane settings over the bench's files (writeCpFiles). */
  cpConfig: Record<string, unknown>;
  /** A forced full GC before every 10th memory sample (the live-heap figure), with `--expose-gc`. */
  forcedGc: boolean;
  cpuProfDir?: string;
  /** More Node flags for the CP process (see bench/lib/cp.ts). */
  cpExecArgv?: string[];
  /** Copy the CP's memory samples (JSON lines) here before cleaning up. */
  keepMemoryLog?: string;
};

export type AgentsRun = {
  readonly pki: BenchPki;
  readonly keys: HostKeyRecord[];
  readonly fleet: BenchFleet;
  readonly files: CpFiles;
  readonly cp: RunningCp;
  readonly lc: LoadClient;
  /** The CP's memory samples, one JSON line a second ({@link memoryBreakdown} reads them). */
  readonly memLog: string;
  /** `Date.now()` when the CP process was started (memory samples count from about then). */
  readonly cpStartedMs: number;
  /** `e` with the tail of the CP's stderr, for the report. */
  failure(e: unknown): Error;
  /** Stop the load client and the CP, keep the memory log if asked, remove the directory. */
  close(): Promise<void>;
};

export async function startAgentsRun(opts: AgentsRunOptions): Promise<AgentsRun> {
  const n = opts.hosts;
  const pki = await loadBenchPki(fleetNames(MAX_HOSTS));
  const keys = hostKeys(n);
  const fleet = benchFleet(n, keys);
  const dir = mkdtempSync(join(tmpdir(), `nixfleet-bench-${opts.label}-${n}-`));
  const port = await freePort();
  const memLog = join(dir, 'cp-memory.jsonl');
  const files = writeCpFiles(dir, pki, port, opts.cpConfig);
  files.publish(fleet.fleet(1), Date.now());
  const cp = await startCp({
    configFile: files.configFile,
    port,
    pki,
    ...(opts.cpuProfDir !== undefined ? { cpuProfDir: opts.cpuProfDir } : {}),
    execArgv: [...(opts.forcedGc ? ['--expose-gc'] : []), '--import', fileURLToPath(new URL('./mem-probe.ts', import.meta.url)), ...(opts.cpExecArgv ?? [])],
    env: { NIXFLEET_BENCH_MEMLOG: memLog, ...(opts.forcedGc ? { NIXFLEET_BENCH_MEMGC: '1' } : {}) },
  });
  const cpStartedMs = Date.now();
  const lc = await startLoadClient(writeLoadClientInit(dir, cp.origin, pki, n, keys));
  return {
    pki,
    keys,
    fleet,
    files,
    cp,
    lc,
    memLog,
    cpStartedMs,
    failure: (e) => new Error(`${e instanceof Error ? e.message : String(e)}\nCP stderr: ${cp.stderr().slice(-3000)}`),
    async close() {
      await lc.close();
      await cp.stop();
      if (opts.keepMemoryLog !== undefined && existsSync(memLog)) copyFileSync(memLog, opts.keepMemoryLog);
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/**
 * Where the CP's memory is, from its own `process.memoryUsage()` once a second (bench/lib/mem-probe.ts)
 * from `fromMs` (ms since the probe started) on: at the sample of highest RSS, the V8 heap reserved
 * and used, and the rest of the RSS outside the V8 heap (native: TLS connections, OpenSSL, SQLite,
 * malloc); and the largest live heap measured right after a forced full GC (with `forcedGc`), i.e.
 * what our JavaScript state holds.
 */
export type MemoryBreakdown = {
  atPeakRss: { rssMiB: number; heapTotalMiB: number; heapUsedMiB: number; externalMiB: number; outsideHeapMiB: number };
  liveHeapAfterGcMiB: number | null;
};

/**
 * Ask a process running mem-probe.ts with NIXFLEET_BENCH_MEMGC=signal for a sample after a full
 * GC, and wait until it is in `file` (at most `timeoutMs`).
 */
export async function liveHeapSample(pid: number, file: string, timeoutMs = 60_000): Promise<void> {
  const count = (): number => (existsSync(file) ? readFileSync(file, 'utf8').split('\n').filter((l) => l.includes('"gc":true')).length : 0);
  const before = count();
  process.kill(pid, 'SIGUSR2');
  const until = performance.now() + timeoutMs;
  while (count() === before) {
    if (performance.now() > until) throw new Error(`no live-heap sample from process ${pid} within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

export function memoryBreakdown(file: string, fromMs: number): MemoryBreakdown | null {
  if (!existsSync(file)) return null;
  type Sample = { t: number; gc: boolean; rss: number; heapTotal: number; heapUsed: number; external: number };
  const samples = readFileSync(file, 'utf8')
    .split('\n')
    .filter((l) => l !== '')
    .map((l) => JSON.parse(l) as Sample)
    .filter((s) => s.t >= fromMs);
  if (samples.length === 0) return null;
  const peak = samples.reduce((a, b) => (b.rss > a.rss ? b : a));
  const gcs = samples.filter((s) => s.gc);
  return {
    atPeakRss: { rssMiB: toMiB(peak.rss), heapTotalMiB: toMiB(peak.heapTotal), heapUsedMiB: toMiB(peak.heapUsed), externalMiB: toMiB(peak.external), outsideHeapMiB: toMiB(peak.rss - peak.heapTotal) },
    liveHeapAfterGcMiB: gcs.length === 0 ? null : toMiB(Math.max(...gcs.map((s) => s.heapUsed))),
  };
}
