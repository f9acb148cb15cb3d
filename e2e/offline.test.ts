/**
 * Scenario 10 — a host goes offline during its wave. `off-1` runs in its own network namespace;
 * the test pulls its cable (downs its veth). Once it has been offline past `offlineGraceSecs`, it
 * no longer blocks its wave: the next wave proceeds. When its cable is back, it catches up.
 *
 * Needs `ip netns` (root, Linux); skipped with the reason otherwise.
 */
import * as assert from 'uvu/assert';
import { Fleet } from './harness.ts';
import { netnsAvailable } from './netns.ts';
import { scenarioSuite } from './scenario.ts';

const ns = netnsAvailable();
const { s, register } = scenarioSuite('offline', ['release-cli', 'push', 'control-plane', 'agent']);
let fleet: Fleet | null = null;
const HOSTS = ['lead-1', 'on-1', 'off-1', 'tail-1'];

s.after(async () => {
  await fleet?.stop();
});

const title = '10. host offline during its wave → after the grace the wave proceeds; on return it catches up';
if (!ns.ok) {
  s.skip(`${title} — SKIPPED (network namespaces unavailable: ${ns.reason})`, () => undefined);
  console.log(`skip: offline: network namespaces unavailable: ${ns.reason}`);
} else {
  register(title, async () => {
    fleet = await Fleet.create({
      name: 'offline',
      hosts: HOSTS.map((name) => ({ name, channel: 'prod', netns: name === 'off-1' })),
      description: {
        channels: { prod: { rolloutPolicy: 'staged', freshnessWindow: 120, signingIntervalMinutes: 60 } },
        rolloutPolicies: {
          staged: {
            strategy: 'staged',
            waves: [
              { selector: { hosts: ['lead-1'] }, soakMinutes: 0 },
              { selector: { hosts: ['on-1', 'off-1'] }, soakMinutes: 0 },
              { selector: { all: true }, soakMinutes: 0 },
            ],
            onHealthFailure: 'halt',
          },
        },
      },
      closures: { v1: 'ok', v2: 'ok' },
      cp: { offlineAfterSecs: 4, offlineGraceSecs: 8 },
    });
    const f = fleet;
    const off = f.host('off-1');
    assert.ok(off.netns !== null, 'off-1 has its own network namespace');
    await f.release('v1');
    await f.startCp();
    await f.startAgents();
    await f.waitConverged('v1');

    // Pull the cable, and wait until the CP considers the host offline.
    f.network!.cutOff(off.index);
    await f.waitFor('the CP to see off-1 offline', async (observe) => {
      const v = await f.hostView('off-1');
      observe({ online: v.online, lastCheckinAt: v.lastCheckinAt });
      return !v.online;
    });
    await f.release('v2');

    // The rest of the fleet, including the wave after off-1's, gets v2 while off-1 is still cut off.
    await f.waitConverged('v2', ['lead-1', 'on-1', 'tail-1'], { timeoutMs: 120_000 });
    assert.is(f.profileLabel('off-1'), 'v1', 'off-1 cannot have moved while cut off');
    assert.equal(f.switchLog('off-1'), ['off-1-v1 switch']);
    const r = await f.rolloutFor('prod', 'v2');
    assert.ok(r !== undefined);
    const offState = r!.hosts.find((h) => h.hostname === 'off-1');
    assert.ok(offState !== undefined && !['Soaked', 'Converged', 'Failed', 'Reverted'].includes(offState.state), `off-1 is still pending in the rollout (${offState?.state})`);
    const trace = (await f.trace(r!.id)).events;
    const tailDispatched = trace.find((e) => e.subject === 'host' && e.hostname === 'tail-1' && e.to === 'Dispatched');
    assert.ok(tailDispatched !== undefined, 'the next wave was dispatched while off-1 was offline');
    const reconnectAt = Date.now();

    // Cable back: off-1 catches up.
    f.network!.reconnect(off.index);
    await f.waitConverged('v2', ['off-1'], { timeoutMs: 120_000 });
    assert.ok(Date.parse(tailDispatched!.at) < reconnectAt, 'tail-1 was dispatched before off-1 came back');
    assert.equal(f.switchLog('off-1'), ['off-1-v1 switch', 'off-1-v2 switch']);
    await f.waitFor('the v2 rollout to converge with off-1', async (observe) => {
      const d = await f.rolloutFor('prod', 'v2');
      observe(d?.hosts.map((h) => [h.hostname, h.state]));
      return d?.hosts.find((h) => h.hostname === 'off-1')?.state === 'Converged' || d?.state === 'Converged';
    });
  });
}

s.run();
