/**
 * CPU per steady-state check-in against the bare Node mTLS server, same run, alternating windows,
 * median of the rounds (issue 19: ≤ 1.5×), at 10,000 hosts; then the same with a 100,000-host fleet
 * loaded (10,000 live hosts, the other 90,000 silent): the CP's memory and check-in CPU. Method and
 * figures: docs/performance.md ("Check-in CPU against the bare server").
 *
 * `CHECKIN_ROUNDS` (default 5), `CHECKIN_FLEETS` (default `10000,100000`), `CHECKIN_LIVE`
 * (default 10,000: hosts that check in) and `CHECKIN_LIVE_LARGE` (default 2,000: hosts that check
 * in when the fleet is larger than the bench's 10,000 certificates) narrow a run. The 100,000-host
 * fleet keeps 2,000 live hosts by default: each first contact waits for a reconcile pass (to be
 * handed its target at once), the load client opens 32 at a time, and a pass at 100,000 hosts
 * costs ≈ 0.5 s of CPU while hosts change (docs/performance.md), so 10,000 first contacts take
 * longer than the load client's 10-minute limit; `CHECKIN_AB=DIR` also runs the control plane
 * of another checkout (e.g. `git archive` of an older commit with this node_modules) in the same
 * rounds, labelled `base` (`CHECKIN_AB=DIR1,DIR2`: `base`, `base2`); `CHECKIN_CPU_PROF=DIR` writes V8 CPU profiles of the servers there.
 */
import { loadavg } from 'node:os';
import { loadBenchPki } from './lib/certs.ts';
import { runCheckinCpu, type CheckinCpuResult } from './lib/checkin-cpu.ts';
import { fleetNames, hostKeys } from './lib/fleet.ts';
import { MAX_HOSTS } from './lib/load.ts';

const TARGET_RATIO = 1.5;

export default async function bench(): Promise<object> {
  const started = performance.now();
  const loadAvgAtStart = loadavg().map((x) => Math.round(x * 100) / 100);
  await loadBenchPki(fleetNames(MAX_HOSTS));
  hostKeys(MAX_HOSTS);
  const env = process.env;
  const rounds = Number(env['CHECKIN_ROUNDS'] ?? 5);
  const fleets = (env['CHECKIN_FLEETS'] ?? '10000,100000').split(',').map(Number);
  const live = Number(env['CHECKIN_LIVE'] ?? MAX_HOSTS);
  const liveLarge = Number(env['CHECKIN_LIVE_LARGE'] ?? 2000);
  const prof = env['CHECKIN_CPU_PROF'];
  const ab = env['CHECKIN_AB'];
  // Several checkouts, comma-separated: `base`, `base2`, … in the same rounds.
  const abRoots = (ab ?? '').split(',').filter((x) => x !== '');
  const variants = [{ label: 'cp', root: process.cwd() }, ...abRoots.map((root, i) => ({ label: i === 0 ? 'base' : `base${i + 1}`, root }))];
  const runs: CheckinCpuResult[] = [];
  for (const fleetHosts of fleets) {
    runs.push(
      await runCheckinCpu({
        liveHosts: Math.min(fleetHosts, live, fleetHosts > MAX_HOSTS ? liveLarge : Infinity),
        fleetHosts,
        rounds,
        connections: 256,
        warmupMs: 1500,
        durationMs: 5000,
        variants,
        ...(prof !== undefined && prof !== '' ? { cpuProfDir: prof } : {}),
      }),
    );
  }
  const at10k = runs.find((r) => r.fleetHosts === MAX_HOSTS)?.variants[0];
  return {
    loadAvgAtStart,
    acceptance: at10k === undefined ? {} : { ratioToBare: { value: at10k.median.ratio, target: `≤ ${TARGET_RATIO}`, ok: at10k.median.ratio <= TARGET_RATIO } },
    runs,
    loadAvgAtEnd: loadavg().map((x) => Math.round(x * 100) / 100),
    wallMs: Math.round(performance.now() - started),
  };
}
