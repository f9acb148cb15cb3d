/**
 * Scenario 10 — a host goes offline during its wave. `off-1` runs in its own network namespace;
 * the test pulls its cable (downs its veth). Once it has been offline past `offlineGraceSecs`, it
 * no longer blocks its wave: the next wave proceeds. When its cable is back, it catches up.
 *
 * Where `ip netns` is unavailable (not root, no iproute2), the host is taken offline by freezing
 * its agent (SIGSTOP of its process group) instead — the CP sees the same silence, the agent's own
 * network-error path is then not exercised; the test name says which variant ran.
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

const how = ns.ok ? 'cable pulled: own network namespace' : `agent frozen with SIGSTOP: network namespaces unavailable (${ns.reason})`;
const title = `10. host offline during its wave → after the grace the wave proceeds; on return it catches up (${how})`;
register(title, async () => {
  fleet = await Fleet.create({
    name: 'offline',
    hosts: HOSTS.map((name) => ({ name, channel: 'prod', netns: ns.ok && name === 'off-1' })),
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
  if (ns.ok) assert.ok(off.netns !== null, 'off-1 has its own network namespace');
  const goOffline = () => (ns.ok ? f.network!.cutOff(off.index) : f.freezeAgent('off-1'));
  const comeBack = () => (ns.ok ? f.network!.reconnect(off.index) : f.thawAgent('off-1'));
  await f.release('v1');
  await f.startCp();
  await f.startAgents();
  await f.waitConverged('v1');

  // Pull the cable, and wait until the CP considers the host offline.
  goOffline();
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
  comeBack();
  await f.waitConverged('v2', ['off-1'], { timeoutMs: 120_000 });
  assert.ok(Date.parse(tailDispatched!.at) < reconnectAt, 'tail-1 was dispatched before off-1 came back');
  assert.equal(f.switchLog('off-1'), ['off-1-v1 switch', 'off-1-v2 switch']);
  await f.waitFor('the v2 rollout to converge with off-1', async (observe) => {
    const d = await f.rolloutFor('prod', 'v2');
    observe(d?.hosts.map((h) => [h.hostname, h.state]));
    return d?.hosts.find((h) => h.hostname === 'off-1')?.state === 'Converged' || d?.state === 'Converged';
  });
});

s.run();
