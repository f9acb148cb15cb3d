/**
 * The gate functions of gates.ts one by one, on a tick's working state: each blocks with its gate
 * name and readable reason, and passes (null) otherwise. The same gates through `reconcile`:
 * reconcile-gates.test.ts.
 */
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { indexFleet } from './fleet-index.ts';
import { budgetGate, channelEdgeGate, complianceGate, firstBlock, GATES, hostEdgeGate, onlineGate, quarantineGate, waveOrderGate } from './gates.ts';
import { makePlan, makeTick, type Plan, type Tick } from './tick.ts';
import { DEFAULT_RECONCILE_OPTIONS, type Observed } from './types.ts';
import { closureFor, makeFleet, makeObserved, makeRollout, oneChannelFleet, onlineHosts } from '../fixtures/reconciler-testkit.ts';
import type { FleetResolved } from '../protocol/schema.ts';

const T0 = Date.UTC(2026, 3, 24, 10, 0, 0);
const MIN = 60_000;

/** The working state of `channel`'s current rollout at T0, as `reconcile` builds it before any decision. */
function planOf(fleet: FleetResolved, observed: Observed, channel = 'stable'): { t: Tick; plan: Plan; at: (h: string) => number } {
  const idx = indexFleet(fleet);
  const t = makeTick(fleet, idx, observed, T0, DEFAULT_RECONCILE_OPTIONS);
  const ch = idx.channels.get(channel)!;
  const plan = makePlan(t, ch, ch.rolloutId!, observed.rollouts[ch.rolloutId!] ?? null);
  return { t, plan, at: (h) => ch.members.indexOf(h) };
}

const g = suite('gates');

g('GATES run in SPEC §4 order (online between wave order and host edges; the pin of issue 14 first)', () => {
  assert.equal(
    GATES.map((g) => g.name),
    ['pin', 'quarantine', 'channel-edge', 'wave-order', 'online', 'host-edge', 'budget', 'compliance'],
  );
});

g('quarantine: blocks a host whose target closure is quarantined on its channel', () => {
  const fleet = oneChannelFleet([['h1', 'h2']]);
  const r = makeRollout(fleet, 'stable', { atMs: T0 - MIN });
  const { t, plan, at } = planOf(fleet, makeObserved({ hosts: onlineHosts(['h1', 'h2'], T0), rolloutList: [r], quarantinedClosures: { stable: [closureFor('h1')] } }));
  assert.equal(quarantineGate(t, plan, at('h1')), {
    gate: 'quarantine',
    code: 'quarantined',
    reason: `closure ${closureFor('h1')} is quarantined on channel 'stable'; push a new closure to clear`,
  });
  assert.is(quarantineGate(t, plan, at('h2')), null);
});

g('channel edge: holds a Pending rollout until the gating channel converged on its current target', () => {
  const fleet = makeFleet({
    hosts: { a1: { channel: 'canary' }, b1: { channel: 'stable' } },
    channels: { canary: { waves: [['a1']] }, stable: { waves: [['b1']] } },
    channelEdges: [{ gates: 'canary', gated: 'stable', reason: 'canary first' }],
  });
  const canaryRef = indexFleet(fleet).channels.get('canary')!.targetRef!;
  const pending = makeRollout(fleet, 'stable', { atMs: T0 - MIN, state: 'Pending' });
  const waiting = planOf(fleet, makeObserved({ hosts: onlineHosts(['a1', 'b1'], T0), rolloutList: [pending] }));
  assert.equal(channelEdgeGate(waiting.t, waiting.plan, 0), {
    gate: 'channel-edge',
    gatedBy: 'canary',
    reason: `waiting for channel 'canary' to converge on ${canaryRef} (channel edge: canary first)`,
  });
  const converged = planOf(fleet, makeObserved({ hosts: onlineHosts(['a1', 'b1'], T0), rolloutList: [pending], lastConverged: { canary: canaryRef } }));
  assert.is(channelEdgeGate(converged.t, converged.plan, 0), null);
  const started = planOf(fleet, makeObserved({ hosts: onlineHosts(['a1', 'b1'], T0), rolloutList: [makeRollout(fleet, 'stable', { atMs: T0 - MIN })] }));
  assert.is(channelEdgeGate(started.t, started.plan, 0), null, 'a started rollout is past its channel edges');
});

g('wave order: blocks hosts of a wave above the current one (and above an unfinished earlier wave)', () => {
  const fleet = oneChannelFleet([['h1'], ['h2', 'h3'], ['h4']]);
  const r = makeRollout(fleet, 'stable', { atMs: T0 - MIN, currentWave: 1 });
  const { t, plan, at } = planOf(fleet, makeObserved({ hosts: onlineHosts(['h1', 'h2', 'h3', 'h4'], T0), rolloutList: [r] }));
  assert.is(waveOrderGate(t, plan, at('h1')), null);
  assert.is(waveOrderGate(t, plan, at('h2')), null);
  assert.equal(waveOrderGate(t, plan, at('h4')), { gate: 'wave-order', wave: 2, reason: 'wave 2 waits for wave 1 to be done (Soaked/Converged)' });
  const { plan: late, at: atLate } = planOf(fleet, makeObserved({ hosts: onlineHosts(['h1', 'h2', 'h3', 'h4'], T0), rolloutList: [r] }));
  late.minIncompleteWave = 0; // promoteWaves found wave 0 unfinished
  assert.equal(waveOrderGate(t, late, atLate('h2')), { gate: 'wave-order', wave: 1, reason: 'wave 1 waits for wave 0 to be done (Soaked/Converged)' });
  assert.is(waveOrderGate(t, late, atLate('h2')), waveOrderGate(t, late, atLate('h3')), 'one block per wave and tick');
});

g('online: blocks a host offline (before and past the grace) or never seen; passes one that checked in', () => {
  const fleet = oneChannelFleet([['h1', 'h2', 'h3', 'h4']]);
  const r = makeRollout(fleet, 'stable', { atMs: T0 - 60 * MIN });
  const hosts = { ...onlineHosts(['h1'], T0 - 10_000), ...onlineHosts(['h2'], T0 - 10 * MIN), ...onlineHosts(['h3'], T0 - 40 * MIN) };
  const { t, plan, at } = planOf(fleet, makeObserved({ hosts, rolloutList: [r] }));
  assert.is(onlineGate(t, plan, at('h1')), null);
  assert.equal(onlineGate(t, plan, at('h2')), { gate: 'online', code: 'offline', reason: 'no check-in for 600 s (offline after 180 s)' });
  assert.equal(onlineGate(t, plan, at('h3')), {
    gate: 'online',
    code: 'skipped-offline',
    reason: 'offline past the grace (1980 s): no check-in for 2400 s; no longer blocks its wave, gets the target when it returns',
  });
  assert.equal(onlineGate(t, plan, at('h4')), {
    gate: 'online',
    code: 'skipped-offline',
    reason: 'offline past the grace (1980 s): has not checked in since the rollout started (3600 s); no longer blocks its wave, gets the target when it returns',
  });
});

g('host edge: blocks until every gating host is Soaked/Converged; an edge into a later wave carries the deadlock', () => {
  const fleet = oneChannelFleet([['h1', 'h2', 'h3'], ['h4']], {
    edges: [
      { gated: 'h1', gates: 'h2', reason: 'db first' },
      { gated: 'h3', gates: 'h2' },
      { gated: 'h3', gates: 'h1' },
      { gated: 'h2', gates: 'h4' },
    ],
  });
  const r = makeRollout(fleet, 'stable', { atMs: T0 - MIN, hosts: { h1: 'Soaked' } });
  const { t, plan, at } = planOf(fleet, makeObserved({ hosts: onlineHosts(['h1', 'h2', 'h3', 'h4'], T0), rolloutList: [r] }));
  // h3 waits for h2 and h1 (sorted: h1 first); h1 is Soaked, so h2 blocks
  assert.equal(hostEdgeGate(t, plan, at('h3')), {
    gate: 'host-edge',
    code: 'host-edge',
    gatingHost: 'h2',
    deadlock: null,
    reason: "host-edge: gating host 'h2' not yet Soaked/Converged",
  });
  assert.equal(hostEdgeGate(t, plan, at('h2')), {
    gate: 'host-edge',
    code: 'host-edge',
    gatingHost: 'h4',
    deadlock: "host h2 (wave 0) waits for 'h4' in later wave 1",
    reason: "host-edge: gating host 'h4' not yet Soaked/Converged",
  });
  assert.is(hostEdgeGate(t, plan, at('h4')), null, 'no gating host');
  const soaked = makeRollout(fleet, 'stable', { atMs: T0 - MIN, hosts: { h2: 'Soaked' } });
  const after = planOf(fleet, makeObserved({ hosts: onlineHosts(['h1', 'h2', 'h3', 'h4'], T0), rolloutList: [soaked] }));
  assert.is(hostEdgeGate(after.t, after.plan, after.at('h1')), null);
  assert.is(hostEdgeGate(t, plan, at('h1'))?.reason, "host-edge: gating host 'h2' not yet Soaked/Converged (db first)", 'the edge reason, when given');
});

g('budget: blocks while a matching budget is full, counted across channels; hosts outside its selector pass', () => {
  const fleet = makeFleet({
    hosts: { a1: { channel: 'canary', tags: ['db'] }, b1: { channel: 'stable', tags: ['db'] }, b2: { channel: 'stable', tags: ['web'] } },
    channels: { canary: { waves: [['a1']] }, stable: { waves: [['b1', 'b2']] } },
    budgets: [{ selector: { tags: ['db'] }, maxInFlight: 1 }],
  });
  const busy = makeRollout(fleet, 'canary', { atMs: T0 - MIN, hosts: { a1: 'Activating' } });
  const stable = makeRollout(fleet, 'stable', { atMs: T0 - MIN });
  const observed = makeObserved({ hosts: onlineHosts(['a1', 'b1', 'b2'], T0), rolloutList: [busy, stable] });
  const { t, at } = planOf(fleet, observed);
  const idx = indexFleet(fleet);
  makePlan(t, idx.channels.get('canary')!, busy.id, busy); // counts a1 into the budget, as reconcile does
  const plan = makePlan(t, idx.channels.get('stable')!, stable.id, stable);
  assert.equal(budgetGate(t, plan, at('b1')), { gate: 'budget', budget: 0, reason: 'disruption budget #0 (tags=db) full: 1 in flight (of 2 matching hosts)' });
  assert.is(budgetGate(t, plan, at('b2')), null);
  const idle = planOf(fleet, makeObserved({ hosts: onlineHosts(['a1', 'b1', 'b2'], T0), rolloutList: [stable] }));
  assert.is(budgetGate(idle.t, idle.plan, idle.at('b1')), null);
});

g('compliance (enforce): blocks hosts of waves after the lowest wave with open failures', () => {
  const fleet = oneChannelFleet([['h1'], ['h2'], ['h3']], {}, { complianceMode: 'enforce' });
  const r = makeRollout(fleet, 'stable', { atMs: T0 - MIN, currentWave: 2 });
  const { t, plan, at } = planOf(fleet, makeObserved({ hosts: onlineHosts(['h1', 'h2', 'h3'], T0), rolloutList: [r] }));
  assert.is(complianceGate(t, plan, at('h3')), null, 'no failure noted');
  plan.minComplianceFailWave = 1; // noteComplianceFailures found one in wave 1
  assert.is(complianceGate(t, plan, at('h1')), null);
  assert.is(complianceGate(t, plan, at('h2')), null, 'its own wave is not blocked');
  assert.equal(complianceGate(t, plan, at('h3')), { gate: 'compliance', code: 'compliance', reason: 'compliance (enforce): open failures on hosts of wave 1 block wave 2' });
});

g('firstBlock: the first gate in order wins; null when every gate passes', () => {
  const fleet = oneChannelFleet([['h1', 'h2', 'h3']], { edges: [{ gated: 'h3', gates: 'h2' }] });
  const r = makeRollout(fleet, 'stable', { atMs: T0 - MIN });
  const hosts = { ...onlineHosts(['h2', 'h3'], T0), ...onlineHosts(['h1'], T0 - 10 * MIN) };
  const { t, plan, at } = planOf(fleet, makeObserved({ hosts, rolloutList: [r], quarantinedClosures: { stable: [closureFor('h1')] } }));
  assert.is(firstBlock(t, plan, at('h1'))?.gate, 'quarantine', 'quarantine before online');
  assert.is(firstBlock(t, plan, at('h3'))?.gate, 'host-edge');
  assert.is(firstBlock(t, plan, at('h2')), null);
  for (const h of ['h1', 'h2', 'h3']) {
    const viaList = GATES.map((gate) => gate.check(t, plan, at(h))).find((b) => b !== null) ?? null;
    assert.equal(firstBlock(t, plan, at(h)), viaList, `firstBlock agrees with GATES for ${h}`);
  }
});

g.run();
