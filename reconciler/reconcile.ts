/**
 * `reconcile(fleet, observed, nowMs)`: the pure decision function of SPEC §4. It returns actions
 * as data and performs nothing; `applyActions` (apply.ts) turns them into the next `Observed`.
 *
 * One tick reaches a fixpoint: it opens, starts, soaks, halts, promotes and dispatches in the same
 * call, so reconciling again at the same `nowMs` after applying the actions adds no new dispatch.
 * The tick, over the channels with gating channels first:
 *   - `supersedeStaleRollouts`: a rollout that is not its channel's current target stops;
 *   - `decideRollout` per channel (rollout-phases.ts): open, pause / resume, start or defer on a
 *     channel edge, advance hosts (soak, health failure, already at target, withdraw offline
 *     dispatches), halt, promote the wave or converge — everything that frees a budget slot;
 *   - `dispatchEligible` per started rollout (dispatch.ts): host by host in name order, the gates
 *     of gates.ts in SPEC §4 order, first block wins.
 *
 * Cost: O(hosts of the current rollouts + rollouts), with per-fleet indexes memoised (fleet-index.ts).
 *
 * Pure module: no I/O, no clock, no randomness.
 */
import type { FleetResolved } from '../protocol/schema.ts';
import { detectDrift, detectStall, progressedThisTick, syncWindowHold } from './controls.ts';
import { dispatchEligible } from './dispatch.ts';
import { indexFleet, type FleetIndex } from './fleet-index.ts';
import { advanceHosts, haltOnFailures, mirrorOperatorPause, noteComplianceFailures, openRollout, promoteWaves, startOrDefer } from './rollout-phases.ts';
import { hasOwn, makePlan, makeTick, type Plan, type Tick } from './tick.ts';
import { DEFAULT_RECONCILE_OPTIONS, type Action, type Observed, type ReconcileOptions, type Rollout } from './types.ts';

/** Supersession: a rollout that is not its channel's current target stops (Converged ones stay as history). */
function supersedeStaleRollouts(idx: FleetIndex, observed: Observed, out: Action[]): void {
  for (const id of Object.keys(observed.rollouts).sort()) {
    const r = observed.rollouts[id]!;
    if (r.state === 'Superseded' || r.state === 'Converged') continue;
    const ch = idx.channels.get(r.channel);
    if (ch === undefined) {
      out.push({ kind: 'supersede_rollout', rolloutId: id, channel: r.channel, byTargetRef: null, reason: `channel '${r.channel}' is no longer in the signed fleet` });
    } else if (ch.rolloutId !== id) {
      out.push({
        kind: 'supersede_rollout',
        rolloutId: id,
        channel: r.channel,
        byTargetRef: ch.targetRef,
        reason:
          ch.targetRef === null
            ? `channel '${r.channel}' has no host with a closure in the signed fleet any more`
            : `signed target of channel '${r.channel}' changed: ${r.targetRef} → ${ch.targetRef}`,
      });
    }
  }
}

/** The plan of every channel's current rollout, created (and its in-flight hosts counted into the budgets) before any decision. */
function currentRollouts(t: Tick): { plan: Plan; existing: Rollout | null }[] {
  const out: { plan: Plan; existing: Rollout | null }[] = [];
  for (const name of t.idx.channelOrder) {
    const ch = t.idx.channels.get(name)!;
    const id = ch.rolloutId;
    if (id === null || ch.targetRef === null) continue;
    const existing = hasOwn(t.observed.rollouts, id) ? t.observed.rollouts[id]! : null;
    // This target already converged and its record was pruned: nothing to open.
    if (existing === null && t.converged.get(name) === ch.targetRef) continue;
    const record = existing !== null && existing.state !== 'Superseded' ? existing : null;
    out.push({ plan: makePlan(t, ch, id, record), existing });
  }
  t.reads.close();
  return out;
}

/** Every rollout-level decision of one channel's current rollout, and everything that frees a budget slot. */
function decideRollout(t: Tick, plan: Plan, existing: Rollout | null, out: Action[]): void {
  openRollout(plan, existing, out);
  const paused = mirrorOperatorPause(t, plan, out);
  if (plan.state === 'Pending' && !startOrDefer(t, plan, out)) {
    if (!plan.window.open && plan.state === 'Pending') syncWindowHold(plan, out);
    return;
  }
  if (plan.state === 'Superseded') return;
  const windowOpen = plan.state === 'Halted' || syncWindowHold(plan, out);
  const { failed, failActions, soakActions } = advanceHosts(t, plan);
  out.push(...failActions);
  haltOnFailures(t, plan, failed, out);
  out.push(...soakActions);
  if (plan.state !== 'Executing' && plan.state !== 'Converged') return;
  promoteWaves(t, plan, out);
  noteComplianceFailures(plan);
  plan.canDispatch = !paused && windowOpen;
}

/**
 * Decide what may happen now (SPEC §4). Pure and deterministic: the same inputs give the same
 * actions, whatever the key order of the input maps. `options` defaults to
 * `DEFAULT_RECONCILE_OPTIONS` (offline after 180 s, grace 30 min).
 */
export function reconcile(fleet: FleetResolved, observed: Observed, nowMs: number, options: Partial<ReconcileOptions> = {}): Action[] {
  const opts: ReconcileOptions = { ...DEFAULT_RECONCILE_OPTIONS, ...options };
  const idx = indexFleet(fleet);
  const out: Action[] = [];

  const retire = observed.trust?.successorRetireAtMs ?? null;
  if (retire !== null && nowMs >= retire) {
    out.push({ kind: 'rotate_trust_root', reason: `the successor release key's retireAt (${new Date(retire).toISOString()}) has passed: promote it to current` });
  }
  supersedeStaleRollouts(idx, observed, out);

  const t = makeTick(fleet, idx, observed, nowMs, opts);
  // Budgets count the in-flight hosts of every channel's current rollout, before any decision.
  const rollouts = currentRollouts(t);
  const started: Plan[] = [];
  for (const { plan, existing } of rollouts) {
    decideRollout(t, plan, existing, out);
    if (plan.state === 'Executing' || plan.state === 'Converged') started.push(plan);
  }
  detectDrift(t, started, out);
  for (const plan of started) dispatchEligible(t, plan, out);
  const progressed = progressedThisTick(out);
  for (const { plan } of rollouts) detectStall(t, plan, progressed, out);
  return out;
}
