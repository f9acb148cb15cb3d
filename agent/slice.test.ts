/**
 * The agent with signed slices (issue 19), against the fake CP and real Nix: when the target
 * offers a slice the agent fetches it instead of the artefact, verifies the index like an artefact
 * (its own trust.json, freshness, its own newest accepted index) and the slice against it, and
 * takes the target only from the verified leaf. Each refusal is reported with its code and nothing
 * is activated; with no slice served it falls back to the full artefact.
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { mintReleaseKey } from '../fixtures/keys.ts';
import { basenameOf } from '../fixtures/nix.ts';
import { makeEnv, publish, publishSlice, type Env } from '../fixtures/agent-harness.ts';

const test = suite('agent: signed slices');
let env: Env;

test.before(async () => {
  env = await makeEnv([{ name: 'base' }, { name: 'next' }, { name: 'evil' }], { cached: ['next', 'evil'] });
});
test.after(async () => {
  await env.close();
});

/** Runs one cycle and asserts a refusal with `code`, reported, with nothing activated. */
async function expectRefused(code: string): Promise<void> {
  const gens = env.generations();
  const log = env.switchLog().length;
  const running = env.running();
  const before = env.cp.reports.length;
  const fetches = env.cp.artifactFetches();
  const { agent, close, logs } = env.agent();
  try {
    const out = await agent.once();
    assert.is(out.kind, 'refused', logs.join('\n'));
    if (out.kind === 'refused') assert.is(out.code, code, out.message);
  } finally {
    await close();
  }
  const reported = env.cp.reports.slice(before).filter((r) => r.report.event === 'verify-failed');
  assert.is(reported.length, 1, 'one verify-failed report');
  assert.is(reported[0]!.report.details?.['code'], code);
  assert.is(env.switchLog().length, log, 'no activation script ran');
  assert.equal(env.generations(), gens, 'no new profile generation');
  assert.is(env.running(), running, 'the host keeps running its current system');
  assert.is(env.cp.artifactFetches(), fetches, 'a slice that was served is never bypassed for the artefact');
}

test('a good slice: activated from the verified leaf without downloading the artefact; the index is accepted', async () => {
  const fetches = env.cp.artifactFetches();
  const slices = env.cp.sliceFetches();
  const d = env.dispatch(env.toys['next']!);
  publishSlice(env, d);
  const { agent, close, logs } = env.agent();
  try {
    const out = await agent.once();
    assert.equal(out, { kind: 'activated', phase: 'idle', outcome: 'confirmed' }, logs.join('\n'));
  } finally {
    await close();
  }
  assert.is(env.running(), env.toys['next']);
  assert.is(env.cp.artifactFetches(), fetches, 'no artefact download');
  assert.ok(env.cp.sliceFetches() > slices);
  assert.ok(existsSync(join(env.stateDir, 'accepted-index.json')), 'newest accepted index persisted');
  const fleet = JSON.parse(readFileSync(join(env.stateDir, 'accepted-fleet.json'), 'utf8')) as { sha256: string; signedAt: string };
  assert.equal(fleet, { signedAt: d.signed.signedAt, sha256: d.signed.sha256 }, 'the artefact the signed index names is the newest accepted fleet');
});

test('a slice of another host → SLICE_WRONG_HOST', async () => {
  publishSlice(env, env.dispatch(env.toys['evil']!), { host: 'other1' });
  await expectRefused('SLICE_WRONG_HOST');
});

test('a changed audit path → SLICE_BAD_PROOF', async () => {
  publishSlice(env, env.dispatch(env.toys['evil']!), { slice: (s) => ({ ...s, proof: s.proof.map((p) => (p[0] === 'a' ? 'b' : 'a') + p.slice(1)) }) });
  await expectRefused('SLICE_BAD_PROOF');
});

test('a leaf changed to another closure (the path no longer leads to the root) → SLICE_BAD_PROOF', async () => {
  const d = env.dispatch(env.toys['next']!);
  publishSlice(env, d, { slice: (s) => ({ ...s, leaf: s.leaf.replace(basenameOf(env.toys['next']!), basenameOf(env.toys['evil']!)) }) });
  env.cp.setTarget({ ...d.target, slice: true, closureHash: basenameOf(env.toys['evil']!) });
  await expectRefused('SLICE_BAD_PROOF');
});

test('a signed index whose root does not match the slices → SLICE_BAD_PROOF', async () => {
  publishSlice(env, env.dispatch(env.toys['evil']!), { index: (i) => ({ ...i, root: '0'.repeat(64) }) });
  await expectRefused('SLICE_BAD_PROOF');
});

test('an index signed by another key → BAD_SIGNATURE; a tampered index → BAD_SIGNATURE', async () => {
  publishSlice(env, env.dispatch(env.toys['evil']!), { key: mintReleaseKey('ed25519', 99) });
  await expectRefused('BAD_SIGNATURE');
  publishSlice(env, env.dispatch(env.toys['evil']!), { slice: (s) => ({ ...s, index: s.index.replace('"leafCount":2', '"leafCount":3') }) });
  await expectRefused('BAD_SIGNATURE');
});

test('an index of another artefact → ARTIFACT_MISMATCH; a target that is not the leaf\'s → CLOSURE_MISMATCH, WAVE_MISMATCH', async () => {
  publishSlice(env, env.dispatch(env.toys['evil']!), { index: (i) => ({ ...i, artifactSha256: 'a'.repeat(64) }) });
  await expectRefused('ARTIFACT_MISMATCH');
  const d = env.dispatch(env.toys['next']!);
  publishSlice(env, d);
  env.cp.setTarget({ ...d.target, slice: true, closureHash: basenameOf(env.toys['evil']!) });
  await expectRefused('CLOSURE_MISMATCH');
  const w = env.dispatch(env.toys['evil']!);
  publishSlice(env, w);
  env.cp.setTarget({ ...w.target, slice: true, wave: 0 });
  await expectRefused('WAVE_MISMATCH');
});

test('an index older than the newest accepted one → ROLLBACK', async () => {
  const olderAt = new Date(Date.now() - 60_000).toISOString().replace(/\.\d+Z$/, 'Z');
  publishSlice(env, env.dispatch(env.toys['evil']!, { signedAt: olderAt }));
  await expectRefused('ROLLBACK');
});

test('the accepted index also guards the artefact: an older full artefact served without a slice → ROLLBACK', async () => {
  const olderAt = new Date(Date.now() - 10 * 60_000).toISOString().replace(/\.\d+Z$/, 'Z');
  publish(env, env.dispatch(env.toys['evil']!, { signedAt: olderAt }));
  const fetches = env.cp.artifactFetches();
  const { agent, close, logs } = env.agent();
  try {
    const out = await agent.once();
    assert.is(out.kind, 'refused', logs.join('\n'));
    if (out.kind === 'refused') assert.is(out.code, 'ROLLBACK');
  } finally {
    await close();
  }
  assert.is(env.cp.artifactFetches(), fetches + 1);
  assert.is(env.running(), env.toys['next']);
});

test('no slice served (404) although offered: falls back to the full artefact', async () => {
  const fetches = env.cp.artifactFetches();
  const d = env.dispatch(env.toys['next']!);
  publishSlice(env, d);
  env.cp.setSlice(null);
  const { agent, close, logs } = env.agent();
  try {
    const out = await agent.once();
    assert.is(out.kind, 'activated', logs.join('\n'));
  } finally {
    await close();
  }
  assert.is(env.cp.artifactFetches(), fetches + 1, 'the artefact was fetched and verified instead');
  assert.is(env.running(), env.toys['next']);
});

test.run();
