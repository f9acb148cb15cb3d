/**
 * Rollouts through the real HTTPS + mTLS API with real SQLite files and a controlled clock:
 * waves and soak, confirm deadline (410 → Reverted → halt), onHealthFailure policies, signed
 * reports, rebuild from empty, audit chain.
 */
import { existsSync } from 'node:fs';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { fakeClosure, sampleFleet } from '../fixtures/artifacts.ts';
import type { FleetResolved } from '../protocol/schema.ts';
import type { AuditResponse, CheckinResponse, ErrorBody, HostsResponse, RolloutDetail, TraceResponse } from '../protocol/api.ts';
import { verifyAuditChain } from '../protocol/audit-chain.ts';
import { Client, confirmedRecord, hostKeyOf, makeEnv, report, startCp, wipeStore, type Env, type RunningCp } from '../fixtures/cp-testing.ts';

const HOSTS = ['host-0000', 'host-0001', 'host-0002', 'host-0003'] as const;
const WAVE0 = ['host-0000', 'host-0002'];
const WAVE1 = ['host-0001', 'host-0003'];
const oldClosure = (h: string) => fakeClosure(h, 0);

type Agent = {
  name: string;
  index: number;
  client: Client;
  current: string;
  checkin(extra?: Record<string, unknown>): Promise<CheckinResponse>;
  report(event: Parameters<typeof report>[1], rolloutId: string | null, closure: string | null, message?: string, badSignature?: boolean): Promise<{ status: number; body: unknown }>;
  confirm(rolloutId: string, closure: string): Promise<{ status: number; body: unknown }>;
  /** Agent-side activation: report started + switched, "switch", confirm with passing probes. */
  activate(target: NonNullable<CheckinResponse['target']>): Promise<number>;
};

async function agents(env: Env, cp: RunningCp): Promise<Record<string, Agent>> {
  const out: Record<string, Agent> = {};
  const certs = await Promise.all(HOSTS.map((name) => env.hostCert(name)));
  HOSTS.forEach((name, index) => {
    const client = new Client(cp.url, env.ca.certPem, certs[index]!);
    const key = hostKeyOf(index, name);
    const a: Agent = {
      name,
      index,
      client,
      current: oldClosure(name),
      async checkin(extra = {}) {
        const r = await client.call('POST', '/v1/agent/checkin', {
          hostname: name,
          currentClosure: a.current,
          bootId: 'boot-1',
          probes: [{ name: 'http', ok: true, observedAt: new Date(env.clock.ms).toISOString() }],
          failedUnits: [],
          lastOutcome: null,
          ...extra,
        });
        assert.is(r.status, 200, `${name} checkin: ${JSON.stringify(r.body)}`);
        return r.body as CheckinResponse;
      },
      async report(event, rolloutId, closure, message = '', badSignature = false) {
        const rep = report(name, event, rolloutId, closure, env.clock.ms, message);
        const signature = key.sign(badSignature ? { ...rep, message: 'something else' } : rep);
        const r = await client.call('POST', '/v1/agent/report', { report: rep, signature });
        return { status: r.status, body: r.body };
      },
      async confirm(rolloutId, closure) {
        const rec = confirmedRecord(name, rolloutId, closure, env.clock.ms);
        const r = await client.call('POST', '/v1/agent/confirm', {
          hostname: name,
          rolloutId,
          closureHash: closure,
          bootId: 'boot-1',
          confirmed: { record: rec, signature: key.sign(rec) },
          probes: [{ name: 'http', ok: true, observedAt: new Date(env.clock.ms).toISOString() }],
          failedUnits: [],
        });
        return { status: r.status, body: r.body };
      },
      async activate(target) {
        assert.is((await a.report('activation-started', target.rolloutId, target.closureHash)).status, 202);
        a.current = target.closureHash;
        assert.is((await a.report('activation-switched', target.rolloutId, target.closureHash)).status, 202);
        const r = await a.confirm(target.rolloutId, target.closureHash);
        return r.status;
      },
    };
    out[name] = a;
  });
  return out;
}

async function closeAll(as: Record<string, Agent>): Promise<void> {
  for (const a of Object.values(as)) await a.client.close();
}

const code = (b: unknown): string => (b as ErrorBody).error.code;

/** The service's in-memory mirror equals what SQLite holds (write-through, never diverges). */
async function assertMirror(cp: RunningCp): Promise<void> {
  const fromDb = (await cp.store.loadObserved());
  const mirror = await cp.cp.cachedObserved();
  assert.equal(JSON.parse(JSON.stringify(mirror.hosts)), JSON.parse(JSON.stringify(fromDb.hosts)), 'hosts mirror');
  assert.equal(JSON.parse(JSON.stringify(mirror.rollouts)), JSON.parse(JSON.stringify(fromDb.rollouts)), 'rollouts mirror');
}

function fleetWith(opts: { waves?: number; soakMinutes?: number; onHealthFailure?: 'halt' | 'rollback-and-halt' } = {}): FleetResolved {
  const f = sampleFleet({ hosts: 4, waves: opts.waves ?? 2, soakMinutes: opts.soakMinutes ?? 0, closures: true, withPubkeys: true });
  if (opts.onHealthFailure !== undefined) for (const p of Object.values(f.rolloutPolicies)) p.onHealthFailure = opts.onHealthFailure;
  return f;
}

async function op(env: Env, cp: RunningCp): Promise<Client> {
  return new Client(cp.url, env.ca.certPem, await env.operatorCert('alice'));
}

const t = suite('rollout');

t('waves and soak: wave 0 gets its signed target, wave 1 none until wave 0 has soaked; a late confirm gets 410 and halts', async () => {
  const env = await makeEnv();
  const fleet = fleetWith({ soakMinutes: 5 });
  const signed = env.publish(fleet);
  const cp = await startCp(env);
  const as = await agents(env, cp);
  const operator = await op(env, cp);
  try {
    // First contact: the check-in waits for a pass, so wave 0 gets its target in the first answer.
    for (const h of HOSTS) assert.is((await as[h]!.checkin()).target !== null, WAVE0.includes(h), `${h}: first contact`);
    await cp.cp.reconcileNow();
    const rolloutId = (await cp.store.allRollouts())[0]!.id;
    assert.match(rolloutId, /^stable@/);
    for (const h of WAVE0) {
      const r = await as[h]!.checkin();
      assert.ok(r.target !== null, `${h} is in wave 0`);
      assert.equal(r.target, {
        closureHash: fleet.hosts[h]!.closureHash!,
        rolloutId,
        channel: 'stable',
        wave: 0,
        signedAt: signed.signedAt!,
        freshnessWindowMinutes: 180,
        artifactSha256: signed.sha256,
        confirmDeadline: new Date(env.clock.ms + 120_000).toISOString(),
      });
    }
    for (const h of WAVE1) assert.is((await as[h]!.checkin()).target, null, `${h} waits for wave 0`);

    for (const h of WAVE0) {
      const target = (await as[h]!.checkin()).target!;
      assert.is(await as[h]!.activate(target), 204);
    }
    await cp.cp.reconcileNow();
    for (const h of WAVE1) assert.is((await as[h]!.checkin()).target, null, `${h}: wave 0 is Healthy but not soaked`);

    env.clock.advance(5 * 60_000 + 1000);
    for (const h of HOSTS) await as[h]!.checkin(); // still online, probes passing
    await cp.cp.reconcileNow();
    const detail = (await operator.call('GET', `/v1/rollouts/${encodeURIComponent(rolloutId)}`)).body as RolloutDetail;
    assert.equal(detail.hosts.filter((x) => x.wave === 0).map((x) => x.state), ['Soaked', 'Soaked']);
    assert.is(detail.currentWave, 1);

    const late = as['host-0001']!;
    const target = (await late.checkin()).target!;
    assert.is(target.wave, 1);
    await late.report('activation-started', target.rolloutId, target.closureHash);
    env.clock.advance(121_000);
    const r = await late.confirm(target.rolloutId, target.closureHash);
    assert.is(r.status, 410);
    assert.is(code(r.body), 'DEADLINE_PASSED');
    const again = await late.confirm(target.rolloutId, target.closureHash);
    assert.is(again.status, 410, 'stays refused');
    const hosts = (await operator.call('GET', '/v1/hosts')).body as HostsResponse;
    assert.is(hosts.hosts.find((x) => x.hostname === 'host-0001')!.rollout!.state, 'Reverted');

    await cp.cp.reconcileNow();
    const halted = (await operator.call('GET', `/v1/rollouts/${encodeURIComponent(rolloutId)}`)).body as RolloutDetail;
    assert.is(halted.state, 'Halted');
    assert.match(halted.reason ?? '', /host-0001 reverted/);
    // The other wave-1 host's undelivered dispatch was cancelled by the halt.
    assert.is((await as['host-0003']!.checkin()).target, null);

    const trace = (await operator.call('GET', `/v1/rollouts/${encodeURIComponent(rolloutId)}/trace`)).body as TraceResponse;
    const tos = trace.events.map((e) => `${e.hostname ?? 'rollout'}:${e.to}`);
    for (const want of ['rollout:Pending', 'rollout:Executing', 'host-0000:Dispatched', 'host-0000:Activating', 'host-0000:ConfirmWindow', 'host-0000:Healthy', 'host-0000:Soaked', 'host-0001:Reverted', 'rollout:Halted']) {
      assert.ok(tos.includes(want), `${want} in trace`);
    }
    const audit = (await operator.call('GET', '/v1/audit?limit=1000')).body as AuditResponse;
    assert.ok(verifyAuditChain(audit.entries).ok);
    assert.ok(audit.entries.some((e) => e.kind === 'report' && (e.data as { verdict: string }).verdict === 'verified'));
    assert.ok(audit.entries.some((e) => e.kind === 'dispatch.expired'));
    await assertMirror(cp);
  } finally {
    await closeAll(as);
    await operator.close();
    await cp.stop();
    env.cleanup();
  }
});

t('a confirm before the deadline after an expiry pass is refused too; a deadline pass reverts without any confirm', async () => {
  const env = await makeEnv();
  env.publish(fleetWith({ waves: 1 }));
  const cp = await startCp(env);
  const as = await agents(env, cp);
  try {
    for (const h of HOSTS) await as[h]!.checkin();
    await cp.cp.reconcileNow();
    const a = as['host-0000']!;
    const target = (await a.checkin()).target!;
    env.clock.advance(120_001);
    for (const h of HOSTS) if (h !== 'host-0000') await as[h]!.checkin();
    await cp.cp.reconcileNow(); // the deadline pass marks host-0000 Reverted
    const r = await a.confirm(target.rolloutId, target.closureHash);
    assert.is(r.status, 410);
    assert.is(code(r.body), 'DEADLINE_PASSED');
    assert.is((await cp.store.getRollout(target.rolloutId))!.state, 'Halted');
    const noDispatch = await a.confirm('stable@nothing', target.closureHash);
    assert.is(noDispatch.status, 409);
    await assertMirror(cp);
  } finally {
    await closeAll(as);
    await cp.stop();
    env.cleanup();
  }
});

t('onHealthFailure rollback-and-halt: activation-failed halts and sends the host a rollback instruction; a badly signed report changes nothing', async () => {
  const env = await makeEnv();
  env.publish(fleetWith({ waves: 2, onHealthFailure: 'rollback-and-halt' }));
  const cp = await startCp(env);
  const as = await agents(env, cp);
  try {
    for (const h of HOSTS) await as[h]!.checkin();
    await cp.cp.reconcileNow();
    const a = as['host-0000']!;
    const target = (await a.checkin()).target!;
    assert.is((await a.report('activation-started', target.rolloutId, target.closureHash)).status, 202);

    const forged = await a.report('activation-failed', target.rolloutId, target.closureHash, 'boom', true);
    assert.is(forged.status, 400);
    assert.is(code(forged.body), 'REPORT_SIGNATURE_INVALID');
    const rows = (await cp.store.rolloutHosts(target.rolloutId));
    assert.is(rows.find((r) => r.hostname === 'host-0000')!.state, 'Activating', 'the forged report changed nothing');
    assert.ok((await cp.store.auditAll()).some((e) => e.kind === 'report.invalid'), 'but it is kept for the auditor');

    const failed = await a.report('activation-failed', target.rolloutId, target.closureHash, 'switch-to-configuration exited 4');
    assert.is(failed.status, 202);
    assert.equal(failed.body, { id: (failed.body as { id: number }).id, verdict: 'verified' });
    await cp.cp.reconcileNow();
    const r = (await cp.store.getRollout(target.rolloutId))!;
    assert.is(r.state, 'Halted');
    assert.match(r.stateReason, /rollback-and-halt/);
    const ci = await a.checkin();
    assert.is(ci.target, null);
    assert.equal(ci.rollback, { rolloutId: target.rolloutId, closureHash: target.closureHash, reason: 'host host-0000 failed (policy: rollback-and-halt): roll back to its previous closure' });
    // A confirm of the cancelled dispatch is refused (the agent rolls back).
    const c = await a.confirm(target.rolloutId, target.closureHash);
    assert.is(c.status, 410);
    assert.is(code(c.body), 'DISPATCH_CANCELLED');
    // Once the host reports it rolled back, the instruction is gone.
    a.current = oldClosure('host-0000');
    assert.is((await a.report('rolled-back', target.rolloutId, target.closureHash, 'rolled back by instruction')).status, 202);
    assert.is((await a.checkin()).rollback, undefined);
    await assertMirror(cp);
  } finally {
    await closeAll(as);
    await cp.stop();
    env.cleanup();
  }
});

t('onHealthFailure halt: a host that fails keeps the rollout halted and dispatches nothing more', async () => {
  const env = await makeEnv();
  env.publish(fleetWith({ waves: 2, onHealthFailure: 'halt' }));
  const cp = await startCp(env);
  const as = await agents(env, cp);
  try {
    for (const h of HOSTS) await as[h]!.checkin();
    await cp.cp.reconcileNow();
    const a = as['host-0000']!;
    const target = (await a.checkin()).target!;
    assert.is((await a.report('activation-failed', target.rolloutId, target.closureHash, 'boom')).status, 202);
    await cp.cp.reconcileNow();
    assert.is((await cp.store.getRollout(target.rolloutId))!.state, 'Halted');
    assert.is((await a.checkin()).rollback, undefined, 'halt (not rollback-and-halt) sends no rollback instruction');
    await cp.cp.reconcileNow();
    for (const h of WAVE1) assert.is((await as[h]!.checkin()).target, null);
  } finally {
    await closeAll(as);
    await cp.stop();
    env.cleanup();
  }
});

t('a confirm records the confirmed closure as the host\'s current closure in the same write: no check-in needed to show it converged', async () => {
  const env = await makeEnv();
  const fleet = fleetWith({ waves: 1 });
  env.publish(fleet);
  const cp = await startCp(env);
  const as = await agents(env, cp);
  const operator = await op(env, cp);
  try {
    const targets = new Map<string, NonNullable<CheckinResponse['target']>>();
    for (const h of HOSTS) targets.set(h, (await as[h]!.checkin()).target!);
    for (const h of HOSTS) {
      const target = targets.get(h)!;
      assert.ok(target !== null, `${h}: first contact gets the target`);
      assert.is(target.closureHash, fleet.hosts[h]!.closureHash);
      const seen = ((await operator.call('GET', '/v1/hosts')).body as HostsResponse).hosts.find((x) => x.hostname === h)!;
      assert.is(seen.currentClosure, oldClosure(h), `${h}: the CP sees what it checked in with`);
      // Reports and the confirm, no check-in after the switch (as `nixfleet-agent once` does).
      assert.is(await as[h]!.activate(target), 204);
      const after = ((await operator.call('GET', '/v1/hosts')).body as HostsResponse).hosts.find((x) => x.hostname === h)!;
      assert.is(after.rollout?.state, 'Healthy');
      assert.is(after.currentClosure, target.closureHash, `${h}: the confirmed closure is current at once`);
      assert.is(after.currentClosure, after.declaredClosure);
      assert.is((await cp.store.loadObserved()).hosts[h]!.currentClosure, target.closureHash, `${h}: stored with the confirm`);
    }
    await assertMirror(cp);
    // The pass after the confirms converges the rollout; no host is drifted, none is sent anything again.
    await cp.cp.reconcileNow();
    await cp.cp.reconcileNow();
    const hosts = ((await operator.call('GET', '/v1/hosts')).body as HostsResponse).hosts;
    for (const h of HOSTS) {
      const v = hosts.find((x) => x.hostname === h)!;
      assert.is(v.rollout?.state, 'Converged', `${h} converged`);
      assert.is(v.currentClosure, fleet.hosts[h]!.closureHash);
      assert.is(v.drift, undefined, `${h} is not drifted`);
    }
    const rolloutId = targets.get(HOSTS[0])!.rolloutId;
    assert.is(((await operator.call('GET', `/v1/rollouts/${encodeURIComponent(rolloutId)}`)).body as RolloutDetail).state, 'Converged');
  } finally {
    await closeAll(as);
    await operator.close();
    await cp.stop();
    env.cleanup();
  }
});

t('a newer signed target supersedes the rollout: its undelivered dispatches stop, the new rollout takes over', async () => {
  const env = await makeEnv();
  const fleet = fleetWith({ waves: 2 });
  env.publish(fleet);
  const cp = await startCp(env);
  const as = await agents(env, cp);
  try {
    for (const h of HOSTS) await as[h]!.checkin();
    await cp.cp.reconcileNow();
    const first = (await cp.store.allRollouts())[0]!.id;
    const delivered = (await as['host-0000']!.checkin()).target!; // host-0000 is activating the old target
    await as['host-0000']!.report('activation-started', delivered.rolloutId, delivered.closureHash);
    env.clock.advance(60_000);
    const next = structuredClone(fleet);
    for (const h of HOSTS) next.hosts[h]!.closureHash = fakeClosure(h, 2);
    env.publish(next);
    await cp.cp.pollNow();
    for (const h of HOSTS) await as[h]!.checkin();
    await cp.cp.reconcileNow();
    assert.is((await cp.store.getRollout(first))!.state, 'Superseded');
    const second = (await cp.store.allRollouts()).find((r) => r.id !== first)!;
    assert.is(second.state, 'Executing');
    const target = (await as['host-0002']!.checkin()).target!;
    assert.is(target.rolloutId, second.id);
    assert.is(target.closureHash, fakeClosure('host-0002', 2));
    // host-0002 got its first target at first contact (delivered), so it stays open like host-0000's.
    assert.is((await cp.store.getDispatch(first, 'host-0002'))!.status, 'pending', 'delivered at first contact: may still confirm');
    assert.is((await cp.store.getDispatch(first, 'host-0000'))!.status, 'pending', 'delivered: may still confirm');
    assert.is((await as['host-0000']!.confirm(delivered.rolloutId, delivered.closureHash)).status, 204);
    assert.is((await cp.store.getDispatch(first, 'host-0000'))!.status, 'confirmed');
    assert.is((await cp.store.loadObserved()).hosts['host-0000']!.currentClosure, delivered.closureHash, 'it runs what it confirmed (no check-in since)');
    await assertMirror(cp);
    // A third target while the second is in flight: the second is superseded and pruned from memory too.
    env.clock.advance(60_000);
    for (const h of HOSTS) next.hosts[h]!.closureHash = fakeClosure(h, 3);
    env.publish(next);
    await cp.cp.pollNow();
    await cp.cp.reconcileNow();
    assert.is(Object.keys((await cp.cp.cachedObserved()).rollouts).length, 1);
    await assertMirror(cp);
  } finally {
    await closeAll(as);
    await cp.stop();
    env.cleanup();
  }
});

t('a host offline past the grace does not block convergence and gets its target when it returns', async () => {
  const env = await makeEnv();
  env.publish(fleetWith({ waves: 1 }));
  const cp = await startCp(env, { offlineAfterSecs: 4, offlineGraceSecs: 8 });
  const as = await agents(env, cp);
  const online = HOSTS.filter((h) => h !== 'host-0003');
  try {
    for (const h of HOSTS) await as[h]!.checkin();
    env.clock.advance(13_000); // host-0003 is now offline past the grace
    for (const h of online) await as[h]!.checkin();
    await cp.cp.reconcileNow();
    for (const h of online) assert.is(await as[h]!.activate((await as[h]!.checkin()).target!), 204);
    await cp.cp.reconcileNow();
    const rolloutId = (await cp.store.allRollouts())[0]!.id;
    assert.is((await cp.store.getRollout(rolloutId))!.state, 'Converged');
    // host-0003 comes back: the converged rollout still hands it its signed target.
    const late = as['host-0003']!;
    await late.checkin();
    await cp.cp.reconcileNow();
    const target = (await late.checkin()).target;
    assert.ok(target !== null, 'the returning host gets its target');
    assert.is(target!.rolloutId, rolloutId);
    assert.is(await late.activate(target!), 204);
    await cp.cp.reconcileNow();
    assert.is((await cp.store.rolloutHosts(rolloutId)).find((r) => r.hostname === 'host-0003')!.state, 'Converged', 'done like its peers once soaked');
    await assertMirror(cp);
  } finally {
    await closeAll(as);
    await cp.stop();
    env.cleanup();
  }
});

t('rebuild from empty: wipe the database mid-rollout, restart; agents restore state, nobody is re-sent a closure it runs, the rollout converges', async () => {
  const env = await makeEnv();
  const fleet = fleetWith({ waves: 2 });
  env.publish(fleet);
  let cp = await startCp(env);
  let as = await agents(env, cp);
  const current: Record<string, string> = {};
  let rolloutId = '';
  try {
    for (const h of HOSTS) await as[h]!.checkin();
    await cp.cp.reconcileNow();
    for (const h of WAVE0) {
      const target = (await as[h]!.checkin()).target!;
      rolloutId = target.rolloutId;
      assert.is(await as[h]!.activate(target), 204);
    }
    await cp.cp.reconcileNow(); // wave 0 soaked (soak 0), wave 1 dispatched
    assert.ok((await as['host-0001']!.checkin()).target !== null);
    for (const h of HOSTS) current[h] = as[h]!.current;
  } finally {
    await closeAll(as);
    await cp.stop();
  }
  // Wipe.
  await wipeStore(cp.config.dbPath);
  assert.not.ok(existsSync(cp.config.dbPath));

  env.clock.advance(30_000);
  cp = await startCp(env);
  as = await agents(env, cp);
  try {
    assert.is(cp.cp.readiness().ready, true, 'ready again from the artefact source alone');
    for (const h of HOSTS) {
      as[h]!.current = current[h]!;
      const extra =
        current[h] === fleet.hosts[h]!.closureHash
          ? (() => {
              const rec = confirmedRecord(h, rolloutId, current[h]!, env.clock.ms - 30_000);
              return { lastConfirmed: { record: rec, signature: hostKeyOf(as[h]!.index, h).sign(rec) } };
            })()
          : {};
      const r = await as[h]!.checkin(extra);
      if (WAVE0.includes(h)) assert.is(r.target, null, `${h}: runs its target already, nothing to hand over`);
    }
    await cp.cp.reconcileNow();
    assert.is((await cp.store.allRollouts())[0]!.id, rolloutId, 'same rollout id: derived from the signed closures');
    for (const h of WAVE0) {
      assert.is((await as[h]!.checkin()).target, null, `${h} already runs its target`);
      assert.is((await cp.store.getDispatch(rolloutId, h)), null, `${h} was never dispatched after the wipe`);
      assert.is((await cp.store.rolloutHosts(rolloutId)).find((r) => r.hostname === h)!.state, 'Soaked');
    }
    const verdicts = (await cp.store.auditAll()).filter((e) => e.kind === 'host.confirmed-record').map((e) => (e.data as { verdict: string }).verdict);
    assert.equal(verdicts, ['verified', 'verified']);
    for (const h of WAVE1) {
      const target = (await as[h]!.checkin()).target!;
      assert.ok(target !== null, `${h} gets its target after the rebuild`);
      assert.is(await as[h]!.activate(target), 204);
    }
    await cp.cp.reconcileNow();
    assert.is((await cp.store.getRollout(rolloutId))!.state, 'Converged');
    assert.ok(verifyAuditChain((await cp.store.auditAll())).ok);
    await assertMirror(cp);
  } finally {
    await closeAll(as);
    await cp.stop();
    env.cleanup();
  }
});

t('rebuild from empty restores the soak from the signed confirmed record: the next wave still waits for it', async () => {
  const env = await makeEnv();
  const fleet = fleetWith({ waves: 2, soakMinutes: 5 });
  env.publish(fleet);
  let cp = await startCp(env);
  let as = await agents(env, cp);
  const records: Record<string, { lastConfirmed: unknown }> = {};
  const confirmedAt = env.clock.ms;
  try {
    for (const h of HOSTS) await as[h]!.checkin();
    await cp.cp.reconcileNow();
    for (const h of WAVE0) {
      const target = (await as[h]!.checkin()).target!;
      assert.is(await as[h]!.activate(target), 204);
      const rec = confirmedRecord(h, target.rolloutId, target.closureHash, confirmedAt);
      records[h] = { lastConfirmed: { record: rec, signature: hostKeyOf(as[h]!.index, h).sign(rec) } };
    }
  } finally {
    await closeAll(as);
    await cp.stop();
  }
  const current = Object.fromEntries(HOSTS.map((h) => [h, h === 'host-0000' || h === 'host-0002' ? fleet.hosts[h]!.closureHash! : oldClosure(h)]));
  await wipeStore(cp.config.dbPath);
  env.clock.advance(60_000); // rebuilt one minute after the confirms
  cp = await startCp(env);
  as = await agents(env, cp);
  try {
    const checkinAll = async () => {
      for (const h of HOSTS) {
        as[h]!.current = current[h]!;
        await as[h]!.checkin(records[h] ?? {});
      }
    };
    await checkinAll();
    await cp.cp.reconcileNow();
    const rolloutId = (await cp.store.allRollouts())[0]!.id;
    for (const h of WAVE0) {
      const row = (await cp.store.rolloutHosts(rolloutId)).find((r) => r.hostname === h)!;
      assert.is(row.state, 'Healthy', `${h} restored as Healthy`);
      assert.is(row.enteredAtMs, confirmedAt, `${h}: soak counts from its confirm`);
    }
    for (const h of WAVE1) assert.is((await as[h]!.checkin()).target, null, `${h}: wave 0 still soaking after the rebuild`);
    env.clock.advance(3 * 60_000); // 4 min after the confirms: still soaking
    await checkinAll();
    await cp.cp.reconcileNow();
    for (const h of WAVE1) assert.is((await as[h]!.checkin()).target, null);
    env.clock.advance(60_000 + 1000); // past 5 min since the confirms
    await checkinAll();
    await cp.cp.reconcileNow();
    for (const h of WAVE1) assert.ok((await as[h]!.checkin()).target !== null, `${h}: dispatched once the restored soak ended`);
    assert.ok((await cp.store.transitions(rolloutId)).some((t) => t.reason.startsWith("restored from the host's signed confirmed record")));
    await assertMirror(cp);
  } finally {
    await closeAll(as);
    await cp.stop();
    env.cleanup();
  }
});

t('a confirmed record that does not verify restores nothing', async () => {
  const env = await makeEnv();
  const fleet = fleetWith({ waves: 2, soakMinutes: 5 });
  env.publish(fleet);
  const cp = await startCp(env);
  const as = await agents(env, cp);
  try {
    await cp.cp.reconcileNow();
    const rolloutId = (await cp.store.allRollouts())[0]!.id;
    const h = 'host-0000';
    // It still runs the old closure: only a (wrongly) restored record could make it Soaked.
    const rec = confirmedRecord(h, rolloutId, fleet.hosts[h]!.closureHash!, env.clock.ms - 60_000);
    const forged = hostKeyOf(3, 'host-0003').sign(rec); // another host's key
    await as[h]!.checkin({ lastConfirmed: { record: rec, signature: forged } });
    assert.is((await cp.store.rolloutHosts(rolloutId)).find((r) => r.hostname === h)!.state, 'Dispatched', 'not restored: dispatched at first contact');
    const audit = (await cp.store.auditAll()).find((e) => e.kind === 'host.confirmed-record')!;
    assert.is((audit.data as { verdict: string }).verdict, 'invalid');
  } finally {
    await closeAll(as);
    await cp.stop();
    env.cleanup();
  }
});

t.run();
