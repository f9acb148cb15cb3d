/**
 * The simulator's host model end to end: each behaviour leads to the documented outcome, and a
 * control plane rebuilt from empty re-activates nothing (SPEC §5).
 */
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { emptyObserved } from './apply.ts';
import { indexFleet } from './fleet-index.ts';
import { simulate } from './simulate.ts';
import { makeFleet } from '../fixtures/reconciler-testkit.ts';

const fleet = makeFleet({
  hosts: { a: { channel: 's' }, b: { channel: 's' }, c: { channel: 's' }, d: { channel: 's' } },
  channels: { s: { waves: [['a'], ['b', 'c', 'd']], soakMinutes: [3, 1], failedUnitsMax: 0 } },
});
const id = indexFleet(fleet).channels.get('s')!.rolloutId!;
const s = suite('simulate');

s('every host succeeds: converges, each host dispatched once, every host runs its target', () => {
  const r = simulate(fleet);
  assert.ok(r.settled);
  assert.is(r.observed.rollouts[id]!.state, 'Converged');
  assert.is(r.actionCounts['dispatch_host'], 4);
  for (const h of ['a', 'b', 'c', 'd']) assert.is(r.observed.hosts[h]!.currentClosure, fleet.hosts[h]!.closureHash);
});

s('control plane rebuilt from empty: every host already on target is soaked without a dispatch', () => {
  const r = simulate(fleet, { initialClosure: (h) => fleet.hosts[h]!.closureHash, initialObserved: emptyObserved() });
  assert.ok(r.settled);
  assert.is(r.observed.rollouts[id]!.state, 'Converged');
  assert.is(r.actionCounts['dispatch_host'], undefined);
  assert.is(r.actionCounts['soak_host'], 4);
});

s('never confirms: the confirm deadline reverts the host and halts before the next wave', () => {
  const r = simulate(fleet, { behaviour: (h) => (h === 'a' ? { activation: 'never-confirm' } : {}) });
  const ro = r.observed.rollouts[id]!;
  assert.is(ro.state, 'Halted');
  assert.is(ro.hosts['a']!.state, 'Reverted');
  assert.ok(ro.history.some((x) => x.host === 'a' && x.reason.includes('confirm deadline')));
  for (const h of ['b', 'c', 'd']) assert.is(ro.hosts[h]!.state, 'Queued');
});

s('probes fail after the confirm: the health gate fails after the soak, the closure is quarantined, halt', () => {
  const r = simulate(fleet, { behaviour: (h) => (h === 'a' ? { probesFailAfterMs: 60_000 } : {}) });
  const ro = r.observed.rollouts[id]!;
  assert.is(ro.state, 'Halted');
  assert.is(ro.hosts['a']!.state, 'Failed');
  assert.equal(r.observed.quarantinedClosures['s'], [fleet.hosts['a']!.closureHash]);
});

s('failed systemd units above the max fail the health gate', () => {
  const r = simulate(fleet, { behaviour: (h) => (h === 'c' ? { failedUnits: ['x.service'] } : {}) });
  const ro = r.observed.rollouts[id]!;
  assert.is(ro.state, 'Halted');
  assert.is(ro.hosts['c']!.state, 'Failed');
  assert.is(ro.hosts['a']!.state, 'Soaked');
});

s('a host offline for good is skipped-offline after the grace and the rollout converges without it', () => {
  const r = simulate(fleet, { behaviour: (h) => (h === 'd' ? { offlineFromMs: 0 } : {}) });
  const ro = r.observed.rollouts[id]!;
  assert.is(ro.state, 'Converged');
  assert.is(ro.hosts['d']!.state, 'Queued');
  assert.is(ro.hosts['d']!.skip?.code, 'skipped-offline');
  assert.ok(r.endMs - r.startMs > 30 * 60_000, 'waited for the grace');
});

s('a host that comes back after the rollout converged gets its target', () => {
  const r = simulate(fleet, { behaviour: (h) => (h === 'd' ? { offlineFromMs: 0, offlineUntilMs: 60 * 60_000 } : {}), stopWhenSettled: false, maxTicks: 500 });
  const ro = r.observed.rollouts[id]!;
  assert.is(ro.state, 'Converged');
  assert.is(ro.hosts['d']!.state, 'Converged', 'done as its peers are once it has soaked');
  assert.is(r.observed.hosts['d']!.currentClosure, fleet.hosts['d']!.closureHash);
});

s('deterministic: the same run twice gives the same history', () => {
  const b = (h: string) => (h === 'b' ? { activation: 'fail' as const } : {});
  assert.equal(simulate(fleet, { behaviour: b }).observed, simulate(fleet, { behaviour: b }).observed);
});

s.run();
