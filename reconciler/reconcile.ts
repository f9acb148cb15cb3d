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
import type { FleetResolved } from '../release/schema.ts';
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

/** Per-channel working state of one tick. */
type Plan = {
  ch: ChannelIndex;
  id: string;
  /** Existing record (null when opened this tick). */
  record: Rollout | null;
  state: RolloutState;
  currentWave: number;
  refMs: number; // when the rollout started (or opened): reference for never-seen hosts
  /** Host states changed this tick (overlay on the record). */
  eff: Map<string, HostRolloutState>;
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

function hostRecord(plan: Plan, h: string): RolloutHost | undefined {
  return plan.record === null ? undefined : plan.record.hosts[h];
}

function stateOf(plan: Plan, h: string): HostRolloutState {
  return plan.eff.get(h) ?? hostRecord(plan, h)?.state ?? 'Queued';
}

function quarantineSet(t: Tick, channel: string): Set<string> {
  let s = t.quarantined.get(channel);
  if (s === undefined) {
    s = new Set(hasOwn(t.observed.quarantinedClosures, channel) ? t.observed.quarantinedClosures[channel] : []);
    t.quarantined.set(channel, s);
  }
  return s;
}

type Liveness = { offline: boolean; pastGrace: boolean; forMs: number; neverSeen: boolean };

function liveness(t: Tick, plan: Plan, h: string): Liveness {
  const obs = hasOwn(t.observed.hosts, h) ? t.observed.hosts[h] : undefined;
  const last = obs?.lastCheckinMs ?? null;
  const forMs = t.nowMs - (last ?? plan.refMs);
  // A host never seen cannot be dispatched: we do not know what it runs (CP rebuilt from empty).
  const offline = last === null || forMs > t.opts.offlineAfterMs;
  const pastGrace = offline && forMs > t.opts.offlineAfterMs + t.opts.offlineGraceMs;
  return { offline, pastGrace, forMs, neverSeen: last === null };
}

function observation(t: Tick, h: string): HostObservation | undefined {
  return hasOwn(t.observed.hosts, h) ? t.observed.hosts[h] : undefined;
}

function changeBudgets(t: Tick, h: string, delta: number): void {
  const list = t.idx.hostBudgets.get(h);
  if (list === undefined) return;
  for (const b of list) t.budgetCount[b]! += delta;
}

/** Moves a host to a new effective state, keeping budget counts in step. */
function setState(t: Tick, plan: Plan, h: string, to: HostRolloutState): void {
  const from = stateOf(plan, h);
  if (isInFlight(from) && !isInFlight(to)) changeBudgets(t, h, -1);
  else if (!isInFlight(from) && isInFlight(to)) changeBudgets(t, h, +1);
  plan.eff.set(h, to);
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
  return { code: 'offline', reason: `offline: ${what} (offline after ${secs(t.opts.offlineAfterMs)})` };
}

function emitSkip(out: Action[], plan: Plan, h: string, code: SkipCode, reason: string): void {
  // Debounced: only when the recorded skip differs (applyActions records it).
  if (hostRecord(plan, h)?.skip?.code === code) return;
  out.push({ kind: 'skip_host', rolloutId: plan.id, host: h, code, reason });
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

function phase1(t: Tick, ch: ChannelIndex, out: Action[]): Plan | null {
  const id = ch.rolloutId;
  if (id === null || ch.targetRef === null) return null;
  const existing = hasOwn(t.observed.rollouts, id) ? t.observed.rollouts[id]! : null;
  const record = existing !== null && existing.state !== 'Superseded' ? existing : null;
  // This target already converged and its record was pruned: nothing to open.
  if (existing === null && t.converged.get(ch.name) === ch.targetRef) return null;
  const plan: Plan = {
    ch,
    id,
    record,
    state: record?.state ?? 'Pending',
    currentWave: record?.currentWave ?? 0,
    refMs: record?.startedAtMs ?? record?.openedAtMs ?? t.nowMs,
    eff: new Map(),
    minIncompleteWave: Infinity,
    minComplianceFailWave: Infinity,
    canDispatch: false,
  };

  if (record === null) {
    out.push({
      kind: 'open_rollout',
      rolloutId: id,
      channel: ch.name,
      targetRef: ch.targetRef,
      waveCount: ch.waveCount,
      hosts: ch.members.map((h) => ({ host: h, closure: ch.closureOf.get(h)!, wave: ch.waveOf.get(h)! })),
      reason:
        existing !== null
          ? `signed target of channel '${ch.name}' is ${ch.targetRef} again: reopened (${ch.members.length} hosts, ${ch.waveCount} waves)`
          : `signed target of channel '${ch.name}' is ${ch.targetRef} (${ch.members.length} hosts, ${ch.waveCount} waves)`,
    });
  }

  const cancelDispatches = (): void => {
    for (const h of ch.members) if (stateOf(plan, h) === 'Dispatched') setState(t, plan, h, 'Queued');
  };

  const paused = hasOwn(t.observed.pausedChannels, ch.name);
  if (paused && (plan.state === 'Pending' || plan.state === 'Executing')) {
    const p = t.observed.pausedChannels[ch.name]!;
    out.push({ kind: 'pause_rollout', rolloutId: id, channel: ch.name, reason: `channel '${ch.name}' paused by the operator: ${p.reason}` });
    plan.state = 'Paused';
    cancelDispatches();
  } else if (!paused && plan.state === 'Paused') {
    const to: RolloutState = record?.startedAtMs === null || record === null ? 'Pending' : 'Executing';
    out.push({ kind: 'resume_rollout', rolloutId: id, channel: ch.name, reason: `channel '${ch.name}' resumed by the operator` });
    plan.state = to;
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
      return plan;
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

  if (plan.state === 'Superseded') return plan;

  // Host pass: soak, health failures, already-at-target, withdraw offline dispatches.
  const soakActions: Action[] = [];
  const failActions: Action[] = [];
  const failed: string[] = [];
  const quarantine = quarantineSet(t, ch.name);
  const progressing = plan.state === 'Executing' || plan.state === 'Converged';
  for (const h of ch.members) {
    const s = stateOf(plan, h);
    if (s === 'Failed' || s === 'Reverted') {
      failed.push(h);
      continue;
    }
    const rec = hostRecord(plan, h);
    const obs = observation(t, h);
    const closure = ch.closureOf.get(h)!;
    if (s === 'Healthy' && rec !== undefined) {
      const wave = ch.waveOf.get(h)!;
      const soakMs = ch.soakMsOf[wave] ?? 0;
      if (t.nowMs - rec.enteredAtMs < soakMs) continue;
      if (liveness(t, plan, h).offline) continue; // stale probes: wait for the host to come back
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
        setState(t, plan, h, 'Soaked');
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
        setState(t, plan, h, 'Failed');
        failed.push(h);
      }
    } else if (s === 'Queued' && progressing && obs !== undefined && obs.lastCheckinMs !== null && obs.currentClosure === closure) {
      // Already runs its target (e.g. CP rebuilt from empty): never re-activate it (SPEC §5).
      soakActions.push({ kind: 'soak_host', rolloutId: id, host: h, reason: `already runs the target closure ${closure}: not dispatched` });
      setState(t, plan, h, 'Soaked');
    } else if (s === 'Dispatched') {
      const live = liveness(t, plan, h);
      if (live.offline) {
        const sk = offlineSkip(live, t);
        soakActions.push({ kind: 'skip_host', rolloutId: id, host: h, code: sk.code, reason: `dispatch withdrawn: ${sk.reason}` });
        setState(t, plan, h, 'Queued');
      }
    }
  }
  failed.sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));

  out.push(...failActions);
  if (failed.length > 0 && (plan.state === 'Executing' || plan.state === 'Paused' || plan.state === 'Converged')) {
    const who = failed.map((h) => `${h} ${stateOf(plan, h) === 'Failed' ? 'failed' : 'reverted'}`).join(', ');
    out.push({ kind: 'halt_rollout', rolloutId: id, channel: ch.name, hosts: failed, reason: `host ${who} (policy: ${ch.onHealthFailure})` });
    plan.state = 'Halted';
    cancelDispatches();
  }
  if (plan.state === 'Halted' && ch.onHealthFailure === 'rollback-and-halt') {
    for (const h of failed) {
      if (stateOf(plan, h) !== 'Failed' || hostRecord(plan, h)?.rollbackRequested === true) continue;
      out.push({
        kind: 'rollback_host',
        rolloutId: id,
        host: h,
        closure: ch.closureOf.get(h)!,
        reason: `host ${h} failed (policy: rollback-and-halt): roll back to its previous closure`,
      });
    }
  }
  out.push(...soakActions);

  if (plan.state !== 'Executing' && plan.state !== 'Converged') return plan;

  // Wave order: the lowest wave with a host that is neither done nor offline past its grace.
  let skippedOffline = 0;
  for (const h of ch.members) {
    const s = stateOf(plan, h);
    if (isDone(s)) continue;
    const w = ch.waveOf.get(h)!;
    if (w >= plan.minIncompleteWave) continue;
    if (liveness(t, plan, h).pastGrace) {
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
        targetRef: ch.targetRef,
        reason: `every wave done: ${ch.members.length} hosts Soaked/Converged${skippedOffline > 0 ? ` (offline past the grace skipped: ${skippedOffline})` : ''}`,
      });
      plan.state = 'Converged';
      plan.currentWave = ch.waveCount - 1;
      t.converged.set(ch.name, ch.targetRef);
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
    for (const h of ch.members) {
      const s = stateOf(plan, h);
      if (s !== 'Healthy' && !isDone(s)) continue;
      if ((observation(t, h)?.complianceFailures?.length ?? 0) === 0) continue;
      plan.minComplianceFailWave = Math.min(plan.minComplianceFailWave, ch.waveOf.get(h)!);
    }
  }
  plan.canDispatch = !paused;
  return plan;
}

function phase2(t: Tick, plan: Plan, out: Action[]): void {
  const { ch, id } = plan;
  const quarantine = quarantineSet(t, ch.name);
  const blockedBy = new Map<number, number>(); // budget index → hosts blocked
  let deadlock: string | null = null;
  for (const h of ch.members) {
    if (stateOf(plan, h) !== 'Queued') continue;
    const closure = ch.closureOf.get(h)!;
    const w = ch.waveOf.get(h)!;
    // 1. quarantine
    if (quarantine.has(closure)) {
      emitSkip(out, plan, h, 'quarantined', `closure ${closure} is quarantined on channel '${ch.name}'; push a new closure to clear`);
      continue;
    }
    // 2. channel edges: handled in phase 1 (the rollout would still be Pending).
    // 3. wave order: its wave is current, and every earlier wave is done.
    if (w > plan.currentWave || w > plan.minIncompleteWave) continue;
    // offline hosts cannot take a target (and we may not know what they run)
    const live = liveness(t, plan, h);
    if (live.offline) {
      const sk = offlineSkip(live, t);
      emitSkip(out, plan, h, sk.code, sk.reason);
      continue;
    }
    // 4. host edges
    const gates = ch.hostEdges.get(h);
    if (gates !== undefined) {
      const g = gates.find((x) => !isDone(stateOf(plan, x)));
      if (g !== undefined) {
        const edge = t.fleet.edges.find((e) => e.gated === h && e.gates === g);
        emitSkip(out, plan, h, 'host-edge', `host-edge: gating host '${g}' not yet Soaked/Converged${edge?.reason ? ` (${edge.reason})` : ''}`);
        if (deadlock === null && ch.waveOf.get(g)! > w) deadlock = `host ${h} (wave ${w}) waits for '${g}' in later wave ${ch.waveOf.get(g)!}`;
        continue;
      }
    }
    // 5. disruption budgets, counted across every active rollout
    const budgets = t.idx.hostBudgets.get(h);
    let full: number | null = null;
    if (budgets !== undefined) {
      for (const b of budgets) {
        if (t.budgetCount[b]! >= t.idx.budgets[b]!.limit) {
          full = b;
          break;
        }
      }
    }
    if (full !== null) {
      blockedBy.set(full, (blockedBy.get(full) ?? 0) + 1);
      continue;
    }
    // 6. compliance gate (enforce): open failures in earlier waves block later waves
    if (w > plan.minComplianceFailWave) {
      emitSkip(
        out,
        plan,
        h,
        'compliance',
        `compliance (enforce): open failures on hosts of wave ${plan.minComplianceFailWave} block wave ${w}`,
      );
      continue;
    }
    if (!plan.canDispatch) continue;
    setState(t, plan, h, 'Dispatched');
    out.push({
      kind: 'dispatch_host',
      rolloutId: id,
      channel: ch.name,
      host: h,
      closure,
      wave: w,
      reason: `wave ${w} of ${ch.waveCount}: every gate passed`,
    });
  }
  for (const [b, n] of [...blockedBy].sort((a, c) => a[0] - c[0])) {
    const bi = t.idx.budgets[b]!;
    out.push({
      kind: 'wave_blocked',
      rolloutId: id,
      wave: plan.currentWave,
      code: 'budget',
      hosts: n,
      reason: `disruption ${bi.label} full: ${t.budgetCount[b]}/${bi.limit} in flight (of ${bi.matching} matching hosts); ${n} hosts wait`,
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

  // In-flight hosts per budget, across the current rollout of every channel.
  const budgetCount = idx.budgets.map(() => 0);
  for (const name of idx.channelOrder) {
    const ch = idx.channels.get(name)!;
    if (ch.rolloutId === null || !hasOwn(observed.rollouts, ch.rolloutId)) continue;
    const r = observed.rollouts[ch.rolloutId]!;
    if (r.state === 'Superseded') continue;
    for (const h of ch.members) {
      const rh = r.hosts[h];
      if (rh === undefined || !isInFlight(rh.state)) continue;
      const list = idx.hostBudgets.get(h);
      if (list !== undefined) for (const b of list) budgetCount[b]!++;
    }
  }

  const converged = new Map<string, string>();
  for (const c of Object.keys(observed.lastConverged)) converged.set(c, observed.lastConverged[c]!);
  const t: Tick = { fleet, idx, observed, nowMs, opts, budgetCount, converged, quarantined: new Map() };

  const plans: Plan[] = [];
  for (const name of idx.channelOrder) {
    const plan = phase1(t, idx.channels.get(name)!, out);
    if (plan !== null && (plan.state === 'Executing' || plan.state === 'Converged')) plans.push(plan);
  }
  for (const plan of plans) phase2(t, plan, out);
  return out;
}
