/**
 * Golden cases `{fleet, observed, now} → actions` for every transition of SPEC §4 (the gates'
 * golden cases are in reconcile-gates.test.ts).
 */
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { reconcile } from './reconcile.ts';
import { applyActions } from './apply.ts';
import { computeTargetRef, rolloutIdOf } from './fleet-index.ts';
import {
  actionsOf as of,
  closureFor,
  dispatchedHosts as dispatched,
  makeFleet,
  makeObserved,
  makeRollout,
  oneChannelFleet as oneChannel,
  onlineHosts,
} from '../fixtures/reconciler-testkit.ts';
import type { Observed } from './types.ts';

const T0 = Date.UTC(2026, 3, 24, 10, 0, 0);
const MIN = 60_000;

const online = (names: string[], atMs = T0 - 10_000, patch: Parameters<typeof onlineHosts>[2] = {}): Observed['hosts'] => onlineHosts(names, atMs, patch);

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
  const hosts = online(['h1', 'h2']);
  hosts['h1'] = { ...hosts['h1']!, currentClosure: fleet.hosts['h1']!.closureHash }; // runs its target: not drifted
  const obs = makeObserved({ hosts, rolloutList: [r], pausedChannels: { stable: { sinceMs: T0, reason: 'x' } } });
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
change.run();
