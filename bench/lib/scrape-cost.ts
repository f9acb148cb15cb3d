/**
 * CPU of one `/metrics` scrape with N host rows (control-plane/service.ts, the metrics' `take`), and
 * of one `Store.allHosts` read alone, in process on SQLite. Session 14: at 10,000 hosts a scrape
 * read the host rows twice (the compliance failures, the certificates), ≈ 90 ms of CPU each, ≈
 * 200 ms in all; once now, ≈ 125 ms. Prints one JSON line per scrape.
 *
 * `HOSTS=10000 node --import tsx bench/lib/scrape-cost.ts`
 */
import { createLogger } from '../../control-plane/log.ts';
import { sampleFleet } from '../../fixtures/artifacts.ts';
import { makeEnv, startCp } from '../../fixtures/cp-testing.ts';

const N = Number(process.env['HOSTS'] ?? 10000);
const env = await makeEnv('scrape-');
const fleet = sampleFleet({ hosts: N, channels: ['stable', 'beta', 'edge', 'lts'], waves: 5, closures: true });
env.publish(fleet);
const log = createLogger({ program: 'bench', level: 'info', write: () => {} });
const rc = await startCp(env, { maxArtifactBytes: 256 * 2 ** 20 }, { now: () => Date.now(), log });
const now = Date.now();
// One row per host, as a check-in writes it (with a client certificate's expiry).
for (const hostname of Object.keys(fleet.hosts)) {
  await rc.store.apply([{ kind: 'host.put', row: { hostname, lastCheckinMs: now, currentClosure: fleet.hosts[hostname]!.closureHash, bootId: 'boot', probesObserved: true, probesPassing: true, failedUnits: [], complianceFailures: null, probesJson: `[{"name":"http","ok":true,"observedAt":"${new Date(now).toISOString()}"}]`, lastOutcomeJson: null, pendingReboot: false, agentVersion: 'bench', certNotAfterMs: now + 90 * 86_400_000 } }]);
}
const cpuMs = async (f: () => Promise<unknown>): Promise<number> => {
  const c0 = process.cpuUsage();
  await f();
  const c = process.cpuUsage(c0);
  return Math.round((c.user + c.system) / 100) / 10;
};
for (let r = 0; r < 6; r++) {
  const scrapeCpuMs = await cpuMs(() => rc.cp.metrics.text());
  const allHostsCpuMs = await cpuMs(async () => rc.store.allHosts());
  console.log(JSON.stringify({ hosts: N, scrapeCpuMs, allHostsCpuMs }));
}
await rc.stop();
env.cleanup();
