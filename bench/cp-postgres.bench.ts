/**
 * Check-ins against the control plane on PostgreSQL (issue 17) beside the SQLite figure of the same
 * run: one CP on SQLite, one CP on PostgreSQL, two CP replicas on one PostgreSQL (the load split
 * over both, as agents spread over replicas). Same hosts, same plan, same machine, back to back:
 * closed-loop check-ins/s (the maximum) and the latency at a fixed open-loop rate (p99; for two
 * replicas the worse replica's). PostgreSQL is a throwaway cluster on a unix socket
 * (fixtures/postgres.ts), default settings. Method: docs/performance.md.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { startPostgres, type PgCluster } from '../fixtures/postgres.ts';
import { loadBenchPki } from './lib/certs.ts';
import { freePort, startCp, type RunningCp } from './lib/cp.ts';
import { benchFleet, fleetNames, hostKeys, writeCpFiles } from './lib/fleet.ts';
import { startLoadClient, type LoadClient, type PhaseResult, type RequestTemplate } from './lib/load-client.ts';
import { MAX_HOSTS, writeLoadClientInit } from './lib/load.ts';

const HOSTS = 1000;
/** Shorter than cp-load's (three set-ups in one run); the open-loop rate is one every variant sustains here. */
const PLAN = { connections: 64, checkinsPerConnection: 100, warmupMs: 1000, durationMs: 4000, openRatePerSec: 500 };
/** A variant does not start once the bench has run this long (`npm run bench` stays bounded on a loaded machine). */
const BUDGET_MS = 300_000;

type Variant = 'sqlite' | 'postgres-1' | 'postgres-2';
type Figures = { checkinsPerSec: number; p50MsAtOpenRate: number; p99MsAtOpenRate: number; errors: number; statuses: Record<string, number>; replicas: number };

const round = (x: number, d = 2): number => Math.round(x * 10 ** d) / 10 ** d;

/** Run a phase on every replica at once (each its share of connections, rate and hosts). */
async function split(lcs: LoadClient[], spec: (i: number) => Parameters<LoadClient['run']>[0]): Promise<PhaseResult[]> {
  return Promise.all(lcs.map((lc, i) => lc.run(spec(i))));
}

async function variant(v: Variant, cluster: PgCluster | null): Promise<Figures> {
  const pki = await loadBenchPki(fleetNames(MAX_HOSTS));
  const fleet = benchFleet(HOSTS, hostKeys(HOSTS));
  const dir = mkdtempSync(join(tmpdir(), `nixfleet-bench-pg-${v}-`));
  const replicas = v === 'postgres-2' ? 2 : 1;
  const cps: RunningCp[] = [];
  const lcs: LoadClient[] = [];
  try {
    let store: Record<string, unknown> = {};
    if (cluster !== null) {
      const db = await cluster.createDatabase(`bench_${v.replace('-', '_')}_${process.pid}`);
      store = { store: { postgres: { host: db.host, port: db.port, database: db.database, user: db.user } } };
    }
    const port = await freePort();
    const files = writeCpFiles(dir, pki, port, store);
    files.publish(fleet.fleet(1), Date.now());
    const configs = [files.configFile];
    for (let i = 1; i < replicas; i++) {
      const c = JSON.parse(readFileSync(files.configFile, 'utf8')) as Record<string, unknown>;
      const file = join(dir, `cp${i + 1}.json`);
      writeFileSync(file, JSON.stringify({ ...c, listenPort: await freePort() }));
      configs.push(file);
    }
    for (const configFile of configs) {
      const p = (JSON.parse(readFileSync(configFile, 'utf8')) as { listenPort: number }).listenPort;
      const cp = await startCp({ configFile, port: p, pki });
      cps.push(cp);
      await cp.waitReady(60_000);
    }
    const observedAt = new Date().toISOString();
    const bodies = fleet.names.map((name) =>
      JSON.stringify({ hostname: name, currentClosure: fleet.closure(name, 1), bootId: `boot-${name}`, agentVersion: 'bench', probes: [{ name: 'http', ok: true, observedAt }], failedUnits: [], lastOutcome: null }),
    );
    const request: RequestTemplate = { method: 'POST', path: '/v1/agent/checkin', bodies };
    for (const cp of cps) lcs.push(await startLoadClient(writeLoadClientInit(dir, cp.origin, pki, HOSTS)));
    await lcs[0]!.run({ kind: 'sweep', request, from: 0, to: HOSTS, concurrency: 32 }); // every host registered
    const share = Math.floor(HOSTS / replicas);
    const common = { request, connections: Math.floor(PLAN.connections / replicas), checkinsPerConnection: PLAN.checkinsPerConnection, warmupMs: PLAN.warmupMs, durationMs: PLAN.durationMs };
    const closed = await split(lcs, (i) => ({ kind: 'closed', ...common, hostOffset: i * share }));
    const open = await split(lcs, (i) => ({ kind: 'open', ...common, ratePerSec: PLAN.openRatePerSec / replicas, hostOffset: i * share }));
    const statuses: Record<string, number> = {};
    for (const r of [...closed, ...open]) for (const [k, n] of Object.entries(r.statuses)) statuses[k] = (statuses[k] ?? 0) + n;
    return {
      checkinsPerSec: Math.round(closed.reduce((a, r) => a + r.ratePerSec, 0)),
      p50MsAtOpenRate: round(Math.max(...open.map((r) => r.latencyMs.p50))),
      p99MsAtOpenRate: round(Math.max(...open.map((r) => r.latencyMs.p99))),
      errors: [...closed, ...open].reduce((a, r) => a + r.errors, 0),
      statuses,
      replicas,
    };
  } catch (e) {
    throw new Error(`${v}: ${e instanceof Error ? e.message : String(e)}\nCP stderr: ${cps.map((c) => c.stderr().slice(-2000)).join('\n---\n')}`);
  } finally {
    for (const lc of lcs) await lc.close();
    for (const cp of cps) await cp.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}

export default async function bench(): Promise<object> {
  const started = performance.now();
  const loadAvgAtStart = loadavg().map((x) => round(x));
  const results: Partial<Record<Variant, Figures>> = {};
  const skippedForTimeBudget: Variant[] = [];
  results.sqlite = await variant('sqlite', null);
  const cluster = await startPostgres();
  try {
    for (const v of ['postgres-1', 'postgres-2'] as const) {
      if (performance.now() - started > BUDGET_MS) skippedForTimeBudget.push(v);
      else results[v] = await variant(v, cluster);
    }
  } finally {
    await cluster.stop();
  }
  const vsSqlite = (v: Variant): number | null => (results[v] === undefined || results.sqlite === undefined ? null : round(results[v].checkinsPerSec / Math.max(1, results.sqlite.checkinsPerSec)));
  return {
    loadAvgAtStart,
    hosts: HOSTS,
    plan: PLAN,
    results,
    ratioToSqlite: { 'postgres-1': vsSqlite('postgres-1'), 'postgres-2': vsSqlite('postgres-2') },
    skippedForTimeBudget,
    wallMs: Math.round(performance.now() - started),
  };
}
