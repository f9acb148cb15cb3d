/**
 * Restart PostgreSQL under load (issue 17 acceptance), in process with real HTTPS + mTLS and a
 * real throwaway cluster: simulated agents keep checking in while the server is stopped
 * (`pg_ctl stop -m immediate`, as a crash) and started again. The control plane keeps serving —
 * every answer is 200, or 503 with a stable code (`STORE_UNAVAILABLE`, `NOT_READY`) and
 * Retry-After, never a 500 — it recovers by itself (new connections, its LISTEN session back),
 * and nothing it acknowledged is lost: each host's stored row holds at least its last
 * acknowledged check-in. Then a reconcile pass and the audit chain still work end to end.
 */
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { fakeClosure, sampleFleet } from '../fixtures/artifacts.ts';
import { Client, makeEnv, startCp, testCluster } from '../fixtures/cp-testing.ts';
import { verifyAuditChain } from '../protocol/audit-chain.ts';
import { PostgresStore } from './store/postgres.ts';

const t = suite('postgres restart under load');
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const N = 6;

t('agents check in through an immediate restart of PostgreSQL: 200 or 503 with a code, recovery, nothing acknowledged lost', async () => {
  const env = await makeEnv();
  env.publish(sampleFleet({ hosts: N, waves: 1, soakMinutes: 0, closures: true }));
  const cp = await startCp(env, { leaseSecs: 60, retryAfterSecs: 1 }, { backend: 'postgres' });
  const store = cp.store as PostgresStore;
  const hosts = Array.from({ length: N }, (_, i) => `host-${String(i).padStart(4, '0')}`);
  const clients = await Promise.all(hosts.map(async (h) => new Client(cp.url, env.ca.certPem, await env.hostCert(h))));
  const acked = new Map<string, number>(); // host → index of its last acknowledged check-in
  const statuses: Record<string, number> = {};
  const unexpected: string[] = [];
  let phase: 'before' | 'restarting' | 'after' = 'before';
  const ackedAfter = new Map<string, number>();
  let stop = false;
  const agentLoop = async (i: number): Promise<void> => {
    const h = hosts[i]!;
    for (let k = 1; !stop; k++) {
      const body = { hostname: h, currentClosure: fakeClosure(h, 0), bootId: 'b1', agentVersion: `v${k}`, probes: [], failedUnits: [], lastOutcome: null };
      let r: Awaited<ReturnType<Client['call']>>;
      try {
        r = await clients[i]!.call('POST', '/v1/agent/checkin', body);
      } catch (e) {
        unexpected.push(`${h}: ${String(e)}`);
        continue;
      }
      const code = (r.body as { error?: { code?: string } } | null)?.error?.code ?? '';
      statuses[`${r.status}${code === '' ? '' : ` ${code}`}`] = (statuses[`${r.status}${code === '' ? '' : ` ${code}`}`] ?? 0) + 1;
      if (r.status === 200) {
        acked.set(h, k);
        if (phase === 'after') ackedAfter.set(h, (ackedAfter.get(h) ?? 0) + 1);
      } else if (!(r.status === 503 && (code === 'STORE_UNAVAILABLE' || code === 'NOT_READY') && r.headers['retry-after'] !== undefined)) {
        unexpected.push(`${h}: ${r.status} ${JSON.stringify(r.body)}`);
      }
      await sleep(20);
    }
  };
  const loops = hosts.map((_, i) => agentLoop(i));
  try {
    while (hosts.some((h) => (acked.get(h) ?? 0) < 3)) await sleep(50); // under load
    phase = 'restarting';
    const cluster = await testCluster();
    await cluster.restart();
    phase = 'after';
    const t0 = Date.now();
    while (hosts.some((h) => (ackedAfter.get(h) ?? 0) < 3) && Date.now() - t0 < 60_000) await sleep(100);
    stop = true;
    await Promise.all(loops);
    assert.equal(unexpected, [], `only 200 or 503 with a code (answers: ${JSON.stringify(statuses)})`);
    assert.ok(hosts.every((h) => (ackedAfter.get(h) ?? 0) >= 3), `every host served again after the restart (answers: ${JSON.stringify(statuses)})`);
    for (const h of hosts) {
      const row = await store.getHost(h);
      const stored = Number((row?.agentVersion ?? 'v0').slice(1));
      assert.ok(stored >= acked.get(h)!, `${h}: stored check-in v${stored} is not older than the last acknowledged v${acked.get(h)}`);
    }
    for (let i = 0; i < 100 && !store.listening; i++) await sleep(100);
    assert.ok(store.listening, 'the LISTEN session is back');
    assert.ok(store.listenerReconnects >= 1);
    await cp.cp.leadership.tick();
    await cp.cp.reconcileNow();
    assert.ok(verifyAuditChain(await store.auditAll()).ok, 'the audit chain verifies end to end');
    console.log(`answers through the restart: ${JSON.stringify(statuses)}`);
  } finally {
    stop = true;
    await Promise.all(loops);
    for (const c of clients) await c.close();
    await cp.stop();
    env.cleanup();
  }
});

t.run();
