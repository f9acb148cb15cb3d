/**
 * Golden cases `{fleet, observed, now} → actions` for every transition and gate of SPEC §4.
 */
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { reconcile } from './reconcile.ts';
import { applyActions } from './apply.ts';
import { budgetLimit, computeTargetRef, rolloutIdOf } from './fleet-index.ts';
import { closureFor, makeFleet, makeObserved, makeRollout, onlineHost, type FleetSpec } from '../fixtures/reconciler-testkit.ts';
import type { Action, Observed } from './types.ts';

const T0 = Date.UTC(2026, 3, 24, 10, 0, 0);
const MIN = 60_000;

type K = Action['kind'];
const of = <k extends K>(actions: Action[], kind: k): Extract<Action, { kind: k }>[] =>
  actions.filter((a): a is Extract<Action, { kind: k }> => a.kind === kind);
const dispatched = (actions: Action[]): string[] => of(actions, 'dispatch_host').map((a) => a.host);
const skipped = (actions: Action[]): Record<string, string> => Object.fromEntries(of(actions, 'skip_host').map((a) => [a.host, a.code]));

function online(names: string[], atMs = T0 - 10_000, patch: Parameters<typeof onlineHost>[1] = {}): Observed['hosts'] {
  return Object.fromEntries(names.map((h) => [h, onlineHost(atMs, patch)]));
}

const oneChannel = (waves: string[][], extra: Partial<FleetSpec> = {}, ch: Partial<FleetSpec['channels'][string]> = {}): ReturnType<typeof makeFleet> =>
  makeFleet({
    hosts: Object.fromEntries(waves.flat().map((h) => [h, { channel: 'stable' }])),
    channels: { stable: { waves, ...ch } },
    ...extra,
  });

// ---------------------------------------------------------------------------------------------
const rollout = suite('rollout lifecycle');

rollout('open: a channel target with no rollout opens one (Pending), starts it and dispatches wave 0', () => {
  const fleet = oneChannel([['h1'], ['h2']]);
  const obs = makeObserved({ hosts: online(['h1', 'h2']) });
  const actions = reconcile(fleet, obs, T0);
  assert.equal(
    actions.map((a) => a.kind),
    ['open_rollout', 'promote_wave', 'dispatch_host'],
  );
  const open = of(actions, 'open_rollout')[0]!;
  assert.is(open.rolloutId, `stable@${open.targetRef}`);
  assert.equal(open.hosts, [
    { host: 'h1', closure: closureFor('h1'), wave: 0 },
    { host: 'h2', closure: closureFor('h2'), wave: 1 },
  ]);
  assert.equal(dispatched(actions), ['h1']);
  const after = applyActions(obs, actions, T0);
  const r = after.rollouts[open.rolloutId]!;
  assert.is(r.state, 'Executing');
  assert.is(r.hosts['h1']!.state, 'Dispatched');
  assert.is(r.hosts['h2']!.state, 'Queued');
  assert.equal(
    r.history.filter((x) => x.host === null).map((x) => [x.from, x.to]),
    [
      [null, 'Pending'],
      ['Pending', 'Executing'],
    ],
  );
  assert.equal(reconcile(fleet, after, T0), [], 'fixpoint: nothing more at the same time');
});

rollout('targetRef: 16 hex of sha256 over the sorted {host: closure}; independent of order; hosts with null closure excluded', () => {
  const a = computeTargetRef([
    ['b', 'x'],
    ['a', 'y'],
  ]);
  const b = computeTargetRef([
    ['a', 'y'],
    ['b', 'x'],
  ]);
  assert.is(a, b);
  assert.match(a, /^[0-9a-f]{16}$/);
  assert.is.not(a, computeTargetRef([['a', 'y']]));
  const fleet = makeFleet({ hosts: { h1: { channel: 's' }, h2: { channel: 's', closure: null } }, channels: { s: { waves: [['h1', 'h2']] } } });
  const open = of(reconcile(fleet, makeObserved(), T0), 'open_rollout')[0]!;
  assert.equal(
    open.hosts.map((m) => m.host),
    ['h1'],
  );
  assert.is(open.targetRef, computeTargetRef([['h1', closureFor('h1')]]));
  assert.is(rolloutIdOf('s', open.targetRef), open.rolloutId);
});

rollout('queued → dispatched (every gate passes), with the signed closure', () => {
  const fleet = oneChannel([['h1', 'h2']]);
  const r = makeRollout(fleet, 'stable', { atMs: T0 - MIN });
  const actions = reconcile(fleet, makeObserved({ hosts: online(['h1', 'h2']), rolloutList: [r] }), T0);
  assert.equal(dispatched(actions), ['h1', 'h2']);
  for (const a of of(actions, 'dispatch_host')) assert.is(a.closure, fleet.hosts[a.host]!.closureHash);
});

rollout('soak not elapsed: Healthy stays Healthy', () => {
  const fleet = oneChannel([['h1']], {}, { soakMinutes: 5 });
  const r = makeRollout(fleet, 'stable', { atMs: T0 - 10 * MIN, hosts: { h1: { state: 'Healthy', enteredAtMs: T0 - 2 * MIN } } });
  assert.equal(reconcile(fleet, makeObserved({ hosts: online(['h1']), rolloutList: [r] }), T0), []);
});

rollout('soak elapsed with probes observed and passing: soak_host, then the last wave converges', () => {
  const fleet = oneChannel([['h1']], {}, { soakMinutes: 5 });
  const r = makeRollout(fleet, 'stable', { atMs: T0 - 10 * MIN, hosts: { h1: { state: 'Healthy', enteredAtMs: T0 - 5 * MIN } } });
  const obs = makeObserved({ hosts: online(['h1']), rolloutList: [r] });
  const actions = reconcile(fleet, obs, T0);
  assert.equal(
    actions.map((a) => a.kind),
    ['soak_host', 'converge_rollout'],
  );
  const after = applyActions(obs, actions, T0);
  assert.is(after.rollouts[r.id]!.state, 'Converged');
  assert.is(after.rollouts[r.id]!.hosts['h1']!.state, 'Converged');
  assert.is(after.lastConverged['stable'], r.targetRef);
});

rollout('soak needs probes observed at least once', () => {
  const fleet = oneChannel([['h1']], {}, { soakMinutes: 5 });
  const r = makeRollout(fleet, 'stable', { atMs: T0 - 10 * MIN, hosts: { h1: { state: 'Healthy', enteredAtMs: T0 - 9 * MIN } } });
  const obs = makeObserved({ hosts: online(['h1'], T0 - 10_000, { probes: { observed: false, passing: false } }), rolloutList: [r] });
  assert.equal(reconcile(fleet, obs, T0), []);
});

rollout('soak needs healthGate.systemdFailedUnits.max to hold; past the soak a failing gate fails the host, quarantines, halts', () => {
  const fleet = oneChannel([['h1'], ['h2']], {}, { soakMinutes: 5, failedUnitsMax: 0 });
  const r = makeRollout(fleet, 'stable', { atMs: T0 - 10 * MIN, hosts: { h1: { state: 'Healthy', enteredAtMs: T0 - 2 * MIN } } });
  const hosts = online(['h1', 'h2'], T0 - 10_000, { failedUnits: ['nginx.service'] });
  assert.equal(reconcile(fleet, makeObserved({ hosts, rolloutList: [r] }), T0), [], 'within the soak: wait');
  const later = T0 + 4 * MIN;
  const hosts2 = online(['h1', 'h2'], later - 10_000, { failedUnits: ['nginx.service'] });
  const obs = makeObserved({ hosts: hosts2, rolloutList: [r] });
  const actions = reconcile(fleet, obs, later);
  assert.equal(
    actions.map((a) => a.kind),
    ['fail_host', 'quarantine_closure', 'halt_rollout'],
  );
  assert.match(of(actions, 'fail_host')[0]!.reason, /1 failed systemd units \(max 0\)/);
  const after = applyActions(obs, actions, later);
  assert.equal(after.quarantinedClosures['stable'], [closureFor('h1')]);
  assert.is(after.rollouts[r.id]!.state, 'Halted');
  assert.is(after.rollouts[r.id]!.hosts['h1']!.state, 'Failed');
  assert.equal(reconcile(fleet, after, later), [], 'halted: nothing more, h2 of wave 1 never touched');
});

rollout('probes failing past the soak: health failure (not a soak)', () => {
  const fleet = oneChannel([['h1']], {}, { soakMinutes: 1 });
  const r = makeRollout(fleet, 'stable', { atMs: T0 - 10 * MIN, hosts: { h1: { state: 'Healthy', enteredAtMs: T0 - 2 * MIN } } });
  const obs = makeObserved({ hosts: online(['h1'], T0 - 1000, { probes: { observed: true, passing: false } }), rolloutList: [r] });
  const actions = reconcile(fleet, obs, T0);
  assert.equal(of(actions, 'fail_host').map((a) => a.host), ['h1']);
  assert.equal(of(actions, 'soak_host'), []);
});

rollout('wave promotion: wave 0 Soaked → promote to 1 and dispatch wave 1 in the same tick', () => {
  const fleet = oneChannel([['h1'], ['h2', 'h3']]);
  const r = makeRollout(fleet, 'stable', { atMs: T0 - MIN, hosts: { h1: 'Soaked' } });
  const actions = reconcile(fleet, makeObserved({ hosts: online(['h1', 'h2', 'h3']), rolloutList: [r] }), T0);
  assert.equal(
    actions.map((a) => a.kind),
    ['promote_wave', 'dispatch_host', 'dispatch_host'],
  );
  const p = of(actions, 'promote_wave')[0]!;
  assert.equal([p.fromWave, p.toWave], [0, 1]);
});

rollout('wave order: a host of wave 1 waits while a host of wave 0 is in flight', () => {
  const fleet = oneChannel([['h1', 'h2'], ['h3']]);
  const r = makeRollout(fleet, 'stable', { atMs: T0 - MIN, hosts: { h1: 'Soaked', h2: 'ConfirmWindow' } });
  assert.equal(reconcile(fleet, makeObserved({ hosts: online(['h1', 'h2', 'h3']), rolloutList: [r] }), T0), []);
});

rollout('convergence: last wave done → converge_rollout; earlier Converged hosts stay', () => {
  const fleet = oneChannel([['h1'], ['h2'], ['h3']]);
  const r = makeRollout(fleet, 'stable', { atMs: T0 - MIN, currentWave: 2, hosts: { h1: 'Converged', h2: 'Converged', h3: 'Soaked' } });
  const actions = reconcile(fleet, makeObserved({ hosts: online(['h1', 'h2', 'h3']), rolloutList: [r] }), T0);
  assert.equal(
    actions.map((a) => a.kind),
    ['converge_rollout'],
  );
});

rollout('halt: a Failed host halts the rollout (policy halt), no rollback, no dispatch', () => {
  const fleet = oneChannel([['h1', 'h2']]);
  const r = makeRollout(fleet, 'stable', { atMs: T0 - MIN, hosts: { h1: 'Failed', h2: 'Dispatched' } });
  const obs = makeObserved({ hosts: online(['h1', 'h2']), rolloutList: [r] });
  const actions = reconcile(fleet, obs, T0);
  assert.equal(
    actions.map((a) => a.kind),
    ['halt_rollout'],
  );
  assert.is(of(actions, 'halt_rollout')[0]!.reason, 'host h1 failed (policy: halt)');
  const after = applyActions(obs, actions, T0);
  assert.is(after.rollouts[r.id]!.state, 'Halted');
  assert.is(after.rollouts[r.id]!.hosts['h2']!.state, 'Queued', 'pending dispatch cancelled');
  assert.equal(reconcile(fleet, after, T0 + MIN), []);
});

rollout('halt: a Reverted host (deadline expired / magic rollback) halts too', () => {
  const fleet = oneChannel([['h1', 'h2']]);
  const r = makeRollout(fleet, 'stable', { atMs: T0 - MIN, hosts: { h1: 'Reverted' } });
  const actions = reconcile(fleet, makeObserved({ hosts: online(['h1', 'h2']), rolloutList: [r] }), T0);
  assert.equal(
    actions.map((a) => a.kind),
    ['halt_rollout'],
  );
  assert.is(of(actions, 'halt_rollout')[0]!.reason, 'host h1 reverted (policy: halt)');
});

rollout('rollback-and-halt: halt and roll the Failed host back, once', () => {
  const fleet = oneChannel([['h1']], {}, { onHealthFailure: 'rollback-and-halt' });
  const r = makeRollout(fleet, 'stable', { atMs: T0 - MIN, hosts: { h1: 'Failed' } });
  const obs = makeObserved({ hosts: online(['h1']), rolloutList: [r] });
  const actions = reconcile(fleet, obs, T0);
  assert.equal(
    actions.map((a) => a.kind),
    ['halt_rollout', 'rollback_host'],
  );
  assert.is(of(actions, 'rollback_host')[0]!.closure, closureFor('h1'));
  const after = applyActions(obs, actions, T0);
  assert.ok(after.rollouts[r.id]!.hosts['h1']!.rollbackRequested);
  assert.equal(reconcile(fleet, after, T0 + MIN), [], 'not requested twice');
});

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

gates('budget wins over compliance (first block wins) and does not consume a slot', () => {
  const fleet = oneChannel([['h1'], ['h2', 'h3']], { budgets: [{ selector: { hosts: ['h2'] }, maxInFlight: 1 }] }, { complianceMode: 'enforce' });
  const r = makeRollout(fleet, 'stable', { atMs: T0 - MIN, currentWave: 1, hosts: { h1: 'Soaked' } });
  const hosts = { h1: onlineHost(T0, { complianceFailures: ['x'] }), h2: onlineHost(T0), h3: onlineHost(T0) };
  const actions = reconcile(fleet, makeObserved({ hosts, rolloutList: [r] }), T0);
  assert.equal(skipped(actions), { h2: 'compliance', h3: 'compliance' });
});

// ---------------------------------------------------------------------------------------------
const change = suite('supersession, pause, trust');

change('supersession: a new signed target mid-rollout supersedes the old rollout and opens the new one', () => {
  const fleet1 = oneChannel([['h1', 'h2']]);
  const r = makeRollout(fleet1, 'stable', { atMs: T0 - MIN, hosts: { h1: 'Healthy', h2: 'Dispatched' } });
  const fleet2 = makeFleet({ hosts: { h1: { channel: 'stable', closure: closureFor('h1', 2) }, h2: { channel: 'stable' } }, channels: { stable: { waves: [['h1', 'h2']] } } });
  const obs = makeObserved({ hosts: online(['h1', 'h2']), rolloutList: [r] });
  const actions = reconcile(fleet2, obs, T0);
  assert.equal(actions.slice(0, 3).map((a) => a.kind), ['supersede_rollout', 'open_rollout', 'promote_wave']);
  const sup = of(actions, 'supersede_rollout')[0]!;
  assert.is(sup.rolloutId, r.id);
  assert.is.not(sup.byTargetRef, r.targetRef);
  assert.equal(dispatched(actions), ['h1', 'h2'], 'superseded in-flight hosts do not hold budget slots; new closures dispatched');
  assert.is(of(actions, 'dispatch_host')[0]!.closure, closureFor('h1', 2));
  const after = applyActions(obs, actions, T0);
  assert.is(after.rollouts[r.id]!.state, 'Superseded');
  assert.is(reconcile(fleet2, after, T0).length, 0);
});

change('supersession: a channel that left the fleet supersedes its rollout (byTargetRef null)', () => {
  const fleet1 = makeFleet({ hosts: { h1: { channel: 'gone' } }, channels: { gone: { waves: [['h1']] } } });
  const r = makeRollout(fleet1, 'gone', { atMs: T0 - MIN });
  const fleet2 = makeFleet({ hosts: { h1: { channel: 'stable' } }, channels: { stable: { waves: [['h1']] } } });
  const actions = reconcile(fleet2, makeObserved({ hosts: online(['h1']), rolloutList: [r] }), T0);
  const sup = of(actions, 'supersede_rollout');
  assert.equal(sup.map((a) => [a.rolloutId, a.byTargetRef]), [[r.id, null]]);
});

change('supersession: a target that returns reopens the superseded record and keeps its history', () => {
  const fleet = oneChannel([['h1']]);
  const r = { ...makeRollout(fleet, 'stable', { atMs: T0 - MIN, state: 'Superseded' }), history: [{ atMs: 1, host: null, from: null, to: 'Pending' as const, wave: 0, reason: 'x' }] };
  const obs = makeObserved({ hosts: online(['h1']), rolloutList: [r] });
  const actions = reconcile(fleet, obs, T0);
  assert.equal(actions.map((a) => a.kind), ['open_rollout', 'promote_wave', 'dispatch_host']);
  const after = applyActions(obs, actions, T0);
  assert.is(after.rollouts[r.id]!.history.length, 4, 'old entry + reopen + start + dispatch');
  assert.is(after.rollouts[r.id]!.history[1]!.from, 'Superseded');
});

change('pause: the paused channel pauses its rollout, cancels pending dispatches, dispatches nothing; resume continues', () => {
  const fleet = oneChannel([['h1', 'h2', 'h3']]);
  const r = makeRollout(fleet, 'stable', { atMs: T0 - MIN, hosts: { h1: 'Dispatched', h2: 'Activating' } });
  let obs = makeObserved({ hosts: online(['h1', 'h2', 'h3']), rolloutList: [r], pausedChannels: { stable: { sinceMs: T0, reason: 'incident 42' } } });
  let actions = reconcile(fleet, obs, T0);
  assert.equal(actions.map((a) => a.kind), ['pause_rollout']);
  assert.match(of(actions, 'pause_rollout')[0]!.reason, /incident 42/);
  obs = applyActions(obs, actions, T0);
  assert.is(obs.rollouts[r.id]!.state, 'Paused');
  assert.is(obs.rollouts[r.id]!.hosts['h1']!.state, 'Queued');
  assert.is(obs.rollouts[r.id]!.hosts['h2']!.state, 'Activating', 'an activation under way is left to its deadline');
  assert.equal(reconcile(fleet, obs, T0 + MIN), []);
  obs = { ...obs, pausedChannels: {} };
  actions = reconcile(fleet, obs, T0 + 2 * MIN);
  assert.equal(actions.map((a) => a.kind), ['resume_rollout', 'dispatch_host', 'dispatch_host']);
  assert.equal(dispatched(actions), ['h1', 'h3']);
});

change('pause: a new target on a paused channel opens paused and does not start', () => {
  const fleet = oneChannel([['h1']]);
  const obs = makeObserved({ hosts: online(['h1']), pausedChannels: { stable: { sinceMs: T0, reason: 'freeze' } } });
  const actions = reconcile(fleet, obs, T0);
  assert.equal(actions.map((a) => a.kind), ['open_rollout', 'pause_rollout']);
  const after = applyActions(obs, actions, T0);
  assert.equal(reconcile(fleet, after, T0), []);
  const resumed = reconcile(fleet, { ...after, pausedChannels: {} }, T0 + MIN);
  assert.equal(resumed.map((a) => a.kind), ['resume_rollout', 'promote_wave', 'dispatch_host']);
});

change('pause: a converged rollout does not hand a returning straggler its target while paused', () => {
  const fleet = oneChannel([['h1', 'h2']]);
  const r = makeRollout(fleet, 'stable', { atMs: T0 - MIN, state: 'Converged', hosts: { h1: 'Converged' } });
  const obs = makeObserved({ hosts: online(['h1', 'h2']), rolloutList: [r], pausedChannels: { stable: { sinceMs: T0, reason: 'x' } } });
  assert.equal(reconcile(fleet, obs, T0), []);
  assert.equal(dispatched(reconcile(fleet, { ...obs, pausedChannels: {} }, T0)), ['h2']);
});

change('rotate_trust_root once the successor retireAt passed', () => {
  const fleet = oneChannel([['h1']]);
  const obs = makeObserved({ trust: { successorRetireAtMs: T0 + MIN } });
  assert.equal(of(reconcile(fleet, obs, T0), 'rotate_trust_root'), []);
  const actions = reconcile(fleet, obs, T0 + MIN);
  assert.is(of(actions, 'rotate_trust_root').length, 1);
  assert.equal(of(reconcile(fleet, applyActions(obs, actions, T0 + MIN), T0 + MIN), 'rotate_trust_root'), []);
});

change('hosts with a null closure are not part of any rollout; a channel with none opens nothing', () => {
  const fleet = makeFleet({ hosts: { h1: { channel: 's', closure: null } }, channels: { s: { waves: [['h1']] } } });
  assert.equal(reconcile(fleet, makeObserved({ hosts: online(['h1']) }), T0), []);
});

change('a host no wave selects gets the target in an implicit last wave', () => {
  const fleet = makeFleet({ hosts: { h1: { channel: 's' }, h2: { channel: 's' } }, channels: { s: { waves: [['h1']] } } });
  const open = of(reconcile(fleet, makeObserved({ hosts: online(['h1', 'h2']) }), T0), 'open_rollout')[0]!;
  assert.is(open.waveCount, 2);
  assert.equal(open.hosts.map((m) => m.wave), [0, 1]);
});

rollout.run();
gates.run();
change.run();
