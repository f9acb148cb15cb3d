/**
 * Control-plane check-in load (SPEC §8, issue 9): 10,000 registered hosts checking in over mTLS
 * keep-alive against the real control plane, and the same load against a bare Node HTTPS server
 * with the same mutual TLS answering the same bytes, in the same run; TLS handshake cost; artefact
 * fetch cost per agent per release; and how the figures grow from 100 to 1,000 to 10,000 hosts
 * (also drawn to docs/performance-load.svg). Method: docs/performance.md.
 */
import { writeFileSync } from 'node:fs';
import { loadavg } from 'node:os';
import { join } from 'node:path';
import { loadBenchPki } from './lib/certs.ts';
import { fleetNames, hostKeys } from './lib/fleet.ts';
import { MAX_HOSTS, runBareLoad, runCpLoad, type LoadPlan, type LoadResult } from './lib/load.ts';
import { smallMultiplesSvg } from './lib/svg.ts';

/** §8 and issue 9 acceptance figures. */
const TARGET = { checkinsPerSec: 2000, p99Ms: 50, ratioToBare: 0.5, rssMiB: 500 };

const FULL: LoadPlan = { connections: 256, checkinsPerConnection: 100, warmupMs: 1500, durationMs: 6000, openRatePerSec: TARGET.checkinsPerSec, handshakes: 200, fetches: 5 };
const SHORT: LoadPlan = { ...FULL, warmupMs: 1000, durationMs: 3000, handshakes: 0, fetches: 1 };
/** Idle connections the bare server holds to measure the memory of one (RSS growth / connection). */
const HOLD = 1000;
/** Stop growing the fleet once the bench has used this much of `npm run bench`'s 10 minutes. */
const BUDGET_MS = 200_000;

type GrowthRow = { hosts: number; checkinsPerSec: number; p99MsAt2000: number; keepAliveP99MsAt2000: number | null; cpuMsPerCheckin: number | null; rssMiB: number; firstContactPerSec: number; artifactBytes: number };

function row(r: LoadResult): GrowthRow {
  return {
    hosts: r.hosts,
    checkinsPerSec: r.closed.ratePerSec,
    p99MsAt2000: r.open.latencyMs.p99,
    keepAliveP99MsAt2000: r.open.keepAliveLatencyMs?.p99 ?? null,
    cpuMsPerCheckin: r.closed.server?.cpuMsPerRequest ?? null,
    rssMiB: r.rss.peakRssMiB,
    firstContactPerSec: r.firstContact.ratePerSec,
    artifactBytes: r.artifactBytes,
  };
}

export default async function bench(): Promise<object> {
  const started = performance.now();
  const loadAvgAtStart = loadavg().map((x) => Math.round(x * 100) / 100);
  // Certificates and host keys are minted once and cached under .bench-cache/.
  const t0 = performance.now();
  const pki = await loadBenchPki(fleetNames(MAX_HOSTS));
  hostKeys(MAX_HOSTS);
  const setup = { certificatesMinted: pki.minted, mintMs: Math.round(pki.mintMs), setupMs: Math.round(performance.now() - t0) };

  const full = await runCpLoad(MAX_HOSTS, FULL);
  const bare = await runBareLoad(MAX_HOSTS, FULL, full.checkinResponseSample, HOLD);
  const growth: GrowthRow[] = [];
  const skipped: number[] = [];
  for (const n of [100, 1000]) {
    if (performance.now() - started > BUDGET_MS) {
      skipped.push(n);
      continue;
    }
    growth.push(row(await runCpLoad(n, SHORT)));
  }
  growth.push(row(full));

  const ratio = Math.round((full.closed.ratePerSec / Math.max(1, bare.closed.ratePerSec)) * 1000) / 1000;
  const acceptance = {
    checkinsPerSec: { value: full.closed.ratePerSec, target: `≥ ${TARGET.checkinsPerSec}`, ok: full.closed.ratePerSec >= TARGET.checkinsPerSec },
    // All check-ins of the window, including the 1 in 100 that opened its connection (handshake).
    p99MsAt2000PerSec: { value: full.open.latencyMs.p99, target: `≤ ${TARGET.p99Ms}`, ok: full.open.latencyMs.p99 <= TARGET.p99Ms && full.open.ratePerSec >= TARGET.checkinsPerSec },
    ratioToBare: { value: ratio, target: `≥ ${TARGET.ratioToBare}`, ok: ratio >= TARGET.ratioToBare },
    cpRssMiB: { value: full.rss.peakRssMiB, target: `≤ ${TARGET.rssMiB}`, ok: full.rss.peakRssMiB <= TARGET.rssMiB },
    noErrors: { value: full.closed.errors + full.open.errors + full.firstContact.errors, target: '0', ok: full.closed.errors + full.open.errors + full.firstContact.errors === 0 },
  };

  const svg = smallMultiplesSvg(
    'nixfleet control plane: check-in load by fleet size',
    `closed loop over ${FULL.connections} mTLS keep-alive connections; p99 at a fixed ${TARGET.checkinsPerSec}/s; peak RSS — ${new Date().toISOString().slice(0, 10)}, load average ${loadAvgAtStart[0]}`,
    growth.map((g) => g.hosts),
    [
      { title: 'check-ins per second (max)', unit: 'check-ins/s', values: growth.map((g) => g.checkinsPerSec), target: { value: TARGET.checkinsPerSec, label: '≥ 2,000' } },
      { title: `p99 latency at ${TARGET.checkinsPerSec}/s`, unit: 'ms', values: growth.map((g) => g.p99MsAt2000), target: { value: TARGET.p99Ms, label: '≤ 50 ms' } },
      { title: 'CP CPU per check-in', unit: 'ms', values: growth.map((g) => g.cpuMsPerCheckin) },
      { title: 'CP peak RSS', unit: 'MiB', values: growth.map((g) => g.rssMiB), target: { value: TARGET.rssMiB, label: '≤ 500 MiB' } },
    ],
  );
  writeFileSync(join(process.cwd(), 'docs', 'performance-load.svg'), svg);

  return {
    loadAvgAtStart,
    setup,
    acceptance,
    controlPlane: { ...full, checkinResponseSample: undefined },
    bare,
    ratioToBare: ratio,
    growth,
    skippedForTimeBudget: skipped,
    plot: 'docs/performance-load.svg',
    wallMs: Math.round(performance.now() - started),
  };
}
