/**
 * Several control planes on one PostgreSQL (issue 17), in process with real HTTPS + mTLS and a real
 * throwaway cluster: the leader lease and its fence at the store, then two replicas serving agents
 * while one leads — the leader stops renewing, the other takes over, the rollout converges, no host
 * is dispatched twice, the old leader's fenced writes are refused, the audit chain is one chain.
 */
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { fakeClosure, sampleFleet } from '../fixtures/artifacts.ts';
import { Client, confirmedRecord, hostKeyOf, makeEnv, report, startCp, testCluster, type Env, type RunningCp } from '../fixtures/cp-testing.ts';
import type { CheckinResponse, ReadyzResponse } from '../protocol/api.ts';
import { verifyAuditChain } from '../protocol/audit-chain.ts';
import { PostgresStore } from './store/postgres.ts';
import { NotLeaderError, type Write } from './store/types.ts';

const t = suite('replicas');
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const audit = (kind: string): Write => ({ kind: 'audit', entry: { atMs: 0, kind, actor: 'cp', subject: 's', data: null } });

async function openPair(): Promise<[PostgresStore, PostgresStore]> {
  const c = await testCluster();
  const conn = await c.createDatabase(`lease${Date.now() % 100000}`);
  const open = () => PostgresStore.open({ host: conn.host, port: conn.port, database: conn.database, user: conn.user });
  return [await open(), await open()];
}

t('lease: one holder at a time; expiry or release moves it with a higher epoch; a fenced write of the old holder is refused', async () => {
  const [a, b] = await openPair();
  try {
    const e1 = await a.lease('A', 400);
    assert.is(e1, 1);
    assert.is(await b.lease('B', 400), null, 'held by A');
    assert.is(await a.lease('A', 400), e1, 'renewal keeps the epoch');
    assert.equal(await b.leaseHolder(), { holder: 'A', epoch: 1 });
    await a.applyFenced([audit('a-leads')], { holder: 'A', epoch: 1 });
    while ((await b.lease('B', 60_000)) === null) await sleep(100); // A stopped renewing ("paused")
    assert.equal(await b.leaseHolder(), { holder: 'B', epoch: 2 });
    assert.is(await a.lease('A', 400), null, 'A resumes: the lease is B’s');
    let refused: unknown = null;
    try {
      await a.applyFenced([audit('a-after-pause'), { kind: 'host.put', row: { hostname: 'x', lastCheckinMs: 1, currentClosure: null, bootId: null, probesObserved: false, probesPassing: false, failedUnits: [], complianceFailures: null, probesJson: '[]', lastOutcomeJson: null, pendingReboot: false, agentVersion: null, certNotAfterMs: null } }], { holder: 'A', epoch: 1 });
    } catch (e) {
      refused = e;
    }
    assert.ok(refused instanceof NotLeaderError, 'fenced: refused');
    assert.is(await a.getHost('x'), null, 'and nothing written');
    await b.applyFenced([audit('b-leads')], { holder: 'B', epoch: 2 });
    await b.releaseLease('B');
    assert.is(await a.lease('A', 400), 3, 'released: taken at once, next epoch');
    assert.equal((await a.auditAll()).map((e) => e.kind), ['a-leads', 'b-leads']);
  } finally {
    await a.close();
    await b.close();
  }
});

type Agent = { client: Client; current: string; checkin(): Promise<CheckinResponse>; activate(target: NonNullable<CheckinResponse['target']>): Promise<void> };

async function agent(env: Env, url: string, name: string, index: number): Promise<Agent> {
  const client = new Client(url, env.ca.certPem, await env.hostCert(name));
  const key = hostKeyOf(index, name);
  const probes = () => [{ name: 'http', ok: true, observedAt: new Date(env.clock.ms).toISOString() }];
  const a: Agent = {
    client,
    current: fakeClosure(name, 0),
    async checkin() {
      const r = await client.call('POST', '/v1/agent/checkin', { hostname: name, currentClosure: a.current, bootId: 'b1', probes: probes(), failedUnits: [], lastOutcome: null });
      assert.is(r.status, 200, JSON.stringify(r.body));
      return r.body as CheckinResponse;
    },
    async activate(target) {
      for (const event of ['activation-started', 'activation-switched'] as const) {
        const rep = report(name, event, target.rolloutId, target.closureHash, env.clock.ms);
        assert.is((await client.call('POST', '/v1/agent/report', { report: rep, signature: key.sign(rep) })).status, 202);
        if (event === 'activation-started') a.current = target.closureHash;
      }
      const rec = confirmedRecord(name, target.rolloutId, target.closureHash, env.clock.ms);
      const r = await client.call('POST', '/v1/agent/confirm', {
        hostname: name,
        rolloutId: target.rolloutId,
        closureHash: target.closureHash,
        bootId: 'b1',
        confirmed: { record: rec, signature: key.sign(rec) },
        probes: probes(),
        failedUnits: [],
      });
      assert.is(r.status, 204, JSON.stringify(r.body));
    },
  };
  return a;
}

/** /readyz's replica block, after a lease renewal (the timers are off in these tests). */
const replica = async (cp: RunningCp, env: Env): Promise<ReadyzResponse['replica']> => {
  await cp.cp.leadership.tick();
  const c = new Client(cp.url, env.ca.certPem, await env.operatorCert());
  try {
    return ((await c.call('GET', '/readyz')).body as ReadyzResponse).replica;
  } finally {
    await c.close();
  }
};

t('two replicas, agents spread over both: the leader stops, the other takes over; converged, no host dispatched twice, one audit chain', async () => {
  const env = await makeEnv();
  env.publish(sampleFleet({ hosts: 4, waves: 2, soakMinutes: 0, closures: true, withPubkeys: true }));
  const r1 = await startCp(env, { leaseSecs: 2 }, { backend: 'postgres' });
  const r2 = await startCp(env, { leaseSecs: 2 }, { backend: 'postgres' });
  const hosts = ['host-0000', 'host-0001', 'host-0002', 'host-0003'];
  // host-0000 and host-0001 talk to the first replica, the others to the second.
  const agents = await Promise.all(hosts.map((h, i) => agent(env, (i < 2 ? r1 : r2).url, h, i)));
  try {
    // Whoever holds the lease now is A (the leader), the other B.
    const roles = [await replica(r1, env), await replica(r2, env)];
    assert.equal(roles.map((r) => r?.role).sort(), ['follower', 'leader'], 'one leader, one follower');
    const [a, b] = roles[0]!.role === 'leader' ? [r1, r2] : [r2, r1];
    const wave0 = [0, 2];
    // First contact: a wave-0 host may get its target in its first answer (when the leader's pass
    // ran for it); a wave-1 host gets nothing yet.
    for (const [i, ag] of agents.entries()) {
      const first = (await ag.checkin()).target;
      if (!wave0.includes(i)) assert.is(first, null, `host ${i}: wave 1, nothing yet`);
    }
    await a.cp.leadership.tick(); // A is alive: it renews (its timer would; the timers are off here)
    assert.equal(await b.cp.reconcileNow(), [], 'a follower leaves passes to the leader');
    await a.cp.reconcileNow();
    const rolloutId = (await b.store.allRollouts())[0]!.id;
    for (const i of wave0) {
      const target = (await agents[i]!.checkin()).target;
      assert.ok(target !== null, `host ${i}: target from replica ${i < 2 ? 1 : 2}`);
      await agents[i]!.activate(target!);
    }
    // A stops renewing (as if killed or paused); B takes the lease once it ran out.
    const epochA = (await replica(a, env))!.epoch!;
    await sleep(2100);
    await b.cp.reconcileNow();
    assert.is((await replica(b, env))?.role, 'leader');
    assert.is((await replica(b, env))?.epoch, epochA + 1);
    assert.equal(await a.cp.reconcileNow(), [], 'A resumes: it finds the lease taken and does not reconcile');
    assert.is((await replica(a, env))?.role, 'follower');
    let fenced: unknown = null;
    try {
      await a.store.applyFenced([audit('stale-leader')], { holder: a.cp.leadership.holder, epoch: epochA });
    } catch (e) {
      fenced = e;
    }
    assert.ok(fenced instanceof NotLeaderError, 'the old epoch is fenced off');
    for (const i of [1, 3]) {
      const target = (await agents[i]!.checkin()).target;
      assert.ok(target !== null, `host ${i}: wave 1 dispatched by the new leader`);
      await agents[i]!.activate(target!);
    }
    for (const ag of agents) await ag.checkin();
    await b.cp.reconcileNow();
    assert.is((await a.store.getRollout(rolloutId))!.state, 'Converged');
    const dispatched = (await a.store.transitions(rolloutId)).filter((x) => x.to === 'Dispatched').map((x) => x.hostname);
    assert.equal(dispatched.sort(), hosts, 'each host dispatched exactly once');
    for (const h of hosts) assert.is((await a.store.getDispatch(rolloutId, h))!.status, 'confirmed');
    const chain = await b.store.auditAll();
    assert.ok(verifyAuditChain(chain).ok);
    assert.not.ok(chain.some((e) => e.kind === 'stale-leader'));
  } finally {
    for (const ag of agents) await ag.client.close();
    await r1.stop();
    await r2.stop();
    env.cleanup();
  }
});

/**
 * The e2e's intermittent double dispatch (issue 17), without timing: a check-in stamped after the
 * leader's pass began — merged into the leader's mirror while the pass awaited its reads, or
 * written by a replica whose clock runs ahead — made the reconciler read the Dispatched host as
 * never seen (a negative "unseen for"), withdraw its dispatch as offline, and dispatch it again on
 * the next pass. Each interleaving is forced, without timing: a hook in the leader's last read
 * before it decides, or a replica given its own clock.
 */
async function dispatchedOnce(skewMs: number, via: 'leader' | 'follower'): Promise<void> {
  const env = await makeEnv();
  env.publish(sampleFleet({ hosts: 4, waves: 2, soakMinutes: 0, closures: true, withPubkeys: true }));
  const a = await startCp(env, { leaseSecs: 60 }, { backend: 'postgres' });
  // B's clock runs `skewMs` ahead of A's (the test's clock): replicas on different machines.
  const b = await startCp(env, { leaseSecs: 60, dbPath: a.config.dbPath }, { backend: 'postgres', now: () => env.clock.ms + skewMs });
  const hosts = ['host-0000', 'host-0001', 'host-0002', 'host-0003'];
  const agents = await Promise.all(hosts.map((h, i) => agent(env, a.url, h, i)));
  const x = via === 'leader' ? agents[0]! : await agent(env, b.url, 'host-0000', 0);
  try {
    assert.is((await replica(a, env))?.role, 'leader');
    assert.is((await replica(b, env))?.role, 'follower');
    for (const ag of agents) await ag.checkin();
    await a.cp.reconcileNow();
    const rolloutId = (await a.store.allRollouts())[0]!.id;
    assert.is((await a.store.rolloutHosts(rolloutId)).find((r) => r.hostname === 'host-0000')?.state, 'Dispatched', 'wave 0 dispatched');
    env.clock.advance(1000);
    // The next pass on A. Leader: while it reads, host-0000 checks in on A, 5 ms later by A's clock
    // (merged into A's mirror). Follower: it checked in on B, stamped by B's clock, before the pass.
    if (via === 'follower') await x.checkin();
    const store = a.store as PostgresStore;
    const read = store.expiredDispatches.bind(store);
    let hook: (() => Promise<void>) | null = async () => {
      if (via === 'leader') {
        env.clock.advance(5);
        await x.checkin();
      }
    };
    store.expiredDispatches = async (ms: number) => {
      const h = hook;
      hook = null;
      if (h !== null) await h();
      return read(ms);
    };
    const actions = await a.cp.reconcileNow();
    assert.is(hook, null, 'the hook ran inside the pass');
    assert.equal(actions.filter((x) => x.kind === 'skip_host'), [], 'no dispatch withdrawn');
    assert.is((await a.store.rolloutHosts(rolloutId)).find((r) => r.hostname === 'host-0000')?.state, 'Dispatched', 'host-0000 still Dispatched');
    env.clock.advance(1000);
    await a.cp.reconcileNow();
    const dispatched = (await a.store.transitions(rolloutId)).filter((t) => t.to === 'Dispatched').map((t) => t.hostname);
    assert.equal(dispatched.filter((h) => h === 'host-0000'), ['host-0000'], 'dispatched once');
  } finally {
    for (const ag of agents) await ag.client.close();
    if (x !== agents[0]) await x.client.close();
    await a.stop();
    await b.stop();
    env.cleanup();
  }
}

t('a check-in merged while the leader pass reads (stamped after the pass began) does not withdraw the dispatch: dispatched once', () => dispatchedOnce(0, 'leader'));
t('a check-in on a replica whose clock runs 2 s ahead does not withdraw the dispatch: dispatched once', () => dispatchedOnce(2000, 'follower'));

t('a check-in on a follower wakes the leader (LISTEN/NOTIFY): the wave is dispatched without a leader tick', async () => {
  const env = await makeEnv();
  env.publish(sampleFleet({ hosts: 4, waves: 2, soakMinutes: 0, closures: true, withPubkeys: true }));
  // Timers are off (no periodic pass anywhere); debounce short: only a wake-up can start A's pass.
  const a = await startCp(env, { leaseSecs: 60, reconcileDebounceMs: 20 }, { backend: 'postgres' });
  const b = await startCp(env, { leaseSecs: 60, reconcileDebounceMs: 20 }, { backend: 'postgres' });
  const agents = await Promise.all(['host-0000', 'host-0001', 'host-0002', 'host-0003'].map((h, i) => agent(env, b.url, h, i)));
  try {
    assert.is((await replica(a, env))?.role, 'leader');
    assert.is((await replica(b, env))?.role, 'follower');
    const runsBefore = await a.cp.metrics.registry.getSingleMetricAsString('nixfleet_reconcile_runs_total');
    assert.not.match(runsBefore, /trigger="wakeup"/);
    // host-0000 (wave 0) checks in on the follower until the leader, woken, dispatched it.
    let target: CheckinResponse['target'] = null;
    for (let i = 0; i < 200 && target === null; i++) {
      target = (await agents[0]!.checkin()).target;
      if (target === null) await sleep(50);
    }
    assert.ok(target !== null, 'host-0000 got its target from the follower');
    const runs = await a.cp.metrics.registry.getSingleMetricAsString('nixfleet_reconcile_runs_total');
    assert.match(runs, /trigger="wakeup"/, 'the leader ran a pass because it was woken');
    assert.match(await b.cp.metrics.registry.getSingleMetricAsString('nixfleet_replica_wakeups_total'), /direction="sent"/);
    // Per-replica metrics: each replica says which it is and what it does.
    const gauge = async (cp: typeof a, name: string) => (await cp.cp.metrics.registry.getSingleMetricAsString(name)).split('\n').find((l) => l.startsWith(`${name}{`)) ?? '';
    assert.is(await gauge(a, 'nixfleet_replica_leader'), `nixfleet_replica_leader{holder="${a.cp.leadership.holder}"} 1`);
    assert.is(await gauge(b, 'nixfleet_replica_leader'), `nixfleet_replica_leader{holder="${b.cp.leadership.holder}"} 0`);
    assert.is(await gauge(b, 'nixfleet_replica_listening'), `nixfleet_replica_listening{holder="${b.cp.leadership.holder}"} 1`);
    assert.is(await gauge(a, 'nixfleet_replica_store_up'), `nixfleet_replica_store_up{holder="${a.cp.leadership.holder}"} 1`);
  } finally {
    for (const ag of agents) await ag.client.close();
    await a.stop();
    await b.stop();
    env.cleanup();
  }
});

t.run();
