/**
 * Golden cases `{fleet, observed, now} → actions` for every gate of SPEC §4, through `reconcile`
 * (the gate functions one by one: gates.test.ts).
 */
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { reconcile } from './reconcile.ts';
import { applyActions, releaseHost } from './apply.ts';
import { budgetLimit } from './fleet-index.ts';
import {
  actionsOf as of,
  closureFor,
  dispatchedHosts as dispatched,
  makeFleet,
  makeObserved,
  makeRollout,
  oneChannelFleet as oneChannel,
  onlineHost,
  onlineHosts,
  skipCodes as skipped,
} from '../fixtures/reconciler-testkit.ts';
import type { Observed } from './types.ts';

const T0 = Date.UTC(2026, 3, 24, 10, 0, 0);
const MIN = 60_000;

const online = (names: string[], atMs = T0 - 10_000, patch: Parameters<typeof onlineHosts>[2] = {}): Observed['hosts'] => onlineHosts(names, atMs, patch);

// ---------------------------------------------------------------------------------------------
const gates = suite('gates (SPEC §4 order)');

gates('quarantine: a quarantined closure is skipped, other hosts proceed', () => {
  const fleet = oneChannel([['h1', 'h2']]);
  const r = makeRollout(fleet, 'stable', { atMs: T0 - MIN });
  const obs = makeObserved({ hosts: online(['h1', 'h2']), rolloutList: [r], quarantinedClosures: { stable: [closureFor('h1')] } });
  const actions = reconcile(fleet, obs, T0);
  assert.equal(skipped(actions), { h1: 'quarantined' });
  assert.equal(dispatched(actions), ['h2']);
  const after = applyActions(obs, actions, T0);
  assert.is(after.rollouts[r.id]!.hosts['h1']!.skip?.code, 'quarantined');
  assert.equal(skipped(reconcile(fleet, after, T0 + MIN)), {}, 'skip_host is debounced');
});

gates('pin and quarantine come before wave order: a host of a later wave is reported pinned or quarantined, one without either is not reported', () => {
  const fleet = oneChannel([['h1'], ['h2', 'h3', 'h4']]);
  fleet.hosts['h2']!.pin = { commit: 'abc123', reason: 'hold', expiresAt: null };
  const r = makeRollout(fleet, 'stable', { atMs: T0 - MIN, hosts: { h1: 'Dispatched' } });
  const hosts = online(['h1', 'h2', 'h3', 'h4']);
  // Each alone: no quarantine for the pin, no pin for the quarantine.
  assert.equal(skipped(reconcile(fleet, makeObserved({ hosts, rolloutList: [r] }), T0)), { h2: 'pinned' });
  delete fleet.hosts['h2']!.pin;
  const unpinned = { ...fleet, hosts: { ...fleet.hosts } }; // a new fleet object: a new index, without the pin
  const actions = reconcile(unpinned, makeObserved({ hosts, rolloutList: [r], quarantinedClosures: { stable: [closureFor('h3')] } }), T0);
  assert.equal(skipped(actions), { h3: 'quarantined' });
  assert.equal(dispatched(actions), []);
  // Released from ordering by the operator: not held by wave order.
  const released = releaseHost(makeObserved({ hosts, rolloutList: [r] }), r.id, 'h4', 'test', null, T0)!;
  assert.equal(dispatched(reconcile(unpinned, released, T0)), ['h4']);
});

gates('quarantine wins over every later gate (offline, host edge, budget)', () => {
  const fleet = oneChannel([['h1', 'h2']], { edges: [{ gated: 'h1', gates: 'h2' }], budgets: [{ selector: { all: true }, maxInFlight: 1 }] });
  const r = makeRollout(fleet, 'stable', { atMs: T0 - MIN, hosts: { h2: 'Dispatched' } });
  const obs = makeObserved({ hosts: { h2: onlineHost(T0) }, rolloutList: [r], quarantinedClosures: { stable: [closureFor('h1')] } });
  assert.equal(skipped(reconcile(fleet, obs, T0)), { h1: 'quarantined' });
});

gates('offline: skipped and still blocks its wave within the grace', () => {
  const fleet = oneChannel([['h1', 'h2'], ['h3']]);
  const r = makeRollout(fleet, 'stable', { atMs: T0 - 10 * MIN, hosts: { h2: 'Soaked' } });
  const hosts = { ...online(['h2', 'h3']), h1: onlineHost(T0 - 5 * MIN) };
  const actions = reconcile(fleet, makeObserved({ hosts, rolloutList: [r] }), T0);
  assert.equal(skipped(actions), { h1: 'offline' });
  assert.equal(dispatched(actions), []);
  assert.equal(of(actions, 'promote_wave'), []);
});

gates('offline past the grace: listed skipped-offline, no longer blocks its wave, gets the target on return', () => {
  const fleet = oneChannel([['h1', 'h2'], ['h3']]);
  const r = makeRollout(fleet, 'stable', { atMs: T0 - 60 * MIN, hosts: { h2: 'Soaked' } });
  const hosts = { ...online(['h2', 'h3']), h1: onlineHost(T0 - 40 * MIN) };
  const obs = makeObserved({ hosts, rolloutList: [r] });
  const actions = reconcile(fleet, obs, T0);
  assert.equal(skipped(actions), { h1: 'skipped-offline' });
  assert.equal(of(actions, 'promote_wave').map((a) => a.toWave), [1]);
  assert.equal(dispatched(actions), ['h3']);
  // h3 soaks: the rollout converges without h1.
  let after = applyActions(obs, actions, T0);
  after = { ...after, rollouts: { ...after.rollouts, [r.id]: { ...after.rollouts[r.id]!, hosts: { ...after.rollouts[r.id]!.hosts, h3: { ...after.rollouts[r.id]!.hosts['h3']!, state: 'Soaked' } } } } };
  const conv = reconcile(fleet, after, T0 + MIN);
  assert.equal(
    conv.map((a) => a.kind),
    ['converge_rollout'],
  );
  after = applyActions(after, conv, T0 + MIN);
  assert.is(after.rollouts[r.id]!.hosts['h1']!.state, 'Queued');
  assert.is(after.rollouts[r.id]!.hosts['h1']!.skip?.code, 'skipped-offline');
  // h1 returns: dispatched in the converged rollout.
  after = { ...after, hosts: { ...after.hosts, h1: onlineHost(T0 + 2 * MIN) } };
  assert.equal(dispatched(reconcile(fleet, after, T0 + 2 * MIN)), ['h1']);
  // …and once healthy and soaked it is done as its peers are: Converged, not left Soaked.
  after = applyActions(after, reconcile(fleet, after, T0 + 2 * MIN), T0 + 2 * MIN);
  const h1 = after.rollouts[r.id]!.hosts['h1']!;
  after = { ...after, rollouts: { ...after.rollouts, [r.id]: { ...after.rollouts[r.id]!, hosts: { ...after.rollouts[r.id]!.hosts, h1: { ...h1, state: 'Healthy', enteredAtMs: T0 + 3 * MIN } } } } };
  const soak = reconcile(fleet, after, T0 + 4 * MIN);
  assert.equal(of(soak, 'soak_host').map((a) => a.host), ['h1']);
  after = applyActions(after, soak, T0 + 4 * MIN);
  assert.is(after.rollouts[r.id]!.state, 'Converged');
  assert.is(after.rollouts[r.id]!.hosts['h1']!.state, 'Converged');
});

gates('a host that went dark mid-activation keeps blocking its wave past the offline grace (the confirm deadline decides)', () => {
  const fleet = oneChannel([['h1', 'h2'], ['h3']]);
  for (const state of ['Activating', 'ConfirmWindow', 'Healthy'] as const) {
    const r = makeRollout(fleet, 'stable', { atMs: T0 - 60 * MIN, hosts: { h1: state, h2: 'Soaked' } });
    const hosts = { ...online(['h2', 'h3']), h1: onlineHost(T0 - 40 * MIN) };
    const actions = reconcile(fleet, makeObserved({ hosts, rolloutList: [r] }), T0);
    assert.equal(dispatched(actions), [], `${state}: wave 1 must wait`);
    assert.equal(of(actions, 'promote_wave'), [], `${state}: no promotion`);
  }
});

gates('offline thresholds come from the options object', () => {
  const fleet = oneChannel([['h1']]);
  const r = makeRollout(fleet, 'stable', { atMs: T0 - 60 * MIN });
  const obs = makeObserved({ hosts: { h1: onlineHost(T0 - 30_000) }, rolloutList: [r] });
  assert.equal(dispatched(reconcile(fleet, obs, T0)), ['h1']);
  assert.equal(skipped(reconcile(fleet, obs, T0, { offlineAfterMs: 20_000 })), { h1: 'offline' });
  assert.equal(skipped(reconcile(fleet, obs, T0, { offlineAfterMs: 20_000, offlineGraceMs: 5_000 })), { h1: 'skipped-offline' });
});

gates('never checked in: not dispatched (what it runs is unknown)', () => {
  const fleet = oneChannel([['h1']]);
  const r = makeRollout(fleet, 'stable', { atMs: T0 - MIN });
  assert.equal(skipped(reconcile(fleet, makeObserved({ rolloutList: [r] }), T0)), { h1: 'offline' });
});

gates('a Dispatched host that went offline has its dispatch withdrawn (frees its budget slot)', () => {
  const fleet = oneChannel([['h1', 'h2']], { budgets: [{ selector: { all: true }, maxInFlight: 1 }] });
  const r = makeRollout(fleet, 'stable', { atMs: T0 - 10 * MIN, hosts: { h1: 'Dispatched' } });
  const obs = makeObserved({ hosts: { h1: onlineHost(T0 - 5 * MIN), h2: onlineHost(T0) }, rolloutList: [r] });
  const actions = reconcile(fleet, obs, T0);
  assert.equal(skipped(actions), { h1: 'offline' });
  assert.equal(dispatched(actions), ['h2']);
  assert.is(applyActions(obs, actions, T0).rollouts[r.id]!.hosts['h1']!.state, 'Queued');
});

gates('a check-in stamped after now (another replica\'s clock, or merged during the pass) is online: a Dispatched host keeps its dispatch, a Queued one is dispatched', () => {
  // Issue 17: read as "never seen" (a negative unseen time), the dispatch was withdrawn and given again.
  const fleet = oneChannel([['h1', 'h2']]);
  const r = makeRollout(fleet, 'stable', { atMs: T0 - MIN, hosts: { h1: 'Dispatched' } });
  const obs = makeObserved({ hosts: { h1: onlineHost(T0 + 5), h2: onlineHost(T0 + 2_000) }, rolloutList: [r] });
  const actions = reconcile(fleet, obs, T0);
  assert.equal(skipped(actions), {});
  assert.equal(dispatched(actions), ['h2']);
  assert.is(applyActions(obs, actions, T0).rollouts[r.id]!.hosts['h1']!.state, 'Dispatched');
});

gates('already runs the target (CP rebuilt from empty): Soaked without a dispatch', () => {
  const fleet = oneChannel([['h1'], ['h2']]);
  const hosts = { h1: onlineHost(T0, { currentClosure: closureFor('h1') }), h2: onlineHost(T0, { currentClosure: closureFor('h2') }) };
  const obs = makeObserved({ hosts });
  const actions = reconcile(fleet, obs, T0);
  assert.equal(
    actions.map((a) => a.kind),
    ['open_rollout', 'promote_wave', 'soak_host', 'soak_host', 'converge_rollout'],
  );
  assert.equal(dispatched(actions), []);
  assert.match(of(actions, 'soak_host')[0]!.reason, /already runs the target/);
});

gates('host edge: blocks the gated host until its gating host is Soaked, then releases it', () => {
  const fleet = oneChannel([['h1', 'h2']], { edges: [{ gated: 'h1', gates: 'h2', reason: 'schema migration' }] }, { soakMinutes: 5 });
  const r = makeRollout(fleet, 'stable', { atMs: T0 - MIN });
  const obs = makeObserved({ hosts: online(['h1', 'h2']), rolloutList: [r] });
  const actions = reconcile(fleet, obs, T0);
  assert.equal(skipped(actions), { h1: 'host-edge' });
  assert.match(of(actions, 'skip_host')[0]!.reason, /gating host 'h2' not yet Soaked\/Converged \(schema migration\)/);
  assert.equal(dispatched(actions), ['h2']);
  const r2 = makeRollout(fleet, 'stable', { atMs: T0 - MIN, hosts: { h2: 'Healthy' } });
  assert.equal(dispatched(reconcile(fleet, makeObserved({ hosts: online(['h1', 'h2']), rolloutList: [r2] }), T0)), [], 'Healthy is not enough');
  const r3 = makeRollout(fleet, 'stable', { atMs: T0 - MIN, hosts: { h2: 'Soaked' } });
  assert.equal(dispatched(reconcile(fleet, makeObserved({ hosts: online(['h1', 'h2']), rolloutList: [r3] }), T0)), ['h1']);
});

gates('host edge against wave order is reported as a deadlock', () => {
  const fleet = oneChannel([['h1'], ['h2']], { edges: [{ gated: 'h1', gates: 'h2' }] });
  const r = makeRollout(fleet, 'stable', { atMs: T0 - MIN });
  const actions = reconcile(fleet, makeObserved({ hosts: online(['h1', 'h2']), rolloutList: [r] }), T0);
  assert.equal(of(actions, 'wave_blocked').map((a) => a.code), ['host-edge-deadlock']);
});

gates('channel edge: the gated channel defers (debounced) until the gating channel converged, then starts', () => {
  const fleet = makeFleet({
    hosts: { a1: { channel: 'canary' }, b1: { channel: 'prod' } },
    channels: { canary: { waves: [['a1']] }, prod: { waves: [['b1']] } },
    channelEdges: [{ gates: 'canary', gated: 'prod', reason: 'canary first' }],
  });
  let obs = makeObserved({ hosts: online(['a1', 'b1']) });
  let actions = reconcile(fleet, obs, T0);
  const prodOpen = of(actions, 'open_rollout').find((a) => a.channel === 'prod')!;
  assert.equal(of(actions, 'rollout_deferred').map((a) => [a.channel, a.gatedBy]), [['prod', 'canary']]);
  assert.match(of(actions, 'rollout_deferred')[0]!.reason, /canary first/);
  assert.equal(dispatched(actions), ['a1']);
  obs = applyActions(obs, actions, T0);
  assert.is(obs.rollouts[prodOpen.rolloutId]!.state, 'Pending');
  actions = reconcile(fleet, obs, T0 + MIN);
  assert.equal(actions, [], 'deferral is debounced');
  // canary host soaks → canary converges → prod starts in the same tick.
  const cid = of(reconcile(fleet, makeObserved(), T0), 'open_rollout').find((a) => a.channel === 'canary')!.rolloutId;
  const cr = obs.rollouts[cid]!;
  obs = { ...obs, rollouts: { ...obs.rollouts, [cid]: { ...cr, hosts: { a1: { ...cr.hosts['a1']!, state: 'Soaked' } } } } };
  actions = reconcile(fleet, obs, T0 + 2 * MIN);
  assert.equal(
    actions.map((a) => a.kind),
    ['converge_rollout', 'promote_wave', 'dispatch_host'],
  );
  assert.equal(dispatched(actions), ['b1']);
  obs = applyActions(obs, actions, T0 + 2 * MIN);
  assert.is(obs.deferrals['prod'], undefined, 'deferral cleared on start');
});

gates('budget: blocks at maxInFlight, counted across channels, and releases below it', () => {
  const fleet = makeFleet({
    hosts: { a1: { channel: 'a' }, a2: { channel: 'a' }, b1: { channel: 'b' }, b2: { channel: 'b' } },
    channels: { a: { waves: [['a1', 'a2']], soakMinutes: 10 }, b: { waves: [['b1', 'b2']], soakMinutes: 10 } },
    budgets: [{ selector: { all: true }, maxInFlight: 2 }],
  });
  const ra = makeRollout(fleet, 'a', { atMs: T0 - MIN, hosts: { a1: 'Activating' } });
  const rb = makeRollout(fleet, 'b', { atMs: T0 - MIN, hosts: { b1: 'Healthy' } });
  const obs = makeObserved({ hosts: online(['a1', 'a2', 'b1', 'b2']), rolloutList: [ra, rb] });
  const actions = reconcile(fleet, obs, T0);
  assert.equal(dispatched(actions), []);
  const blocked = of(actions, 'wave_blocked');
  assert.equal(blocked.map((a) => [a.code, a.hosts]), [
    ['budget', 1],
    ['budget', 1],
  ]);
  assert.match(blocked[0]!.reason, /2\/2 in flight/);
  // one slot frees (a1 soaked) → exactly one more dispatch, in channel order.
  const ra2 = makeRollout(fleet, 'a', { atMs: T0 - MIN, hosts: { a1: 'Soaked' } });
  const actions2 = reconcile(fleet, makeObserved({ hosts: online(['a1', 'a2', 'b1', 'b2']), rolloutList: [ra2, rb] }), T0);
  assert.equal(dispatched(actions2), ['a2']);
});

gates('budget: a slot freed by a soak in this tick is reused in this tick', () => {
  const fleet = oneChannel([['h1', 'h2']], { budgets: [{ selector: { all: true }, maxInFlight: 1 }] });
  const r = makeRollout(fleet, 'stable', { atMs: T0 - MIN, hosts: { h1: { state: 'Healthy', enteredAtMs: T0 - MIN } } });
  const actions = reconcile(fleet, makeObserved({ hosts: online(['h1', 'h2']), rolloutList: [r] }), T0);
  assert.equal(
    actions.map((a) => a.kind),
    ['soak_host', 'dispatch_host'],
  );
});

gates('percentage budget: ceil(pct × matching / 100), the smaller of both limits, never below 1', () => {
  assert.is(budgetLimit({ maxInFlight: null, maxInFlightPct: 25 }, 10), 3);
  assert.is(budgetLimit({ maxInFlight: 2, maxInFlightPct: 25 }, 10), 2);
  assert.is(budgetLimit({ maxInFlight: 5, maxInFlightPct: 10 }, 10), 1);
  assert.is(budgetLimit({ maxInFlight: null, maxInFlightPct: 1 }, 3), 1);
  assert.is(budgetLimit({ maxInFlight: 0, maxInFlightPct: null }, 3), 1);
  const names = Array.from({ length: 10 }, (_, i) => `h${i}`);
  const fleet = oneChannel([names], { budgets: [{ selector: { channel: 'stable' }, maxInFlightPct: 25 }] });
  const r = makeRollout(fleet, 'stable', { atMs: T0 - MIN });
  const actions = reconcile(fleet, makeObserved({ hosts: online(names), rolloutList: [r] }), T0);
  assert.equal(dispatched(actions), ['h0', 'h1', 'h2']);
  assert.equal(of(actions, 'wave_blocked').map((a) => a.hosts), [7]);
});

gates('budget selector: tags; hosts outside the selector are not limited', () => {
  const fleet = makeFleet({
    hosts: { db1: { channel: 's', tags: ['db'] }, db2: { channel: 's', tags: ['db'] }, web1: { channel: 's', tags: ['web'] } },
    channels: { s: { waves: [['db1', 'db2', 'web1']] } },
    budgets: [{ selector: { tags: ['db'] }, maxInFlight: 1 }],
  });
  const r = makeRollout(fleet, 's', { atMs: T0 - MIN });
  assert.equal(dispatched(reconcile(fleet, makeObserved({ hosts: online(['db1', 'db2', 'web1']), rolloutList: [r] }), T0)), ['db1', 'web1']);
});

gates('compliance (enforce): open failures in an earlier wave block later waves; permissive does not', () => {
  for (const mode of ['enforce', 'permissive'] as const) {
    const fleet = oneChannel([['h1'], ['h2']], {}, { complianceMode: mode });
    const r = makeRollout(fleet, 'stable', { atMs: T0 - MIN, currentWave: 1, hosts: { h1: 'Soaked' } });
    const hosts = { h1: onlineHost(T0, { complianceFailures: ['cis-1.1.1'] }), h2: onlineHost(T0) };
    const actions = reconcile(fleet, makeObserved({ hosts, rolloutList: [r] }), T0);
    if (mode === 'enforce') {
      assert.equal(skipped(actions), { h2: 'compliance' });
      assert.equal(dispatched(actions), []);
    } else assert.equal(dispatched(actions), ['h2']);
  }
});

gates('compliance health gate (issue 15): enforce fails a Healthy canary with failing controls → quarantine, halt, rollback; permissive soaks it; disabled only with complianceProbes.required', () => {
  const cases = [
    { mode: 'enforce', required: false, fails: true },
    { mode: 'permissive', required: true, fails: false },
    { mode: 'disabled', required: true, fails: true },
    { mode: 'disabled', required: false, fails: false },
  ] as const;
  for (const c of cases) {
    const fleet = oneChannel([['h1'], ['h2']], {}, { complianceMode: c.mode, complianceProbesRequired: c.required, onHealthFailure: 'rollback-and-halt' });
    const r = makeRollout(fleet, 'stable', { atMs: T0 - MIN, hosts: { h1: 'Healthy' } });
    const hosts = { h1: onlineHost(T0, { currentClosure: closureFor('h1'), complianceFailures: ['ssh-no-root-login'] }), h2: onlineHost(T0) };
    const actions = reconcile(fleet, makeObserved({ hosts, rolloutList: [r] }), T0);
    const label = `${c.mode} required=${c.required}`;
    if (c.fails) {
      assert.equal(of(actions, 'fail_host').map((a) => a.host), ['h1'], label);
      assert.ok(of(actions, 'fail_host')[0]!.reason.includes('compliance probes failing: ssh-no-root-login'), label);
      assert.equal(of(actions, 'halt_rollout').length, 1, label);
      assert.equal(of(actions, 'rollback_host').map((a) => a.host), ['h1'], label);
      assert.equal(of(actions, 'quarantine_closure').length, 1, label);
      assert.equal(dispatched(actions), [], `${label}: later wave untouched`);
    } else {
      assert.equal(of(actions, 'fail_host'), [], label);
      assert.equal(of(actions, 'soak_host').map((a) => a.host), ['h1'], label);
    }
  }
});

gates('budget wins over compliance (first block wins) and does not consume a slot', () => {
  const fleet = oneChannel([['h1'], ['h2', 'h3']], { budgets: [{ selector: { hosts: ['h2'] }, maxInFlight: 1 }] }, { complianceMode: 'enforce' });
  const r = makeRollout(fleet, 'stable', { atMs: T0 - MIN, currentWave: 1, hosts: { h1: 'Soaked' } });
  const hosts = { h1: onlineHost(T0, { complianceFailures: ['x'] }), h2: onlineHost(T0), h3: onlineHost(T0) };
  const actions = reconcile(fleet, makeObserved({ hosts, rolloutList: [r] }), T0);
  assert.equal(skipped(actions), { h2: 'compliance', h3: 'compliance' });
});

gates.run();
