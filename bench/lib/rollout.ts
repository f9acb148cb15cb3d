/**
 * One full rollout through the real control plane (SPEC §8, issue 9): `n` simulated hosts running
 * generation 1, a signed generation-2 artefact dropped into the CP's source directory, and the
 * hosts polling until every one of them runs generation 2 — which is checked from the CP's own
 * state (`GET /v1/hosts`, `GET /v1/rollouts`), not from the simulator.
 */
import type { HostsResponse, RolloutsResponse } from '../../protocol/api.ts';
import { memoryBreakdown, startAgentsRun, type MemoryBreakdown } from './agents-run.ts';
import { histogramTotals } from './cp.ts';
import type { AgentsResult } from './load-client.ts';
import { procCpuMs, procMemory, toMiB, type Summary } from './stats.ts';

export type RolloutOptions = {
  hosts: number;
  /** Agents' poll interval (also the CP's `agentPollIntervalSecs`). */
  pollSecs: number;
  /** Give up after this long (the result then says `converged: false`). */
  timeoutMs: number;
  cpuProfDir?: string;
  /** Extra control-plane settings (e.g. `keepAliveSecs`), merged over the bench's. */
  cpConfig?: Record<string, unknown>;
  /** More Node flags for the CP process (see bench/lib/cp.ts). */
  cpExecArgv?: string[];
  /** Copy the CP's memory samples (JSON lines, bench/lib/mem-probe.ts) here before cleaning up. */
  keepMemoryLog?: string;
};

export type RolloutResult = {
  hosts: number;
  channels: number;
  waves: number;
  pollSecs: number;
  artifactBytes: number;
  /** First contact: every host opens its own mTLS connection and checks in once. */
  firstContact: { ms: number; checkinsPerSec: number; latencyMs: Summary; errors: number };
  /** Signed generation 2 written → verified and in force in the CP. */
  artifactLoadMs: number;
  /** Generation 2 in force → every rollout Converged and every host on it (CP state). */
  convergeMs: number | null;
  converged: boolean;
  /** From the CP: hosts whose current closure is the declared one and whose rollout host state is Converged. */
  hostsConvergedPerCp: number;
  /** A few hosts the CP does not show as converged (diagnosis). */
  notConvergedSample: unknown[];
  rollouts: { id: string; state: string; hostCounts: Record<string, number> }[];
  /** Reconcile passes during the rollout (CP metric `nixfleet_reconcile_duration_seconds`). */
  reconcile: { passes: number; meanMs: number; p50BucketMs: number | null; p99BucketMs: number | null };
  cp: {
    cpuMs: number;
    cores: number;
    rssMiB: number;
    /** Highest RSS over the CP's whole life (VmHWM), the first contact of every host included. */
    peakRssMiB: number;
    /** Highest RSS sampled (every 250 ms) from the new artefact's publication to convergence. */
    rolloutPeakRssMiB: number;
    memory: MemoryBreakdown | null;
    /** The same breakdown over the rollout only (from the publication). */
    rolloutMemory: MemoryBreakdown | null;
  };
  agents: Omit<AgentsResult, 'kind'>;
};

/** Upper bound (ms) of the histogram bucket holding quantile q of the observations in the delta. */
function bucketQuantile(before: string, after: string, name: string, q: number): number | null {
  const buckets = (text: string): Map<number, number> => {
    const m = new Map<number, number>();
    for (const line of text.split('\n')) {
      const r = new RegExp(`^${name}_bucket\\{.*le="([^"]+)".*\\} (\\d+)`).exec(line);
      if (r === null) continue;
      const le = r[1] === '+Inf' ? Number.POSITIVE_INFINITY : Number(r[1]);
      m.set(le, (m.get(le) ?? 0) + Number(r[2]));
    }
    return m;
  };
  const b0 = buckets(before);
  const b1 = buckets(after);
  const les = [...b1.keys()].sort((a, b) => a - b);
  const total = (b1.get(Number.POSITIVE_INFINITY) ?? 0) - (b0.get(Number.POSITIVE_INFINITY) ?? 0);
  if (total === 0) return null;
  for (const le of les) {
    if ((b1.get(le) ?? 0) - (b0.get(le) ?? 0) >= q * total) return le === Number.POSITIVE_INFINITY ? null : le * 1000;
  }
  return null;
}

export async function runRollout(opts: RolloutOptions): Promise<RolloutResult> {
  const n = opts.hosts;
  const run = await startAgentsRun({
    label: 'rollout',
    hosts: n,
    cpConfig: { pollIntervalSecs: 1, agentPollIntervalSecs: opts.pollSecs, ...(opts.cpConfig ?? {}) },
    forcedGc: true,
    ...(opts.cpuProfDir !== undefined ? { cpuProfDir: opts.cpuProfDir } : {}),
    ...(opts.cpExecArgv !== undefined ? { cpExecArgv: opts.cpExecArgv } : {}),
    ...(opts.keepMemoryLog !== undefined ? { keepMemoryLog: opts.keepMemoryLog } : {}),
  });
  const { cp, lc, fleet, files, memLog, cpStartedMs } = run;
  try {
    await cp.waitReady(60_000);
    const bodies = fleet.names.map((name) =>
      JSON.stringify({ hostname: name, currentClosure: fleet.closure(name, 1), bootId: 'boot', probes: [{ name: 'http', ok: true, observedAt: new Date().toISOString() }], failedUnits: [], lastOutcome: null }),
    );
    // fleet.names is sorted like the certificates (host-0000 …), so host i ↔ body i.
    const first = await lc.run({ kind: 'sweep', request: { method: 'POST', path: '/v1/agent/checkin', bodies }, from: 0, to: n, concurrency: 32, keepOpen: true });
    const running = lc.agents({ kind: 'agents', hosts: n, pollMs: opts.pollSecs * 1000, generation: 1, maxMs: opts.timeoutMs + 60_000 });

    const metrics0 = await cp.metricsText();
    const cpu0 = procCpuMs(cp.pid);
    const signed = files.publish(fleet.fleet(2), Date.now());
    const tPublish = performance.now();
    const publishedAtMs = Date.now() - cpStartedMs;
    await cp.waitReady(60_000, (r) => r.fleet?.sha256 === signed.sha256);
    const tLoaded = performance.now();
    // Converged = every generation-2 rollout Converged in the CP AND every host's own last
    // check-in reports the declared closure (a host converges on its confirm; its check-in with the
    // new closure follows within one poll interval).
    let converged = false;
    let rollouts: RolloutsResponse['rollouts'] = [];
    let hosts: HostsResponse['hosts'] = [];
    let peakRss = 0;
    const isDone = (h: HostsResponse['hosts'][number]): boolean =>
      h.declaredClosure === fleet.closure(h.hostname, 2) && h.currentClosure === h.declaredClosure && h.rollout?.state === 'Converged';
    // GET /v1/hosts at 10,000 hosts is a ≈ 5 MB answer: read it at most every 2 s (an operator's
    // `nixfleet status` loop), not at the 250 ms of the rollout summary, which would put the
    // bench's own queries into the CP's memory peak.
    let hostsReadAt = 0;
    while (performance.now() - tLoaded < opts.timeoutMs) {
      await new Promise((r) => setTimeout(r, 250));
      peakRss = Math.max(peakRss, procMemory(cp.pid).rssBytes);
      rollouts = (await cp.get<RolloutsResponse>('/v1/rollouts')).rollouts.filter((r) => r.artifactSha256 === signed.sha256);
      if (rollouts.length === 0 || !rollouts.every((r) => r.state === 'Converged')) continue;
      if (performance.now() - hostsReadAt < 2000) continue;
      hostsReadAt = performance.now();
      hosts = (await cp.get<HostsResponse>('/v1/hosts')).hosts;
      if (hosts.length === n && hosts.every(isDone)) {
        converged = true;
        break;
      }
    }
    const tConverged = performance.now();
    const cpuMs = procCpuMs(cp.pid) - cpu0;
    const metrics1 = await cp.metricsText();
    await lc.stopAgents();
    const agents = await running;
    if (!converged) hosts = (await cp.get<HostsResponse>('/v1/hosts')).hosts;
    const ok = hosts.filter(isDone);
    const mem = procMemory(cp.pid);
    const r0 = histogramTotals(metrics0, 'nixfleet_reconcile_duration_seconds');
    const r1 = histogramTotals(metrics1, 'nixfleet_reconcile_duration_seconds');
    const passes = r1.count - r0.count;
    const { kind: _kind, ...agentStats } = agents;
    return {
      hosts: n,
      channels: Object.keys(fleet.fleet(1).channels).length,
      waves: Object.values(fleet.fleet(1).rolloutPolicies)[0]?.waves.length ?? 0,
      pollSecs: opts.pollSecs,
      artifactBytes: signed.bytes.length,
      firstContact: { ms: first.windowMs, checkinsPerSec: first.ratePerSec, latencyMs: first.latencyMs, errors: first.errors },
      artifactLoadMs: Math.round(tLoaded - tPublish),
      convergeMs: converged ? Math.round(tConverged - tLoaded) : null,
      converged: converged && ok.length === n,
      hostsConvergedPerCp: ok.length,
      notConvergedSample: hosts.filter((h) => !ok.includes(h)).slice(0, 3),
      rollouts: rollouts.map((r) => ({ id: r.id, state: r.state, hostCounts: r.hostCounts as Record<string, number> })),
      reconcile: {
        passes,
        meanMs: passes > 0 ? Math.round(((r1.sum - r0.sum) / passes) * 1e6) / 1000 : 0,
        p50BucketMs: bucketQuantile(metrics0, metrics1, 'nixfleet_reconcile_duration_seconds', 0.5),
        p99BucketMs: bucketQuantile(metrics0, metrics1, 'nixfleet_reconcile_duration_seconds', 0.99),
      },
      cp: {
        cpuMs: Math.round(cpuMs),
        cores: Math.round((cpuMs / Math.max(1, tConverged - tPublish)) * 100) / 100,
        rssMiB: toMiB(mem.rssBytes),
        peakRssMiB: toMiB(Math.max(peakRss, mem.peakRssBytes)),
        rolloutPeakRssMiB: toMiB(peakRss),
        memory: memoryBreakdown(memLog, 0),
        rolloutMemory: memoryBreakdown(memLog, publishedAtMs),
      },
      agents: agentStats,
    };
  } catch (e) {
    throw run.failure(e);
  } finally {
    await run.close();
  }
}
