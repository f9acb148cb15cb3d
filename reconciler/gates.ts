/**
 * The gates of SPEC §4, one function each, in SPEC order: quarantine of the closure on this
 * channel → channel edges → wave order → (online) → host edges → disruption budgets → compliance
 * (enforce). Each returns `null` when host i of the plan may pass, or a `GateBlock` naming the
 * gate with its readable reason; `GATES` lists them in order and `firstBlock` returns the first block.
 *
 * `online` is not in the SPEC list: an offline host cannot take a target (and may not say what it
 * runs), so it is held between wave order (an offline host of a later wave is simply not its turn)
 * and host edges.
 *
 * The gates change no host or rollout state; reporting a block (skip_host, wave_blocked) is
 * dispatch.ts's job. They run for every Queued host every tick, so the blocks most hosts hit
 * (wave order, budgets) are built once per tick and shared (the only thing a gate writes).
 *
 * Pure module: no I/O, no clock, no randomness.
 */
import { isDone, isOffline, isPinned, isReleased, isStandingAside, liveness, offlineSkip, type Plan, type Tick } from './tick.ts';
import type { GateBlock, GateName } from './types.ts';

/**
 * 0. Pin (issue 14): a host whose signed pin has not expired is never dispatched another closure;
 * it stays on what it runs (the reconciler holds it rather than `resolve` rewriting its closure:
 * the CP has no closure for the pinned commit, and holding needs no build). It does not block its
 * wave or the hosts it gates, and gets the target once the pin lapses.
 */
export function pinGate(t: Tick, plan: Plan, i: number): GateBlock | null {
  if (!isPinned(t, plan, i)) return null;
  const until = plan.ch.pinUntilAt[i]!;
  return {
    gate: 'pin',
    code: 'pinned',
    reason: `pinned to ${plan.ch.pinLabelAt[i]}${until === Infinity ? '' : ` until ${new Date(until).toISOString()}`}: not dispatched`,
  };
}

/** 1. Quarantine: the host's target closure is quarantined on its channel (any wave). */
export function quarantineGate(_t: Tick, plan: Plan, i: number): GateBlock | null {
  const closure = plan.ch.closureAt[i]!;
  if (plan.quarantine.size === 0 || !plan.quarantine.has(closure)) return null;
  return { gate: 'quarantine', code: 'quarantined', reason: `closure ${closure} is quarantined on channel '${plan.ch.name}'; push a new closure to clear` };
}

/**
 * 2. Channel edges: a rollout starts only once every channel gating it has converged on *its*
 * current target (a gating channel with no hosts to update does not block). Rollout-level: it
 * holds every host of a Pending rollout; once the rollout has started it holds none.
 */
export function channelEdgeGate(t: Tick, plan: Plan, _i?: number): GateBlock | null {
  if (plan.state !== 'Pending') return null;
  const ch = plan.ch;
  const blocking = ch.gatedBy.find((g) => {
    const gi = t.idx.channels.get(g);
    return gi !== undefined && gi.targetRef !== null && t.converged.get(g) !== gi.targetRef;
  });
  if (blocking === undefined) return null;
  const edge = t.fleet.channelEdges.find((e) => e.gates === blocking && e.gated === ch.name);
  return {
    gate: 'channel-edge',
    gatedBy: blocking,
    reason: `waiting for channel '${blocking}' to converge on ${t.idx.channels.get(blocking)!.targetRef} (channel edge${edge?.reason ? `: ${edge.reason}` : ''})`,
  };
}

/** 3. Wave order: the host's wave is the current one and every earlier wave is done. */
export function waveOrderGate(_t: Tick, plan: Plan, i: number): GateBlock | null {
  const w = plan.ch.waveAt[i]!;
  if (plan.controls?.released !== undefined && isReleased(plan, i)) return null;
  const open = Math.min(plan.currentWave, plan.minIncompleteWave);
  if (w <= open) return null;
  return (plan.waveOrderBlocks[w] ??= {
    gate: 'wave-order',
    wave: w,
    reason: `wave ${w} waits for wave ${open} to be done (Soaked/Converged)`,
  });
}

/** Online: the host has checked in within `offlineAfterMs` (a host never seen is offline). */
export function onlineGate(t: Tick, plan: Plan, i: number): GateBlock | null {
  if (!isOffline(t, plan, i)) return null;
  const sk = offlineSkip(liveness(t, plan, i), t);
  return { gate: 'online', code: sk.code, reason: sk.reason };
}

/** 4. Host edges: every gating host (same channel) is Soaked/Converged. */
export function hostEdgeGate(t: Tick, plan: Plan, i: number): GateBlock | null {
  const ch = plan.ch;
  const gates = ch.gatesAt[i];
  if (gates === undefined) return null;
  if (isReleased(plan, i)) return null;
  // A pinned or released gating host stands aside: it holds nobody back (issue 14).
  const k = gates.findIndex((x) => !isDone(plan.states[x]!) && !isStandingAside(t, plan, x));
  if (k < 0) return null;
  const g = gates[k]!;
  const h = ch.members[i]!;
  const gName = ch.members[g]!;
  const why = ch.edgeReasonsAt[i]?.[k] ?? null;
  const w = ch.waveAt[i]!;
  const gw = ch.waveAt[g]!;
  return {
    gate: 'host-edge',
    code: 'host-edge',
    gatingHost: gName,
    deadlock: gw > w ? `host ${h} (wave ${w}) waits for '${gName}' in later wave ${gw}` : null,
    reason: `host-edge: gating host '${gName}' not yet Soaked/Converged${why ? ` (${why})` : ''}`,
  };
}

/** 5. Disruption budgets: no budget matching the host is full, counted across every channel's current rollout. */
export function budgetGate(t: Tick, plan: Plan, i: number): GateBlock | null {
  const budgets = plan.ch.budgetsAt[i];
  if (budgets === undefined) return null;
  for (const b of budgets) {
    const bi = t.idx.budgets[b]!;
    if (t.budgetCount[b]! < bi.limit) continue;
    return (t.budgetBlocks[b] ??= { gate: 'budget', budget: b, reason: `disruption ${bi.label} full: ${bi.limit} in flight (of ${bi.matching} matching hosts)` });
  }
  return null;
}

/** 6. Compliance (enforce): no host of an earlier wave that runs the new closure reports open failures. */
export function complianceGate(_t: Tick, plan: Plan, i: number): GateBlock | null {
  const w = plan.ch.waveAt[i]!;
  if (w <= plan.minComplianceFailWave) return null;
  return { gate: 'compliance', code: 'compliance', reason: `compliance (enforce): open failures on hosts of wave ${plan.minComplianceFailWave} block wave ${w}` };
}

export type Gate = (t: Tick, plan: Plan, i: number) => GateBlock | null;

/** The gates in SPEC §4 order; the first block wins. */
export const GATES: ReadonlyArray<{ readonly name: GateName; readonly check: Gate }> = [
  { name: 'pin', check: pinGate },
  { name: 'quarantine', check: quarantineGate },
  { name: 'channel-edge', check: channelEdgeGate },
  { name: 'wave-order', check: waveOrderGate },
  { name: 'online', check: onlineGate },
  { name: 'host-edge', check: hostEdgeGate },
  { name: 'budget', check: budgetGate },
  { name: 'compliance', check: complianceGate },
];

/** The first gate that holds host i back, or null when every gate passes (GATES, written out so each call is direct). */
export function firstBlock(t: Tick, plan: Plan, i: number): GateBlock | null {
  return (
    pinGate(t, plan, i) ??
    quarantineGate(t, plan, i) ??
    channelEdgeGate(t, plan, i) ??
    waveOrderGate(t, plan, i) ??
    onlineGate(t, plan, i) ??
    hostEdgeGate(t, plan, i) ??
    budgetGate(t, plan, i) ??
    complianceGate(t, plan, i)
  );
}
