/**
 * The rollout-level phases of one tick, run per channel (gating channels first) before any
 * dispatch: everything that changes a rollout's state or frees a budget slot, so that dispatch
 * (dispatch.ts) sees this tick's slots. In order: open the rollout, mirror the operator's pause,
 * start it or defer it on a channel edge, advance its hosts (soak, health failure, already at
 * target, withdraw offline dispatches), halt on failures, promote its wave or converge.
 *
 * Pure module: no I/O, no clock, no randomness.
 */
import { channelEdgeGate } from './gates.ts';
import {
  cancelDispatches,
  hasOwn,
  isOffline,
  liveness,
  lowestComplianceFailWave,
  lowestIncompleteWave,
  offlineSkip,
  secs,
  setState,
  type Plan,
  type Tick,
} from './tick.ts';
import type { Action, HostObservation, Rollout } from './types.ts';
import { RUNS_TARGET } from './host-view.ts';
import type { ChannelIndex } from './fleet-index.ts';

/** `open_rollout` for a channel's current target that has no live record (new, or reopened after supersession). */
export function openRollout(plan: Plan, existing: Rollout | null, out: Action[]): void {
  if (plan.record !== null) return;
  const { ch, id } = plan;
  const targetRef = ch.targetRef!;
  const n = ch.members.length;
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

/** Mirrors the operator's channel pause into the rollout state; returns whether the channel is paused. */
export function mirrorOperatorPause(t: Tick, plan: Plan, out: Action[]): boolean {
  const { ch, id, record } = plan;
  const paused = hasOwn(t.observed.pausedChannels, ch.name);
  if (paused && (plan.state === 'Pending' || plan.state === 'Executing')) {
    const p = t.observed.pausedChannels[ch.name]!;
    out.push({ kind: 'pause_rollout', rolloutId: id, channel: ch.name, reason: `channel '${ch.name}' paused by the operator: ${p.reason}` });
    plan.state = 'Paused';
    cancelDispatches(t, plan);
  } else if (!paused && plan.state === 'Paused') {
    out.push({ kind: 'resume_rollout', rolloutId: id, channel: ch.name, reason: `channel '${ch.name}' resumed by the operator` });
    plan.state = record === null || record.startedAtMs === null ? 'Pending' : 'Executing';
  }
  return paused;
}

/**
 * A Pending rollout starts (wave 0) unless the channel-edge gate holds it; then `rollout_deferred`
 * (debounced: once per reason). Returns false when deferred.
 */
export function startOrDefer(t: Tick, plan: Plan, out: Action[]): boolean {
  const { ch, id } = plan;
  const block = channelEdgeGate(t, plan);
  if (block !== null && block.gate === 'channel-edge') {
    const d = hasOwn(t.observed.deferrals, ch.name) ? t.observed.deferrals[ch.name] : undefined;
    if (d === undefined || d.rolloutId !== id || d.reason !== block.reason) {
      out.push({ kind: 'rollout_deferred', rolloutId: id, channel: ch.name, gatedBy: block.gatedBy, reason: block.reason });
    }
    return false;
  }
  // Issue 14: outside its change window a rollout does not start (syncWindowHold reports why).
  if (!plan.window.open) return false;
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
  return true;
}

/**
 * Whether open compliance failures fail a host's health gate (issue 15): always in `enforce`
 * mode; never in `permissive` (recorded and shown only); otherwise when the policy's
 * `healthGate.complianceProbes.required` says so.
 */
export function complianceFailsHealth(ch: Pick<ChannelIndex, 'complianceMode' | 'complianceProbesRequired'>): boolean {
  return ch.complianceMode === 'enforce' || (ch.complianceMode !== 'permissive' && ch.complianceProbesRequired);
}

/** Health gate of SPEC §4 soak: probes observed and passing, failed units within the max, compliance (issue 15). */
function healthOf(ch: ChannelIndex, obs: HostObservation | undefined): { ok: boolean; failing: string | null } {
  if (obs === undefined) return { ok: false, failing: null };
  if (ch.failedUnitsMax !== null && obs.failedUnits.length > ch.failedUnitsMax) {
    return { ok: false, failing: `${obs.failedUnits.length} failed systemd units (max ${ch.failedUnitsMax}): ${obs.failedUnits.slice(0, 5).join(', ')}` };
  }
  if (complianceFailsHealth(ch) && (obs.complianceFailures?.length ?? 0) > 0) {
    return { ok: false, failing: `compliance probes failing: ${obs.complianceFailures!.slice(0, 5).join(', ')}` };
  }
  if (!obs.probes.observed) return { ok: false, failing: null };
  if (!obs.probes.passing) return { ok: false, failing: 'probes failing' };
  return { ok: true, failing: null };
}

/** What `advanceHosts` decided, in the order the tick emits it (failures before the halt, soaks after). */
export type HostAdvance = { failed: number[]; failActions: Action[]; soakActions: Action[] };

/**
 * One pass over the rollout's hosts: soak Healthy hosts whose soak elapsed (or fail them on the
 * health gate and quarantine the closure), mark Queued hosts that already run their target
 * Soaked, withdraw the dispatch of hosts gone offline; collect Failed / Reverted hosts.
 */
export function advanceHosts(t: Tick, plan: Plan): HostAdvance {
  const { ch, id, quarantine } = plan;
  const soakActions: Action[] = [];
  const failActions: Action[] = [];
  const failed: number[] = [];
  const progressing = plan.state === 'Executing' || plan.state === 'Converged';
  const n = ch.members.length;
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
      if (progressing && (plan.flags[i]! & RUNS_TARGET) !== 0) {
        soakActions.push({ kind: 'soak_host', rolloutId: id, host: h, reason: `already runs the target closure ${closure}: not dispatched` });
        setState(t, plan, i, 'Soaked');
      }
    } else if (s === 'Dispatched' && isOffline(t, plan, i)) {
      const sk = offlineSkip(liveness(t, plan, i), t);
      soakActions.push({ kind: 'skip_host', rolloutId: id, host: h, code: sk.code, reason: `dispatch withdrawn: ${sk.reason}`, withdrawn: true });
      setState(t, plan, i, 'Queued');
    }
  }
  return { failed, failActions, soakActions };
}

/** A Failed or Reverted host halts the rollout (cancelling pending dispatches); `rollback-and-halt` also rolls each Failed host back, once. */
export function haltOnFailures(t: Tick, plan: Plan, failed: number[], out: Action[]): void {
  const { ch, id } = plan;
  if (failed.length > 0 && (plan.state === 'Executing' || plan.state === 'Paused' || plan.state === 'Converged')) {
    const who = failed.map((i) => `${ch.members[i]} ${plan.states[i] === 'Failed' ? 'failed' : 'reverted'}`).join(', ');
    out.push({ kind: 'halt_rollout', rolloutId: id, channel: ch.name, hosts: failed.map((i) => ch.members[i]!), reason: `host ${who} (policy: ${ch.onHealthFailure})` });
    plan.state = 'Halted';
    cancelDispatches(t, plan);
  }
  if (plan.state !== 'Halted' || ch.onHealthFailure !== 'rollback-and-halt') return;
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

/**
 * Wave order of an Executing or Converged rollout: finds the lowest wave with a host that is
 * neither done nor offline past its grace (`lowestIncompleteWave`: why only Queued hosts may be
 * passed over), then converges the rollout (every wave done) or promotes its current wave to that
 * one (possibly over several done waves).
 */
export function promoteWaves(t: Tick, plan: Plan, out: Action[]): void {
  const { ch, id } = plan;
  const n = ch.members.length;
  const { wave, skippedOffline } = lowestIncompleteWave(t, plan);
  plan.minIncompleteWave = wave;
  if (plan.state !== 'Executing') return;
  if (plan.minIncompleteWave >= ch.waveCount) {
    const targetRef = ch.targetRef!;
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

/** Enforce mode: the lowest wave with a host running the new closure (Healthy / Soaked / Converged) that reports open compliance failures. */
export function noteComplianceFailures(plan: Plan): void {
  if (plan.ch.complianceMode === 'enforce') plan.minComplianceFailWave = lowestComplianceFailWave(plan);
}
