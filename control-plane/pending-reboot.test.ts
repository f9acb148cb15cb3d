/**
 * Issue 14 through the real HTTPS + mTLS API: a deferred activation (kernel update) is
 * PendingReboot — it outlives the confirm deadline without being Reverted, holds its wave, and
 * the confirm after the boot makes it Healthy; the rollout then moves on.
 */
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { fakeClosure, sampleFleet } from '../fixtures/artifacts.ts';
import type { CheckinResponse, HostsResponse, RolloutDetail } from '../protocol/api.ts';
import { Client, confirmedRecord, hostKeyOf, makeEnv, report, startCp } from '../fixtures/cp-testing.ts';

const t = suite('pending reboot (issue 14)');

t('activation-deferred → PendingReboot: no deadline expiry, no halt; the confirm after the boot makes it Healthy and the next wave goes', async () => {
  const env = await makeEnv();
  const fleet = sampleFleet({ hosts: 2, waves: 2, soakMinutes: 0, closures: true, withPubkeys: true });
  env.publish(fleet);
  const cp = await startCp(env);
  const names = Object.keys(fleet.hosts).sort();
  const clients = await Promise.all(names.map(async (n) => new Client(cp.url, env.ca.certPem, await env.hostCert(n))));
  const operator = new Client(cp.url, env.ca.certPem, await env.operatorCert('alice'));
  const checkin = async (i: number, current: string, pendingReboot = false): Promise<CheckinResponse> => {
    const r = await clients[i]!.call('POST', '/v1/agent/checkin', {
      hostname: names[i],
      currentClosure: current,
      ...(pendingReboot ? { pendingReboot: true } : {}),
      bootId: 'boot-1',
      probes: [{ name: 'http', ok: true, observedAt: new Date(env.clock.ms).toISOString() }],
      failedUnits: [],
      lastOutcome: null,
    });
    assert.is(r.status, 200, JSON.stringify(r.body));
    return r.body as CheckinResponse;
  };
  const send = async (i: number, event: Parameters<typeof report>[1], rolloutId: string, closure: string): Promise<number> => {
    const rep = report(names[i]!, event, rolloutId, closure, env.clock.ms);
    return (await clients[i]!.call('POST', '/v1/agent/report', { report: rep, signature: hostKeyOf(i, names[i]!).sign(rep) })).status;
  };
  try {
    for (let i = 0; i < names.length; i++) await checkin(i, fakeClosure(names[i]!, 0));
    await cp.cp.reconcileNow();
    const canary = names.findIndex((n) => fleet.waves['stable']![0]!.hosts.includes(n));
    const other = 1 - canary;
    const target = (await checkin(canary, fakeClosure(names[canary]!, 0))).target!;
    assert.ok(target !== null);
    assert.is(await send(canary, 'activation-started', target.rolloutId, target.closureHash), 202);
    assert.is(await send(canary, 'activation-deferred', target.rolloutId, target.closureHash), 202);

    env.clock.advance(10 * 60_000); // far past the 120 s confirm deadline
    await checkin(canary, fakeClosure(names[canary]!, 0), true);
    await checkin(other, fakeClosure(names[other]!, 0));
    await cp.cp.reconcileNow();
    const detail = (await operator.call('GET', `/v1/rollouts/${encodeURIComponent(target.rolloutId)}`)).body as RolloutDetail;
    assert.is(detail.state, 'Executing', 'not halted');
    assert.is(detail.hosts.find((h) => h.hostname === names[canary])!.state, 'PendingReboot');
    assert.is((await checkin(other, fakeClosure(names[other]!, 0))).target, null, 'the next wave waits for the reboot');

    // While it waits for the boot it is handed the same target (the agent ignores it until it has
    // booted into it, then confirms it), with a deadline counted from now; none is stored.
    const again = (await checkin(canary, fakeClosure(names[canary]!, 0), true)).target;
    assert.is(again?.closureHash, target.closureHash);
    assert.is(again?.confirmDeadline, new Date(env.clock.ms + 120_000).toISOString());
    const waiting = ((await operator.call('GET', '/v1/hosts')).body as HostsResponse).hosts.find((h) => h.hostname === names[canary])!;
    assert.is(waiting.pendingReboot, true, 'it reported waiting for its reboot');
    // The reboot: the booted system is the target; a fresh confirm over a new connection.
    await clients[canary]!.close();
    clients[canary] = new Client(cp.url, env.ca.certPem, await env.hostCert(names[canary]!));
    const rec = confirmedRecord(names[canary]!, target.rolloutId, target.closureHash, env.clock.ms);
    const confirmed = await clients[canary]!.call('POST', '/v1/agent/confirm', {
      hostname: names[canary],
      rolloutId: target.rolloutId,
      closureHash: target.closureHash,
      bootId: 'boot-2',
      confirmed: { record: rec, signature: hostKeyOf(canary, names[canary]!).sign(rec) },
      probes: [{ name: 'http', ok: true, observedAt: new Date(env.clock.ms).toISOString() }],
      failedUnits: [],
    });
    assert.is(confirmed.status, 204, JSON.stringify(confirmed.body));
    const hosts = (await operator.call('GET', '/v1/hosts')).body as HostsResponse;
    const after = hosts.hosts.find((h) => h.hostname === names[canary])!;
    assert.is(after.rollout!.state, 'Healthy');
    // The confirm comes from the booted system: no reboot is pending any more, from this write on
    // (not only from its next check-in).
    assert.is(after.pendingReboot, false, 'the confirm after the boot clears pendingReboot');
    await checkin(canary, target.closureHash);
    await cp.cp.reconcileNow();
    assert.ok((await checkin(other, fakeClosure(names[other]!, 0))).target !== null, 'wave 1 dispatched after the canary confirmed');
  } finally {
    for (const c of clients) await c.close();
    await operator.close();
    await cp.stop();
    env.cleanup();
  }
});

t('drift over real mTLS: a host switched by hand after convergence is drifted in GET /v1/hosts, in nixfleet_hosts{state="drifted"} and in the audit chain; it clears when the host runs its closure again', async () => {
  const env = await makeEnv();
  const fleet = sampleFleet({ hosts: 1, waves: 1, soakMinutes: 0, closures: true, withPubkeys: true });
  env.publish(fleet);
  const cp = await startCp(env);
  const name = Object.keys(fleet.hosts)[0]!;
  const client = new Client(cp.url, env.ca.certPem, await env.hostCert(name));
  const operator = new Client(cp.url, env.ca.certPem, await env.operatorCert('alice'));
  const checkin = async (current: string): Promise<CheckinResponse> => {
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
  };
  const declared = fleet.hosts[name]!.closureHash!;
  const handSwitched = fakeClosure(name, 7);
  try {
    await checkin(declared); // already runs its target: Soaked without a dispatch
    await cp.cp.reconcileNow();
    await cp.cp.reconcileNow(); // converges
    env.clock.advance(60_000);
    await checkin(handSwitched);
    await cp.cp.reconcileNow();
    const view = ((await operator.call('GET', '/v1/hosts')).body as HostsResponse).hosts.find((h) => h.hostname === name)!;
    assert.equal(view.drift?.actual, handSwitched);
    assert.is(view.drift?.expected, declared);
    assert.match((await cp.cp.metricsText()).body, /nixfleet_hosts\{state="drifted"\} 1/);
    const audit = (await operator.call('GET', '/v1/audit?limit=1000')).body as { entries: { kind: string }[] };
    assert.ok(audit.entries.some((e) => e.kind === 'host.drifted'));
    env.clock.advance(60_000);
    await checkin(declared);
    await cp.cp.reconcileNow();
    const again = ((await operator.call('GET', '/v1/hosts')).body as HostsResponse).hosts.find((h) => h.hostname === name)!;
    assert.is(again.drift, undefined);
    const audit2 = (await operator.call('GET', '/v1/audit?limit=1000')).body as { entries: { kind: string }[] };
    assert.ok(audit2.entries.some((e) => e.kind === 'host.drift-cleared'));
  } finally {
    await client.close();
    await operator.close();
    await cp.stop();
    env.cleanup();
  }
});

t('rollout skip over real mTLS: a host held by a host edge behind a host that never checks in is released by the operator (audited) and gets its target', async () => {
  const env = await makeEnv();
  const fleet = sampleFleet({ hosts: 2, waves: 1, soakMinutes: 0, closures: true, withPubkeys: true });
  const [gone, held] = Object.keys(fleet.hosts).sort() as [string, string];
  fleet.edges = [{ gated: held, gates: gone, reason: 'db first' }];
  env.publish(fleet);
  const cp = await startCp(env);
  const client = new Client(cp.url, env.ca.certPem, await env.hostCert(held));
  const operator = new Client(cp.url, env.ca.certPem, await env.operatorCert('alice'));
  const checkin = async (): Promise<CheckinResponse> => {
    const r = await client.call('POST', '/v1/agent/checkin', {
      hostname: held,
      currentClosure: fakeClosure(held, 0),
      bootId: 'boot-1',
      probes: [{ name: 'http', ok: true, observedAt: new Date(env.clock.ms).toISOString() }],
      failedUnits: [],
      lastOutcome: null,
    });
    assert.is(r.status, 200, JSON.stringify(r.body));
    return r.body as CheckinResponse;
  };
  try {
    await checkin();
    await cp.cp.reconcileNow();
    assert.is((await checkin()).target, null, 'held by the host edge');
    const rolloutId = (await cp.store.allRollouts())[0]!.id;
    const bad = await operator.call('POST', `/v1/rollouts/${encodeURIComponent(rolloutId)}/skip`, { host: 'nobody', reason: 'x' });
    assert.is(bad.status, 404);
    const ok = await operator.call('POST', `/v1/rollouts/${encodeURIComponent(rolloutId)}/skip`, { host: held, reason: `${gone} is decommissioned` });
    assert.is(ok.status, 200, JSON.stringify(ok.body));
    assert.is((await checkin()).target?.closureHash, fleet.hosts[held]!.closureHash);
    const audit = (await operator.call('GET', '/v1/audit?limit=1000')).body as { entries: { kind: string; actor: string }[] };
    assert.ok(audit.entries.some((e) => e.kind === 'rollout.host-released' && e.actor === 'operator:alice'));
  } finally {
    await client.close();
    await operator.close();
    await cp.stop();
    env.cleanup();
  }
});

t.run();
