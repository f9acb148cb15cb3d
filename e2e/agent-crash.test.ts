/**
 * Scenario 11 — the agent crashes (SIGKILL of its process group) between switch and confirm.
 * Each host has an exec probe that passes only while `<hostDir>/probe-ok` exists, which holds the
 * agent inside its confirm window (probes must pass before it confirms) until the test crashes it.
 *
 *   crash-1 (channel a): restarted while still in time, probes now pass → it confirms the
 *            activation it had made, without activating again;
 *   crash-2 (channel b): restarted after its deadline → the persisted record makes it roll back.
 */
import { existsSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import * as assert from 'uvu/assert';
import { Fleet, readStateJson, type HostHandle } from './harness.ts';
import { scenarioSuite } from './scenario.ts';

const { s, register } = scenarioSuite('agent-crash', ['release-cli', 'push', 'control-plane', 'agent']);
let fleet: Fleet | null = null;

s.after(async () => {
  await fleet?.stop();
});

const probeFile = (h: HostHandle) => join(h.dir, 'probe-ok');
type PendingRecord = { closureHash: string; deadlineMs: number; phase: string };

/** Release v2 with the probe failing, wait for the switch, then SIGKILL the agent. */
async function switchThenCrash(f: Fleet, name: string): Promise<PendingRecord> {
  const h = f.host(name);
  await f.waitFor(`${name} to run v2's switch (probes failing: it waits in its confirm window)`, (observe) => {
    observe(f.switchLog(name));
    return f.switchLog(name).includes(`${name}-v2 switch`);
  });
  const pending = await f.waitFor(`${name} to have its pending activation record`, (observe) => {
    const p = readStateJson(h, 'pending.json') as PendingRecord | null;
    observe(p);
    return p !== null && p.closureHash === f.closure(name, 'v2') && p.phase === 'switched' ? p : undefined;
  });
  await f.crashAgent(name);
  return pending;
}

register('11. agent crash between switch and confirm → confirm when in time, roll back when not', async () => {
  fleet = await Fleet.create({
    name: 'agent-crash',
    hosts: [
      { name: 'crash-1', channel: 'a' },
      { name: 'crash-2', channel: 'b' },
    ],
    description: {
      channels: {
        a: { rolloutPolicy: 'all', freshnessWindow: 120, signingIntervalMinutes: 60 },
        b: { rolloutPolicy: 'all', freshnessWindow: 120, signingIntervalMinutes: 60 },
      },
      rolloutPolicies: { all: { strategy: 'all-at-once', waves: [{ selector: { all: true }, soakMinutes: 0 }], onHealthFailure: 'halt' } },
    },
    closures: { v1: 'ok', v2: 'ok' },
    cp: { confirmDeadlineSecs: 60 },
    agent: { confirmDeadlineSecs: 25 },
  });
  const f = fleet;
  for (const h of f.hosts) {
    h.configOverrides = { probes: [{ kind: 'exec', name: 'probe-ok', command: ['/usr/bin/test', '-e', probeFile(h)], intervalSecs: 1, timeoutSecs: 5 }] };
    writeFileSync(probeFile(h), '');
  }
  await f.release('v1');
  await f.startCp();
  await f.startAgents();
  await f.waitConverged('v1');

  for (const h of f.hosts) rmSync(probeFile(h));
  await f.release('v2');
  const p1 = await switchThenCrash(f, 'crash-1');
  const p2 = await switchThenCrash(f, 'crash-2');

  // crash-1: back in time, probes pass → confirm of the activation already made.
  writeFileSync(probeFile(f.host('crash-1')), '');
  assert.ok(Date.now() < p1.deadlineMs, 'crash-1 is restarted before its deadline');
  await f.startAgent('crash-1');
  await f.waitConverged('v2', ['crash-1']);
  await f.waitFor('crash-1 to be confirmed (outcome) and its pending record cleared', () => {
    const o = readStateJson(f.host('crash-1'), 'outcome.json') as { lastOutcome: { outcome: string; closureHash: string } | null } | null;
    return o?.lastOutcome?.outcome === 'confirmed' && o.lastOutcome.closureHash === f.closure('crash-1', 'v2') && !existsSync(join(f.host('crash-1').stateDir, 'pending.json'));
  });
  const r1 = await f.waitFor('channel a rollout Converged', async (observe) => {
    const r = await f.rolloutFor('a', 'v2');
    observe(r);
    return r?.state === 'Converged' ? r : undefined;
  });
  assert.is(r1.hosts[0]?.state, 'Converged');
  assert.equal(f.switchLog('crash-1'), ['crash-1-v1 switch', 'crash-1-v2 switch'], 'crash-1 did not activate v2 a second time');
  assert.is((await f.generations('crash-1')).length, 2);

  // crash-2: stays down past its deadline, then the persisted record makes it roll back.
  await f.waitFor('crash-2 deadline to pass while its agent is down', () => Date.now() > p2.deadlineMs + 1000, { timeoutMs: 120_000 });
  await f.startAgent('crash-2');
  await f.waitFor('crash-2 to roll back to v1', (observe) => {
    const log = f.switchLog('crash-2');
    observe({ log, profile: f.profileLabel('crash-2') });
    return log.length >= 3 && log[2] === 'crash-2-v1 switch' && f.profileLabel('crash-2') === 'v1';
  });
  assert.equal(f.switchLog('crash-2'), ['crash-2-v1 switch', 'crash-2-v2 switch', 'crash-2-v1 switch'], 'rolled back once, with v1’s own switch, and no retry of v2');
  // v1's script logs its switch before it relinks current-system, and the agent persists the
  // quarantine once the script has returned: wait for the rollback to finish.
  await f.waitFor('crash-2 to run v1 again with v2 quarantined on the host', (observe) => {
    const q = readStateJson(f.host('crash-2'), 'quarantine.json') as { closureHash: string }[] | null;
    observe({ running: f.currentLabel('crash-2'), quarantine: q });
    return f.currentLabel('crash-2') === 'v1' && q?.some((e) => e.closureHash === f.closure('crash-2', 'v2')) === true;
  });
  const r2 = await f.waitFor('channel b rollout Halted with crash-2 Reverted/Failed', async (observe) => {
    const r = await f.rolloutFor('b', 'v2');
    observe(r);
    const st = r?.hosts[0]?.state;
    return r?.state === 'Halted' && (st === 'Reverted' || st === 'Failed') ? r : undefined;
  });
  assert.ok(r2.reason !== null);
  await f.waitFor('CP sees crash-2 on v1', async () => (await f.hostView('crash-2')).currentClosure === f.closure('crash-2', 'v1'));
});

s.run();
