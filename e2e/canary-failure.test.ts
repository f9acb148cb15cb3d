/**
 * Scenario 4 — canary failure: the canary's switch fails → it rolls back to the previous
 * generation (running the previous closure's own switch script) and quarantines the closure, the
 * rollout halts, and no later-wave host is touched.
 */
import * as assert from 'uvu/assert';
import { Fleet, holdFor, readStateJson } from './harness.ts';
import { scenarioSuite } from './scenario.ts';

const { s, register } = scenarioSuite('canary-failure', ['release-cli', 'push', 'control-plane', 'agent']);
let fleet: Fleet | null = null;
const CANARY = 'canary-1';
const REST = ['rest-1', 'rest-2'];
const ALL = [CANARY, ...REST];

s.after(async () => {
  await fleet?.stop();
});

register('4. canary failure: switch fails → canary rolls back + quarantines, rollout halts, later waves untouched', async () => {
  fleet = await Fleet.create({
    name: 'canary-failure',
    hosts: ALL.map((name) => ({ name, channel: 'prod', tags: name === CANARY ? ['canary'] : [] })),
    description: {
      channels: { prod: { rolloutPolicy: 'canary', freshnessWindow: 120, signingIntervalMinutes: 60 } },
      rolloutPolicies: {
        canary: { strategy: 'canary', waves: [{ selector: { tags: ['canary'] }, soakMinutes: 0 }, { selector: { all: true }, soakMinutes: 0 }], onHealthFailure: 'rollback-and-halt' },
      },
    },
    closures: { v1: 'ok', bad: 'fail' },
  });
  const f = fleet;
  await f.release('v1');
  await f.startCp();
  await f.startAgents();
  await f.waitConverged('v1');
  const gensBefore = new Map<string, number>();
  for (const h of ALL) gensBefore.set(h, (await f.generations(h)).length);

  await f.release('bad', { message: 'fleet: a release whose activation fails' });
  const bad = f.closure(CANARY, 'bad');

  // The canary tried the bad closure's own switch, then ran v1's switch again (magic rollback).
  await f.waitFor(`${CANARY} to run bad's switch and then roll back to v1`, (observe) => {
    const log = f.switchLog(CANARY);
    observe(log);
    const i = log.indexOf(`${CANARY}-bad switch`);
    return i >= 0 && log.slice(i + 1).includes(`${CANARY}-v1 switch`);
  });
  // v1's script logs its switch before it relinks current-system, and the agent persists the
  // quarantine once the script has returned: wait for the rollback to finish.
  await f.waitFor(`${CANARY} to run v1 again with the bad closure quarantined on the host`, (observe) => {
    const q = readStateJson(f.host(CANARY), 'quarantine.json') as { closureHash: string }[] | null;
    observe({ running: f.currentLabel(CANARY), quarantine: q });
    return f.currentLabel(CANARY) === 'v1' && q?.some((e) => e.closureHash === bad) === true;
  });
  const halted = await f.waitFor('the prod rollout of the bad closure to be Halted', async (observe) => {
    const r = await f.rolloutFor('prod', 'bad');
    observe(r);
    return r?.state === 'Halted' ? r : undefined;
  });
  assert.ok(halted.reason !== null, 'the halt has a reason');
  const canaryState = halted.hosts.find((h) => h.hostname === CANARY)?.state;
  assert.ok(canaryState === 'Failed' || canaryState === 'Reverted', `canary is Failed/Reverted (${canaryState})`);

  // Canary: profile and running system back on v1; the closure is quarantined on the host and on the CP.
  assert.is(f.profileLabel(CANARY), 'v1', 'canary profile points at v1 again');
  assert.is(f.currentLabel(CANARY), 'v1', 'canary runs v1');
  const gens = await f.generations(CANARY);
  assert.ok(gens.some((g) => g.path === f.host(CANARY).closures['bad']), 'a generation for the bad closure was created (the switch was tried)');
  assert.is(gens.find((g) => g.current)?.path, f.host(CANARY).closures['v1'], 'current generation is v1');
  // The CP holds the canary's own signed statement of the rollback in its audit log. It is what
  // made the canary Reverted, unless the CP's confirm deadline passed first (a slow realise): wait.
  const rolledBack = await f.waitFor('the canary\'s signed rolled-back report in the audit log', async (observe) => {
    const mine = (await f.audit()).filter((e) => e.actor === `host:${CANARY}`);
    observe(mine.map((e) => e.kind));
    return mine.find((e) => e.kind === 'report' && JSON.stringify(e.data).includes('"rolled-back"'));
  });
  assert.ok(JSON.stringify(rolledBack.data).includes(bad));
  const view = await f.hostView(CANARY);
  assert.is(view.currentClosure, f.closure(CANARY, 'v1'), 'CP sees the canary back on v1');

  // Later wave: never dispatched, nothing activated — and it stays that way.
  await holdFor('later-wave hosts untouched', 6000, async () => {
    for (const h of REST) {
      const log = f.switchLog(h);
      if (log.some((l) => !l.endsWith('-v1 switch'))) return `${h} ran ${JSON.stringify(log)}`;
      const g = await f.generations(h);
      if (g.length !== gensBefore.get(h)) return `${h} has ${g.length} generations`;
      if (f.profileLabel(h) !== 'v1') return `${h} profile ${f.profileLabel(h)}`;
    }
    return null;
  });
  const trace = (await f.trace(halted.id)).events;
  for (const h of REST) {
    assert.not.ok(trace.some((e) => e.subject === 'host' && e.hostname === h && ['Dispatched', 'Activating', 'ConfirmWindow', 'Healthy'].includes(e.to)), `${h} never dispatched in the halted rollout`);
    assert.ok(!f.cache.requests.includes(`/${f.closure(h, 'bad').slice(0, 32)}.narinfo`), `${h} never even fetched the bad closure`);
    assert.equal(f.switchLog(h), [`${h}-v1 switch`]);
  }
});

s.run();
