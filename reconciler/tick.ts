/**
 * The working state of one `reconcile` call: the `Tick` (inputs, budget counts, convergences and
 * quarantines as they stand after this tick's decisions so far) and one `Plan` per channel's
 * current rollout (index-aligned arrays over `ChannelIndex.members`). Shared by the gates
 * (gates.ts), the rollout phases (rollout-phases.ts) and dispatch (dispatch.ts); internal to the
 * reconciler, not exported from index.ts.
 *
 * Pure module: no I/O, no clock, no randomness.
 */
import type { FleetResolved } from '../protocol/schema.ts';
import { changeWindowAt, type ChangeWindow } from '../protocol/windows.ts';
import type { ChannelIndex, FleetIndex } from './fleet-index.ts';
import { COMPLIANCE_FAILING, hasOwn, isInFlight, TickReads } from './host-view.ts';
import type { RolloutControls } from './types.ts';
import type { Action, GateBlock, HostObservation, HostRolloutState, Observed, ReconcileOptions, Rollout, RolloutHost, RolloutState, SkipCode } from './types.ts';

export { hasOwn, isInFlight } from './host-view.ts';
export const isDone = (s: HostRolloutState): boolean => s === 'Soaked' || s === 'Converged';

/** Per-channel working state of one tick; arrays are aligned with `ch.members`. */
export type Plan = {
  ch: ChannelIndex;
  id: string;
  /** Existing record (null when opened this tick). */
  record: Rollout | null;
  state: RolloutState;
  currentWave: number;
  /** When the rollout started (or opened): the reference for hosts never seen. */
  refMs: number;
  /** The hosts' records and observations, and facts of those (host-view.ts; shared with the next tick: read only). */
  recs: readonly (RolloutHost | undefined)[];
  obs: readonly (HostObservation | undefined)[];
  /** `obs[i].lastCheckinMs`, NaN when never seen. */
  seenAt: Float64Array;
  /** host-view.ts `RUNS_TARGET` | `RUNS_OTHER` | `COMPLIANCE_FAILING`. */
  flags: Uint8Array;
  /** Newest `enteredAtMs` over `recs` (-Infinity: none). */
  lastEnteredAtMs: number;
  /** Effective host states: the record's, then this tick's transitions. */
  states: HostRolloutState[];
  /** The channel's quarantined closures (the tick's set: health failures of this tick included). */
  quarantine: Set<string>;
  /** Lowest wave with a host neither done nor offline past its grace (set by `promoteWaves`). */
  minIncompleteWave: number;
  /** Lowest wave with a host that runs the new closure and reports compliance failures (enforce). */
  minComplianceFailWave: number;
  /** False on a paused channel: gates are still reported, nothing is dispatched. */
  canDispatch: boolean;
  /** The wave-order block of each wave, built once per tick (most Queued hosts hit it). */
  waveOrderBlocks: (GateBlock | undefined)[];
  /** The channel's change window at `nowMs` (issue 14): closed = no new dispatch, in-flight hosts finish. */
  window: { open: boolean; reason: string };
  /** The rollout's issue-14 state (`Observed.controls[id]`). */
  controls: RolloutControls | undefined;
};

export type Tick = {
  fleet: FleetResolved;
  idx: FleetIndex;
  observed: Observed;
  nowMs: number;
  opts: ReconcileOptions;
  /** What the plans read of each member host: afresh, or only the hosts changed since the last tick (host-view.ts). */
  reads: TickReads;
  /** Hosts in flight per budget (index into `idx.budgets`), kept in step with every decision. */
  budgetCount: number[];
  /** The budget block of each budget, built once per tick. */
  budgetBlocks: (GateBlock | undefined)[];
  converged: Map<string, string>; // channel → targetRef converged (observed + this tick)
  quarantined: Map<string, Set<string>>; // channel → closures (observed + this tick)
};

/** The tick's state before any decision: convergences as observed, no budget counted yet. */
export function makeTick(fleet: FleetResolved, idx: FleetIndex, observed: Observed, nowMs: number, opts: ReconcileOptions): Tick {
  const converged = new Map<string, string>();
  for (const c of Object.keys(observed.lastConverged)) converged.set(c, observed.lastConverged[c]!);
  const reads = new TickReads(idx, observed);
  return { fleet, idx, observed, nowMs, opts, reads, budgetCount: idx.budgets.map(() => 0), budgetBlocks: [], converged, quarantined: new Map() };
}

function quarantineSet(t: Tick, channel: string): Set<string> {
  let s = t.quarantined.get(channel);
  if (s === undefined) {
    s = new Set(hasOwn(t.observed.quarantinedClosures, channel) ? t.observed.quarantinedClosures[channel] : []);
    t.quarantined.set(channel, s);
  }
  return s;
}

/** The working state of a channel's current rollout; counts its in-flight hosts into the budgets. */
export function makePlan(t: Tick, ch: ChannelIndex, id: string, record: Rollout | null): Plan {
  const r = t.reads.channel(ch, id, record);
  for (let b = 0; b < r.inFlight.length; b++) t.budgetCount[b]! += r.inFlight[b]!;
  const controls = t.observed.controls !== undefined && hasOwn(t.observed.controls, id) ? t.observed.controls[id] : undefined;
  return {
    ch,
    id,
    record,
    state: record?.state ?? 'Pending',
    currentWave: record?.currentWave ?? 0,
    refMs: record?.startedAtMs ?? record?.openedAtMs ?? t.nowMs,
    recs: r.recs,
    obs: r.obs,
    seenAt: r.seenAt,
    flags: r.flags,
    lastEnteredAtMs: r.lastEnteredAtMs,
    states: workingStates(r.states, r.work),
    quarantine: quarantineSet(t, ch.name),
    minIncompleteWave: Infinity,
    minComplianceFailWave: Infinity,
    canDispatch: false,
    waveOrderBlocks: [],
    window: startGate(ch.changeWindow, ch.requireApprovals, record, controls, t.nowMs),
    controls,
  };
}

/** The record's states copied into the channel's working array (no allocation of 25,000 slots per tick). */
function workingStates(from: readonly HostRolloutState[], work: HostRolloutState[]): HostRolloutState[] {
  for (let i = 0; i < from.length; i++) work[i] = from[i]!;
  return work;
}

/**
 * The change window, and (issue 14, `requireApprovals: N`) for a rollout that has not started: N
 * distinct operator approvals. A rollout short of them is held like a closed window (it does not
 * start, nothing is dispatched, `window_hold` says why); once started it needs none again.
 */
export function startGate(window: ChangeWindow | undefined, required: number, record: Rollout | null, controls: RolloutControls | undefined, nowMs: number): { open: boolean; reason: string } {
  const w = changeWindowAt(window, nowMs);
  if (!w.open || required <= 0 || (record?.startedAtMs ?? null) !== null) return w;
  const have = Object.keys(controls?.approvals ?? {}).length;
  if (have >= required) return w;
  return { open: false, reason: `awaiting approvals: ${have} of ${required} (nixfleet rollout approve)` };
}

/** Moves host i to a new effective state, keeping the budget counts in step. */
export function setState(t: Tick, plan: Plan, i: number, to: HostRolloutState): void {
  const from = plan.states[i]!;
  const delta = (isInFlight(to) ? 1 : 0) - (isInFlight(from) ? 1 : 0);
  if (delta !== 0) {
    const list = plan.ch.budgetsAt[i];
    if (list !== undefined) for (const b of list) t.budgetCount[b]! += delta;
  }
  plan.states[i] = to;
}

/** Withdraws every pending dispatch of the rollout (pause, halt): Dispatched → Queued. */
export function cancelDispatches(t: Tick, plan: Plan): void {
  for (let i = 0; i < plan.states.length; i++) if (plan.states[i] === 'Dispatched') setState(t, plan, i, 'Queued');
}

/** A signed pin holds host i at `nowMs` (issue 14): it lapses by itself at its expiresAt. */
export function isPinned(t: Tick, plan: Plan, i: number): boolean {
  const until = plan.ch.pinUntilAt[i];
  return until !== undefined && t.nowMs < until;
}

/** The operator released host i from ordering (host edges, wave order) for this rollout (`nixfleet rollout skip`). */
export function isReleased(plan: Plan, i: number): boolean {
  const r = plan.controls?.released;
  return r !== undefined && hasOwn(r, plan.ch.members[i]!);
}

/** A Queued host that holds nobody back: pinned, or released by the operator. */
export function isStandingAside(t: Tick, plan: Plan, i: number): boolean {
  return plan.states[i] === 'Queued' && (isPinned(t, plan, i) || isReleased(plan, i));
}

export type Liveness = { offline: boolean; pastGrace: boolean; forMs: number; neverSeen: boolean };

/** ms since host i was last seen; a host never seen counts from the rollout start, as a negative. */
function unseenForMs(t: Tick, plan: Plan, i: number): number {
  const last = plan.seenAt[i]!;
  // A host never seen counts as offline: we do not know what it runs (CP rebuilt from empty).
  // A check-in stamped after `nowMs` is a host seen just now, never "never seen" (negative is that
  // encoding): several control planes stamp with their own clocks, and a replica's check-in may be
  // stamped after the leader's pass began (issue 17: read as never seen, the pass withdrew the
  // host's dispatch as offline and the next pass dispatched it a second time).
  return Number.isNaN(last) ? -1 - (t.nowMs - plan.refMs) : Math.max(0, t.nowMs - last);
}

export function isOffline(t: Tick, plan: Plan, i: number): boolean {
  const u = unseenForMs(t, plan, i);
  return u < 0 || u > t.opts.offlineAfterMs;
}

export function isPastGrace(t: Tick, plan: Plan, i: number): boolean {
  const u = unseenForMs(t, plan, i);
  const forMs = u < 0 ? -1 - u : u;
  return forMs > t.opts.offlineAfterMs + t.opts.offlineGraceMs;
}

export function liveness(t: Tick, plan: Plan, i: number): Liveness {
  const u = unseenForMs(t, plan, i);
  const neverSeen = u < 0;
  const forMs = neverSeen ? -1 - u : u;
  const offline = neverSeen || forMs > t.opts.offlineAfterMs;
  return { offline, pastGrace: offline && forMs > t.opts.offlineAfterMs + t.opts.offlineGraceMs, forMs, neverSeen };
}

/*
 * Scans over every host of a plan live here, next to the state predicates they call per host
 * (a call across modules costs more than the comparison itself at 10,000 hosts).
 */

/**
 * The lowest wave with a host that is neither done nor offline past its grace (≥ waveCount when
 * every wave is done), and how many hosts were passed over for being offline past the grace.
 *
 * Only a host that has not started this rollout (Queued; an offline Dispatched host was just
 * withdrawn to Queued) may be passed over for being offline. A host that went dark after it began
 * activating (Activating, ConfirmWindow) or during its soak (Healthy) keeps blocking its wave:
 * going dark mid-activation is exactly what a bad closure that cuts the network looks like, and
 * the confirm deadline (→ Reverted → halt) must decide, not the offline grace.
 */
export function lowestIncompleteWave(t: Tick, plan: Plan): { wave: number; skippedOffline: number } {
  const waveAt = plan.ch.waveAt;
  let wave = Infinity;
  let skippedOffline = 0;
  for (let i = 0; i < waveAt.length; i++) {
    const s = plan.states[i]!;
    if (isDone(s)) continue;
    const w = waveAt[i]!;
    if (w >= wave) continue;
    if (s === 'Queued' && isPastGrace(t, plan, i)) {
      skippedOffline++;
      continue;
    }
    if (isStandingAside(t, plan, i)) continue; // pinned or released: does not block its wave
    wave = w;
  }
  return { wave, skippedOffline };
}

/** The lowest wave with a host that runs the new closure (Healthy / Soaked / Converged) and reports open compliance failures (Infinity: none). */
export function lowestComplianceFailWave(plan: Plan): number {
  const waveAt = plan.ch.waveAt;
  let wave = Infinity;
  for (let i = 0; i < waveAt.length; i++) {
    const s = plan.states[i]!;
    if (s !== 'Healthy' && !isDone(s)) continue;
    if ((plan.flags[i]! & COMPLIANCE_FAILING) === 0) continue;
    wave = Math.min(wave, waveAt[i]!);
  }
  return wave;
}

export function secs(ms: number): string {
  return `${Math.round(ms / 1000)} s`;
}

/** The skip code and reason of an offline host (before or past its grace). */
export function offlineSkip(live: Liveness, t: Tick): { code: 'offline' | 'skipped-offline'; reason: string } {
  const what = live.neverSeen ? `has not checked in since the rollout started (${secs(live.forMs)})` : `no check-in for ${secs(live.forMs)}`;
  if (live.pastGrace) {
    return {
      code: 'skipped-offline',
      reason: `offline past the grace (${secs(t.opts.offlineAfterMs + t.opts.offlineGraceMs)}): ${what}; no longer blocks its wave, gets the target when it returns`,
    };
  }
  return { code: 'offline', reason: `${what} (offline after ${secs(t.opts.offlineAfterMs)})` };
}

/** Debounced: emits only when the recorded skip code differs (applyActions records it). */
export function emitSkip(out: Action[], plan: Plan, i: number, code: SkipCode, reason: string): void {
  if (plan.recs[i]?.skip?.code === code) return;
  out.push({ kind: 'skip_host', rolloutId: plan.id, host: plan.ch.members[i]!, code, reason });
}
