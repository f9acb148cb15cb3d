/**
 * fast-check property of the observed mirror's host-change journal (issue 19): along random
 * sequences of what the control plane does to its mirror — check-ins merged in place, reconcile
 * passes as reconcile-loop.ts runs them (channel maps, confirm expiries, soak restoration,
 * reconcile, apply, replace), operator releases, reloads and invalidations — every reconcile that
 * re-reads only the journaled changes equals a full read of the same state; and while the mirror's
 * epoch stays, every host's observation and rollout records are the objects they were (but for
 * the observations a fold of quiet check-ins' times replaced, each with its `PendingTouch.obs`), as
 * quiet-checkins.ts relies on.
 */
import fc from 'fast-check';
import { suite } from 'uvu';
import { applyActions, applyHostEvents, emptyObserved, releaseHost } from '../reconciler/apply.ts';
import { indexFleet } from '../reconciler/fleet-index.ts';
import { noteDerived } from '../reconciler/journal.ts';
import { reconcile } from '../reconciler/reconcile.ts';
import type { HostObservation, Observed, RolloutHost } from '../reconciler/types.ts';
import { eventOf, fullRead, paramsArb } from '../fixtures/journal-testkit.ts';
import { randomFleet, type RandomFleetParams } from '../fixtures/reconciler-testkit.ts';
import { ObservedMirror, type PendingTouch } from './mirror.ts';
import { SoakRestorer } from './soak-restore.ts';

const T0 = Date.UTC(2026, 0, 1);

type Op =
  | { k: 'checkin'; host: number; kind: number; c: number }
  | { k: 'quiet'; host: number }
  | { k: 'pass'; expire: number[] }
  | { k: 'time'; ms: number }
  | { k: 'reload' | 'invalidate' | 'pause' }
  | { k: 'restore' | 'release'; host: number };

const opArb: fc.Arbitrary<Op> = fc.oneof(
  { weight: 8, arbitrary: fc.record({ k: fc.constant('checkin' as const), host: fc.nat(), kind: fc.nat(), c: fc.nat() }) },
  { weight: 4, arbitrary: fc.record({ k: fc.constant('quiet' as const), host: fc.nat() }) },
  { weight: 5, arbitrary: fc.record({ k: fc.constant('pass' as const), expire: fc.array(fc.nat(), { maxLength: 3 }) }) },
  { weight: 3, arbitrary: fc.record({ k: fc.constant('time' as const), ms: fc.constantFrom(10_000, 60_000, 5 * 60_000, 31 * 60_000) }) },
  { weight: 1, arbitrary: fc.record({ k: fc.constantFrom('reload' as const, 'invalidate' as const, 'pause' as const) }) },
  { weight: 2, arbitrary: fc.record({ k: fc.constantFrom('restore' as const, 'release' as const), host: fc.nat() }) },
);

async function play(p: RandomFleetParams, ops: Op[]): Promise<string | null> {
  const fleet = randomFleet(p);
  const idx = indexFleet(fleet);
  const names = Object.keys(fleet.hosts).sort();
  // The store: what a load returns (the mirror's content after each step, as the CP's writes keep it).
  let stored: Observed = emptyObserved();
  const mirror = new ObservedMirror(() => structuredClone(stored));
  const restorer = new SoakRestorer();
  let paused = false;
  let now = T0;
  // As quiet-checkins.ts keeps them: a host's observation and records as found in some epoch.
  const kept = new Map<string, { epoch: number; obs: HostObservation | undefined; records: RolloutHost[] }>();
  // As quiet-checkins.ts keeps them: each host's quiet check-in time for the mirror.
  const touches = new Map<string, PendingTouch>();
  const recordsIn = (o: Observed, h: string): RolloutHost[] => Object.values(o.rollouts).flatMap((r) => (r.state === 'Superseded' || r.hosts[h] === undefined ? [] : [r.hosts[h]!]));
  const differs = (o: Observed, what: string): string | null => {
    const got = JSON.stringify(reconcile(fleet, o, now));
    const want = JSON.stringify(fullRead(fleet, o, now, {}));
    return got === want ? null : `${what}: ${got} ≠ ${want}`;
  };
  for (let step = 0; step < ops.length; step++) {
    const op = ops[step]!;
    // Each touch's observation before the step: any fold in it (a pass, a check-in, a release, the
    // last `peek`) may replace it.
    const queued = new Map([...touches].map(([h, t]) => [h, t.obs]));
    const host = 'host' in op ? names[op.host % names.length]! : names[0]!;
    const rolloutId = idx.channels.get(fleet.hosts[host]!.channel)?.rolloutId ?? null;
    switch (op.k) {
      case 'checkin': {
        // agent-service.ts: the host's slice, the events, the restorer for that host, merged in place.
        const slice = ObservedMirror.slice(mirror.peek() ?? (await mirror.get()), host);
        const after = restorer.apply(applyHostEvents(slice, [{ host, event: eventOf(fleet, host, op.kind, op.c) }], now), now, host);
        mirror.merge(host, after);
        break;
      }
      case 'quiet': {
        // quiet-checkins.ts: only the check-in time of a host that checked in before, folded in later.
        const o = (mirror.peekUnfolded() ?? (await mirror.get())).hosts[host];
        let t = touches.get(host);
        if (t !== undefined && t.obs !== o) t = undefined; // replaced since: quiet-checkins.ts decides in full again
        if (o !== undefined && o.lastCheckinMs !== null) {
          if (t === undefined) {
            touches.set(host, (t = { host, obs: o, atMs: now, queued: false }));
            queued.set(host, o);
          }
          t.atMs = now;
          mirror.touchLater(t);
        }
        break;
      }
      case 'pass': {
        // reconcile-loop.ts passOnce.
        const base = mirror.peek() ?? (await mirror.get());
        const loaded: Observed = { ...base, pausedChannels: paused ? { [fleet.hosts[names[0]!]!.channel]: { sinceMs: T0, reason: 'test' } } : {} };
        noteDerived(loaded, base, []);
        const expiries = op.expire.map((n) => ({ host: names[n % names.length]!, event: { kind: 'deadline-expired' as const } }));
        const mid = restorer.apply(applyHostEvents(loaded, expiries, now), now);
        const bad = differs(mid, `step ${step} (pass)`);
        if (bad !== null) return bad;
        mirror.replace(applyActions(mid, reconcile(fleet, mid, now), now));
        break;
      }
      case 'time':
        now += op.ms;
        break;
      case 'reload':
        await mirror.reload();
        break;
      case 'invalidate':
        mirror.invalidate();
        break;
      case 'pause':
        paused = !paused;
        break;
      case 'restore':
        if (rolloutId !== null) restorer.note(host, { rolloutId, closure: fleet.hosts[host]!.closureHash ?? '', confirmedAtMs: now - 30_000 });
        break;
      case 'release': {
        // operator-service.ts mirroredOperatorState: the change, then replace.
        const before = await mirror.get();
        const next = rolloutId === null ? null : releaseHost(before, rolloutId, host, 'test', null, now);
        if (next !== null) mirror.replace(next);
        break;
      }
    }
    const m = mirror.peek(); // folds the quiet check-ins' times in
    if (m !== null) {
      // A fold replaces a host's observation with one carrying its latest time, and the touch's with it.
      for (const [h, t] of touches) {
        const was = queued.get(h)!;
        if (t.obs === was) continue;
        if (m.hosts[h] !== t.obs || t.obs.lastCheckinMs !== t.atMs || JSON.stringify({ ...was, lastCheckinMs: t.atMs }) !== JSON.stringify(t.obs)) return `step ${step}: ${h} folded wrong`;
        const k = kept.get(h);
        if (k !== undefined && k.epoch === mirror.epoch && k.obs === was) k.obs = t.obs;
      }
      stored = structuredClone(m);
      const bad = differs(m, `step ${step} (mirror after ${op.k})`);
      if (bad !== null) return bad;
      // Within an epoch, every host's observation and records are the very objects kept.
      for (const h of names) {
        const k = kept.get(h);
        const records = recordsIn(m, h);
        if (k !== undefined && k.epoch === mirror.epoch) {
          const same = m.hosts[h] === k.obs && records.length === k.records.length && records.every((r, i) => r === k.records[i]);
          if (!same) return `step ${step} (${op.k}): ${h} changed within epoch ${mirror.epoch}`;
        } else kept.set(h, { epoch: mirror.epoch, obs: m.hosts[h], records });
      }
    }
  }
  return null;
}

const props = suite('observed mirror journal (fast-check)');

props('a reconcile reading only the journaled changes of the mirror equals a full read: check-ins merged in place, passes, releases, reloads', async () => {
  await fc.assert(
    fc.asyncProperty(paramsArb, fc.array(opArb, { minLength: 1, maxLength: 80 }), async (p, ops) => {
      const bad = await play(p, ops);
      if (bad !== null) throw new Error(bad);
    }),
    {
      numRuns: 150,
      // Soak restoration in a pass (not at the host's check-in): the paused channel keeps the host
      // Queued while it runs its target, so the pass's restorer is what makes it Healthy.
      examples: [
        [
          { hosts: 1, channels: 1, maxWaves: 1, edgeRate: 0, channelEdges: false, budgets: 0, nullClosureRate: 0, maxSoakMinutes: 0, seed: 0 },
          [{ k: 'pause' }, { k: 'checkin', host: 0, kind: 0, c: 1 }, { k: 'pass', expire: [] }, { k: 'restore', host: 0 }, { k: 'pass', expire: [] }],
        ],
      ],
    },
  );
});

props.run();
