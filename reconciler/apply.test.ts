/**
 * Host events and action application: the transition table, history with reasons, purity.
 */
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { applyActions, applyHostEvent, applyHostEvents, findHostRollout, hostTransition } from './apply.ts';
import { makeFleet, makeObserved, makeRollout, onlineHost } from '../fixtures/reconciler-testkit.ts';
import { HOST_ROLLOUT_STATES, type HostEvent, type HostRolloutState } from './types.ts';

const T0 = Date.UTC(2026, 3, 24, 10, 0, 0);
const fleet = makeFleet({ hosts: { h1: { channel: 's' }, h2: { channel: 's' } }, channels: { s: { waves: [['h1', 'h2']] } } });

const events = suite('host events');

const table: [HostEvent, HostRolloutState[], HostRolloutState][] = [
  [{ kind: 'activating' }, ['Dispatched'], 'Activating'],
  [{ kind: 'switched' }, ['Dispatched', 'Activating'], 'ConfirmWindow'],
  [{ kind: 'deferred' }, ['Dispatched', 'Activating', 'ConfirmWindow'], 'PendingReboot'],
  // PendingReboot (issue 14): confirmed after the boot; no deadline-expired (no confirm deadline until the boot).
  [{ kind: 'confirmed' }, ['Dispatched', 'Activating', 'ConfirmWindow', 'PendingReboot'], 'Healthy'],
  [{ kind: 'failed', reason: 'x' }, ['Dispatched', 'Activating', 'ConfirmWindow', 'PendingReboot', 'Healthy'], 'Failed'],
  [{ kind: 'rolled-back', reason: 'x' }, ['Dispatched', 'Activating', 'ConfirmWindow', 'PendingReboot', 'Healthy', 'Failed'], 'Reverted'],
  [{ kind: 'deadline-expired' }, ['Dispatched', 'Activating', 'ConfirmWindow'], 'Reverted'],
];

events('transition table: each event moves exactly the states it should, and nothing else', () => {
  for (const [ev, froms, to] of table) {
    for (const s of HOST_ROLLOUT_STATES) {
      const tr = hostTransition(s, ev);
      if (froms.includes(s)) assert.is(tr?.to, to, `${ev.kind} from ${s}`);
      else assert.is(tr, null, `${ev.kind} from ${s} must not apply`);
    }
  }
  for (const s of HOST_ROLLOUT_STATES) {
    assert.is(hostTransition(s, { kind: 'checkin', currentClosure: null }), null);
    assert.is(hostTransition(s, { kind: 'probes', probes: { observed: true, passing: true } }), null);
  }
});

events('a full activation is recorded in the rollout history with times and reasons; the input is not mutated', () => {
  const r = makeRollout(fleet, 's', { atMs: T0, hosts: { h1: 'Dispatched' } });
  const obs0 = makeObserved({ rolloutList: [r] });
  const frozen = JSON.stringify(obs0);
  let obs = applyHostEvent(obs0, 'h1', { kind: 'activating', rolloutId: r.id }, T0 + 1000);
  obs = applyHostEvent(obs, 'h1', { kind: 'switched' }, T0 + 2000);
  obs = applyHostEvent(obs, 'h1', { kind: 'confirmed', rolloutId: r.id }, T0 + 3000);
  assert.is(JSON.stringify(obs0), frozen);
  const rr = obs.rollouts[r.id]!;
  assert.is(rr.hosts['h1']!.state, 'Healthy');
  assert.is(rr.hosts['h1']!.enteredAtMs, T0 + 3000);
  assert.equal(
    rr.history.map((x) => [x.atMs - T0, x.host, x.from, x.to]),
    [
      [1000, 'h1', 'Dispatched', 'Activating'],
      [2000, 'h1', 'Activating', 'ConfirmWindow'],
      [3000, 'h1', 'ConfirmWindow', 'Healthy'],
    ],
  );
  assert.ok(rr.history.every((x) => x.reason.length > 0));
  assert.is(obs.hosts['h1']!.lastCheckinMs, T0 + 3000, 'events are signs of life');
  assert.equal(obs.hosts['h1']!.probes, { observed: false, passing: false }, 'switch resets probes: the soak needs fresh ones');
});

events('deadline-expired → Reverted and is not a sign of life', () => {
  const r = makeRollout(fleet, 's', { atMs: T0, hosts: { h1: 'ConfirmWindow' } });
  const obs = applyHostEvent(makeObserved({ rolloutList: [r] }), 'h1', { kind: 'deadline-expired' }, T0 + 1);
  assert.is(obs.rollouts[r.id]!.hosts['h1']!.state, 'Reverted');
  assert.is(obs.hosts['h1'], undefined);
});

events('a late confirm after the dispatch was cancelled changes nothing (the CP answers 410)', () => {
  const r = makeRollout(fleet, 's', { atMs: T0, state: 'Halted' });
  const obs0 = makeObserved({ rolloutList: [r] });
  const obs = applyHostEvent(obs0, 'h1', { kind: 'confirmed', rolloutId: r.id }, T0 + 1);
  assert.is(obs.rollouts[r.id]!.hosts['h1']!.state, 'Queued');
  assert.is(obs.rollouts[r.id]!.history.length, 0);
});

events('events to a Superseded rollout are ignored; checkin updates the observation', () => {
  const r = makeRollout(fleet, 's', { atMs: T0, state: 'Superseded', hosts: { h1: 'Activating' } });
  const obs = applyHostEvents(
    makeObserved({ rolloutList: [r] }),
    [
      { host: 'h1', event: { kind: 'checkin', currentClosure: 'c', bootId: 'b1', probes: { observed: true, passing: true }, failedUnits: ['a.service'] } },
      { host: 'h1', event: { kind: 'confirmed', rolloutId: r.id } },
    ],
    T0 + 5,
  );
  assert.is(obs.rollouts[r.id]!.hosts['h1']!.state, 'Activating');
  assert.equal(obs.hosts['h1'], { lastCheckinMs: T0 + 5, currentClosure: 'c', bootId: 'b1', probes: { observed: true, passing: true }, failedUnits: ['a.service'] });
});

events('findHostRollout: explicit id, else the newest non-superseded rollout holding the host', () => {
  const a = { ...makeRollout(fleet, 's', { atMs: T0 }), id: 's@a', openedAtMs: T0 };
  const b = { ...makeRollout(fleet, 's', { atMs: T0 }), id: 's@b', openedAtMs: T0 + 10 };
  const c = { ...makeRollout(fleet, 's', { atMs: T0 }), id: 's@c', openedAtMs: T0 + 20, state: 'Superseded' as const };
  const obs = makeObserved({ rolloutList: [a, b, c] });
  assert.is(findHostRollout(obs, 'h1')?.id, 's@b');
  assert.is(findHostRollout(obs, 'h1', 's@a')?.id, 's@a');
  assert.is(findHostRollout(obs, 'nope'), undefined);
});

const actions = suite('applyActions');

actions('purity and no-ops: stale actions do nothing; unknown rollout throws (a bug)', () => {
  const r = makeRollout(fleet, 's', { atMs: T0, hosts: { h1: 'Healthy' } });
  const obs = makeObserved({ hosts: { h1: onlineHost(T0) }, rolloutList: [r] });
  const frozen = JSON.stringify(obs);
  const after = applyActions(obs, [{ kind: 'dispatch_host', rolloutId: r.id, channel: 's', host: 'h1', closure: 'x', wave: 0, reason: 'r' }], T0);
  assert.is(after.rollouts[r.id]!.hosts['h1']!.state, 'Healthy');
  assert.is(JSON.stringify(obs), frozen);
  assert.throws(() => applyActions(obs, [{ kind: 'halt_rollout', rolloutId: 'nope@x', channel: 's', hosts: [], reason: 'r' }], T0), /unknown rollout/);
  assert.is(applyActions(obs, [], T0), obs);
});

actions('quarantine_closure is a set per channel; wave_blocked changes nothing', () => {
  const obs = makeObserved();
  const q = { kind: 'quarantine_closure' as const, channel: 's', closure: 'c1', host: 'h1', reason: 'r' };
  const after = applyActions(obs, [q, q, { ...q, closure: 'c0' }], T0);
  assert.equal(after.quarantinedClosures, { s: ['c0', 'c1'] });
  assert.equal(applyActions(obs, [{ kind: 'wave_blocked', rolloutId: 'x', wave: 0, code: 'budget', hosts: 1, reason: 'r' }], T0), obs);
});

events.run();
actions.run();
