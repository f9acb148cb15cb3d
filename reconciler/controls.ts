/**
 * The rollout controls of issue 14 (SPEC §10), as tick phases over the plans of reconcile.ts:
 *   - change windows: a channel outside its signed window dispatches nothing new (in-flight hosts
 *     finish) and a Pending rollout does not start; `window_hold` reports it once per reason;
 *   - drift: a host of a Converged rollout that reports a closure other than the one the rollout
 *     gave it is drifted (`host_drifted` / `drift_cleared`, debounced on `Observed.drifted`);
 *     with `onDrift: redeploy` it goes back to Queued, and dispatch takes it through the usual
 *     gates and budgets;
 *   - stalls: an Executing rollout without progress for its progress deadline is reported stalled
 *     with the hosts that block its current wave and the gate that holds them
 *     (`rollout_stalled`, debounced on `Observed.controls[id].stall`), and cleared by itself when it moves again.
 *
 * Pins are a gate (gates.ts `pinGate`); operator releases (`nixfleet rollout skip`) are read by
 * the wave-order and host-edge gates (tick.ts `isReleased`).
 *
 * Pure module: no I/O, no clock, no randomness.
 */
import { firstBlock } from './gates.ts';
import { hasOwn, isDone, isPastGrace, isPinned, isStandingAside, secs, setState, type Plan, type Tick } from './tick.ts';
import type { Action, Rollout, RolloutControls, RolloutHost } from './types.ts';
import { RUNS_OTHER } from './host-view.ts';

/** Reports the change window's hold (or its end) for a live rollout, once per reason. Returns whether the window is open. */
export function syncWindowHold(plan: Plan, out: Action[]): boolean {
  const held = plan.controls?.windowHold ?? null;
  const { ch, id, window } = plan;
  if (!window.open) {
    if (held !== window.reason) out.push({ kind: 'window_hold', rolloutId: id, channel: ch.name, held: true, reason: window.reason });
    return false;
  }
  if (held !== null) out.push({ kind: 'window_hold', rolloutId: id, channel: ch.name, held: false, reason: `change window open: ${window.reason}` });
  return true;
}

/**
 * Drift over the channels whose current rollout is Converged. Emits `host_drifted` when a host
 * starts drifting (or drifts to another closure), `drift_cleared` when a marked host runs its
 * declared closure again (or is no longer in a converged rollout), and with `onDrift: redeploy`
 * a `redeploy_host` that puts a done host back to Queued (dispatch follows in this tick if every
 * gate passes). A pinned host is never drifted: it is meant to run something else.
 */
export function detectDrift(t: Tick, plans: readonly Plan[], out: Action[]): void {
  const marked = t.observed.drifted ?? {};
  const now = new Set<string>();
  for (const plan of plans) {
    // Converged before this tick: a rollout converging now has check-ins from before its hosts' confirms.
    if (plan.state !== 'Converged' || plan.record?.state !== 'Converged') continue;
    const { ch, id } = plan;
    for (let i = 0; i < ch.members.length; i++) {
      const s = plan.states[i]!;
      // Checked in, runs a closure and not its target (host-view.ts); the flat array spares a read of every observation.
      if ((plan.flags[i]! & RUNS_OTHER) === 0) continue;
      if (s === 'Failed' || s === 'Reverted' || isPinned(t, plan, i)) continue;
      const obs = plan.obs[i]!;
      const actual = obs.currentClosure!;
      const expected = ch.closureAt[i]!;
      if (obs.lastCheckinMs === null) continue;
      const h = ch.members[i]!;
      const prev = hasOwn(marked, h) ? marked[h]! : null;
      // A done host that runs something else drifted (only a check-in after it got there says what
      // it runs now); a marked one stays drifted while it is redeployed.
      if (prev === null && (!isDone(s) || obs.lastCheckinMs <= (plan.recs[i]?.enteredAtMs ?? Infinity))) continue;
      now.add(h);
      if (prev === null || prev.actual !== actual) {
        out.push({
          kind: 'host_drifted',
          rolloutId: id,
          channel: ch.name,
          host: h,
          expected,
          actual,
          reason: `runs ${actual}, not ${expected} that converged rollout ${id} gave it (onDrift: ${ch.onDrift})`,
        });
      }
      if (ch.onDrift === 'redeploy' && isDone(s)) {
        out.push({ kind: 'redeploy_host', rolloutId: id, channel: ch.name, host: h, closure: expected, reason: `drifted to ${actual}: redeploy ${expected} (onDrift: redeploy)` });
        setState(t, plan, i, 'Queued');
      }
    }
  }
  for (const h of Object.keys(marked).sort()) {
    if (now.has(h)) continue;
    const d = marked[h]!;
    out.push({ kind: 'drift_cleared', channel: d.channel, host: h, reason: `no longer drifted (expected ${d.expected})` });
  }
}

const PROGRESS_KINDS: ReadonlySet<Action['kind']> = new Set(['dispatch_host', 'soak_host', 'promote_wave', 'converge_rollout', 'redeploy_host', 'fail_host']);

/**
 * Rollout ids that moved in this tick's actions so far. A dispatch withdrawn from a host gone
 * offline counts: it is a host transition, which `lastProgressMs` reads once it is applied (so
 * reporting a stall in the same tick would be undone by the next pass at the same time).
 */
export function progressedThisTick(out: readonly Action[]): Set<string> {
  const s = new Set<string>();
  for (const a of out) if ((PROGRESS_KINDS.has(a.kind) || (a.kind === 'skip_host' && a.withdrawn === true)) && 'rolloutId' in a) s.add(a.rolloutId);
  return s;
}

/**
 * When the rollout last moved: its start, its last wave promotion (`controls.promotedAtMs`), or
 * the newest host transition (every host state change stamps `enteredAtMs`). Derived from
 * persisted rows only, so a restarted control plane measures the same idle time.
 */
export function lastProgressMs(r: Pick<Rollout, 'startedAtMs' | 'openedAtMs'>, recs: readonly (RolloutHost | undefined)[], controls?: RolloutControls | null): number {
  let lastEntered = -Infinity;
  for (const rh of recs) if (rh !== undefined && rh.enteredAtMs > lastEntered) lastEntered = rh.enteredAtMs;
  return progressedAtMs(r, lastEntered, controls);
}

/** `lastProgressMs` with the newest host transition known (`Plan.lastEnteredAtMs`, kept between ticks by host-view.ts). */
function progressedAtMs(r: Pick<Rollout, 'startedAtMs' | 'openedAtMs'>, lastEnteredAtMs: number, controls: RolloutControls | null | undefined): number {
  let last = r.startedAtMs ?? r.openedAtMs;
  const promoted = controls?.promotedAtMs;
  if (promoted !== undefined && promoted > last) last = promoted;
  return lastEnteredAtMs > last ? lastEnteredAtMs : last;
}

const MAX_LISTED = 20;

/** The hosts that hold the rollout's lowest incomplete wave, each with its gate (or in-flight state). */
function blockingHosts(t: Tick, plan: Plan): { host: string; gate: string }[] {
  const { ch } = plan;
  const out: { host: string; gate: string }[] = [];
  for (let i = 0; i < ch.members.length; i++) {
    if (ch.waveAt[i] !== plan.minIncompleteWave) continue;
    const s = plan.states[i]!;
    if (isDone(s)) continue;
    if (s === 'Queued' && (isPastGrace(t, plan, i) || isStandingAside(t, plan, i))) continue;
    out.push({ host: ch.members[i]!, gate: s === 'Queued' ? (firstBlock(t, plan, i)?.gate ?? 'dispatch') : s });
  }
  return out;
}

/**
 * Stall detection for one channel's current rollout, after dispatch. Stalled: Executing, its
 * window open, nothing moved this tick, and no progress for the channel's progress deadline
 * while some host blocks its wave. Reported once per (gate, hosts); cleared when it moves again
 * or leaves Executing.
 */
export function detectStall(t: Tick, plan: Plan, progressed: ReadonlySet<string>, out: Action[]): void {
  const r = plan.record;
  if (r === null) return;
  const { ch, id } = plan;
  const current = plan.controls?.stall ?? null;
  let stalled: { gate: string; hosts: string[]; reason: string } | null = null;
  if (plan.state === 'Executing' && plan.window.open && !progressed.has(id)) {
    const idleMs = t.nowMs - progressedAtMs(r, plan.lastEnteredAtMs, plan.controls);
    if (idleMs >= ch.progressDeadlineMs) {
      const blocking = blockingHosts(t, plan);
      if (blocking.length > 0) {
        const gate = blocking[0]!.gate;
        const listed = blocking.slice(0, MAX_LISTED);
        stalled = {
          gate,
          hosts: listed.map((b) => b.host),
          reason: `no progress for ${secs(idleMs)} (progress deadline ${secs(ch.progressDeadlineMs)}): wave ${plan.minIncompleteWave} held by ${listed
            .map((b) => `${b.host} (${b.gate})`)
            .join(', ')}${blocking.length > MAX_LISTED ? ` and ${blocking.length - MAX_LISTED} more` : ''}`,
        };
      }
    }
  }
  if (stalled !== null) {
    if (current === null || current.gate !== stalled.gate || current.hosts.join('\n') !== stalled.hosts.join('\n')) {
      out.push({ kind: 'rollout_stalled', rolloutId: id, channel: ch.name, ...stalled });
    }
  } else if (current !== null) {
    out.push({ kind: 'rollout_unstalled', rolloutId: id, channel: ch.name, reason: plan.state === 'Executing' ? 'progress resumed' : `rollout is ${plan.state}` });
  }
}
