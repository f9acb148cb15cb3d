/**
 * Issue 14, "only signed statements move a host": a check-in's `lastOutcome` moves a host only
 * when the host key signed it (see `outcomeStatement`) and it is not older than the host's
 * dispatch. Over the real HTTPS + mTLS API: unsigned, tampered, signed by another host's key,
 * sent with another host's certificate, replayed from before the dispatch — each answered, refused
 * with a stable code, audited, counted, and none changes a rollout row; then the genuine signed
 * outcome (the recovery path for a lost report) reverts the host and halts the rollout.
 */
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { fakeClosure, sampleFleet } from '../fixtures/artifacts.ts';
import { outcomeStatement, type CheckinResponse, type ErrorBody, type HostsResponse, type LastOutcome } from '../protocol/api.ts';
import { verifyAuditChain } from '../protocol/audit-chain.ts';
import { Client, hostKeyOf, makeEnv, startCp, type Env, type RunningCp } from '../fixtures/cp-testing.ts';

const A = 'host-0000';
const B = 'host-0001';

function checkinBody(env: Env, name: string, extra: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    hostname: name,
    currentClosure: fakeClosure(name, 0),
    bootId: 'boot-1',
    probes: [{ name: 'http', ok: true, observedAt: new Date(env.clock.ms).toISOString() }],
    failedUnits: [],
    lastOutcome: null,
    ...extra,
  };
}

/** Every rollout row and dispatch of the store, as JSON (what a refused outcome must not change). */
async function rolloutState(cp: RunningCp, rolloutId: string): Promise<string> {
  const o = await cp.store.loadObserved();
  const rollouts = Object.fromEntries(Object.entries(o.rollouts).map(([id, r]) => [id, { state: r.state, hosts: r.hosts }]));
  return JSON.stringify({ rollouts, dispatch: await cp.store.getDispatch(rolloutId, A) });
}

function sample(text: string, code: string): number {
  const line = text.split('\n').find((l) => l.startsWith(`nixfleet_checkin_outcomes_refused_total{code="${code}"}`));
  return line === undefined ? 0 : Number(line.split(' ').pop());
}

const t = suite('signed-outcome');

t('a forged, unsigned, tampered, foreign or replayed outcome in a check-in changes no state; the signed one reverts the host and halts', async () => {
  const env = await makeEnv();
  const fleet = sampleFleet({ hosts: 4, waves: 2, soakMinutes: 0, closures: true, withPubkeys: true });
  env.publish(fleet);
  const cp = await startCp(env);
  const a = new Client(cp.url, env.ca.certPem, await env.hostCert(A));
  const b = new Client(cp.url, env.ca.certPem, await env.hostCert(B));
  const operator = new Client(cp.url, env.ca.certPem, await env.operatorCert('alice'));
  const keyA = hostKeyOf(0, A);
  const keyB = hostKeyOf(1, B);
  try {
    // An old statement of A, signed an hour before anything was dispatched (captured, say, from the audit log).
    const earlyAt = new Date(env.clock.ms - 3_600_000).toISOString();
    for (const h of ['host-0000', 'host-0001', 'host-0002', 'host-0003']) assert.is((await (h === A ? a : h === B ? b : new Client(cp.url, env.ca.certPem, await env.hostCert(h))).call('POST', '/v1/agent/checkin', checkinBody(env, h))).status, 200);
    await cp.cp.reconcileNow();
    env.clock.advance(1000);
    const first = await a.call('POST', '/v1/agent/checkin', checkinBody(env, A));
    const target = (first.body as CheckinResponse).target!;
    assert.ok(target !== null, 'wave 0 host A got its target');
    const rid = target.rolloutId;
    const outcome = (o: LastOutcome['outcome'], at = new Date(env.clock.ms).toISOString()): LastOutcome => ({ rolloutId: rid, closureHash: target.closureHash, outcome: o, at });
    const before = await rolloutState(cp, rid);

    const refusals: [string, Client, Record<string, unknown>, string | null][] = [
      ['unsigned', a, { lastOutcome: outcome('rolled-back') }, 'OUTCOME_SIGNATURE_INVALID'],
      ['explicitly null signature', a, { lastOutcome: outcome('rolled-back'), lastOutcomeSignature: null }, 'OUTCOME_SIGNATURE_INVALID'],
      ['tampered (signed activation-deferred, sent rolled-back)', a, { lastOutcome: outcome('rolled-back'), lastOutcomeSignature: keyA.sign(outcomeStatement(A, outcome('activation-deferred'))) }, 'OUTCOME_SIGNATURE_INVALID'],
      ['tampered (signed for another closure)', a, { lastOutcome: outcome('activation-failed'), lastOutcomeSignature: keyA.sign(outcomeStatement(A, { ...outcome('activation-failed'), closureHash: fakeClosure(A, 7) })) }, 'OUTCOME_SIGNATURE_INVALID'],
      ["signed by another host's key", a, { lastOutcome: outcome('rolled-back'), lastOutcomeSignature: keyB.sign(outcomeStatement(A, outcome('rolled-back'))) }, 'OUTCOME_SIGNATURE_INVALID'],
      ['replayed (well signed, from before the dispatch)', a, { lastOutcome: outcome('rolled-back', earlyAt), lastOutcomeSignature: keyA.sign(outcomeStatement(A, outcome('rolled-back', earlyAt))) }, 'OUTCOME_STALE'],
    ];
    for (const [what, client, extra, wantCode] of refusals) {
      const r = await client.call('POST', '/v1/agent/checkin', checkinBody(env, A, extra));
      assert.is(r.status, 200, `${what}: the check-in itself is answered`);
      assert.is((r.body as CheckinResponse).outcomeRefused?.code, wantCode, what);
      assert.is(await rolloutState(cp, rid), before, `${what}: no rollout row and no dispatch moved`);
    }
    // A's valid signed statement sent with B's certificate: a host may only act as itself.
    const stolen = outcome('rolled-back');
    const viaB = await b.call('POST', '/v1/agent/checkin', checkinBody(env, A, { lastOutcome: stolen, lastOutcomeSignature: keyA.sign(outcomeStatement(A, stolen)) }));
    assert.is(viaB.status, 403);
    assert.is((viaB.body as ErrorBody).error.code, 'IDENTITY_MISMATCH');
    // … and as B's own outcome in B's check-in it does not verify under B's key (B is not in that rollout's flight: nothing to act on).
    await cp.cp.reconcileNow();
    assert.is(await rolloutState(cp, rid), before, 'a pass after the refusals changes nothing either');
    assert.is((await cp.store.getRollout(rid))!.state, 'Executing');

    // Audited with the claim, its signature and the code; counted by code; shown as refused.
    const audit = (await cp.store.auditAll()).filter((e) => e.kind === 'checkin.outcome-refused');
    assert.is(audit.length, refusals.length);
    assert.equal(audit.map((e) => (e.data as { code: string }).code), refusals.map((r) => r[3]));
    const m = (await cp.cp.metricsText()).body;
    assert.is(sample(m, 'OUTCOME_SIGNATURE_INVALID'), 5);
    assert.is(sample(m, 'OUTCOME_STALE'), 1);
    const view = ((await operator.call('GET', '/v1/hosts')).body as HostsResponse).hosts.find((h) => h.hostname === A)!;
    assert.is(view.lastOutcome?.refused, 'OUTCOME_STALE');

    // The genuine signed outcome (its report was lost) moves the host: Reverted, rollout Halted.
    env.clock.advance(1000);
    const real = outcome('rolled-back');
    const ok = await a.call('POST', '/v1/agent/checkin', checkinBody(env, A, { lastOutcome: real, lastOutcomeSignature: keyA.sign(outcomeStatement(A, real)) }));
    assert.is(ok.status, 200);
    assert.is((ok.body as CheckinResponse).outcomeRefused, undefined);
    await cp.cp.reconcileNow();
    assert.is((await cp.store.rolloutHosts(rid)).find((r) => r.hostname === A)!.state, 'Reverted');
    assert.is((await cp.store.getRollout(rid))!.state, 'Halted');
    const view2 = ((await operator.call('GET', '/v1/hosts')).body as HostsResponse).hosts.find((h) => h.hostname === A)!;
    assert.is(view2.lastOutcome?.refused, undefined);
    assert.ok(verifyAuditChain(await cp.store.auditAll()).ok, 'the audit chain verifies');
  } finally {
    await a.close();
    await b.close();
    await operator.close();
    await cp.stop();
    env.cleanup();
  }
});

t.run();
