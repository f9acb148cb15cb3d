/**
 * The reconciler's laws (issue: property-tested reconciler), each written once as a checker that
 * returns the violations it finds in one simulated tick. The property tests run them over random
 * fleets and random host behaviour; a control-plane test can run them over its own ticks.
 *
 * These are an independent oracle: they re-derive budgets, wave order and liveness from the
 * fleet and the observed states instead of calling the reconciler's own helpers.
 *
 * Pure module: no I/O.
 */
import type { FleetResolved } from '../protocol/schema.ts';
import { changeWindowAt } from '../protocol/windows.ts';
import { computeTargetRef, selectorMatches } from './fleet-index.ts';
import { reconcile } from './reconcile.ts';
import type { SimTick } from './simulate.ts';
import { DEFAULT_RECONCILE_OPTIONS, type HostRolloutState, type Observed, type ReconcileOptions, type Rollout } from './types.ts';

const IN_FLIGHT = new Set<HostRolloutState>(['Dispatched', 'Activating', 'ConfirmWindow', 'PendingReboot', 'Healthy']);
const DONE = new Set<HostRolloutState>(['Soaked', 'Converged']);

/** channel → its current target ref, recomputed from the fleet (null when no member). */
function currentRefs(fleet: FleetResolved): Map<string, string | null> {
  const m = new Map<string, string | null>();
  for (const c of Object.keys(fleet.channels)) {
    const members = Object.entries(fleet.hosts).filter(([, h]) => h.channel === c && h.closureHash !== null);
    m.set(c, members.length === 0 ? null : computeTargetRef(members.map(([n, h]) => [n, h.closureHash!] as const)));
  }
  return m;
}

const memo = new WeakMap<FleetResolved, Map<string, string | null>>();
function refs(fleet: FleetResolved): Map<string, string | null> {
  let m = memo.get(fleet);
  if (!m) memo.set(fleet, (m = currentRefs(fleet)));
  return m;
}

function currentRollouts(fleet: FleetResolved, obs: Observed): Rollout[] {
  const out: Rollout[] = [];
  for (const [c, ref] of refs(fleet)) {
    if (ref === null) continue;
    const r = obs.rollouts[`${c}@${ref}`];
    if (r !== undefined && r.state !== 'Superseded') out.push(r);
  }
  return out;
}

function pastGrace(obs: Observed, r: Rollout, h: string, nowMs: number, o: ReconcileOptions): boolean {
  const last = obs.hosts[h]?.lastCheckinMs ?? null;
  const ref = last ?? r.startedAtMs ?? r.openedAtMs;
  return nowMs - ref > o.offlineAfterMs + o.offlineGraceMs;
}

/** Hosts released from ordering in rollout `id` (Observed.controls). */
function releasedIn(o: Observed, id: string): Set<string> {
  return new Set(Object.keys(o.controls?.[id]?.released ?? {}));
}

/** Issue 14: a Queued host under an unexpired pin, or released by the operator, holds nobody back. */
function standsAside(fleet: FleetResolved, released: Set<string>, h: string, state: HostRolloutState, nowMs: number): boolean {
  if (state !== 'Queued') return false;
  if (released.has(h)) return true;
  return pinnedAt(fleet, h, nowMs);
}

function pinnedAt(fleet: FleetResolved, h: string, nowMs: number): boolean {
  const pin = fleet.hosts[h]?.pin;
  if (pin === undefined) return false;
  return pin.expiresAt === undefined || pin.expiresAt === null || nowMs < Date.parse(pin.expiresAt);
}

/** Law 1: after the actions of any tick, no budget has more hosts in flight than its limit. */
export function lawBudgets(fleet: FleetResolved, t: SimTick): string[] {
  const out: string[] = [];
  const inFlight = new Set<string>();
  for (const r of currentRollouts(fleet, t.after)) for (const [h, rh] of Object.entries(r.hosts)) if (IN_FLIGHT.has(rh.state)) inFlight.add(h);
  fleet.disruptionBudgets.forEach((b, i) => {
    const matching = Object.keys(fleet.hosts).filter((h) => selectorMatches(b.selector, h, fleet.hosts[h]!));
    let limit = Infinity;
    if (b.maxInFlight !== null) limit = Math.min(limit, b.maxInFlight);
    if (b.maxInFlightPct !== null) limit = Math.min(limit, Math.ceil((b.maxInFlightPct * matching.length) / 100));
    if (b.maxInFlight !== null || b.maxInFlightPct !== null) limit = Math.max(1, limit);
    const n = matching.filter((h) => inFlight.has(h)).length;
    if (n > limit) out.push(`law 1: budget #${i} has ${n} in flight > limit ${limit} at tick ${t.tick}`);
  });
  return out;
}

/** Laws 2–5 for every dispatch and start of the tick. */
export function lawDispatches(fleet: FleetResolved, t: SimTick, o: ReconcileOptions = DEFAULT_RECONCILE_OPTIONS): string[] {
  const out: string[] = [];
  const after = t.after;
  for (const a of t.actions) {
    if (a.kind === 'promote_wave' && a.fromWave === null) {
      // law 3 (channels): a gated channel starts no rollout before its gating channel converged
      for (const e of fleet.channelEdges) {
        if (e.gated !== a.channel) continue;
        const ref = refs(fleet).get(e.gates) ?? null;
        if (ref !== null && after.lastConverged[e.gates] !== ref) out.push(`law 3: channel ${a.channel} started before ${e.gates} converged (tick ${t.tick})`);
      }
    }
    if (a.kind !== 'dispatch_host') continue;
    const r = after.rollouts[a.rolloutId];
    const host = fleet.hosts[a.host];
    // law 4: exactly the signed closure
    if (host === undefined || a.closure !== host.closureHash) out.push(`law 4: ${a.host} dispatched ${a.closure}, signed ${host?.closureHash}`);
    if (r === undefined) {
      out.push(`dispatch into unknown rollout ${a.rolloutId}`);
      continue;
    }
    // law 5: not in a halted or paused rollout, not a paused channel, not a quarantined closure
    // (a Halted rollout never leaves Halted; a Paused one may be resumed in the same tick by the operator)
    const beforeState = t.before.rollouts[a.rolloutId]?.state;
    if (r.state === 'Halted' || r.state === 'Paused' || beforeState === 'Halted') out.push(`law 5: dispatch of ${a.host} in a ${r.state} rollout`);
    if (a.channel in after.pausedChannels) out.push(`law 5: dispatch of ${a.host} on paused channel ${a.channel}`);
    if ((after.quarantinedClosures[a.channel] ?? []).includes(a.closure)) out.push(`law 5: dispatch of quarantined closure ${a.closure}`);
    // law 2: every host of an earlier wave is Soaked/Converged (or offline past its grace).
    // Wave order drives a rollout until it converges; after that a host coming back gets the
    // proven target when it returns (SPEC §4), even while an earlier-wave host of the same
    // converged rollout is being redeployed after drift.
    const rel = releasedIn(after, r.id);
    const releasedSelf = rel.has(a.host);
    const settled = beforeState === 'Converged' && r.state === 'Converged';
    for (const [g, rg] of Object.entries(r.hosts)) {
      if (settled || rg.wave >= a.wave || DONE.has(rg.state) || releasedSelf) continue;
      if (pastGrace(after, r, g, t.nowMs, o) || standsAside(fleet, rel, g, rg.state, t.nowMs)) continue;
      out.push(`law 2: ${a.host} (wave ${a.wave}) dispatched while ${g} (wave ${rg.wave}) is ${rg.state} (tick ${t.tick})`);
    }
    // law 3 (hosts): a gated host only after its gating host is Soaked/Converged
    for (const e of fleet.edges) {
      if (e.gated !== a.host) continue;
      const rg = r.hosts[e.gates];
      if (rg !== undefined && !DONE.has(rg.state) && !releasedSelf && !standsAside(fleet, rel, e.gates, rg.state, t.nowMs)) out.push(`law 3: ${a.host} dispatched before its gating host ${e.gates} (${rg.state})`);
    }
  }
  return out;
}

/** Law 7: reconciling again at the same `now` after applying the actions adds no new dispatch (nor any state change). */
export function lawIdempotent(fleet: FleetResolved, t: SimTick, o: Partial<ReconcileOptions> = {}): string[] {
  const again = reconcile(fleet, t.after, t.nowMs, o);
  const changing = again.filter((a) => a.kind !== 'wave_blocked');
  return changing.length === 0 ? [] : [`law 7: tick ${t.tick} not a fixpoint: ${changing.map((a) => `${a.kind}${'host' in a ? `:${a.host}` : ''}`).join(', ')}`];
}

/**
 * Issue 14 laws for every tick: no rollout starts and no host is dispatched while its channel's
 * change window is closed; a host under an unexpired pin is never dispatched; no rollout starts
 * with fewer distinct operator approvals than its channel's `requireApprovals`.
 */
export function lawWindowsAndPins(fleet: FleetResolved, t: SimTick): string[] {
  const out: string[] = [];
  for (const a of t.actions) {
    if (a.kind !== 'dispatch_host' && !(a.kind === 'promote_wave' && a.fromWave === null)) continue;
    const w = changeWindowAt(fleet.channels[a.channel]?.changeWindow, t.nowMs);
    if (!w.open) out.push(`window: ${a.kind} on channel ${a.channel} at tick ${t.tick} while ${w.reason}`);
    if (a.kind === 'dispatch_host' && pinnedAt(fleet, a.host, t.nowMs)) out.push(`pin: ${a.host} dispatched ${a.closure} under its pin at tick ${t.tick}`);
    if (a.kind === 'promote_wave') {
      const need = fleet.channels[a.channel]?.requireApprovals ?? 0;
      const have = Object.keys(t.before.controls?.[a.rolloutId]?.approvals ?? {}).length;
      if (have < need) out.push(`approvals: ${a.rolloutId} started with ${have} of ${need} approvals at tick ${t.tick}`);
    }
  }
  return out;
}

/**
 * When the rollout last promoted a wave (-Infinity: never), read from its history: a
 * rollout-level Executing → Executing entry that raises the wave (stall and window entries carry
 * the wave they were recorded in, so they never raise it). A reopened rollout keeps the history
 * of its earlier run: each opening (→ Pending) starts the count again.
 */
function lastPromotionMs(r: Rollout): number {
  let wave = -Infinity;
  let atMs = -Infinity;
  for (const e of r.history) {
    if (e.host !== null) continue;
    if (e.to === 'Pending') wave = e.wave;
    else if (e.from === 'Executing' && e.to === 'Executing' && e.wave > wave) atMs = e.atMs;
    if (e.wave > wave) wave = e.wave;
  }
  return atMs;
}

/**
 * Issue 14: a rollout never sits silently. After any tick, an Executing rollout whose window is
 * open and that has not moved for its channel's progress deadline is reported stalled. It moved
 * when it started, when a host changed state, and when a wave was promoted: the wave whose last
 * hosts were passed over for being offline past the grace promotes with no host changing state,
 * and that is progress (controls.ts `lastProgressMs`).
 */
export function lawStallReported(fleet: FleetResolved, t: SimTick): string[] {
  const out: string[] = [];
  for (const r of currentRollouts(fleet, t.after)) {
    if (r.state !== 'Executing') continue;
    const ch = fleet.channels[r.channel];
    if (!changeWindowAt(ch?.changeWindow, t.nowMs).open) continue;
    const deadlineMs = (ch?.progressDeadlineMinutes ?? 30) * 60_000;
    const last = Math.max(r.startedAtMs ?? r.openedAtMs, lastPromotionMs(r), ...Object.values(r.hosts).map((h) => h.enteredAtMs));
    if (t.nowMs - last >= deadlineMs && (t.after.controls?.[r.id]?.stall ?? null) === null) out.push(`stall: ${r.id} idle for ${(t.nowMs - last) / 60_000} min and not reported stalled (tick ${t.tick})`);
  }
  return out;
}
