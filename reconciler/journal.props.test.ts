/**
 * fast-check properties of the host-change journal (journal.ts, host-view.ts; issue 19): over
 * random sequences of host events, reconcile passes with their actions applied, operator changes,
 * fleet changes, forks and hand-built copies, a reconcile that re-reads only the journaled changes
 * returns exactly what a full read of the same state returns — at every step.
 */
import fc from 'fast-check';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { applyActions, applyHostEvents, approveRollout, clearQuarantine, pauseChannel, releaseHost, resumeChannel, emptyObserved } from './apply.ts';
import { indexFleet } from './fleet-index.ts';
import { changedBetween, changesBetween, noteDerived, noteInPlace, OBSERVATION_ONLY, startJournal, stampOf } from './journal.ts';
import { reconcile } from './reconcile.ts';
import { closureFor, makeFleet, makeObserved, oneChannelFleet, onlineHosts, randomFleet, type RandomFleetParams } from '../fixtures/reconciler-testkit.ts';
import { eventOf, fleetVariants, fullRead, paramsArb } from '../fixtures/journal-testkit.ts';
import type { Observed, ReconcileOptions } from './types.ts';

const T0 = Date.UTC(2026, 0, 1);

type Op =
  | { k: 'events'; picks: [number, number, number][] }
  | { k: 'tick' }
  | { k: 'time'; ms: number }
  | { k: 'pause' | 'resume' | 'approve'; ch: number }
  | { k: 'clear' }
  | { k: 'release'; ch: number; host: number }
  | { k: 'fleet'; variant: number }
  | { k: 'fork'; back: number }
  | { k: 'copy' };

const opArb: fc.Arbitrary<Op> = fc.oneof(
  { weight: 6, arbitrary: fc.record({ k: fc.constant('events' as const), picks: fc.array(fc.tuple(fc.nat(), fc.nat(), fc.nat()), { minLength: 1, maxLength: 12 }) }) },
  { weight: 6, arbitrary: fc.constant({ k: 'tick' as const }) },
  { weight: 3, arbitrary: fc.record({ k: fc.constant('time' as const), ms: fc.constantFrom(0, 10_000, 60_000, 5 * 60_000, 31 * 60_000, 2 * 3600_000) }) },
  { weight: 1, arbitrary: fc.record({ k: fc.constantFrom('pause' as const, 'resume' as const, 'approve' as const), ch: fc.nat() }) },
  { weight: 1, arbitrary: fc.constant({ k: 'clear' as const }) },
  { weight: 1, arbitrary: fc.record({ k: fc.constant('release' as const), ch: fc.nat(), host: fc.nat() }) },
  { weight: 1, arbitrary: fc.record({ k: fc.constant('fleet' as const), variant: fc.nat({ max: 2 }) }) },
  { weight: 1, arbitrary: fc.record({ k: fc.constant('fork' as const), back: fc.integer({ min: 1, max: 4 }) }) },
  { weight: 1, arbitrary: fc.constant({ k: 'copy' as const }) },
);

const OPTIONS: Partial<ReconcileOptions>[] = [{}, { offlineAfterMs: 60_000, offlineGraceMs: 5 * 60_000 }];

/** Plays `ops`; returns the first step where the journaled reconcile differs from the full read (null: none). */
function play(p: RandomFleetParams, ops: Op[]): string | null {
  const fleets = fleetVariants(randomFleet(p));
  let fleet = fleets[0]!;
  const names = Object.keys(fleet.hosts).sort();
  const channels = Object.keys(fleet.channels).sort();
  let o = emptyObserved();
  startJournal(o);
  let now = T0;
  const history: Observed[] = [o];
  for (let step = 0; step < ops.length; step++) {
    const op = ops[step]!;
    const opts = OPTIONS[step % OPTIONS.length]!;
    const ch = (n: number): string => channels[n % channels.length]!;
    const rolloutOf = (c: string): string | null => indexFleet(fleet).channels.get(c)?.rolloutId ?? null;
    switch (op.k) {
      case 'events':
        o = applyHostEvents(
          o,
          op.picks.map(([h, kind, c]) => {
            const host = names[h % names.length]!;
            return { host, event: eventOf(fleet, host, kind, c) };
          }),
          now,
        );
        break;
      case 'tick': {
        const got = reconcile(fleet, o, now, opts);
        const want = fullRead(fleet, o, now, opts);
        if (JSON.stringify(got) !== JSON.stringify(want)) return `step ${step} (tick): ${JSON.stringify(got)} ≠ ${JSON.stringify(want)}`;
        o = applyActions(o, got, now);
        break;
      }
      case 'time':
        now += op.ms;
        break;
      case 'pause':
        o = pauseChannel(o, ch(op.ch), 'test', now);
        break;
      case 'resume':
        o = resumeChannel(o, ch(op.ch));
        break;
      case 'approve': {
        const id = rolloutOf(ch(op.ch));
        o = (id !== null ? approveRollout(o, id, `op-${step % 3}`, now) : null) ?? o;
        break;
      }
      case 'clear':
        o = clearQuarantine(o);
        break;
      case 'release': {
        const id = rolloutOf(ch(op.ch));
        o = (id !== null ? releaseHost(o, id, names[op.host % names.length]!, 'test', null, now) : null) ?? o;
        break;
      }
      case 'fleet':
        fleet = fleets[op.variant % fleets.length]!;
        break;
      case 'fork':
        o = history[Math.max(0, history.length - 1 - op.back)]!;
        break;
      case 'copy':
        o = { ...o, hosts: { ...o.hosts } };
        break;
    }
    history.push(o);
    // Every step: the journaled read (whatever the view holds now) against a full read.
    const got = reconcile(fleet, o, now, opts);
    const want = fullRead(fleet, o, now, opts);
    if (JSON.stringify(got) !== JSON.stringify(want)) return `step ${step} (after ${op.k}): ${JSON.stringify(got)} ≠ ${JSON.stringify(want)}`;
  }
  return null;
}

const props = suite('host-change journal (fast-check)');

props('a reconcile reading only the journaled changes equals a full read, at every step of random events, passes, operator and fleet changes, forks and copies', () => {
  fc.assert(
    fc.property(paramsArb, fc.array(opArb, { minLength: 1, maxLength: 80 }), (p, ops) => {
      const bad = play(p, ops);
      if (bad !== null) throw new Error(bad);
    }),
    { numRuns: 150 },
  );
});

props('journal: steps of one lineage, forks, in-place notes', () => {
  const a = emptyObserved();
  startJournal(a);
  const b = { ...a };
  noteDerived(b, a, ['h1']);
  const c = { ...b };
  noteDerived(c, b, ['h2', 'h1']);
  assert.equal(changedBetween(stampOf(a), stampOf(c)), ['h1', 'h2', 'h1']);
  assert.equal(changedBetween(stampOf(b), stampOf(c)), ['h2', 'h1']);
  assert.is(changedBetween(stampOf(c), stampOf(a)), null, 'backwards: unknown');
  const d = { ...c };
  noteDerived(d, c, ['h3'], ['h4', 'h3']);
  const bd = changesBetween(stampOf(b), stampOf(d))!;
  assert.equal(bd.names.slice(bd.start, bd.end), ['h2', 'h1', 'h3', 'h4', 'h3']);
  assert.equal(bd.kinds.slice(bd.start, bd.end), [0, 0, 0, OBSERVATION_ONLY, OBSERVATION_ONLY]);
  const fork = { ...a };
  noteDerived(fork, a, []);
  assert.is(stampOf(fork), undefined, 'derived from a value that is not the newest: not journaled');
  const whole = { ...d };
  noteDerived(whole, d, null, ['h5']);
  assert.is(changedBetween(stampOf(c), stampOf(whole)), null, 'any host may have changed');
  const plain = { ...whole };
  assert.is(changedBetween(stampOf(whole), stampOf(plain)), null, 'not journaled: full read');
});

props('an observation carried by a note is used until a later note without one (in place, as the mirror merges a check-in) replaces it', () => {
  const fleet = oneChannelFleet([['h1'], ['h2']]);
  const o = makeObserved({ hosts: onlineHosts(['h1', 'h2'], T0 - 10_000) });
  startJournal(o);
  const first = reconcile(fleet, o, T0);
  const next = applyActions(o, first, T0);
  reconcile(fleet, next, T0); // the views now describe `next`
  // A quiet check-in of h2 (old closure), then a full one merged in place: h2 runs its target.
  const quiet = { ...next.hosts['h2']!, lastCheckinMs: T0 + 1_000 };
  next.hosts['h2'] = quiet;
  noteInPlace(next, [], [['h2', quiet]]);
  next.hosts['h2'] = { ...quiet, currentClosure: closureFor('h2') };
  noteInPlace(next, ['h2']);
  const got = reconcile(fleet, next, T0 + 2_000);
  assert.equal(got, fullRead(fleet, next, T0 + 2_000, {}));
  assert.ok(
    got.some((a) => a.kind === 'soak_host' && a.host === 'h2'),
    'h2 already runs its target: soaked, not dispatched (the carried observation said otherwise)',
  );
});

props('hosts named like Object.prototype members, members or not, are re-read as any other', () => {
  // More members than a tick's notes name: the ticks after the first read only the noted hosts.
  const others = Array.from({ length: 8 }, (_, i) => `h${i}`);
  const fleet = makeFleet({
    hosts: { constructor: { channel: 'stable', closure: null }, toString: { channel: 'stable' }, valueOf: { channel: 'stable' }, ...Object.fromEntries(others.map((h) => [h, { channel: 'stable' }])) },
    channels: { stable: { waves: [['toString', ...others], ['valueOf']] } },
  });
  let o = makeObserved({ hosts: onlineHosts(['toString', 'valueOf', ...others], T0 - 10_000) });
  startJournal(o);
  for (let k = 0; k < 4; k++) {
    const now = T0 + k * 60_000;
    o = applyHostEvents(
      o,
      ['constructor', 'toString', 'valueOf'].map((host) => ({ host, event: { kind: 'checkin' as const, currentClosure: k >= 2 ? closureFor(host) : 'old', probes: { observed: true, passing: true } } })),
      now,
    );
    const got = reconcile(fleet, o, now);
    assert.equal(got, fullRead(fleet, o, now, {}), `tick ${k}`);
    o = applyActions(o, got, now);
  }
});

props.run();
