/**
 * Issue 14 state survives a control-plane restart (both backends: this file runs once on SQLite
 * and once `[postgres]`): drift, a stall, a change-window hold and an operator's release are
 * stored (`host_drift`, `rollout_controls`), shown by the restarted CP before any pass, and the
 * passes after the restart go on from them — no repeated `host.drifted` / `rollout.stalled`
 * entries, the stall keeps its start, the released host is still released, approvals
 * (`requireApprovals`, `nixfleet rollout approve`) still count.
 */
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { fakeClosure, sampleFleet } from '../fixtures/artifacts.ts';
import type { CheckinResponse, HostsResponse, RolloutsResponse } from '../protocol/api.ts';
import { Client, makeEnv, startCp, type Env, type RunningCp } from '../fixtures/cp-testing.ts';

const t = suite('issue 14 state across a restart');

async function checkin(env: Env, cp: RunningCp, name: string, current: string): Promise<CheckinResponse> {
  const client = new Client(cp.url, env.ca.certPem, await env.hostCert(name));
  try {
    const r = await client.call('POST', '/v1/agent/checkin', {
      hostname: name,
      currentClosure: current,
      bootId: 'boot-1',
      probes: [{ name: 'http', ok: true, observedAt: new Date(env.clock.ms).toISOString() }],
      failedUnits: [],
      lastOutcome: null,
    });
    assert.is(r.status, 200, JSON.stringify(r.body));
    return r.body as CheckinResponse;
  } finally {
    await client.close();
  }
}

async function get<T>(env: Env, cp: RunningCp, path: string): Promise<T> {
  const operator = new Client(cp.url, env.ca.certPem, await env.operatorCert('alice'));
  try {
    return (await operator.call('GET', path)).body as T;
  } finally {
    await operator.close();
  }
}

const auditCount = async (cp: RunningCp, kind: string): Promise<number> => (await cp.store.auditAll()).filter((e) => e.kind === kind).length;

t('drift: stored, shown after a restart before any pass, not audited again', async () => {
  const env = await makeEnv();
  const fleet = sampleFleet({ hosts: 1, waves: 1, soakMinutes: 0, closures: true, withPubkeys: true });
  env.publish(fleet);
  const name = Object.keys(fleet.hosts)[0]!;
  const declared = fleet.hosts[name]!.closureHash!;
  const hand = fakeClosure(name, 7);
  let cp = await startCp(env);
  try {
    await checkin(env, cp, name, declared);
    await cp.cp.reconcileNow();
    await cp.cp.reconcileNow();
    env.clock.advance(60_000);
    await checkin(env, cp, name, hand);
    await cp.cp.reconcileNow();
    const since = (await get<HostsResponse>(env, cp, '/v1/hosts')).hosts[0]!.drift?.since;
    assert.ok(since !== undefined, 'drifted before the restart');
    assert.is(await auditCount(cp, 'host.drifted'), 1);

    await cp.stop();
    env.clock.advance(60_000);
    cp = await startCp(env);
    const view = (await get<HostsResponse>(env, cp, '/v1/hosts')).hosts[0]!;
    assert.equal(view.drift, { expected: declared, actual: hand, since, rolloutId: view.drift!.rolloutId }, 'shown by the restarted CP');
    assert.match((await cp.cp.metricsText()).body, /nixfleet_hosts\{state="drifted"\} 1/);
    await checkin(env, cp, name, hand);
    await cp.cp.reconcileNow();
    await cp.cp.reconcileNow();
    assert.is(await auditCount(cp, 'host.drifted'), 1, 'the restarted CP goes on from the stored drift');
    assert.is((await get<HostsResponse>(env, cp, '/v1/hosts')).hosts[0]!.drift?.since, since, 'same start');

    await checkin(env, cp, name, declared);
    await cp.cp.reconcileNow();
    await cp.stop();
    cp = await startCp(env);
    assert.is((await get<HostsResponse>(env, cp, '/v1/hosts')).hosts[0]!.drift, undefined, 'the cleared drift stays cleared');
  } finally {
    await cp.stop();
    env.cleanup();
  }
});

t('stall, change-window hold and an operator release: stored, shown after a restart, not reported again; the release still holds', async () => {
  const env = await makeEnv();
  const fleet = sampleFleet({ hosts: 3, waves: 1, soakMinutes: 0, closures: true, withPubkeys: true });
  const [gone, held, frozen] = Object.keys(fleet.hosts).sort() as [string, string, string];
  fleet.edges = [{ gated: held, gates: gone, reason: 'db first' }];
  // The third host on a channel of its own, frozen for the whole test.
  const stable = fleet.channels[fleet.hosts[gone]!.channel]!;
  fleet.channels['frozen'] = { ...stable, changeWindow: { timeZone: 'UTC', allow: [], freezes: [{ from: '2020-01-01T00:00:00Z', until: '2100-01-01T00:00:00Z', reason: 'audit season' }] } };
  fleet.hosts[frozen] = { ...fleet.hosts[frozen]!, channel: 'frozen' };
  fleet.waves['frozen'] = [{ hosts: [frozen], soakMinutes: 0 }];
  fleet.waves[fleet.hosts[gone]!.channel] = [{ hosts: [gone, held], soakMinutes: 0 }];
  env.publish(fleet);
  let cp = await startCp(env);
  try {
    await checkin(env, cp, held, fakeClosure(held, 0));
    await checkin(env, cp, frozen, fakeClosure(frozen, 0));
    await cp.cp.reconcileNow();
    // No progress past the default progress deadline (30 min); keep held and frozen online.
    for (let i = 0; i < 4; i++) {
      env.clock.advance(10 * 60_000);
      await checkin(env, cp, held, fakeClosure(held, 0));
      await checkin(env, cp, frozen, fakeClosure(frozen, 0));
      await cp.cp.reconcileNow();
    }
    const before = (await get<RolloutsResponse>(env, cp, '/v1/rollouts')).rollouts;
    const main = before.find((r) => r.channel !== 'frozen')!;
    const held1 = before.find((r) => r.channel === 'frozen')!;
    assert.ok(main.stall !== undefined, `stalled: ${JSON.stringify(main)}`);
    assert.ok(main.stall!.hosts.includes(held));
    assert.match(held1.windowHold ?? '', /audit season/);
    const stalled = await auditCount(cp, 'rollout.stalled');
    assert.ok(stalled >= 1);
    const holds = await auditCount(cp, 'rollout.window-hold');

    await cp.stop();
    cp = await startCp(env);
    const after = (await get<RolloutsResponse>(env, cp, '/v1/rollouts')).rollouts;
    assert.equal(after.find((r) => r.id === main.id)!.stall, main.stall, 'the stall as it was, before any pass');
    assert.is(after.find((r) => r.id === held1.id)!.windowHold, held1.windowHold);
    assert.match((await cp.cp.metricsText()).body, /nixfleet_rollouts\{state="stalled"\} 1/);
    env.clock.advance(60_000);
    await checkin(env, cp, held, fakeClosure(held, 0));
    await checkin(env, cp, frozen, fakeClosure(frozen, 0));
    await cp.cp.reconcileNow();
    assert.is(await auditCount(cp, 'rollout.stalled'), stalled, 'not reported again after the restart');
    assert.is(await auditCount(cp, 'rollout.window-hold'), holds);
    assert.equal((await get<RolloutsResponse>(env, cp, '/v1/rollouts')).rollouts.find((r) => r.id === main.id)!.stall?.since, main.stall!.since);

    // The operator releases the held host; the CP restarts before any pass: the release holds.
    const operator = new Client(cp.url, env.ca.certPem, await env.operatorCert('alice'));
    const ok = await operator.call('POST', `/v1/rollouts/${encodeURIComponent(main.id)}/skip`, { host: held, reason: `${gone} is decommissioned` });
    await operator.close();
    assert.is(ok.status, 200, JSON.stringify(ok.body));
    await cp.stop();
    cp = await startCp(env);
    await checkin(env, cp, held, fakeClosure(held, 0));
    await cp.cp.reconcileNow();
    assert.is((await checkin(env, cp, held, fakeClosure(held, 0))).target?.closureHash, fleet.hosts[held]!.closureHash, 'released across the restart');
    const trace = (await cp.store.transitions(main.id)).filter((x) => x.hostname === held && /released from ordering/.test(x.reason));
    assert.is(trace.length, 1, 'the release is in the trace');
  } finally {
    await cp.stop();
    env.cleanup();
  }
});

t('requireApprovals over real mTLS: held until two distinct operators approved (one twice counts once), the approvals survive a restart, audited', async () => {
  const env = await makeEnv();
  const fleet = sampleFleet({ hosts: 1, waves: 1, soakMinutes: 0, closures: true, withPubkeys: true });
  const name = Object.keys(fleet.hosts)[0]!;
  fleet.channels[fleet.hosts[name]!.channel]!.requireApprovals = 2;
  env.publish(fleet);
  let cp = await startCp(env);
  const approve = async (who: string): Promise<{ status: number; body: unknown }> => {
    const c = new Client(cp.url, env.ca.certPem, await env.operatorCert(who));
    try {
      const id = (await get<RolloutsResponse>(env, cp, '/v1/rollouts')).rollouts[0]!.id;
      const r = await c.call('POST', `/v1/rollouts/${encodeURIComponent(id)}/approve`, { reason: 'CAB-1' });
      return { status: r.status, body: r.body };
    } finally {
      await c.close();
    }
  };
  try {
    await checkin(env, cp, name, fakeClosure(name, 0));
    await cp.cp.reconcileNow();
    const held = (await get<RolloutsResponse>(env, cp, '/v1/rollouts')).rollouts[0]!;
    assert.is(held.state, 'Pending');
    assert.match(held.windowHold ?? '', /awaiting approvals: 0 of 2/);
    assert.is((await checkin(env, cp, name, fakeClosure(name, 0))).target, null);
    const a1 = await approve('alice');
    assert.is(a1.status, 200, JSON.stringify(a1.body));
    assert.equal((a1.body as { approvals: string[]; required: number }).approvals, ['operator:alice']);
    assert.equal((await approve('alice')).body, { rolloutId: held.id, by: 'operator:alice', approvals: ['operator:alice'], required: 2 }, 'the same operator twice counts once');
    assert.is((await checkin(env, cp, name, fakeClosure(name, 0))).target, null, 'one approval is not enough');
    const hostClient = new Client(cp.url, env.ca.certPem, await env.hostCert(name));
    const byHost = await hostClient.call('POST', `/v1/rollouts/${encodeURIComponent(held.id)}/approve`, {});
    await hostClient.close();
    assert.is(byHost.status, 403, 'a host certificate cannot approve');

    await cp.stop();
    cp = await startCp(env);
    assert.match((await get<RolloutsResponse>(env, cp, '/v1/rollouts')).rollouts[0]!.windowHold ?? '', /1 of 2/, 'the approval survived the restart');
    const b = await approve('bob');
    assert.equal((b.body as { approvals: string[] }).approvals, ['operator:alice', 'operator:bob']);
    await checkin(env, cp, name, fakeClosure(name, 0));
    await cp.cp.reconcileNow();
    assert.is((await checkin(env, cp, name, fakeClosure(name, 0))).target?.closureHash, fleet.hosts[name]!.closureHash, 'started after the second approval');
    assert.is(await auditCount(cp, 'rollout.approved'), 3);
  } finally {
    await cp.stop();
    env.cleanup();
  }
});

t.run();
