/**
 * Independent verification by the agent (SPEC §6, §2.3): whatever the CP serves, the agent
 * activates only what the release key signed for THIS host, fresh, and not older than what it
 * already accepted. Each refusal is reported with its code and nothing is activated (real Nix
 * backend: no switch ran, no new profile generation).
 */
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { mintReleaseKey } from '../fixtures/keys.ts';
import { basenameOf } from '../fixtures/nix.ts';
import { makeEnv, publish, type Env } from '../fixtures/agent-harness.ts';

const test = suite('agent: independent verification');
let env: Env;

test.before(async () => {
  env = await makeEnv([{ name: 'base' }, { name: 'next' }, { name: 'evil' }], { cached: ['next', 'evil'] });
});
test.after(async () => {
  await env.close();
});

/** Runs one cycle and asserts a refusal with `code`, reported, with nothing activated. */
async function expectRefused(code: string, event: 'verify-failed' | 'stale-target' = 'verify-failed'): Promise<void> {
  const gens = env.generations();
  const log = env.switchLog().length;
  const before = env.cp.reports.length;
  const { agent, close, logs } = env.agent();
  try {
    const out = await agent.once();
    assert.is(out.kind, 'refused', logs.join('\n'));
    if (out.kind === 'refused') assert.is(out.code, code);
  } finally {
    await close();
  }
  const reported = env.cp.reports.slice(before).filter((r) => r.report.event === event);
  assert.is(reported.length, 1, `one ${event} report`);
  assert.is(reported[0]!.report.details?.['code'], code);
  assert.is(reported[0]!.verdict, 'verified');
  assert.is(env.switchLog().length, log, 'no activation script ran');
  assert.equal(env.generations(), gens, 'no new profile generation');
  assert.is(env.running(), env.toys['base']);
}

test('a tampered artefact (bytes changed after signing) → BAD_SIGNATURE', async () => {
  const d = env.dispatch(env.toys['evil']!);
  const tampered = new TextEncoder().encode(new TextDecoder().decode(d.signed.bytes).replace('"canary"', '"canarx"'));
  env.cp.setArtifact(tampered, d.signed.signature);
  env.cp.setTarget(d.target);
  await expectRefused('BAD_SIGNATURE');
});

test('an artefact signed by another key → BAD_SIGNATURE', async () => {
  publish(env, env.dispatch(env.toys['evil']!, { key: mintReleaseKey('ed25519', 99) }));
  await expectRefused('BAD_SIGNATURE');
});

test('a stale artefact (older than the freshness window) → STALE, reported as stale-target', async () => {
  const old = new Date(Date.now() - 4 * 3600_000).toISOString().replace(/\.\d+Z$/, 'Z');
  publish(env, env.dispatch(env.toys['evil']!, { signedAt: old }));
  await expectRefused('STALE', 'stale-target');
});

test('a dispatched closure that differs from the signed closureHash → CLOSURE_MISMATCH', async () => {
  const d = env.dispatch(env.toys['next']!);
  env.cp.setArtifact(d.signed.bytes, d.signed.signature);
  env.cp.setTarget({ ...d.target, closureHash: basenameOf(env.toys['evil']!) });
  await expectRefused('CLOSURE_MISMATCH');
});

test('a wave that is not this host’s wave in the signed bytes → WAVE_MISMATCH', async () => {
  const d = publish(env, env.dispatch(env.toys['next']!));
  env.cp.setTarget({ ...d, wave: 0 });
  await expectRefused('WAVE_MISMATCH');
});

test('an artefact older than the last accepted one → ROLLBACK (after a newer one was accepted)', async () => {
  // An older signed artefact, minted now but stamped earlier than what the agent will accept next.
  const olderAt = new Date(Date.now() - 60_000).toISOString().replace(/\.\d+Z$/, 'Z');
  const older = env.dispatch(env.toys['evil']!, { signedAt: olderAt });
  // A newer one for `next`: accepted and activated.
  publish(env, env.dispatch(env.toys['next']!));
  const { agent, close } = env.agent();
  try {
    const out = await agent.once();
    assert.equal(out, { kind: 'activated', phase: 'idle', outcome: 'confirmed' });
  } finally {
    await close();
  }
  assert.is(env.running(), env.toys['next']);
  // The CP now serves the older artefact (signed by the right key, still fresh).
  publish(env, older);
  const gens = env.generations();
  const log = env.switchLog().length;
  const { agent: a2, close: c2 } = env.agent();
  try {
    const out = await a2.once();
    assert.is(out.kind, 'refused');
    if (out.kind === 'refused') assert.is(out.code, 'ROLLBACK');
  } finally {
    await c2();
  }
  assert.is(env.switchLog().length, log);
  assert.equal(env.generations(), gens);
  assert.is(env.running(), env.toys['next']);
  assert.ok(env.cp.reportsOf('verify-failed').some((r) => r.report.details?.['code'] === 'ROLLBACK'));
});

test('the same signed signature over a fleet that names another host’s closure for us is refused (the CP cannot re-target)', async () => {
  // A validly signed fleet in which our host has NO closure (null): the CP dispatches one anyway.
  const d = env.dispatch(env.toys['next']!, { fleet: (f) => (f.hosts['web1']!.closureHash = null) });
  env.cp.setArtifact(d.signed.bytes, d.signed.signature);
  env.cp.setTarget({ ...d.target, closureHash: basenameOf(env.toys['evil']!) });
  const gens = env.generations();
  const { agent, close } = env.agent();
  try {
    const out = await agent.once();
    assert.is(out.kind, 'refused');
    if (out.kind === 'refused') assert.is(out.code, 'CLOSURE_MISMATCH');
  } finally {
    await close();
  }
  assert.equal(env.generations(), gens);
});

test.run();
