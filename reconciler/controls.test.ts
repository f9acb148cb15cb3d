/**
 * Examples of the issue-14 controls: PendingReboot, pins, change windows, drift, stalls and the
 * operator's release (`rollout skip`).
 */
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import type { FleetResolved } from '../protocol/schema.ts';
import { actionsOf, dispatchedHosts, makeObserved, makeRollout, oneChannelFleet, onlineHosts, skipCodes } from '../fixtures/reconciler-testkit.ts';
import { applyActions, applyHostEvent, approveRollout, releaseHost } from './apply.ts';
import { reconcile } from './reconcile.ts';
import { simulate } from './simulate.ts';
import type { Observed } from './types.ts';

const T0 = Date.UTC(2026, 0, 1, 12, 0, 0); // Thursday 12:00 UTC
const MIN = 60_000;

function withChannel(fleet: FleetResolved, patch: Partial<FleetResolved['channels'][string]>): FleetResolved {
  const f = structuredClone(fleet);
  Object.assign(f.channels['stable']!, patch);
  return f;
}

const c = suite('reconciler controls (issue 14)');

c('PendingReboot holds its budget slot, has no deadline, and a confirm after the boot makes it Healthy', () => {
  const fleet = oneChannelFleet([['a', 'b']], { budgets: [{ selector: { all: true }, maxInFlight: 1 }] });
  const r = makeRollout(fleet, 'stable', { atMs: T0, hosts: { a: 'Activating' } });
  let obs = makeObserved({ hosts: onlineHosts(['a', 'b'], T0), rolloutList: [r] });
  obs = applyHostEvent(obs, 'a', { kind: 'deferred', rolloutId: r.id }, T0);
  assert.is(obs.rollouts[r.id]!.hosts['a']!.state, 'PendingReboot');
  const acts = reconcile(fleet, obs, T0 + MIN);
  assert.equal(dispatchedHosts(acts), [], 'b waits: the pending host holds the only slot');
  assert.is(applyHostEvent(obs, 'a', { kind: 'deadline-expired', rolloutId: r.id }, T0 + 5 * MIN).rollouts[r.id]!.hosts['a']!.state, 'PendingReboot');
  assert.is(applyHostEvent(obs, 'a', { kind: 'confirmed', rolloutId: r.id }, T0 + 9 * MIN).rollouts[r.id]!.hosts['a']!.state, 'Healthy');
});

c('a pinned host is never dispatched, does not block its wave or the host it gates, and gets its target once the pin lapses', () => {
  const base = oneChannelFleet([['a', 'b'], ['c']], { edges: [{ gated: 'b', gates: 'a', reason: null }] });
  const fleet = structuredClone(base);
  fleet.hosts['a']!.pin = { commit: 'abc123', reason: 'kernel regression', expiresAt: new Date(T0 + 60 * MIN).toISOString() };
  let obs = makeObserved({ hosts: onlineHosts(['a', 'b', 'c'], T0) });
  const acts = reconcile(fleet, obs, T0);
  assert.equal(dispatchedHosts(acts), ['b']);
  assert.is(skipCodes(acts)['a'], 'pinned');
  assert.match(actionsOf(acts, 'skip_host')[0]!.reason, /pinned to abc123 \(kernel regression\) until 2026-01-01T13:00:00/);
  obs = applyActions(obs, acts, T0);
  const later = T0 + 61 * MIN;
  obs = { ...obs, hosts: onlineHosts(['a', 'b', 'c'], later) };
  assert.ok(dispatchedHosts(reconcile(fleet, obs, later)).includes('a'), 'the pin lapsed at its expiresAt');
});

c('outside its change window a rollout does not start; it starts when the window opens; in-flight hosts finish', () => {
  const fleet = withChannel(oneChannelFleet([['a', 'b']]), { changeWindow: { timeZone: 'UTC', allow: [{ days: ['thu'], start: '13:00', end: '14:00' }], freezes: [] } });
  const obs0 = makeObserved({ hosts: onlineHosts(['a', 'b'], T0) });
  const acts = reconcile(fleet, obs0, T0);
  assert.equal(acts.map((a) => a.kind), ['open_rollout', 'window_hold']);
  const obs1 = applyActions(obs0, acts, T0);
  assert.equal(reconcile(fleet, obs1, T0 + MIN).filter((a) => a.kind !== 'wave_blocked'), [], 'debounced');
  const open = T0 + 60 * MIN;
  const acts2 = reconcile(fleet, { ...obs1, hosts: onlineHosts(['a', 'b'], open) }, open);
  assert.equal(acts2.map((a) => a.kind), ['promote_wave', 'window_hold', 'dispatch_host', 'dispatch_host']);
  // The window closes while a is Activating and b still Queued: a finishes, b waits.
  const r = makeRollout(fleet, 'stable', { atMs: open, hosts: { a: 'Activating' } });
  const closed = T0 + 121 * MIN;
  const acts3 = reconcile(fleet, makeObserved({ hosts: onlineHosts(['a', 'b'], closed), rolloutList: [r] }), closed);
  assert.equal(dispatchedHosts(acts3), []);
  assert.match(actionsOf(acts3, 'window_hold')[0]!.reason, /outside the change window \(thu 13:00–14:00 UTC\)/);
});

c('a freeze holds a channel whatever its ranges', () => {
  const fleet = withChannel(oneChannelFleet([['a']]), { changeWindow: { timeZone: 'UTC', allow: [], freezes: [{ from: '2026-01-01T00:00:00Z', until: '2026-01-02T00:00:00Z', reason: 'new year' }] } });
  const acts = reconcile(fleet, makeObserved({ hosts: onlineHosts(['a'], T0) }), T0);
  assert.equal(dispatchedHosts(acts), []);
  assert.match(actionsOf(acts, 'window_hold')[0]!.reason, /change freeze .*new year/);
});

c('requireApprovals: a rollout starts only after N distinct operators approved it (the same one twice counts once); once started it needs none again', () => {
  const fleet = withChannel(oneChannelFleet([['a', 'b']]), { requireApprovals: 2 });
  const obs0 = makeObserved({ hosts: onlineHosts(['a', 'b'], T0) });
  const acts = reconcile(fleet, obs0, T0);
  assert.equal(acts.map((a) => a.kind), ['open_rollout', 'window_hold']);
  assert.match(actionsOf(acts, 'window_hold')[0]!.reason, /awaiting approvals: 0 of 2/);
  let obs = applyActions(obs0, acts, T0);
  const id = Object.keys(obs.rollouts)[0]!;
  assert.is(approveRollout(obs, 'nope@x', 'alice', T0), null, 'unknown rollout');
  obs = approveRollout(obs, id, 'alice', T0 + MIN)!;
  obs = approveRollout(obs, id, 'alice', T0 + 2 * MIN)!;
  const one = reconcile(fleet, { ...obs, hosts: onlineHosts(['a', 'b'], T0 + 2 * MIN) }, T0 + 2 * MIN);
  assert.equal(dispatchedHosts(one), [], 'alice twice is one approval');
  assert.match(actionsOf(one, 'window_hold')[0]!.reason, /awaiting approvals: 1 of 2/);
  obs = applyActions(obs, one, T0 + 2 * MIN);
  obs = approveRollout(obs, id, 'bob', T0 + 3 * MIN)!;
  const go = reconcile(fleet, { ...obs, hosts: onlineHosts(['a', 'b'], T0 + 3 * MIN) }, T0 + 3 * MIN);
  assert.equal(go.map((a) => a.kind), ['promote_wave', 'window_hold', 'dispatch_host', 'dispatch_host']);
  // Started: a restarted rollout row with no approvals recorded is not held again.
  const started = makeRollout(fleet, 'stable', { atMs: T0, hosts: { a: 'Healthy' } });
  assert.ok(started.startedAtMs !== null);
  assert.equal(dispatchedHosts(reconcile(fleet, makeObserved({ hosts: onlineHosts(['a', 'b'], T0 + 5 * MIN), rolloutList: [started] }), T0 + 5 * MIN)), ['b']);
});

function convergedWithHandSwitch(fleet: FleetResolved): Observed {
  const r = makeRollout(fleet, 'stable', { atMs: T0, state: 'Converged', hosts: { a: 'Converged', b: 'Converged' } });
  const hosts = onlineHosts(['a', 'b'], T0 + MIN);
  hosts['a'] = { ...hosts['a']!, currentClosure: fleet.hosts['a']!.closureHash };
  hosts['b'] = { ...hosts['b']!, currentClosure: 'hand-switched-b' };
  return makeObserved({ hosts, rolloutList: [r], lastConverged: { stable: r.targetRef } });
}

c('drift (report): a host of a converged rollout that runs something else is drifted once, and cleared when it runs its closure again', () => {
  const fleet = oneChannelFleet([['a', 'b']]);
  const obs = convergedWithHandSwitch(fleet);
  const acts = reconcile(fleet, obs, T0 + 2 * MIN);
  assert.equal(acts.map((a) => a.kind), ['host_drifted']);
  const after = applyActions(obs, acts, T0 + 2 * MIN);
  assert.equal(after.drifted?.['b']?.actual, 'hand-switched-b');
  assert.equal(reconcile(fleet, after, T0 + 3 * MIN), [], 'debounced; report does not redeploy');
  const back = { ...after, hosts: { ...after.hosts, b: { ...after.hosts['b']!, currentClosure: fleet.hosts['b']!.closureHash, lastCheckinMs: T0 + 4 * MIN } } };
  assert.equal(reconcile(fleet, back, T0 + 4 * MIN).map((a) => a.kind), ['drift_cleared']);
});

c('drift (redeploy): the declared closure is dispatched again, through the budgets', () => {
  const fleet = withChannel(oneChannelFleet([['a', 'b']], { budgets: [{ selector: { all: true }, maxInFlight: 1 }] }), { onDrift: 'redeploy' });
  const obs = convergedWithHandSwitch(fleet);
  const acts = reconcile(fleet, obs, T0 + 2 * MIN);
  assert.equal(acts.map((a) => a.kind), ['host_drifted', 'redeploy_host', 'dispatch_host']);
  assert.is(actionsOf(acts, 'dispatch_host')[0]!.closure, fleet.hosts['b']!.closureHash);
  // With the only budget slot taken by a host in flight (a, being redeployed too), b's redeploy waits.
  const busy = structuredClone(obs);
  busy.rollouts[Object.keys(busy.rollouts)[0]!]!.hosts['a']!.state = 'ConfirmWindow';
  const acts2 = reconcile(fleet, busy, T0 + 2 * MIN);
  assert.equal(dispatchedHosts(acts2), []);
  assert.ok(actionsOf(acts2, 'wave_blocked').some((a) => a.code === 'budget'));
});

c('stall: an offline gating host holds the gated host; after the progress deadline the rollout is reported stalled with the hosts and the gate; progress clears it', () => {
  const fleet = withChannel(oneChannelFleet([['a', 'b']], { edges: [{ gated: 'b', gates: 'a', reason: 'db first' }] }), { progressDeadlineMinutes: 10 });
  const r = makeRollout(fleet, 'stable', { atMs: T0 });
  const hosts = onlineHosts(['b'], T0 + 40 * MIN);
  hosts['a'] = { ...onlineHosts(['a'], T0 - 60 * MIN)['a']! }; // offline past the grace: skipped, but gates b
  const obs = makeObserved({ hosts, rolloutList: [r] });
  const acts = reconcile(fleet, obs, T0 + 40 * MIN);
  const st = actionsOf(acts, 'rollout_stalled');
  assert.is(st.length, 1);
  assert.equal(st[0]!.hosts, ['b']);
  assert.is(st[0]!.gate, 'host-edge');
  const after = applyActions(obs, acts, T0 + 40 * MIN);
  assert.equal(actionsOf(reconcile(fleet, after, T0 + 41 * MIN), 'rollout_stalled'), [], 'reported once');
  // The operator releases b from ordering: it is dispatched and the stall clears.
  const released = releaseHost(after, r.id, 'b', 'a is decommissioned', 'alice', T0 + 42 * MIN)!;
  const acts2 = reconcile(fleet, { ...released, hosts: { ...released.hosts, b: { ...released.hosts['b']!, lastCheckinMs: T0 + 42 * MIN } } }, T0 + 42 * MIN);
  assert.equal(dispatchedHosts(acts2), ['b']);
  assert.equal(actionsOf(acts2, 'rollout_unstalled').length, 1);
});

c('simulated: a kernel update defers to the boot, the host reboots, confirms, and the rollout converges', () => {
  const fleet = oneChannelFleet([['a'], ['b']]);
  const res = simulate(fleet, { startMs: T0, behaviour: (h) => (h === 'a' ? { activation: 'reboot', rebootAfterMs: 3 * MIN } : {}) });
  assert.ok(res.settled);
  const r = Object.values(res.observed.rollouts)[0]!;
  assert.is(r.state, 'Converged');
  assert.ok(r.history.some((t) => t.host === 'a' && t.to === 'PendingReboot'));
  assert.is(res.actionCounts['halt_rollout'], undefined);
});

c('simulated: a manual reboot that never comes stalls the rollout at the canary, reported with the PendingReboot host', () => {
  const fleet = withChannel(oneChannelFleet([['a'], ['b']]), { progressDeadlineMinutes: 15 });
  const res = simulate(fleet, { startMs: T0, maxTicks: 200, behaviour: (h) => (h === 'a' ? { activation: 'reboot', rebootAfterMs: null } : {}) });
  const r = Object.values(res.observed.rollouts)[0]!;
  assert.is(r.state, 'Executing');
  assert.equal(res.observed.controls?.[r.id]?.stall?.hosts, ['a']);
  assert.is(res.observed.controls?.[r.id]?.stall?.gate, 'PendingReboot');
});

c.run();
