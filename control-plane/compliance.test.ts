/**
 * Issue 15 through the real HTTPS + mTLS API (both store backends): host-signed evidence carried
 * by confirms and check-ins is verified and stored; in `enforce` a failing control fails the
 * canary's health gate → rollback instruction, rollout halted, later wave untouched, the control
 * named in GET /v1/compliance and in the metrics; `permissive` records it and converges; evidence
 * signed by another host's key, or naming another host, is refused and nothing is stored.
 */
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { fakeClosure, sampleFleet } from '../fixtures/artifacts.ts';
import type { CheckinResponse, RolloutDetail } from '../protocol/api.ts';
import type { ComplianceResponse } from '../protocol/compliance-api.ts';
import type { EvidenceRecord } from '../protocol/compliance.ts';
import type { ComplianceMode } from '../protocol/schema.ts';
import { Client, hostKeyOf, makeEnv, startCp } from '../fixtures/cp-testing.ts';

const t = suite('compliance evidence over the API (issue 15)');

const evidence = (hostname: string, control: string, result: EvidenceRecord['result'], closure: string, atMs: number, rolloutId: string | null = null): EvidenceRecord => ({
  schemaVersion: 1,
  hostname,
  control,
  result,
  observed: result === 'pass' ? 'PermitRootLogin no' : 'no line of /etc/ssh/sshd_config matches',
  closure,
  bootId: 'boot-1',
  rolloutId,
  at: new Date(atMs).toISOString(),
});

async function scenario(mode: ComplianceMode) {
  const env = await makeEnv();
  const fleet = sampleFleet({ hosts: 2, waves: 2, soakMinutes: 0, closures: true, withPubkeys: true });
  fleet.channels['stable']!.compliance = { frameworks: ['nis2'], mode };
  for (const p of Object.values(fleet.rolloutPolicies)) p.onHealthFailure = 'rollback-and-halt';
  env.publish(fleet);
  const cp = await startCp(env);
  const names = Object.keys(fleet.hosts).sort();
  const clients = await Promise.all(names.map(async (n) => new Client(cp.url, env.ca.certPem, await env.hostCert(n))));
  const operator = new Client(cp.url, env.ca.certPem, await env.operatorCert('alice'));
  const signed = (i: number, rec: EvidenceRecord, key = i) => ({ record: rec, signature: hostKeyOf(key, names[key]!).sign(rec) });
  const checkin = async (i: number, current: string, compliance?: unknown[]): Promise<{ status: number; body: unknown }> =>
    clients[i]!.call('POST', '/v1/agent/checkin', {
      hostname: names[i],
      currentClosure: current,
      bootId: 'boot-1',
      probes: [{ name: 'http', ok: true, observedAt: new Date(env.clock.ms).toISOString() }],
      failedUnits: [],
      lastOutcome: null,
      ...(compliance === undefined ? {} : { compliance }),
    });
  const canary = names.findIndex((n) => fleet.waves['stable']![0]!.hosts.includes(n));
  const other = 1 - canary;
  const close = async () => {
    for (const c of clients) await c.close();
    await operator.close();
    await cp.stop();
    env.cleanup();
  };
  return { env, cp, names, operator, clients, signed, checkin, canary, other, close };
}

/** Dispatch to the canary and confirm with evidence that `ssh-no-root-login` fails on the new closure. */
async function activateWithFailingControl(s: Awaited<ReturnType<typeof scenario>>): Promise<CheckinResponse['target']> {
  const { names, canary, other, env } = s;
  for (const i of [canary, other]) assert.is((await s.checkin(i, fakeClosure(names[i]!, 0))).status, 200);
  await s.cp.cp.reconcileNow();
  const target = ((await s.checkin(canary, fakeClosure(names[canary]!, 0))).body as CheckinResponse).target!;
  assert.ok(target !== null);
  const recs = [evidence(names[canary]!, 'ssh-no-root-login', 'fail', target.closureHash, env.clock.ms, target.rolloutId), evidence(names[canary]!, 'firewall-enabled', 'pass', target.closureHash, env.clock.ms, target.rolloutId)];
  const confirmed = await s.clients[canary]!.call('POST', '/v1/agent/confirm', {
    hostname: names[canary],
    rolloutId: target.rolloutId,
    closureHash: target.closureHash,
    bootId: 'boot-1',
    probes: [{ name: 'http', ok: true, observedAt: new Date(env.clock.ms).toISOString() }],
    failedUnits: [],
    compliance: recs.map((r) => s.signed(canary, r)),
  });
  assert.is(confirmed.status, 204, JSON.stringify(confirmed.body));
  assert.is((await s.checkin(canary, target.closureHash)).status, 200);
  return target;
}

t('enforce: the failing control fails the canary → rollback instruction, halted, later wave untouched; named in the view and metrics', async () => {
  const s = await scenario('enforce');
  try {
    const target = await activateWithFailingControl(s);
    await s.cp.cp.reconcileNow();
    const detail = (await s.operator.call('GET', `/v1/rollouts/${encodeURIComponent(target!.rolloutId)}`)).body as RolloutDetail;
    assert.is(detail.state, 'Halted');
    assert.is(detail.hosts.find((h) => h.hostname === s.names[s.canary])!.state, 'Failed');
    const back = (await s.checkin(s.canary, target!.closureHash)).body as CheckinResponse;
    assert.is(back.rollback?.closureHash, target!.closureHash, 'rollback-and-halt: the canary is told to roll back');
    assert.is(((await s.checkin(s.other, fakeClosure(s.names[s.other]!, 0))).body as CheckinResponse).target, null, 'later wave untouched');
    const view = (await s.operator.call('GET', '/v1/compliance')).body as ComplianceResponse;
    const host = view.hosts.find((h) => h.hostname === s.names[s.canary])!;
    assert.is(host.mode, 'enforce');
    const ssh = host.controls.find((c) => c.control === 'ssh-no-root-login')!;
    assert.equal([ssh.status, ssh.signed, ssh.closure], ['fail', true, target!.closureHash]);
    assert.is(host.controls.find((c) => c.control === 'firewall-enabled')!.status, 'pass');
    assert.is(host.controls.find((c) => c.control === 'auditd-enabled')!.status, 'missing');
    assert.is(view.hosts.find((h) => h.hostname === s.names[s.other])!.controls.every((c) => c.status === 'missing'), true);
    const metrics = (await s.cp.cp.metricsText()).body;
    assert.match(metrics, /nixfleet_compliance_failures\{framework="nis2",control="ssh-no-root-login"\} 1/);
    assert.match(metrics, /nixfleet_gate_blocks_total\{gate="health-compliance"\} 1/);
    const audit = (await s.operator.call('GET', '/v1/audit?limit=1000')).body as { entries: { kind: string; data: Record<string, unknown> }[] };
    const ev = audit.entries.find((e) => e.kind === 'host.evidence')!;
    assert.equal([ev.data['via'], ev.data['failing'], ev.data['verdict']], ['confirm', ['ssh-no-root-login'], 'verified']);
  } finally {
    await s.close();
  }
});

t('permissive: the same failure is recorded and shown, the rollout converges', async () => {
  const s = await scenario('permissive');
  try {
    const target = await activateWithFailingControl(s);
    await s.cp.cp.reconcileNow();
    const next = ((await s.checkin(s.other, fakeClosure(s.names[s.other]!, 0))).body as CheckinResponse).target;
    assert.ok(next !== null, 'the next wave is dispatched');
    const detail = (await s.operator.call('GET', `/v1/rollouts/${encodeURIComponent(target!.rolloutId)}`)).body as RolloutDetail;
    assert.is(detail.state, 'Executing');
    const view = (await s.operator.call('GET', '/v1/compliance')).body as ComplianceResponse;
    assert.is(view.hosts.find((h) => h.hostname === s.names[s.canary])!.controls.find((c) => c.control === 'ssh-no-root-login')!.status, 'fail');
  } finally {
    await s.close();
  }
});

t("evidence signed by another host's key, or naming another host, is refused (400 EVIDENCE_SIGNATURE_INVALID) and not stored; periodic evidence about an old closure is stale", async () => {
  const s = await scenario('enforce');
  try {
    const { names, canary, other, env } = s;
    const mine = evidence(names[canary]!, 'ssh-no-root-login', 'pass', fakeClosure(names[canary]!, 0), env.clock.ms);
    const foreignKey = await s.checkin(canary, fakeClosure(names[canary]!, 0), [s.signed(canary, mine, other)]);
    assert.is(foreignKey.status, 400);
    assert.is((foreignKey.body as { error: { code: string } }).error.code, 'EVIDENCE_SIGNATURE_INVALID');
    const otherHost = evidence(names[other]!, 'ssh-no-root-login', 'pass', fakeClosure(names[other]!, 0), env.clock.ms);
    const impersonating = await s.checkin(canary, fakeClosure(names[canary]!, 0), [s.signed(other, otherHost)]);
    assert.is((impersonating.body as { error: { code: string } }).error.code, 'EVIDENCE_SIGNATURE_INVALID');
    const tampered = { ...s.signed(canary, mine), record: { ...mine, result: 'fail' } };
    assert.is((await s.checkin(canary, fakeClosure(names[canary]!, 0), [tampered])).status, 400);
    let view = (await s.operator.call('GET', '/v1/compliance')).body as ComplianceResponse;
    assert.ok(view.hosts.every((h) => h.controls.every((c) => c.status === 'missing')), 'nothing stored');
    // A good one is stored; once the host runs another closure it shows as stale.
    assert.is((await s.checkin(canary, fakeClosure(names[canary]!, 0), [s.signed(canary, mine)])).status, 200);
    view = (await s.operator.call('GET', '/v1/compliance')).body as ComplianceResponse;
    assert.is(view.hosts.find((h) => h.hostname === names[canary])!.controls.find((c) => c.control === 'ssh-no-root-login')!.status, 'pass');
    assert.is((await s.checkin(canary, fakeClosure(names[canary]!, 5))).status, 200);
    view = (await s.operator.call('GET', '/v1/compliance')).body as ComplianceResponse;
    assert.is(view.hosts.find((h) => h.hostname === names[canary])!.controls.find((c) => c.control === 'ssh-no-root-login')!.status, 'stale');
  } finally {
    await s.close();
  }
});

t.run();
