/**
 * fast-check properties of the issue-14 controls over random fleets decorated with change windows,
 * freezes, pins (with and without expiry), progress deadlines, drift policies and required
 * approvals (operators approve one by one as time passes), and random host
 * behaviour (failures, offline hosts that gate others, deferred activations with and without a
 * reboot, hand switches): every per-tick law (budgets, wave order, edges, signed closure,
 * idempotence, windows, pins, stalls reported) holds, and fleets whose offline hosts gate others
 * end Converged or reported stalled. A failing run prints its seed; pin it below.
 */
import fc from 'fast-check';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import type { FleetResolved } from '../protocol/schema.ts';
import { prng, randomFleet, type RandomFleetParams } from '../fixtures/reconciler-testkit.ts';
import { indexFleet } from './fleet-index.ts';
import { approveRollout } from './apply.ts';
import type { Observed } from './types.ts';
import { lawBudgets, lawDispatches, lawIdempotent, lawStallReported, lawWindowsAndPins } from './laws.ts';
import { simulate, type HostBehaviour } from './simulate.ts';

const START = Date.UTC(2026, 0, 1); // a Thursday, 00:00 UTC
const MIN = 60_000;

const fleetParams = (maxHosts: number): fc.Arbitrary<RandomFleetParams> =>
  fc.record({
    hosts: fc.integer({ min: 1, max: maxHosts }),
    channels: fc.integer({ min: 1, max: 3 }),
    maxWaves: fc.integer({ min: 1, max: 4 }),
    edgeRate: fc.constantFrom(0, 0.1, 0.3),
    channelEdges: fc.boolean(),
    budgets: fc.integer({ min: 0, max: 2 }),
    nullClosureRate: fc.constant(0),
    maxSoakMinutes: fc.constantFrom(0, 2, 5),
    seed: fc.integer(),
  });

type Controls = { windowRate: number; pinRate: number; redeploy: boolean; deadlineMinutes: number; seed: number; approvalRate?: number };
const controls: fc.Arbitrary<Controls> = fc.record({
  windowRate: fc.constantFrom(0, 0.5, 1),
  approvalRate: fc.constantFrom(0, 0.5),
  pinRate: fc.constantFrom(0, 0.1, 0.3),
  redeploy: fc.boolean(),
  deadlineMinutes: fc.constantFrom(3, 10, 30),
  seed: fc.integer(),
});

const hhmm = (min: number): string => `${String(Math.floor(min / 60)).padStart(2, '0')}:${String(min % 60).padStart(2, '0')}`;

/** A copy of the fleet with the issue-14 controls set at random (windows open and close within the simulated hours). */
function decorate(base: FleetResolved, c: Controls): FleetResolved {
  const fleet = structuredClone(base);
  const rnd = prng(c.seed);
  for (const name of Object.keys(fleet.channels).sort()) {
    const ch = fleet.channels[name]!;
    ch.progressDeadlineMinutes = c.deadlineMinutes;
    ch.onDrift = c.redeploy ? 'redeploy' : 'report';
    ch.rebootPolicy = rnd() < 0.5 ? 'manual' : 'automatic';
    if (rnd() < (c.approvalRate ?? 0)) ch.requireApprovals = 1 + Math.floor(rnd() * 2);
    if (rnd() < c.windowRate) {
      const start = Math.floor(rnd() * 60);
      const freeze = rnd() < 0.3;
      ch.changeWindow = {
        timeZone: rnd() < 0.5 ? 'UTC' : 'Europe/Paris', // Paris: 01:00 local at the start
        allow: [{ days: ['thu'], start: hhmm(start), end: hhmm(start + 20 + Math.floor(rnd() * 60)) }],
        freezes: freeze ? [{ from: new Date(START + 30 * MIN).toISOString(), until: new Date(START + 50 * MIN).toISOString(), reason: 'test freeze' }] : [],
      };
    }
  }
  for (const h of Object.keys(fleet.hosts).sort()) {
    if (rnd() >= c.pinRate) continue;
    const expiry = rnd();
    fleet.hosts[h]!.pin = { commit: 'c0ffee', reason: 'property test', ...(expiry < 0.3 ? {} : { expiresAt: new Date(START + Math.floor(expiry * 90) * MIN).toISOString() }) };
  }
  return fleet;
}

type Chaos = { failRate: number; offlineRate: number; rebootRate: number; driftRate: number; seed: number };
const chaos: fc.Arbitrary<Chaos> = fc.record({
  failRate: fc.constantFrom(0, 0.02),
  offlineRate: fc.constantFrom(0, 0.1, 0.3),
  rebootRate: fc.constantFrom(0, 0.2),
  driftRate: fc.constantFrom(0, 0.1),
  seed: fc.integer(),
});

function behaviourOf(c: Chaos): (h: string) => HostBehaviour {
  const rnd = prng(c.seed);
  const memo = new Map<string, HostBehaviour>();
  return (h) => {
    let b = memo.get(h);
    if (b === undefined) {
      const x = rnd();
      b = {
        activation: x < c.failRate ? 'fail' : x < c.failRate + c.rebootRate ? 'reboot' : 'ok',
        rebootAfterMs: rnd() < 0.3 ? null : Math.floor(rnd() * 20) * MIN,
        ...(rnd() < c.offlineRate ? { offlineFromMs: Math.floor(rnd() * 10) * MIN, offlineUntilMs: rnd() < 0.5 ? null : Math.floor(20 + rnd() * 60) * MIN } : {}),
        ...(rnd() < c.driftRate ? { driftAtMs: Math.floor(20 + rnd() * 100) * MIN } : {}),
      };
      memo.set(h, b);
    }
    return b;
  };
}

function check<Ts extends [unknown, ...unknown[]]>(prop: fc.IProperty<Ts>, params: fc.Parameters<Ts>): void {
  const seed = process.env['FC_SEED'];
  const out = fc.check(prop, seed === undefined ? params : { ...params, seed: Number(seed), ...(process.env['FC_PATH'] === undefined ? {} : { path: process.env['FC_PATH'] }) });
  if (out.failed) {
    const cause = out.errorInstance instanceof Error ? out.errorInstance.message : String(out.errorInstance);
    throw new Error(`${fc.defaultReportMessage(out) ?? 'property failed'}\ncause: ${cause}`);
  }
}

/** Operators approve every open rollout, one more distinct approver every 10 minutes after it opened. */
function approvers(nowMs: number, observed: Observed): Observed {
  let o = observed;
  for (const r of Object.values(observed.rollouts)) {
    const n = Math.min(3, Math.floor((nowMs - r.openedAtMs) / (10 * MIN)));
    for (let k = 0; k < n; k++) o = approveRollout(o, r.id, `operator-${k}`, nowMs) ?? o;
  }
  return o;
}

function runLaws(fleet: FleetResolved, c: Chaos, maxTicks: number): string[] {
  const violations: string[] = [];
  simulate(fleet, {
    startMs: START,
    maxTicks,
    stopWhenSettled: false,
    operator: approvers,
    behaviour: behaviourOf(c),
    onTick: (t) => {
      if (violations.length > 5) return;
      violations.push(...lawBudgets(fleet, t), ...lawDispatches(fleet, t), ...lawIdempotent(fleet, t), ...lawWindowsAndPins(fleet, t), ...lawStallReported(fleet, t));
    },
  });
  return violations;
}

const laws = suite('reconciler controls (issue 14, fast-check)');

laws('every law holds on every tick with windows, freezes, pins, deadlines, drift, deferred activations and offline gating hosts', () => {
  check(
    fc.property(fleetParams(80), controls, chaos, (p, c, ch) => {
      const v = runLaws(decorate(randomFleet(p), c), ch, 900);
      if (v.length > 0) throw new Error(v.slice(0, 5).join('\n'));
    }),
    { numRuns: 20 },
  );
});

laws('random fleets with offline hosts that gate other hosts end Converged or reported stalled (never silently stuck)', () => {
  check(
    fc.property(fleetParams(60), fc.integer(), fc.constantFrom(5, 15), (p, seed, deadline) => {
      const fleet = decorate(randomFleet({ ...p, edgeRate: Math.max(p.edgeRate, 0.2) }), { windowRate: 0, pinRate: 0, redeploy: false, deadlineMinutes: deadline, seed });
      const rnd = prng(seed);
      const res = simulate(fleet, {
        startMs: START,
        maxTicks: 1500, // 250 min
        stopWhenSettled: false,
        behaviour: () => (rnd() < 0.25 ? { offlineFromMs: 0, offlineUntilMs: null } : {}),
      });
      for (const ch of indexFleet(fleet).channels.values()) {
        if (ch.rolloutId === null) continue;
        const r = res.observed.rollouts[ch.rolloutId];
        const deferred = res.observed.deferrals[ch.name]?.rolloutId === ch.rolloutId;
        const ok = r !== undefined && (r.state === 'Converged' || (res.observed.controls?.[r.id]?.stall ?? null) !== null || (r.state === 'Pending' && deferred));
        assert.ok(ok, `channel ${ch.name}: rollout ${r?.state ?? 'missing'} neither converged nor reported stalled (${r?.stateReason})`);
      }
    }),
    { numRuns: 20 },
  );
});

laws('pinned: a host back from offline is dispatched in a converged rollout while an earlier-wave host is redeployed after drift (seed -300588477)', () => {
  const p: RandomFleetParams = { hosts: 71, channels: 2, maxWaves: 4, edgeRate: 0, channelEdges: false, budgets: 0, nullClosureRate: 0, maxSoakMinutes: 0, seed: -1285657509 };
  const c: Controls = { windowRate: 0, approvalRate: 0.5, pinRate: 0, redeploy: true, deadlineMinutes: 3, seed: -858088944 };
  const ch: Chaos = { failRate: 0, offlineRate: 0.1, rebootRate: 0, driftRate: 0.1, seed: -2147483644 };
  assert.equal(runLaws(decorate(randomFleet(p), c), ch, 900), []);
});

laws('pinned: a dispatch withdrawn from a host gone offline is progress, so no stall is reported in the same tick (seed -595951282)', () => {
  const p: RandomFleetParams = { hosts: 27, channels: 1, maxWaves: 2, edgeRate: 0.1, channelEdges: false, budgets: 0, nullClosureRate: 0, maxSoakMinutes: 5, seed: 2147483624 };
  const c: Controls = { windowRate: 0, approvalRate: 0, pinRate: 0, redeploy: false, deadlineMinutes: 3, seed: 0 };
  const ch: Chaos = { failRate: 0, offlineRate: 0.3, rebootRate: 0, driftRate: 0.1, seed: -661366863 };
  assert.equal(runLaws(decorate(randomFleet(p), c), ch, 900), []);
});

laws('pinned: a wave promoted because its last host went offline past the grace is progress; the stall clock starts again from the promotion (seed 1285730185)', () => {
  // c1's wave 0 waits on h004, offline from the start: stalled at 3 min, promoted at 33 min when
  // h004 passes its grace (no host changes state), then held by the budget until stalled again at
  // 36 min. The law read idle time from host transitions only and saw 33 min without a stall.
  const p: RandomFleetParams = { hosts: 37, channels: 2, maxWaves: 2, edgeRate: 0.3, channelEdges: false, budgets: 2, nullClosureRate: 0, maxSoakMinutes: 0, seed: -924379712 };
  const c: Controls = { windowRate: 0, approvalRate: 0, pinRate: 0, redeploy: false, deadlineMinutes: 3, seed: 0 };
  const ch: Chaos = { failRate: 0, offlineRate: 0.3, rebootRate: 0.2, driftRate: 0, seed: -1 };
  assert.equal(runLaws(decorate(randomFleet(p), c), ch, 900), []);
});

laws.run();
