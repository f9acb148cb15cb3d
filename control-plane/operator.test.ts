/**
 * Operator powers are stopping actions only (SPEC §5): pause / resume a channel, list and clear
 * quarantines; hosts, rollouts, audit pages. Plus: a first check-in gets its target in the same
 * answer, and a relevant check-in triggers a (debounced) reconcile pass by itself.
 */
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { fakeClosure, sampleFleet } from '../fixtures/artifacts.ts';
import type { AuditResponse, CheckinResponse, HostsResponse, PauseResponse, QuarantinesResponse, RolloutDetail, RolloutsResponse } from '../protocol/api.ts';
import { verifyAuditChain, GENESIS_HASH } from '../protocol/audit-chain.ts';
import type { CertificatesResponse } from '../protocol/certificates-api.ts';
import { Client, makeEnv, startCp, type Env, type RunningCp } from '../fixtures/cp-testing.ts';

const t = suite('operator');

type Ctx = { env: Env; cp: RunningCp; op: Client; hosts: Record<string, Client> };

async function setup(over: Record<string, unknown> = {}, fleetOpts: { waves?: number; soakMinutes?: number } = {}): Promise<Ctx> {
  const env = await makeEnv();
  env.publish(sampleFleet({ hosts: 4, waves: fleetOpts.waves ?? 1, soakMinutes: fleetOpts.soakMinutes ?? 0, closures: true }));
  const cp = await startCp(env, over);
  const op = new Client(cp.url, env.ca.certPem, await env.operatorCert('alice'));
  const hosts: Record<string, Client> = {};
  for (const h of ['host-0000', 'host-0001', 'host-0002', 'host-0003']) hosts[h] = new Client(cp.url, env.ca.certPem, await env.hostCert(h));
  return { env, cp, op, hosts };
}

async function teardown(c: Ctx): Promise<void> {
  await c.op.close();
  for (const h of Object.values(c.hosts)) await h.close();
  await c.cp.stop();
  c.env.cleanup();
}

async function checkin(c: Ctx, h: string, current = fakeClosure(h, 0), ok = true): Promise<CheckinResponse> {
  const r = await c.hosts[h]!.call('POST', '/v1/agent/checkin', {
    hostname: h,
    currentClosure: current,
    bootId: 'b',
    probes: [{ name: 'http', ok, observedAt: new Date(c.env.clock.ms).toISOString() }],
    failedUnits: [],
    lastOutcome: null,
  });
  assert.is(r.status, 200, JSON.stringify(r.body));
  return r.body as CheckinResponse;
}

t('pause stops dispatching, resume continues; both are audited with the operator as actor', async () => {
  const c = await setup();
  try {
    const p = await c.op.call('POST', '/v1/channels/stable/pause', { reason: 'change freeze' });
    assert.is(p.status, 200);
    const body = p.body as PauseResponse;
    assert.equal({ ...body, since: null }, { channel: 'stable', paused: true, by: 'operator:alice', since: null, reason: 'change freeze' });
    for (const h of Object.keys(c.hosts)) await checkin(c, h);
    await c.cp.cp.reconcileNow();
    for (const h of Object.keys(c.hosts)) assert.is((await checkin(c, h)).target, null, `${h}: paused channel dispatches nothing`);
    const rollouts = (await c.op.call('GET', '/v1/rollouts')).body as RolloutsResponse;
    assert.is(rollouts.rollouts[0]!.state, 'Paused');
    assert.match(rollouts.rollouts[0]!.reason ?? '', /change freeze/);

    const r = await c.op.call('POST', '/v1/channels/stable/resume');
    assert.is(r.status, 200);
    assert.equal(r.body, { channel: 'stable', paused: false, by: null, since: null, reason: null });
    const targets = await Promise.all(Object.keys(c.hosts).map((h) => checkin(c, h)));
    assert.ok(targets.every((x) => x.target !== null), 'resume: every host of the single wave gets its target');
    const audit = (await c.cp.store.auditAll());
    const paused = audit.find((e) => e.kind === 'channel.paused')!;
    assert.is(paused.actor, 'operator:alice');
    assert.ok(audit.some((e) => e.kind === 'channel.resumed'));
  } finally {
    await teardown(c);
  }
});

t('a health failure after the soak quarantines the closure; the operator lists and clears it', async () => {
  const c = await setup({}, { soakMinutes: 1 });
  try {
    for (const h of Object.keys(c.hosts)) await checkin(c, h);
    await c.cp.cp.reconcileNow();
    const h = 'host-0000';
    const target = (await checkin(c, h)).target!;
    const conf = await c.hosts[h]!.call('POST', '/v1/agent/confirm', { hostname: h, rolloutId: target.rolloutId, closureHash: target.closureHash, bootId: 'b' });
    assert.is(conf.status, 204);
    c.env.clock.advance(61_000);
    await checkin(c, h, target.closureHash, false); // probes now failing
    await c.cp.cp.reconcileNow();
    const q = (await c.op.call('GET', '/v1/quarantines')).body as QuarantinesResponse;
    assert.is(q.quarantines.length, 1);
    assert.is(q.quarantines[0]!.closureHash, target.closureHash);
    assert.is(q.quarantines[0]!.rolloutId, target.rolloutId);
    assert.match(q.quarantines[0]!.reason, /health gate/);
    const hosts = (await c.op.call('GET', '/v1/hosts')).body as HostsResponse;
    assert.is(hosts.hosts.find((x) => x.hostname === h)!.rollout!.state, 'Failed');

    const wrong = await c.op.call('POST', '/v1/quarantines/clear', { channel: 'stable', closureHash: fakeClosure('nobody', 3) });
    assert.equal(wrong.body, { cleared: 0 });
    const cleared = await c.op.call('POST', '/v1/quarantines/clear', { channel: 'stable' });
    assert.equal(cleared.body, { cleared: 1 });
    assert.equal(((await c.op.call('GET', '/v1/quarantines')).body as QuarantinesResponse).quarantines, []);
    assert.ok((await c.cp.store.auditAll()).some((e) => e.kind === 'quarantine.cleared' && e.actor === 'operator:alice'));
  } finally {
    await teardown(c);
  }
});

t('first contact gets its target in the first answer; a later relevant check-in triggers a debounced pass without any tick', async () => {
  const c = await setup({ reconcileDebounceMs: 20 });
  try {
    const h = 'host-0001';
    assert.ok((await checkin(c, h)).target !== null, 'first contact: the check-in waited for a pass that dispatched it');
    assert.match((await c.cp.cp.metricsText()).body, /nixfleet_reconcile_runs_total\{trigger="first-contact"\} 1\n/);
    // A relevant check-in (probes now failing) asks for a coalesced pass.
    await checkin(c, 'host-0001', fakeClosure(h, 0), false);
    let runs = '';
    for (let i = 0; i < 200 && !/trigger="event"\} [1-9]/.test(runs); i++) {
      await new Promise((r) => setTimeout(r, 10));
      runs = (await c.cp.cp.metricsText()).body;
    }
    assert.match(runs, /nixfleet_reconcile_runs_total\{trigger="event"\} [1-9]/);
  } finally {
    await teardown(c);
  }
});

t('audit pages chain across pages; hosts view shows declared and current closures', async () => {
  const c = await setup();
  try {
    for (const h of Object.keys(c.hosts)) await checkin(c, h);
    await c.cp.cp.reconcileNow();
    const all: AuditResponse['entries'] = [];
    let after = 0;
    for (let i = 0; i < 100; i++) {
      const page = (await c.op.call('GET', `/v1/audit?after=${after}&limit=3`)).body as AuditResponse;
      all.push(...page.entries);
      if (page.nextAfter === null) break;
      after = page.nextAfter;
    }
    assert.ok(all.length > 6);
    assert.is(all[0]!.prevHash, GENESIS_HASH);
    assert.ok(verifyAuditChain(all).ok);
    const hosts = (await c.op.call('GET', '/v1/hosts')).body as HostsResponse;
    assert.is(hosts.hosts.length, 4);
    const h0 = hosts.hosts[0]!;
    assert.is(h0.hostname, 'host-0000');
    assert.is(h0.currentClosure, fakeClosure('host-0000', 0));
    assert.is(h0.declaredClosure, fakeClosure('host-0000', 1));
    assert.is(h0.online, true);
    assert.is(h0.rollout!.state, 'Dispatched');
  } finally {
    await teardown(c);
  }
});

t('rollout detail (issue 20): a host held by a gate carries the gate code next to the reason', async () => {
  const c = await setup({ offlineAfterSecs: 60, offlineGraceSecs: 60 });
  try {
    // host-0003 never checks in: once offline it is skipped by the online gate.
    for (const h of ['host-0000', 'host-0001', 'host-0002']) await checkin(c, h);
    await c.cp.cp.reconcileNow();
    c.env.clock.advance(61_000);
    for (const h of ['host-0000', 'host-0001', 'host-0002']) await checkin(c, h);
    await c.cp.cp.reconcileNow();
    const id = ((await c.op.call('GET', '/v1/rollouts')).body as RolloutsResponse).rollouts[0]!.id;
    const detail = (await c.op.call('GET', `/v1/rollouts/${encodeURIComponent(id)}`)).body as RolloutDetail;
    const held = detail.hosts.find((h) => h.hostname === 'host-0003')!;
    assert.is(held.state, 'Queued');
    assert.ok(held.gate === 'offline' || held.gate === 'skipped-offline', `gate ${String(held.gate)}`);
    assert.match(held.reason ?? '', /check/);
    assert.is(detail.hosts.find((h) => h.hostname === 'host-0000')!.gate, undefined, 'a host no gate holds has none');
  } finally {
    await teardown(c);
  }
});

t('certificates (issue 20): an operator reads the expiry of each client certificate seen, soonest first; a host may not', async () => {
  const c = await setup();
  try {
    for (const h of Object.keys(c.hosts)) await checkin(c, h);
    const r = await c.op.call('GET', '/v1/certificates');
    assert.is(r.status, 200, JSON.stringify(r.body));
    const body = r.body as CertificatesResponse;
    const cns = body.clients.map((x) => `${x.role}:${x.cn}`).sort();
    assert.equal(cns, ['host:host-0000', 'host:host-0001', 'host:host-0002', 'host:host-0003', 'operator:alice']);
    for (const x of body.clients) assert.ok(Date.parse(x.notAfter) > c.env.clock.ms, `${x.cn} valid`);
    const times = body.clients.map((x) => Date.parse(x.notAfter));
    assert.equal(times, [...times].sort((a, b) => a - b));
    assert.is((await c.hosts['host-0000']!.call('GET', '/v1/certificates')).status, 403);
  } finally {
    await teardown(c);
  }
});

t.run();
