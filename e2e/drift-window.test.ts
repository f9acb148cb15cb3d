/**
 * Issue 14 with real processes and real Nix:
 * - change window: a channel inside a freeze holds its rollout (nothing activated, `windowHold`
 *   reported) and starts by itself when the freeze ends (a freeze computed relative to now);
 * - drift: a host switched by hand behind the agent (`nix-env --set` + the other closure's
 *   `switch-to-configuration switch`) is `drifted` in `nixfleet status`, and with
 *   `onDrift: redeploy` the CP dispatches its declared closure again and the host is back on it.
 */
import { join } from 'node:path';
import * as assert from 'uvu/assert';
import { Fleet } from './harness.ts';
import { run } from './proc.ts';
import { nixfleetCli, scenarioSuite } from './scenario.ts';

const { s, register } = scenarioSuite('drift-window', ['release-cli', 'push', 'control-plane', 'agent']);
let fleet: Fleet | null = null;
const EDGE = 'edge-1';
const LATE = 'late-1';

s.after(async () => {
  await fleet?.stop();
});

register('a frozen channel holds its rollout and starts when the freeze ends; a hand-switched host is drifted and redeployed', async () => {
  fleet = await Fleet.create({
    name: 'drift-window',
    hosts: [
      { name: EDGE, channel: 'edge' },
      { name: LATE, channel: 'late' },
    ],
    description: {
      channels: {
        edge: { rolloutPolicy: 'all', freshnessWindow: 120, signingIntervalMinutes: 60, onDrift: 'redeploy' },
        late: { rolloutPolicy: 'all', freshnessWindow: 120, signingIntervalMinutes: 60 },
      },
      rolloutPolicies: { all: { strategy: 'all-at-once', waves: [{ selector: { all: true }, soakMinutes: 0 }] } },
    },
    closures: { v1: 'ok', hand: 'ok' },
  });
  const f = fleet;
  // The freeze is computed when the release is signed (building the fleet takes a while).
  const freezeUntil = new Date(Date.now() + 90_000).toISOString().replace(/\.\d+Z$/, 'Z');
  const description = f.description();
  description.channels['late'] = { ...description.channels['late']!, changeWindow: { timeZone: 'UTC', freezes: [{ from: '2020-01-01T00:00:00Z', until: freezeUntil, reason: 'e2e freeze' }] } };
  await f.release('v1', { description });
  await f.startCp();
  await f.startAgents();

  // Window: edge converges, late is held by its freeze with nothing activated.
  await f.waitConverged('v1', [EDGE], { timeoutMs: 120_000 });
  const held = await f.waitFor('the late rollout held by its freeze', async (observe) => {
    const r = (await f.rollouts('late'))[0];
    observe(r);
    return r?.windowHold !== undefined ? r : undefined;
  });
  assert.match(held.windowHold!, /change freeze .*e2e freeze/);
  assert.equal(f.switchLog(LATE), [], 'nothing activated during the freeze');
  assert.ok(Date.now() < Date.parse(freezeUntil), 'checked while the freeze still held');
  // The freeze ends: the rollout starts by itself.
  await f.waitConverged('v1', [LATE], { timeoutMs: 180_000 });

  // Drift: someone switches edge-1 by hand to another closure, behind the agent.
  const h = f.host(EDGE);
  const hand = h.closures['hand']!;
  const set = await run('nix-env', ['-p', h.profile, '--set', hand]);
  assert.is(set.code, 0, set.stderr);
  const sw = await run(join(hand, 'bin', 'switch-to-configuration'), ['switch']);
  assert.is(sw.code, 0, sw.stderr);
  // onDrift: redeploy — the CP reports the drift and dispatches the declared closure again.
  await f.waitFor(`${EDGE} reported drifted`, async () => (await f.audit()).some((e) => e.kind === 'host.drifted' && e.subject === EDGE));
  await f.waitFor(`${EDGE} redeployed onto v1`, () => f.switchLog(EDGE).filter((l) => l === `${EDGE}-v1 switch`).length === 2);
  await f.waitConverged('v1', [EDGE], { timeoutMs: 120_000 });
  await f.waitFor('the drift cleared', async () => (await f.audit()).some((e) => e.kind === 'host.drift-cleared' && e.subject === EDGE));
  const status = await nixfleetCli(f, ['status']);
  assert.not.match(status.stdout, /drifted/);
});

s.run();
