/**
 * Scenario 6 — tampering, committed to the forge where the CP fetches releases: a byte flipped in
 * the artefact, a signature by another key, an older artefact re-committed (rollback attack), a
 * stale artefact. The CP refuses each (verification-failure metric by code, audit entry) and keeps
 * the last good artefact; no host moves. The same four artefacts served straight to an agent by a
 * compromised CP are refused by the agent itself.
 *
 * Scenario 7 — compromised CP: a CP that serves the genuine signed artefact but a target closure
 * the artefact does not sign for that host: the agent refuses it without fetching it.
 *
 * The setup rollouts run on signed slices (issue 19: each agent accepted the signed index);
 * scenario 8 — a compromised CP serving slices: a rewritten leaf, another host's slice, a closure
 * the slice does not sign are refused by the agent, which keeps running its current system.
 */
import { createHash } from 'node:crypto';
import { join } from 'node:path';
import * as assert from 'uvu/assert';
import type { ReadyzResponse, SliceResponse, Target } from '../protocol/api.ts';
import { parseFleetResolved } from '../protocol/schema.ts';
import { buildSliceTree, sliceFor } from '../protocol/slice.ts';
import { releaseTool, type ReleaseOutput } from './ci.ts';
import { Fleet, readStateJson } from './harness.ts';
import { RogueCp } from './rogue-cp.ts';
import { scenarioSuite } from './scenario.ts';

const { s, register } = scenarioSuite('tamper', ['release-cli', 'push', 'control-plane', 'agent']);
let fleet: Fleet | null = null;
let rogue: RogueCp | null = null;
const HOSTS = ['t-1', 't-2'];
let relV1: ReleaseOutput;
let relV2: ReleaseOutput;
/** The refused artefacts, kept for the agent-side checks. */
const attacks: { name: string; code: string; bytes: Buffer; sig: Buffer }[] = [];

s.after(async () => {
  await rogue?.close();
  await fleet?.stop();
});

const sha = (b: Uint8Array) => createHash('sha256').update(b).digest('hex');

async function assertFleetUnmoved(f: Fleet, what: string): Promise<void> {
  const ready = (await f.op.call<ReadyzResponse>('GET', '/readyz')).body as ReadyzResponse;
  assert.is(ready.fleet?.sha256, sha(relV2.fleetBytes), `${what}: the CP keeps the last good artefact`);
  for (const h of HOSTS) {
    assert.is(f.profileLabel(h), 'v2', `${what}: ${h} stays on v2`);
    assert.is((await f.generations(h)).length, 2, `${what}: ${h} has no new generation`);
    assert.equal(f.switchLog(h), [`${h}-v1 switch`, `${h}-v2 switch`], `${what}: ${h} activated nothing new`);
  }
  assert.is(await f.rolloutFor('prod', 'v3'), undefined, `${what}: no rollout towards v3`);
}

register('setup: v1 then v2 converge (v1 becomes the "older artefact")', async () => {
  fleet = await Fleet.create({
    name: 'tamper',
    hosts: HOSTS.map((name) => ({ name, channel: 'prod' })),
    description: {
      channels: { prod: { rolloutPolicy: 'all', freshnessWindow: 120, signingIntervalMinutes: 60 } },
      rolloutPolicies: { all: { strategy: 'all-at-once', waves: [{ selector: { all: true }, soakMinutes: 0 }] } },
    },
    closures: { v1: 'ok', v2: 'ok', v3: 'ok' },
  });
  const f = fleet;
  relV1 = await f.release('v1');
  await f.startCp();
  await f.startAgents();
  await f.waitConverged('v1');
  relV2 = await f.release('v2');
  await f.waitConverged('v2');
  // The rollout ran on signed slices (issue 19): each agent accepted the signed index of v2.
  assert.ok(relV2.indexBytes !== null, 'sign wrote the signed slice index');
  for (const h of HOSTS) {
    const acc = readStateJson(f.host(h), 'accepted-index.json') as { sha256: string } | null;
    assert.is(acc?.sha256, sha(relV2.indexBytes!), `${h} verified the v2 slice index`);
  }
});

register('6. tampering: the CP refuses a flipped byte, another key, a replayed older artefact, a stale artefact', async () => {
  const f = fleet!;
  const otherKey = join(f.ci.dir, 'other.key');
  await releaseTool(['keygen', '--out', otherKey]);

  const cases: { name: string; code: string; commit: () => Promise<{ bytes: Buffer; sig: Buffer }> }[] = [
    {
      name: 'a byte flipped in the committed artefact',
      code: 'BAD_SIGNATURE',
      commit: async () => {
        const text = relV2.fleetBytes.toString('utf8');
        const target = f.closure('t-1', 'v2');
        const i = text.indexOf(target) + 5;
        const flipped = Buffer.from(text.slice(0, i) + (text[i] === 'a' ? 'b' : 'a') + text.slice(i + 1), 'utf8');
        assert.is(flipped.length, relV2.fleetBytes.length);
        await f.ci.commitReleaseFiles({ 'fleet.resolved.json': flipped, 'fleet.resolved.json.sig': relV2.fleetSig }, 'tamper: flip one byte');
        return { bytes: flipped, sig: relV2.fleetSig };
      },
    },
    {
      name: 'a signature from another key',
      code: 'BAD_SIGNATURE',
      commit: async () => {
        const out = await f.ci.release(
          { fleet: f.description(), closures: Object.fromEntries(HOSTS.map((h) => [h, f.closure(h, 'v3')])), message: 'release signed with a key that is not in trust.json' },
          otherKey,
        );
        return { bytes: out.fleetBytes, sig: out.fleetSig };
      },
    },
    {
      name: 'an older artefact re-committed (rollback attack)',
      code: 'ROLLBACK',
      commit: async () => {
        await f.ci.commitReleaseFiles(
          { 'fleet.resolved.json': relV1.fleetBytes, 'fleet.resolved.json.sig': relV1.fleetSig, 'revocations.json': relV1.revocationsBytes, 'revocations.json.sig': relV1.revocationsSig },
          'replay the v1 release',
        );
        return { bytes: relV1.fleetBytes, sig: relV1.fleetSig };
      },
    },
    {
      name: 'a stale artefact',
      code: 'STALE',
      commit: async () => {
        const out = await f.release('v3', { now: new Date(Date.now() - 24 * 3600_000).toISOString(), message: 'release signed a day ago' });
        return { bytes: out.fleetBytes, sig: out.fleetSig };
      },
    },
  ];
  for (const c of cases) {
    const before = await f.metric('nixfleet_artifact_verification_failures_total', { kind: 'fleet', code: c.code });
    const auditBefore = (await f.audit()).length;
    const got = await c.commit();
    await f.waitFor(`the CP to refuse ${c.name} with ${c.code}`, async (observe) => {
      const n = await f.metric('nixfleet_artifact_verification_failures_total', { kind: 'fleet', code: c.code });
      observe(n);
      return n > before;
    });
    const rejected = (await f.audit()).slice(auditBefore).filter((e) => e.kind === 'artifact.rejected');
    assert.ok(rejected.some((e) => JSON.stringify(e.data).includes(c.code)), `${c.name}: artifact.rejected with ${c.code} in the audit log`);
    await assertFleetUnmoved(f, c.name);
    attacks.push({ name: c.name, code: c.code, bytes: got.bytes, sig: got.sig });
  }
  // The good artefact re-committed byte for byte is accepted again, and the fleet stays put.
  await f.ci.commitReleaseFiles(
    {
      'fleet.resolved.json': relV2.fleetBytes,
      'fleet.resolved.json.sig': relV2.fleetSig,
      'revocations.json': relV2.revocationsBytes,
      'revocations.json.sig': relV2.revocationsSig,
      ...(relV2.indexBytes !== null && relV2.indexSig !== null ? { 'fleet.index.json': relV2.indexBytes, 'fleet.index.json.sig': relV2.indexSig } : {}),
    },
    'restore the last good release',
  );
  const hits = f.forge.hits.get('releases/fleet.resolved.json') ?? 0;
  await f.waitFor('the CP to poll the restored release twice', () => (f.forge.hits.get('releases/fleet.resolved.json') ?? 0) >= hits + 2);
  await assertFleetUnmoved(f, 'after restoring the good release');
});

function rogueTarget(closureHash: string, bytes: Uint8Array, n: number): Target {
  let signedAt = new Date().toISOString();
  try {
    signedAt = (JSON.parse(Buffer.from(bytes).toString('utf8')) as { meta: { signedAt: string } }).meta.signedAt;
  } catch {
    // keep now
  }
  return {
    closureHash,
    rolloutId: `prod@rogue-${n}`,
    channel: 'prod',
    wave: 0,
    signedAt,
    freshnessWindowMinutes: 120,
    artifactSha256: sha(bytes),
    confirmDeadline: new Date(Date.now() + 120_000).toISOString(),
  };
}

register('6. tampering: an agent refuses each of those artefacts itself (served by a compromised CP)', async () => {
  const f = fleet!;
  assert.is(attacks.length, 4, 'the four tampered artefacts from the CP test');
  await f.stopAgent('t-2');
  rogue = new RogueCp({ target: null, artifact: relV2.fleetBytes, signature: relV2.fleetSig });
  await rogue.listen(f.serverHost, { certPem: f.serverCert.certPem, keyPem: f.serverCert.keyPem, caPem: f.ca.certPem });
  const h = f.host('t-2');
  h.cpUrl = rogue.url;
  await f.startAgent('t-2');
  await f.waitFor('t-2 to check in with the rogue CP', () => rogue!.checkins.length > 0);
  let n = 0;
  for (const a of attacks) {
    const target = rogueTarget(f.closure('t-2', 'v3'), a.bytes, ++n);
    const before = rogue.reports.length;
    rogue.script = { target, artifact: a.bytes, signature: a.sig };
    const rep = await f.waitFor(`t-2 to refuse "${a.name}" (report naming ${a.code})`, (observe) => {
      const rs = rogue!.reports.slice(before);
      observe(rs.map((r) => r.report));
      return rs.find((r) => JSON.stringify(r.report).includes(a.code));
    });
    assert.ok(['verify-failed', 'stale-target'].includes(rep.report.event), `event ${rep.report.event}`);
    assert.is(rogue.confirms.length, 0, 'nothing confirmed');
    assert.is(f.profileLabel('t-2'), 'v2', `${a.name}: t-2 stays on v2`);
    assert.is((await f.generations('t-2')).length, 2);
    assert.equal(f.switchLog('t-2'), ['t-2-v1 switch', 't-2-v2 switch']);
  }
  // Its rollback state still names the last good artefact: none of them was accepted.
  const accepted = readStateJson(f.host('t-2'), 'accepted-fleet.json') as { sha256: string } | null;
  assert.is(accepted?.sha256, sha(relV2.fleetBytes), 't-2 still holds v2 as its newest accepted artefact');
});

register('7. compromised CP: a target the signed artefact does not name for this host is refused, not even fetched', async () => {
  const f = fleet!;
  assert.ok(rogue !== null);
  const r = rogue!;
  // The genuine artefact (accepted before), but closures CI never signed for t-2: its own
  // cache-signed v3 closure, and t-1's closure from the same signed artefact.
  const wrong = [f.closure('t-2', 'v3'), f.closure('t-1', 'v2')];
  let n = 100;
  for (const closure of wrong) {
    const before = r.reports.length;
    const cacheBefore = f.cache.requests.length;
    r.script = { target: rogueTarget(closure, relV2.fleetBytes, ++n), artifact: relV2.fleetBytes, signature: relV2.fleetSig };
    const rep = await f.waitFor(`t-2 to refuse the unsigned target ${closure}`, (observe) => {
      const rs = r.reports.slice(before);
      observe(rs.map((x) => x.report));
      return rs.find((x) => x.report.closureHash === closure || JSON.stringify(x.report).includes(closure));
    });
    assert.ok(['verify-failed', 'stale-target'].includes(rep.report.event), `event ${rep.report.event}`);
    assert.ok(rep.signature !== null, 'the refusal is signed by the host key');
    assert.not.ok(f.cache.requests.slice(cacheBefore).some((p) => p.includes(closure.slice(0, 32))), 'the closure was not fetched');
    assert.is(r.confirms.length, 0);
    assert.is(f.profileLabel('t-2'), 'v2');
    assert.is((await f.generations('t-2')).length, 2);
    assert.equal(f.switchLog('t-2'), ['t-2-v1 switch', 't-2-v2 switch']);
  }
  // Back to the real CP: nothing to do, still on v2.
  await f.stopAgent('t-2');
  f.host('t-2').cpUrl = f.cpUrl;
  await f.startAgent('t-2');
  await f.waitFor('t-2 to check in with the real CP again', async () => {
    const v = await f.hostView('t-2');
    return v.lastCheckinAt !== null && Date.parse(v.lastCheckinAt) > Date.now() - 3000 && v.currentClosure === f.closure('t-2', 'v2');
  });
  await assertFleetUnmoved(f, 'after the compromised CP');
});

register('8. compromised CP with signed slices: a tampered leaf, another host\'s slice, a target the slice does not sign are refused', async () => {
  const f = fleet!;
  const r = rogue!;
  assert.ok(relV2.indexBytes !== null && relV2.indexSig !== null);
  const model = parseFleetResolved(JSON.parse(relV2.fleetBytes.toString('utf8')));
  assert.ok(model.ok);
  if (!model.ok) return;
  const tree = buildSliceTree(model.value, sha(relV2.fleetBytes));
  const body = (host: string): SliceResponse => ({ ...sliceFor(tree, host)!, index: relV2.indexBytes!.toString('utf8'), indexSignature: relV2.indexSig!.toString('base64') });
  const v2 = f.closure('t-2', 'v2');
  const v3 = f.closure('t-2', 'v3');
  const cases: { name: string; code: string; closure: string; slice: SliceResponse }[] = [
    { name: 'its own leaf rewritten to an unsigned closure', code: 'SLICE_BAD_PROOF', closure: v3, slice: { ...body('t-2'), leaf: body('t-2').leaf.replace(v2, v3) } },
    { name: 't-1\'s genuine slice', code: 'SLICE_WRONG_HOST', closure: f.closure('t-1', 'v2'), slice: body('t-1') },
    { name: 'its genuine slice, with a target closure it does not sign', code: 'CLOSURE_MISMATCH', closure: v3, slice: body('t-2') },
  ];
  assert.ok(cases[0]!.slice.leaf !== body('t-2').leaf, 'the leaf names v2 and was rewritten');
  await f.stopAgent('t-2');
  f.host('t-2').cpUrl = r.url;
  await f.startAgent('t-2');
  let n = 200;
  for (const c of cases) {
    const before = r.reports.length;
    const fetches = r.artifactFetches.length;
    r.script = { target: { ...rogueTarget(c.closure, relV2.fleetBytes, ++n), slice: true }, artifact: relV2.fleetBytes, signature: relV2.fleetSig, slice: c.slice };
    const rep = await f.waitFor(`t-2 to refuse ${c.name} (report naming ${c.code})`, (observe) => {
      const rs = r.reports.slice(before);
      observe(rs.map((x) => x.report));
      return rs.find((x) => JSON.stringify(x.report).includes(c.code));
    });
    assert.is(rep.report.event, 'verify-failed');
    assert.is(r.artifactFetches.length, fetches, `${c.name}: the full artefact was not used instead`);
    assert.is(r.confirms.length, 0);
    assert.is(f.profileLabel('t-2'), 'v2', `${c.name}: t-2 keeps running v2`);
    assert.is((await f.generations('t-2')).length, 2);
    assert.equal(f.switchLog('t-2'), ['t-2-v1 switch', 't-2-v2 switch']);
  }
  await f.stopAgent('t-2');
  f.host('t-2').cpUrl = f.cpUrl;
  await f.startAgent('t-2');
  await assertFleetUnmoved(f, 'after the compromised CP with slices');
});

s.run();
