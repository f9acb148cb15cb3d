/**
 * A fleet at rest at the production cadence (issue 9, "CP RSS ≤ 500 MB at 10,000 hosts"): `n`
 * simulated agents poll the real control plane every `pollSecs` (± `jitter`), as agent/ does — each
 * over its own mTLS identity, reconnecting when the CP closed the idle connection and resuming its
 * TLS session — against the CP's DEFAULT connection settings. Measured over a window after one full
 * poll interval of ramp-up (every agent has polled at least once): the CP's RSS and CPU, the
 * connections it holds (its own `nixfleet_tls_connections_open` gauge), full vs resumed handshakes
 * (`nixfleet_tls_connections_total`), and every host's last check-in from `GET /v1/hosts`.
 */
import type { HostsResponse } from '../../protocol/api.ts';
import { memoryBreakdown, startAgentsRun, type MemoryBreakdown } from './agents-run.ts';
import { counterTotal } from './cp.ts';
import type { AgentsResult } from './load-client.ts';
import { procCpuMs, procMemory, summarize, toMiB, type Summary } from './stats.ts';

export type SteadyOptions = {
  hosts: number;
  /** The agents' poll interval; production default 60 s (agent/config.ts). */
  pollSecs: number;
  /** ± fraction of each wait (agent/: 0.2). */
  jitter: number;
  /** Measure after this long (≥ one poll interval: the agents start evenly phased over one). */
  rampMs: number;
  measureMs: number;
  /** Control-plane settings over the defaults (none in `npm run bench`: the defaults are the point). */
  cpConfig?: Record<string, unknown>;
};

export type SteadyResult = {
  hosts: number;
  pollSecs: number;
  jitter: number;
  /** The CP's `keepAliveSecs` in this run (its default unless `cpConfig` set it). */
  keepAliveSecs: number | 'default';
  window: { fromMs: number; ms: number };
  /** Check-ins the CP handled in the window (its `nixfleet_checkins_total`), per second. */
  checkinsPerSec: number;
  /** TLS connections the CP accepted in the window, per second, and the share that resumed a session. */
  handshakes: { perSec: number; full: number; resumed: number; resumedShare: number };
  /** `nixfleet_tls_connections_open`, sampled every 2 s in the window. */
  connectionsOpen: { max: number; mean: number };
  cp: {
    cores: number;
    cpuMsPerCheckin: number;
    /** RSS sampled every second in the window. */
    rssMiB: { mean: number; max: number };
    /** Highest RSS over the CP's whole life (VmHWM), ramp-up included. */
    peakRssMiB: number;
    memory: MemoryBreakdown | null;
  };
  /** From GET /v1/hosts at the end: hosts whose last check-in the CP recorded. `agents` latencies: the window only. */
  hostsCheckedInPerCp: number;
  agents: Omit<AgentsResult, 'kind'>;
};

export async function runSteady(opts: SteadyOptions): Promise<SteadyResult> {
  const n = opts.hosts;
  // No forced GC here (a CP in production is not collected every 10 s).
  const run = await startAgentsRun({ label: 'steady', hosts: n, cpConfig: { agentPollIntervalSecs: opts.pollSecs, ...(opts.cpConfig ?? {}) }, forcedGc: false });
  const { cp, lc, memLog, cpStartedMs } = run;
  try {
    await cp.waitReady(60_000);
    const running = lc.agents({ kind: 'agents', hosts: n, pollMs: opts.pollSecs * 1000, jitter: opts.jitter, generation: 1, maxMs: opts.rampMs + opts.measureMs + 60_000, measureFromMs: opts.rampMs });
    await new Promise((r) => setTimeout(r, opts.rampMs));
    const m0 = await cp.metricsText();
    const cpu0 = procCpuMs(cp.pid);
    const t0 = performance.now();
    const windowFromMs = Date.now() - cpStartedMs;
    const rss: number[] = [];
    const open: number[] = [];
    for (let k = 0; performance.now() - t0 < opts.measureMs; k++) {
      await new Promise((r) => setTimeout(r, 1000));
      rss.push(procMemory(cp.pid).rssBytes);
      if (k % 2 === 1) open.push(counterTotal(await cp.metricsText(), 'nixfleet_tls_connections_open'));
    }
    const cpuMs = procCpuMs(cp.pid) - cpu0;
    const windowMs = performance.now() - t0;
    const m1 = await cp.metricsText();
    await lc.stopAgents();
    const { kind: _kind, ...agents } = await running;
    const hosts = (await cp.get<HostsResponse>('/v1/hosts')).hosts;
    const checkins = counterTotal(m1, 'nixfleet_checkins_total') - counterTotal(m0, 'nixfleet_checkins_total');
    const full = counterTotal(m1, 'nixfleet_tls_connections_total', 'resumed="false"') - counterTotal(m0, 'nixfleet_tls_connections_total', 'resumed="false"');
    const resumed = counterTotal(m1, 'nixfleet_tls_connections_total', 'resumed="true"') - counterTotal(m0, 'nixfleet_tls_connections_total', 'resumed="true"');
    const perSec = (x: number): number => Math.round((x / windowMs) * 1000 * 10) / 10;
    const rssS: Summary = summarize(rss);
    return {
      hosts: n,
      pollSecs: opts.pollSecs,
      jitter: opts.jitter,
      keepAliveSecs: typeof opts.cpConfig?.['keepAliveSecs'] === 'number' ? opts.cpConfig['keepAliveSecs'] : 'default',
      window: { fromMs: windowFromMs, ms: Math.round(windowMs) },
      checkinsPerSec: perSec(checkins),
      handshakes: { perSec: perSec(full + resumed), full, resumed, resumedShare: full + resumed === 0 ? 0 : Math.round((resumed / (full + resumed)) * 1000) / 1000 },
      connectionsOpen: { max: open.length === 0 ? 0 : Math.max(...open), mean: open.length === 0 ? 0 : Math.round(open.reduce((a, b) => a + b, 0) / open.length) },
      cp: {
        cores: Math.round((cpuMs / windowMs) * 1000) / 1000,
        cpuMsPerCheckin: Math.round((cpuMs / Math.max(1, checkins)) * 1000) / 1000,
        rssMiB: { mean: toMiB(rssS.mean), max: toMiB(rssS.max) },
        peakRssMiB: toMiB(procMemory(cp.pid).peakRssBytes),
        memory: memoryBreakdown(memLog, windowFromMs),
      },
      hostsCheckedInPerCp: hosts.filter((h) => h.lastCheckinAt !== null).length,
      agents,
    };
  } catch (e) {
    throw run.failure(e);
  } finally {
    await run.close();
  }
}
