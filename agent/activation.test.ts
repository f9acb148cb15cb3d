/**
 * The agent against REAL Nix (nix-store, nix-env, toy switch-to-configuration scripts), the fake
 * CP over mutual TLS, a signed HTTP binary cache on loopback and the net-cut proxy (SPEC §6).
 * One host, one set of closures, scenarios in order (each starts from what the previous left).
 */
import { existsSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { basenameOf, copyToFileCache, deleteFromStore, generateCacheKey, isInStore, networkCutMarker, startHttpCache } from '../fixtures/nix.ts';
import { makeEnv, publish, type Env } from '../fixtures/agent-harness.ts';

const test = suite('agent: real Nix activation');
let env: Env;

const SPECS = [
  { name: 'base' },
  { name: 'good' },
  { name: 'alt-unsigned' },
  { name: 'alt-wrongkey' },
  { name: 'bad', variant: 'fail' as const },
  { name: 'gone' },
  { name: 'cut', variant: 'cutnet' as const },
  { name: 'newkernel', kernel: 'B' },
  { name: 'noagent', agent: false },
  { name: 'later' },
];

test.before(async () => {
  env = await makeEnv(SPECS, { cached: ['good', 'bad', 'gone', 'cut', 'newkernel', 'noagent', 'later'] });
});
test.after(async () => {
  await env.close();
});

const outcomes = (event: string) => env.cp.reportsOf(event).map((r) => r.report.closureHash);

test('happy path: verify, realise from the signed HTTP cache, new generation, switch, confirm, report', async () => {
  const good = env.toys['good']!;
  // The closure must really come from the cache: remove it (what base does not share) locally.
  const deleted = await deleteFromStore([good], [env.toys['base']!]);
  assert.ok(deleted.includes(good));
  assert.not.ok(isInStore(good));
  const gensBefore = env.generations();
  const target = publish(env, env.dispatch(good));
  const { agent, close, logs } = env.agent();
  try {
    const out = await agent.once();
    assert.equal(out, { kind: 'activated', phase: 'idle', outcome: 'confirmed' }, logs.join('\n'));
  } finally {
    await close();
  }
  assert.ok(isInStore(good));
  const hashPart = basenameOf(good).slice(0, 32);
  assert.ok(env.cache.requests.includes(`/${hashPart}.narinfo`), 'narinfo fetched from the HTTP cache');
  assert.ok(env.cache.requests.some((r) => r.startsWith('/nar/')), 'NAR fetched from the HTTP cache');
  assert.is(env.generations().length, gensBefore.length + 1, 'a new profile generation exists');
  assert.is(env.profileTarget(), good);
  assert.is(env.running(), good);
  assert.equal(env.switchLog(), ['good switch']);
  assert.is(env.cp.confirms.length, 1);
  const c = env.cp.confirms[0]!;
  assert.is(c.status, 204);
  assert.is(c.closureHash, target.closureHash);
  assert.is(c.confirmed?.record.closureHash, target.closureHash, 'confirm carries the signed confirmed record');
  assert.ok(['activation-started', 'activation-switched'].every((e) => outcomes(e).includes(target.closureHash)));
  assert.ok(env.cp.reports.every((r) => r.verdict === 'verified'), 'every report verifies under the host key');
  const persisted = JSON.parse(readFileSync(join(env.stateDir, 'confirmed.json'), 'utf8'));
  assert.is(persisted.record.closureHash, target.closureHash);
  assert.not.ok(existsSync(join(env.stateDir, 'pending.json')));
  assert.is(JSON.parse(readFileSync(join(env.stateDir, 'accepted-fleet.json'), 'utf8')).sha256, target.artifactSha256);
});

test('a cache whose narinfo is unsigned, or signed by an untrusted key: nothing activated, reported with its code', async () => {
  for (const [name, signing] of [
    ['alt-unsigned', null],
    ['alt-wrongkey', 'other'],
  ] as const) {
    const path = env.toys[name]!;
    const dir = join(env.root, `cache-${name}`);
    const key = signing === null ? null : (await generateCacheKey(env.root, 'untrusted-cache-key')).secretKeyFile;
    await copyToFileCache(dir, [path], key);
    const http = await startHttpCache(dir);
    try {
      await deleteFromStore([path], [env.toys['base']!, env.toys['good']!]);
      const log = env.switchLog().length;
      const gens = env.generations();
      const target = publish(env, env.dispatch(path));
      const { agent, close } = env.agent({ substituters: [http.url] });
      try {
        const out = await agent.once();
        assert.is(out.kind, 'activated');
      } finally {
        await close();
      }
      assert.ok(http.requests.some((r) => r.endsWith('.narinfo')), 'the agent did ask that cache');
      assert.not.ok(isInStore(path), `${name}: the unsigned/untrusted path was not imported`);
      const failed = env.cp.reportsOf('activation-failed').filter((r) => r.report.closureHash === target.closureHash);
      assert.is(failed.length, 1);
      assert.is(failed[0]!.report.details?.['code'], 'CACHE_SIGNATURE');
      assert.is(env.switchLog().length, log, 'no switch ran');
      assert.equal(env.generations(), gens, 'no new generation');
      assert.is(env.running(), env.toys['good']);
    } finally {
      await http.close();
    }
  }
});

test('a failing switch: previous generation back, previous switch script ran, quarantined, refused again (also after a restart)', async () => {
  const bad = env.toys['bad']!;
  const good = env.toys['good']!;
  const target = publish(env, env.dispatch(bad));
  const first = env.agent();
  try {
    const out = await first.agent.once();
    assert.equal(out, { kind: 'activated', phase: 'idle', outcome: 'rolled-back' }, first.logs.join('\n'));
  } finally {
    await first.close();
  }
  assert.equal(env.switchLog().slice(-2), ['bad switch', 'good switch'], 'the previous closure’s own switch ran');
  assert.is(env.profileTarget(), good);
  assert.is(env.running(), good);
  const rolled = env.cp.reportsOf('rolled-back').filter((r) => r.report.closureHash === target.closureHash);
  assert.is(rolled.length, 1);
  assert.is(rolled[0]!.verdict, 'verified');
  const q = JSON.parse(readFileSync(join(env.stateDir, 'quarantine.json'), 'utf8')) as { closureHash: string; untilMs: number; sinceMs: number }[];
  assert.ok(q.some((e) => e.closureHash === target.closureHash && e.untilMs - e.sinceMs === 24 * 3600_000));

  // Next dispatch of the same closure, by a restarted agent (new process state, same stateDir).
  const logLen = env.switchLog().length;
  const again = publish(env, env.dispatch(bad));
  const second = env.agent();
  try {
    await second.agent.start();
    const out = await second.agent.once();
    assert.is(out.kind, 'refused');
    if (out.kind === 'refused') assert.is(out.code, 'QUARANTINED');
  } finally {
    await second.close();
  }
  assert.is(env.switchLog().length, logLen, 'nothing activated');
  assert.ok(outcomes('closure-quarantined').includes(target.closureHash));
  // The same target again: the artefact comes from the agent's cache (by sha256), and the
  // refusal is not reported twice.
  const fetches = env.cp.artifactFetches();
  const reportsBefore = env.cp.reports.length;
  const third = env.agent();
  try {
    env.cp.setTarget(again); // the fake CP withdrew it after the report; a CP may keep sending it
    const out = await third.agent.once();
    assert.ok(out.kind === 'refused' && out.code === 'QUARANTINED');
    env.cp.setTarget(again);
    const next = await third.agent.cycle();
    assert.ok(next.outcome.kind === 'refused');
  } finally {
    await third.close();
  }
  assert.is(env.cp.artifactFetches(), fetches, 'no second download of the same artefact');
  assert.is(env.cp.reports.length - reportsBefore, 1, 'one closure-quarantined report per agent run, not one per poll');
});

test('the CP answers 410 to the confirm: rollback to the previous closure', async () => {
  const gone = env.toys['gone']!;
  const good = env.toys['good']!;
  publish(env, env.dispatch(gone));
  env.cp.confirmMode = 'gone';
  const { agent, close, logs } = env.agent();
  try {
    const out = await agent.once();
    assert.equal(out, { kind: 'activated', phase: 'idle', outcome: 'rolled-back' }, logs.join('\n'));
  } finally {
    await close();
    env.cp.confirmMode = 'auto';
  }
  assert.equal(env.switchLog().slice(-2), ['gone switch', 'good switch']);
  assert.is(env.profileTarget(), good);
  assert.is(env.cp.confirms.at(-1)!.status, 410);
});

test('a switch that cuts the network: the confirm (new connection) fails, rollback by the deadline', async () => {
  const cut = env.toys['cut']!;
  const good = env.toys['good']!;
  const target = publish(env, env.dispatch(cut));
  const confirmsBefore = env.cp.confirms.length;
  const { agent, close, logs } = env.agent({ confirmDeadlineSecs: 3 });
  try {
    const out = await agent.once();
    assert.equal(out, { kind: 'activated', phase: 'idle', outcome: 'rolled-back' }, logs.join('\n'));
    assert.ok(env.proxy.refused() > 0, 'new connections were refused after the switch');
    assert.is(env.cp.confirms.length, confirmsBefore, 'no confirm reached the CP');
    assert.equal(env.switchLog().slice(-2), ['cut switch', 'good switch']);
    assert.is(env.profileTarget(), good);
    // The pooled connection opened before the cut still carries the reports.
    assert.ok(outcomes('activation-switched').includes(target.closureHash));
    rmSync(networkCutMarker(env.root));
    await agent.cycle(); // flushes whatever was queued
    assert.ok(outcomes('rolled-back').includes(target.closureHash));
  } finally {
    await close();
    rmSync(networkCutMarker(env.root), { force: true });
  }
});

test('kernel differs: switch-to-configuration boot, activation-deferred, no rollback', async () => {
  const nk = env.toys['newkernel']!;
  const good = env.toys['good']!;
  const target = publish(env, env.dispatch(nk));
  const { agent, close, logs } = env.agent();
  try {
    const out = await agent.once();
    assert.equal(out, { kind: 'activated', phase: 'idle', outcome: 'activation-deferred' }, logs.join('\n'));
  } finally {
    await close();
  }
  assert.equal(env.switchLog().slice(-1), ['newkernel boot']);
  assert.is(env.profileTarget(), nk, 'the profile (next boot) is the new closure');
  assert.is(env.running(), good, 'the running system did not change');
  assert.ok(outcomes('activation-deferred').includes(target.closureHash));
  assert.not.ok(outcomes('rolled-back').includes(target.closureHash));
  const started = env.cp.reportsOf('activation-started').find((r) => r.report.closureHash === target.closureHash);
  assert.equal(started?.report.details?.['inhibitors'], ['kernel', 'initrd']);
});

const reboots = (): string[] => (existsSync(join(env.root, 'reboots')) ? readFileSync(join(env.root, 'reboots'), 'utf8').trim().split('\n') : []);

test('issue 14: rebootPolicy manual never reboots; automatic runs the reboot command (recorded) once for the deferred closure', async () => {
  assert.equal(reboots(), [], 'manual (the default): the previous deferral did not reboot');
  const nk = env.toys['newkernel']!;
  publish(env, env.dispatch(nk, { fleet: (f) => void (f.channels['stable']!.rebootPolicy = 'automatic') }));
  const { agent, close, logs } = env.agent();
  try {
    await agent.once(); // the CP hands the PendingReboot host its target again: still deferred → reboot
    assert.equal(reboots(), ['reboot'], logs.join('\n'));
    await agent.cycle();
    assert.equal(reboots(), ['reboot'], 'once per process');
    assert.ok(logs.some((l) => /agent.reboot .*rebootPolicy automatic/.test(l)));
  } finally {
    await close();
  }
  assert.is(env.running(), env.toys['good']!, 'the (fake) reboot command did not change what runs');
});

test('issue 14: a host that boots back into the old system rolls the boot entry back and reports rolled-back (→ Reverted)', async () => {
  const nk = env.toys['newkernel']!;
  const good = env.toys['good']!;
  env.cp.setTarget(null);
  // The reboot happened (new boot id), but the machine came up on the old system.
  writeFileSync(join(env.root, 'boot_id'), 'boot-2\n');
  const { agent, close, logs } = env.agent();
  try {
    const out = await agent.cycle();
    assert.equal(out.outcome, { kind: 'activated', phase: 'idle', outcome: 'rolled-back' }, logs.join('\n'));
    await agent.cycle(); // an ordinary check-in afterwards: nothing more happens
  } finally {
    await close();
  }
  assert.equal(env.switchLog().slice(-1), ['good boot'], 'the boot entry is back on what runs');
  assert.is(env.profileTarget(), good);
  assert.is(env.running(), good);
  const rb = env.cp.reportsOf('rolled-back').find((r) => r.report.closureHash === basenameOf(nk));
  assert.ok(rb !== undefined, 'rolled-back reported');
  assert.match(rb!.report.message, /booted back into/);
  const last = env.cp.checkins.at(-1)!;
  assert.is(last.lastOutcome?.outcome, 'rolled-back');
  assert.ok(typeof last.lastOutcomeSignature === 'string', 'the outcome in the check-in is signed');
});

test('a closure without the agent service is refused with NO_AGENT_SERVICE, nothing activated', async () => {
  const na = env.toys['noagent']!;
  const logLen = env.switchLog().length;
  const gens = env.generations();
  const target = publish(env, env.dispatch(na));
  const { agent, close } = env.agent();
  try {
    const out = await agent.once();
    assert.is(out.kind, 'refused');
    if (out.kind === 'refused') assert.is(out.code, 'NO_AGENT_SERVICE');
  } finally {
    await close();
  }
  assert.is(env.switchLog().length, logLen);
  assert.equal(env.generations(), gens);
  const r = env.cp.reportsOf('activation-failed').find((x) => x.report.closureHash === target.closureHash);
  assert.is(r?.report.details?.['code'], 'NO_AGENT_SERVICE');
});

test('rollback-and-halt: the CP’s rollback instruction undoes exactly the confirmed activation', async () => {
  const later = env.toys['later']!;
  const before = env.running();
  assert.is(before, env.toys['good']);
  const target = publish(env, env.dispatch(later));
  const { agent, close, logs } = env.agent();
  try {
    assert.equal(await agent.once(), { kind: 'activated', phase: 'idle', outcome: 'confirmed' }, logs.join('\n'));
    assert.is(env.running(), later);
    // An instruction for another closure is ignored: the CP can stop, never choose.
    env.cp.setRollback({ rolloutId: target.rolloutId, closureHash: basenameOf(env.toys['gone']!), reason: 'nope' });
    assert.equal((await agent.cycle()).outcome, { kind: 'rollback-instruction', acted: false });
    assert.is(env.running(), later);
    env.cp.setRollback({ rolloutId: target.rolloutId, closureHash: target.closureHash, reason: 'health gate failed' });
    assert.equal((await agent.cycle()).outcome, { kind: 'rollback-instruction', acted: true });
  } finally {
    await close();
    env.cp.setRollback(null);
  }
  assert.is(env.running(), before);
  assert.equal(env.switchLog().slice(-2), ['later switch', 'good switch']);
  assert.ok(outcomes('rolled-back').includes(target.closureHash));
});

test('a host the signed fleet marks as leaving may activate a closure without the agent service', async () => {
  const na = env.toys['noagent']!;
  publish(env, env.dispatch(na, { fleet: (f) => (f.hosts['web1']!.leaving = true) }));
  const { agent, close, logs } = env.agent();
  try {
    assert.equal(await agent.once(), { kind: 'activated', phase: 'idle', outcome: 'confirmed' }, logs.join('\n'));
  } finally {
    await close();
  }
  assert.is(env.running(), na);
  assert.equal(env.switchLog().slice(-1), ['noagent switch']);
});

test('check-in errors back off and honour Retry-After', async () => {
  env.cp.failCheckins(2, 503, 7);
  const { agent, close } = env.agent();
  try {
    const a = await agent.cycle();
    assert.is(a.outcome.kind, 'checkin-failed');
    assert.ok(a.delayMs >= 7000, `waits at least Retry-After (${a.delayMs} ms)`);
    const b = await agent.cycle();
    assert.is(b.outcome.kind, 'checkin-failed');
    assert.is(agent.failures, 2);
    const c = await agent.cycle();
    assert.is.not(c.outcome.kind, 'checkin-failed');
    assert.is(agent.failures, 0);
    assert.ok(c.delayMs <= 1000, 'back to the normal interval');
  } finally {
    await close();
  }
});

test.run();
