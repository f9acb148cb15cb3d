/**
 * `reconcile(fleet, observed, nowMs)`: the pure decision function of SPEC §4. It returns actions
 * as data and performs nothing; `applyActions` (apply.ts) turns them into the next `Observed`.
 *
 * One tick reaches a fixpoint: it opens, starts, soaks, halts, promotes and dispatches in the same
 * call, so reconciling again at the same `nowMs` after applying the actions adds no new dispatch.
 * The tick has two phases over the channels (gating channels first):
 *   1. rollout-level transitions and everything that frees a budget slot (supersede, open, pause,
 *      resume, start / defer, soak, health failure, halt, withdraw offline dispatches, promote,
 *      converge);
 *   2. dispatch, host by host in name order, gates in SPEC §4 order (first block wins):
 *      quarantine → channel edges (phase 1) → wave order → offline → host edges → disruption
 *      budgets → compliance (enforce).
 *
 * Cost: O(hosts of the current rollouts + rollouts), with per-fleet indexes memoised (fleet-index.ts).
 *
 * Pure module: no I/O, no clock, no randomness.
 */
import type { FleetResolved } from '../protocol/schema.ts';
import { indexFleet, type ChannelIndex, type FleetIndex } from './fleet-index.ts';
import {
  DEFAULT_RECONCILE_OPTIONS,
  type Action,
  type HostObservation,
  type HostRolloutState,
  type Observed,
  type ReconcileOptions,
  type Rollout,
  type RolloutHost,
  type RolloutState,
  type SkipCode,
} from './types.ts';

const isInFlight = (s: HostRolloutState): boolean => s === 'Dispatched' || s === 'Activating' || s === 'ConfirmWindow' || s === 'Healthy';
const isDone = (s: HostRolloutState): boolean => s === 'Soaked' || s === 'Converged';
const hasOwn = (o: object, k: string): boolean => Object.prototype.hasOwnProperty.call(o, k);

/** Per-channel working state of one tick; arrays are aligned with `ch.members`. */
type Plan = {
  ch: ChannelIndex;
  id: string;
  /** Existing record (null when opened this tick). */
  record: Rollout | null;
  state: RolloutState;
  currentWave: number;
  /** When the rollout started (or opened): the reference for hosts never seen. */
  refMs: number;
  recs: (RolloutHost | undefined)[];
  obs: (HostObservation | undefined)[];
  /** Effective host states: the record's, then this tick's transitions. */
  states: HostRolloutState[];
  minIncompleteWave: number;
  minComplianceFailWave: number;
  canDispatch: boolean;
};

type Tick = {
  fleet: FleetResolved;
  idx: FleetIndex;
  observed: Observed;
  nowMs: number;
  opts: ReconcileOptions;
  budgetCount: number[];
  converged: Map<string, string>; // channel → targetRef converged (observed + this tick)
  quarantined: Map<string, Set<string>>; // channel → closures (observed + this tick)
};

function quarantineSet(t: Tick, channel: string): Set<string> {
  let s = t.quarantined.get(channel);
  if (s === undefined) {
    s = new Set(hasOwn(t.observed.quarantinedClosures, channel) ? t.observed.quarantinedClosures[channel] : []);
    t.quarantined.set(channel, s);
  }
  return s;
}

type Liveness = { offline: boolean; pastGrace: boolean; forMs: number; neverSeen: boolean };

/** ms since host i was last seen; a host never seen counts from the rollout start, as a negative. */
function unseenForMs(t: Tick, plan: Plan, i: number): number {
  const last = plan.obs[i]?.lastCheckinMs ?? null;
  // A host never seen counts as offline: we do not know what it runs (CP rebuilt from empty).
  return last === null ? -1 - (t.nowMs - plan.refMs) : t.nowMs - last;
}

function isOffline(t: Tick, plan: Plan, i: number): boolean {
  const u = unseenForMs(t, plan, i);
  return u < 0 || u > t.opts.offlineAfterMs;
}

function isPastGrace(t: Tick, plan: Plan, i: number): boolean {
  const u = unseenForMs(t, plan, i);
  const forMs = u < 0 ? -1 - u : u;
  return forMs > t.opts.offlineAfterMs + t.opts.offlineGraceMs;
}

function liveness(t: Tick, plan: Plan, i: number): Liveness {
  const u = unseenForMs(t, plan, i);
  const neverSeen = u < 0;
  const forMs = neverSeen ? -1 - u : u;
  const offline = neverSeen || forMs > t.opts.offlineAfterMs;
  return { offline, pastGrace: offline && forMs > t.opts.offlineAfterMs + t.opts.offlineGraceMs, forMs, neverSeen };
}

/** Moves host i to a new effective state, keeping the budget counts in step. */
function setState(t: Tick, plan: Plan, i: number, to: HostRolloutState): void {
  const from = plan.states[i]!;
  const delta = (isInFlight(to) ? 1 : 0) - (isInFlight(from) ? 1 : 0);
  if (delta !== 0) {
    const list = plan.ch.budgetsAt[i];
    if (list !== undefined) for (const b of list) t.budgetCount[b]! += delta;
  }
  plan.states[i] = to;
}

function secs(ms: number): string {
  return `${Math.round(ms / 1000)} s`;
}

function offlineSkip(live: Liveness, t: Tick): { code: SkipCode; reason: string } {
  const what = live.neverSeen ? `has not checked in since the rollout started (${secs(live.forMs)})` : `no check-in for ${secs(live.forMs)}`;
  if (live.pastGrace) {
    return {
      code: 'skipped-offline',
      reason: `offline past the grace (${secs(t.opts.offlineAfterMs + t.opts.offlineGraceMs)}): ${what}; no longer blocks its wave, gets the target when it returns`,
    };
  }
  return { code: 'offline', reason: `${what} (offline after ${secs(t.opts.offlineAfterMs)})` };
}

/** Debounced: emits only when the recorded skip differs (applyActions records it); the reason is built lazily. */
function emitSkip(out: Action[], plan: Plan, i: number, code: SkipCode, reason: () => string): void {
  if (plan.recs[i]?.skip?.code === code) return;
  out.push({ kind: 'skip_host', rolloutId: plan.id, host: plan.ch.members[i]!, code, reason: reason() });
}

/** Health gate of SPEC §4 soak: probes observed and passing, failed units within the max. */
function healthOf(ch: ChannelIndex, obs: HostObservation | undefined): { ok: boolean; failing: string | null } {
  if (obs === undefined) return { ok: false, failing: null };
  if (ch.failedUnitsMax !== null && obs.failedUnits.length > ch.failedUnitsMax) {
    return { ok: false, failing: `${obs.failedUnits.length} failed systemd units (max ${ch.failedUnitsMax}): ${obs.failedUnits.slice(0, 5).join(', ')}` };
  }
  if (ch.complianceProbesRequired && (obs.complianceFailures?.length ?? 0) > 0) {
    return { ok: false, failing: `compliance probes failing: ${obs.complianceFailures!.slice(0, 5).join(', ')}` };
  }
  if (!obs.probes.observed) return { ok: false, failing: null };
  if (!obs.probes.passing) return { ok: false, failing: 'probes failing' };
  return { ok: true, failing: null };
}

/** The working state of a channel's current rollout; counts its in-flight hosts into the budgets. */
function makePlan(t: Tick, ch: ChannelIndex, id: string, record: Rollout | null): Plan {
  const n = ch.members.length;
  const recs = new Array<RolloutHost | undefined>(n);
  const obs = new Array<HostObservation | undefined>(n);
  const states = new Array<HostRolloutState>(n);
  const hosts = t.observed.hosts;
  for (let i = 0; i < n; i++) {
    const h = ch.members[i]!;
    const rh = record === null ? undefined : hasOwn(record.hosts, h) ? record.hosts[h] : undefined;
    recs[i] = rh;
    obs[i] = hasOwn(hosts, h) ? hosts[h] : undefined;
    const s = rh?.state ?? 'Queued';
    states[i] = s;
    if (isInFlight(s)) {
      const list = ch.budgetsAt[i];
      if (list !== undefined) for (const b of list) t.budgetCount[b]!++;
    }
  }
  return {
    ch,
    id,
    record,
    state: record?.state ?? 'Pending',
    currentWave: record?.currentWave ?? 0,
    refMs: record?.startedAtMs ?? record?.openedAtMs ?? t.nowMs,
    recs,
    obs,
    states,
    minIncompleteWave: Infinity,
    minComplianceFailWave: Infinity,
    canDispatch: false,
  };
}

/** Creates the plan of every channel's current rollout (and counts budgets) before any decision. */
function plans(t: Tick): Map<string, { plan: Plan; existing: Rollout | null }> {
  const out = new Map<string, { plan: Plan; existing: Rollout | null }>();
  for (const name of t.idx.channelOrder) {
    const ch = t.idx.channels.get(name)!;
    const id = ch.rolloutId;
    if (id === null || ch.targetRef === null) continue;
    const existing = hasOwn(t.observed.rollouts, id) ? t.observed.rollouts[id]! : null;
    // This target already converged and its record was pruned: nothing to open.
    if (existing === null && t.converged.get(name) === ch.targetRef) continue;
    const record = existing !== null && existing.state !== 'Superseded' ? existing : null;
    out.set(name, { plan: makePlan(t, ch, id, record), existing });
  }
  return out;
}

function phase1(t: Tick, plan: Plan, existing: Rollout | null, out: Action[]): void {
  const { ch, id, record } = plan;
  const targetRef = ch.targetRef!;
  const n = ch.members.length;

  if (record === null) {
    out.push({
      kind: 'open_rollout',
      rolloutId: id,
      channel: ch.name,
      targetRef,
      waveCount: ch.waveCount,
      hosts: ch.members.map((h, i) => ({ host: h, closure: ch.closureAt[i]!, wave: ch.waveAt[i]! })),
      reason:
        existing !== null
          ? `signed target of channel '${ch.name}' is ${targetRef} again: reopened (${n} hosts, ${ch.waveCount} waves)`
          : `signed target of channel '${ch.name}' is ${targetRef} (${n} hosts, ${ch.waveCount} waves)`,
    });
  }

  const cancelDispatches = (): void => {
    for (let i = 0; i < n; i++) if (plan.states[i] === 'Dispatched') setState(t, plan, i, 'Queued');
  };

  const paused = hasOwn(t.observed.pausedChannels, ch.name);
  if (paused && (plan.state === 'Pending' || plan.state === 'Executing')) {
    const p = t.observed.pausedChannels[ch.name]!;
    out.push({ kind: 'pause_rollout', rolloutId: id, channel: ch.name, reason: `channel '${ch.name}' paused by the operator: ${p.reason}` });
    plan.state = 'Paused';
    cancelDispatches();
  } else if (!paused && plan.state === 'Paused') {
    out.push({ kind: 'resume_rollout', rolloutId: id, channel: ch.name, reason: `channel '${ch.name}' resumed by the operator` });
    plan.state = record === null || record.startedAtMs === null ? 'Pending' : 'Executing';
  }

  if (plan.state === 'Pending') {
    const blocking = ch.gatedBy.find((g) => {
      const gi = t.idx.channels.get(g);
      return gi !== undefined && gi.targetRef !== null && t.converged.get(g) !== gi.targetRef;
    });
    if (blocking !== undefined) {
      const edge = t.fleet.channelEdges.find((e) => e.gates === blocking && e.gated === ch.name);
      const reason = `waiting for channel '${blocking}' to converge on ${t.idx.channels.get(blocking)!.targetRef} (channel edge${
        edge?.reason ? `: ${edge.reason}` : ''
      })`;
      const d = hasOwn(t.observed.deferrals, ch.name) ? t.observed.deferrals[ch.name] : undefined;
      if (d === undefined || d.rolloutId !== id || d.reason !== reason) {
        out.push({ kind: 'rollout_deferred', rolloutId: id, channel: ch.name, gatedBy: blocking, reason });
      }
      return;
    }
    out.push({
      kind: 'promote_wave',
      rolloutId: id,
      channel: ch.name,
      fromWave: null,
      toWave: 0,
      reason: ch.gatedBy.length > 0 ? `rollout started: gating channels ${ch.gatedBy.join(', ')} converged` : 'rollout started',
    });
    plan.state = 'Executing';
    plan.currentWave = 0;
    plan.refMs = t.nowMs;
  }
  if (plan.state === 'Superseded') return;

  // Host pass: soak, health failures, already-at-target, withdraw offline dispatches.
  const soakActions: Action[] = [];
  const failActions: Action[] = [];
  const failed: number[] = [];
  const quarantine = quarantineSet(t, ch.name);
  const progressing = plan.state === 'Executing' || plan.state === 'Converged';
  for (let i = 0; i < n; i++) {
    const s = plan.states[i]!;
    if (s === 'Failed' || s === 'Reverted') {
      failed.push(i);
      continue;
    }
    const h = ch.members[i]!;
    const obs = plan.obs[i];
    const closure = ch.closureAt[i]!;
    if (s === 'Healthy') {
      const rec = plan.recs[i]!;
      const soakMs = ch.soakMsOf[ch.waveAt[i]!] ?? 0;
      if (t.nowMs - rec.enteredAtMs < soakMs) continue;
      if (isOffline(t, plan, i)) continue; // stale probes: wait for the host to come back
      const health = healthOf(ch, obs);
      if (health.ok) {
        soakActions.push({
          kind: 'soak_host',
          rolloutId: id,
          host: h,
          reason: `Healthy for ${secs(t.nowMs - rec.enteredAtMs)} (soak ${secs(soakMs)}), probes observed and passing${
            ch.failedUnitsMax !== null ? `, ${obs!.failedUnits.length} failed units (max ${ch.failedUnitsMax})` : ''
          }`,
        });
        setState(t, plan, i, 'Soaked');
      } else if (health.failing !== null) {
        failActions.push({ kind: 'fail_host', rolloutId: id, host: h, reason: `health gate failed after the soak: ${health.failing}` });
        if (!quarantine.has(closure)) {
          quarantine.add(closure);
          failActions.push({
            kind: 'quarantine_closure',
            channel: ch.name,
            closure,
            host: h,
            reason: `closure ${closure} failed its health gate on ${h} (${health.failing}); push a new closure to clear`,
          });
        }
        setState(t, plan, i, 'Failed');
        failed.push(i);
      }
    } else if (s === 'Queued') {
      // Already runs its target (e.g. CP rebuilt from empty): never re-activate it (SPEC §5).
      if (progressing && obs !== undefined && obs.lastCheckinMs !== null && obs.currentClosure === closure) {
        soakActions.push({ kind: 'soak_host', rolloutId: id, host: h, reason: `already runs the target closure ${closure}: not dispatched` });
        setState(t, plan, i, 'Soaked');
      }
    } else if (s === 'Dispatched' && isOffline(t, plan, i)) {
      const sk = offlineSkip(liveness(t, plan, i), t);
      soakActions.push({ kind: 'skip_host', rolloutId: id, host: h, code: sk.code, reason: `dispatch withdrawn: ${sk.reason}` });
      setState(t, plan, i, 'Queued');
    }
  }

  out.push(...failActions);
  if (failed.length > 0 && (plan.state === 'Executing' || plan.state === 'Paused' || plan.state === 'Converged')) {
    const who = failed.map((i) => `${ch.members[i]} ${plan.states[i] === 'Failed' ? 'failed' : 'reverted'}`).join(', ');
    out.push({ kind: 'halt_rollout', rolloutId: id, channel: ch.name, hosts: failed.map((i) => ch.members[i]!), reason: `host ${who} (policy: ${ch.onHealthFailure})` });
    plan.state = 'Halted';
    cancelDispatches();
  }
  if (plan.state === 'Halted' && ch.onHealthFailure === 'rollback-and-halt') {
    for (const i of failed) {
      if (plan.states[i] !== 'Failed' || plan.recs[i]?.rollbackRequested === true) continue;
      const h = ch.members[i]!;
      out.push({
        kind: 'rollback_host',
        rolloutId: id,
        host: h,
        closure: ch.closureAt[i]!,
        reason: `host ${h} failed (policy: rollback-and-halt): roll back to its previous closure`,
      });
    }
  }
  out.push(...soakActions);

  if (plan.state !== 'Executing' && plan.state !== 'Converged') return;

  // Wave order: the lowest wave with a host that is neither done nor offline past its grace.
  // Only a host that has not started this rollout (Queued; an offline Dispatched host was just
  // withdrawn to Queued) may be skipped for being offline. A host that went dark after it began
  // activating (Activating, ConfirmWindow) or during its soak (Healthy) keeps blocking its wave:
  // going dark mid-activation is exactly what a bad closure that cuts the network looks like, and
  // the confirm deadline (→ Reverted → halt) must decide, not the offline grace.
  let skippedOffline = 0;
  for (let i = 0; i < n; i++) {
    if (isDone(plan.states[i]!)) continue;
    const w = ch.waveAt[i]!;
    if (w >= plan.minIncompleteWave) continue;
    if (plan.states[i] === 'Queued' && isPastGrace(t, plan, i)) {
      skippedOffline++;
      continue;
    }
    plan.minIncompleteWave = w;
  }

  if (plan.state === 'Executing') {
    if (plan.minIncompleteWave >= ch.waveCount) {
      out.push({
        kind: 'converge_rollout',
        rolloutId: id,
        channel: ch.name,
        targetRef,
        reason: `every wave done: ${n} hosts Soaked/Converged${skippedOffline > 0 ? ` (offline past the grace skipped: ${skippedOffline})` : ''}`,
      });
      plan.state = 'Converged';
      plan.currentWave = ch.waveCount - 1;
      t.converged.set(ch.name, targetRef);
    } else if (plan.minIncompleteWave > plan.currentWave) {
      out.push({
        kind: 'promote_wave',
        rolloutId: id,
        channel: ch.name,
        fromWave: plan.currentWave,
        toWave: plan.minIncompleteWave,
        reason: `wave ${plan.currentWave}${plan.minIncompleteWave > plan.currentWave + 1 ? `–${plan.minIncompleteWave - 1}` : ''} done (Soaked/Converged)`,
      });
      plan.currentWave = plan.minIncompleteWave;
    }
  }

  if (ch.complianceMode === 'enforce') {
    for (let i = 0; i < n; i++) {
      const s = plan.states[i]!;
      if (s !== 'Healthy' && !isDone(s)) continue;
      if ((plan.obs[i]?.complianceFailures?.length ?? 0) === 0) continue;
      plan.minComplianceFailWave = Math.min(plan.minComplianceFailWave, ch.waveAt[i]!);
    }
  }
  plan.canDispatch = !paused;
}

function phase2(t: Tick, plan: Plan, out: Action[]): void {
  const { ch, id } = plan;
  const quarantine = quarantineSet(t, ch.name);
  const blockedBy = new Map<number, number>(); // budget index → hosts blocked
  let deadlock: string | null = null;
  const maxWave = Math.min(plan.currentWave, plan.minIncompleteWave);
  const n = ch.members.length;
  for (let i = 0; i < n; i++) {
    if (plan.states[i] !== 'Queued') continue;
    const closure = ch.closureAt[i]!;
    const w = ch.waveAt[i]!;
    // 1. quarantine
    if (quarantine.size > 0 && quarantine.has(closure)) {
      emitSkip(out, plan, i, 'quarantined', () => `closure ${closure} is quarantined on channel '${ch.name}'; push a new closure to clear`);
      continue;
    }
    // 2. channel edges: handled in phase 1 (the rollout would still be Pending).
    // 3. wave order: its wave is current, and every earlier wave is done.
    if (w > maxWave) continue;
    // offline hosts cannot take a target (and we may not know what they run)
    if (isOffline(t, plan, i)) {
      const code: SkipCode = isPastGrace(t, plan, i) ? 'skipped-offline' : 'offline';
      emitSkip(out, plan, i, code, () => offlineSkip(liveness(t, plan, i), t).reason);
      continue;
    }
    // 4. host edges
    const gates = ch.gatesAt[i];
    if (gates !== undefined) {
      const g = gates.find((x) => !isDone(plan.states[x]!));
      if (g !== undefined) {
        const h = ch.members[i]!;
        const gName = ch.members[g]!;
        emitSkip(out, plan, i, 'host-edge', () => {
          const edge = t.fleet.edges.find((e) => e.gated === h && e.gates === gName);
          return `host-edge: gating host '${gName}' not yet Soaked/Converged${edge?.reason ? ` (${edge.reason})` : ''}`;
        });
        if (deadlock === null && ch.waveAt[g]! > w) deadlock = `host ${h} (wave ${w}) waits for '${gName}' in later wave ${ch.waveAt[g]!}`;
        continue;
      }
    }
    // 5. disruption budgets, counted across every active rollout
    const budgets = ch.budgetsAt[i];
    let full = -1;
    if (budgets !== undefined) {
      for (const b of budgets) {
        if (t.budgetCount[b]! >= t.idx.budgets[b]!.limit) {
          full = b;
          break;
        }
      }
    }
    if (full >= 0) {
      blockedBy.set(full, (blockedBy.get(full) ?? 0) + 1);
      continue;
    }
    // 6. compliance gate (enforce): open failures in earlier waves block later waves
    if (w > plan.minComplianceFailWave) {
      emitSkip(out, plan, i, 'compliance', () => `compliance (enforce): open failures on hosts of wave ${plan.minComplianceFailWave} block wave ${w}`);
      continue;
    }
    if (!plan.canDispatch) continue;
    setState(t, plan, i, 'Dispatched');
    out.push({ kind: 'dispatch_host', rolloutId: id, channel: ch.name, host: ch.members[i]!, closure, wave: w, reason: `wave ${w} of ${ch.waveCount}: every gate passed` });
  }
  for (const [b, count] of [...blockedBy].sort((a, c) => a[0] - c[0])) {
    const bi = t.idx.budgets[b]!;
    out.push({
      kind: 'wave_blocked',
      rolloutId: id,
      wave: plan.currentWave,
      code: 'budget',
      hosts: count,
      reason: `disruption ${bi.label} full: ${t.budgetCount[b]}/${bi.limit} in flight (of ${bi.matching} matching hosts); ${count} hosts wait`,
    });
  }
  if (deadlock !== null) {
    out.push({ kind: 'wave_blocked', rolloutId: id, wave: plan.currentWave, code: 'host-edge-deadlock', hosts: 1, reason: `host edge contradicts wave order: ${deadlock}` });
  }
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

  // Supersession: a rollout that is not its channel's current target stops (Converged ones stay as history).
  const ids = Object.keys(observed.rollouts).sort();
  for (const id of ids) {
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

  const converged = new Map<string, string>();
  for (const c of Object.keys(observed.lastConverged)) converged.set(c, observed.lastConverged[c]!);
  const t: Tick = { fleet, idx, observed, nowMs, opts, budgetCount: idx.budgets.map(() => 0), converged, quarantined: new Map() };

  // Budgets count the in-flight hosts of every channel's current rollout, before any decision.
  const byChannel = plans(t);
  const executing: Plan[] = [];
  for (const { plan, existing } of byChannel.values()) {
    phase1(t, plan, existing, out);
    if (plan.state === 'Executing' || plan.state === 'Converged') executing.push(plan);
  }
  for (const plan of executing) phase2(t, plan, out);
  return out;
}
