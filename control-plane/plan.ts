/**
 * The pure decision step of the control plane: from observed state before and after the
 * reconciler's transitions (and the actions of a pass), the list of writes that persists it —
 * rows that changed, transitions, the dispatch rows and audit entries that follow. Plain data in,
 * plain data out: no store, no clock (STYLE §2); the store applies the list in one transaction.
 *
 * Reference equality first: `applyActions` / `applyHostEvents` copy only what they change, so only
 * what the reconciler copied is compared.
 */
import type { Action, HostEvent, HostObservation, Observed, RolloutHost } from '../reconciler/types.ts';
import type { HostReport } from '../protocol/api.ts';
import type { AuditInput, DispatchRow, QuarantineRow, RolloutOrigin, TransitionRow, Write } from './store/types.ts';

const iso = (ms: number): string => new Date(ms).toISOString();

export type PlanContext = {
  nowMs: number;
  /** signedAt / sha256 of the artefact in force, stored with a rollout seen for the first time. */
  origin: RolloutOrigin;
  /** Who caused the transitions (`cp`, `host:<name>`), recorded in their audit entries. */
  actor: string;
  /** The actions of a reconcile pass (none for host events): their dispatch and audit effects. */
  actions?: readonly Action[];
};

/** Quarantine metadata keyed `channel\0closure`. */
export type QuarantineMeta = ReadonlyMap<string, Omit<QuarantineRow, 'channel' | 'closure'>>;

function sameHostObs(a: HostObservation | undefined, b: HostObservation): boolean {
  if (a === undefined) return false;
  return (
    a.lastCheckinMs === b.lastCheckinMs &&
    a.currentClosure === b.currentClosure &&
    a.bootId === b.bootId &&
    a.probes.observed === b.probes.observed &&
    a.probes.passing === b.probes.passing &&
    JSON.stringify(a.failedUnits) === JSON.stringify(b.failedUnits) &&
    JSON.stringify(a.complianceFailures ?? null) === JSON.stringify(b.complianceFailures ?? null)
  );
}

function sameRolloutHost(a: RolloutHost | undefined, b: RolloutHost): boolean {
  if (a === undefined) return false;
  return (
    a.state === b.state &&
    a.enteredAtMs === b.enteredAtMs &&
    a.closure === b.closure &&
    a.wave === b.wave &&
    a.rollbackRequested === b.rollbackRequested &&
    JSON.stringify(a.skip) === JSON.stringify(b.skip)
  );
}

/**
 * The writes for what changed between `before` and `after`, and the new transitions (whatever
 * `after`'s histories hold beyond `before`'s). Operator pauses are not written here (their own
 * writes: `pause.put` / `pause.delete`).
 */
export function planObservedWrites(before: Observed, after: Observed, nowMs: number, origin: RolloutOrigin, quarantineMeta: QuarantineMeta = new Map()): { writes: Write[]; transitions: TransitionRow[] } {
  const writes: Write[] = [];
  // for…in rather than Object.entries: no [key, value] array per host (a 25,000-host rollout
  // copied by a pass is walked here; entries cost ≈ 3 × the walk at 100,000 hosts).
  if (before.hosts !== after.hosts) {
    for (const h in after.hosts) {
      const o = after.hosts[h]!;
      const b = before.hosts[h];
      if (b !== o && !sameHostObs(b, o)) writes.push({ kind: 'host.observation', hostname: h, observation: o });
    }
  }
  const transitions: TransitionRow[] = [];
  for (const [id, r] of Object.entries(after.rollouts)) {
    const b = before.rollouts[id];
    if (b === r) continue;
    const fields = { id, openedAtMs: r.openedAtMs, state: r.state, currentWave: r.currentWave, waveCount: r.waveCount, startedAtMs: r.startedAtMs, stateReason: r.stateReason, updatedAtMs: nowMs };
    if (b === undefined) {
      writes.push({ kind: 'rollout.insert', row: { ...fields, channel: r.channel, targetRef: r.targetRef, signedAt: origin.signedAt, artifactSha256: origin.artifactSha256 } });
    } else if (
      b.state !== r.state ||
      b.currentWave !== r.currentWave ||
      b.waveCount !== r.waveCount ||
      b.startedAtMs !== r.startedAtMs ||
      b.openedAtMs !== r.openedAtMs ||
      b.stateReason !== r.stateReason
    ) {
      writes.push({ kind: 'rollout.update', row: fields });
    }
    for (const h in r.hosts) {
      const rh = r.hosts[h]!;
      const bh = b?.hosts[h];
      if (bh === rh || sameRolloutHost(bh, rh)) continue;
      writes.push({ kind: 'rollout-host.put', rolloutId: id, hostname: h, host: rh, before: bh ?? null });
    }
    for (const t of r.history.slice(b?.history.length ?? 0)) {
      const row: TransitionRow = { rolloutId: id, atMs: t.atMs, hostname: t.host, from: t.from, to: t.to, wave: t.wave, reason: t.reason };
      writes.push({ kind: 'transition', row });
      transitions.push(row);
    }
  }
  // Channel-level maps.
  const keys = (q: Observed['quarantinedClosures']): Set<string> => new Set(Object.entries(q).flatMap(([c, cs]) => cs.map((x) => `${c}\0${x}`)));
  const bq = keys(before.quarantinedClosures);
  const aq = keys(after.quarantinedClosures);
  for (const k of aq) {
    if (bq.has(k)) continue;
    const [channel, closure] = k.split('\0') as [string, string];
    const meta = quarantineMeta.get(k) ?? { rolloutId: null, hostname: null, reason: 'quarantined by the reconciler', sinceMs: nowMs };
    writes.push({ kind: 'quarantine.put', row: { channel, closure, ...meta } });
  }
  for (const k of bq) {
    if (aq.has(k)) continue;
    const [channel, closure] = k.split('\0') as [string, string];
    writes.push({ kind: 'quarantine.delete', channel, closure });
  }
  for (const [c, t] of Object.entries(after.lastConverged)) if (before.lastConverged[c] !== t) writes.push({ kind: 'converged.put', channel: c, targetRef: t });
  for (const c of Object.keys(before.lastConverged)) if (!(c in after.lastConverged)) writes.push({ kind: 'converged.delete', channel: c });
  for (const [c, d] of Object.entries(after.deferrals)) {
    const bd = before.deferrals[c];
    if (bd === undefined || bd.rolloutId !== d.rolloutId || bd.reason !== d.reason || bd.sinceMs !== d.sinceMs) writes.push({ kind: 'deferral.put', channel: c, deferral: d });
  }
  for (const c of Object.keys(before.deferrals)) if (!(c in after.deferrals)) writes.push({ kind: 'deferral.delete', channel: c });
  writes.push(...planControlWrites(before, after));
  return { writes, transitions };
}

/**
 * Issue 14 state (drift per host, controls per rollout) as rows: what changed, so that a restart or
 * a new leader goes on from it (debounced audit entries are not repeated, stalls keep their start,
 * operator releases hold).
 */
export function planControlWrites(before: Pick<Observed, 'drifted' | 'controls'>, after: Pick<Observed, 'drifted' | 'controls'>): Write[] {
  const writes: Write[] = [];
  if (before.drifted !== after.drifted) {
    const b = before.drifted ?? {};
    const a = after.drifted ?? {};
    for (const [h, d] of Object.entries(a)) if (JSON.stringify(b[h]) !== JSON.stringify(d)) writes.push({ kind: 'drift.put', hostname: h, drift: d });
    for (const h of Object.keys(b)) if (!Object.prototype.hasOwnProperty.call(a, h)) writes.push({ kind: 'drift.delete', hostname: h });
  }
  if (before.controls !== after.controls) {
    const b = before.controls ?? {};
    const a = after.controls ?? {};
    for (const [id, c] of Object.entries(a)) if (JSON.stringify(b[id]) !== JSON.stringify(c)) writes.push({ kind: 'controls.put', rolloutId: id, controls: c });
    for (const id of Object.keys(b)) if (!Object.prototype.hasOwnProperty.call(a, id)) writes.push({ kind: 'controls.delete', rolloutId: id });
  }
  return writes;
}

/** Audit entries and dispatch rows that follow host/rollout transitions. */
export function planTransitionEffects(transitions: readonly TransitionRow[], after: Observed, nowMs: number, actor: string): Write[] {
  const writes: Write[] = [];
  for (const t of transitions) {
    writes.push({
      kind: 'audit',
      entry: { atMs: t.atMs, kind: t.hostname === null ? 'rollout.state' : 'host.state', actor, subject: t.rolloutId, data: { host: t.hostname, from: t.from, to: t.to, wave: t.wave, reason: t.reason } },
    });
    if (t.hostname === null || t.from === t.to) continue;
    const r = after.rollouts[t.rolloutId];
    const rh = r?.hosts[t.hostname];
    if (t.to === 'Dispatched' && r !== undefined && rh !== undefined) {
      writes.push({ kind: 'dispatch.put', rolloutId: t.rolloutId, hostname: t.hostname, channel: r.channel, closure: rh.closure, wave: rh.wave, createdMs: nowMs });
      continue;
    }
    // Only a dispatch still pending ends here (the condition is the store's: an earlier write of
    // the same list may have created it).
    const status = t.from === 'Dispatched' && t.to === 'Queued' ? 'cancelled' : t.to === 'Failed' || t.to === 'Reverted' ? 'failed' : t.to === 'Healthy' ? 'confirmed' : null;
    if (status !== null) writes.push({ kind: 'dispatch.finish', rolloutId: t.rolloutId, hostname: t.hostname, status, finishedMs: nowMs, rollbackReason: null, onlyIfPending: true });
  }
  return writes;
}

/** Dispatch and audit effects of a reconcile pass's actions (the state effects are in `after`). */
export function planActionEffects(actions: readonly Action[], nowMs: number): Write[] {
  const writes: Write[] = [];
  for (const a of actions) {
    switch (a.kind) {
      case 'rollback_host':
        // A stopping instruction: the host undoes its activation (never a new closure).
        writes.push({ kind: 'dispatch.finish', rolloutId: a.rolloutId, hostname: a.host, status: 'cancelled', finishedMs: nowMs, rollbackReason: a.reason, onlyIfPending: false });
        writes.push({ kind: 'audit', entry: { atMs: nowMs, kind: 'host.rollback', actor: 'cp', subject: a.rolloutId, data: { host: a.host, closure: a.closure, reason: a.reason } } });
        break;
      case 'supersede_rollout':
        // Targets not yet handed over are withdrawn; a host already activating may still confirm.
        writes.push({ kind: 'dispatch.withdraw', rolloutId: a.rolloutId, finishedMs: nowMs, auditIfAny: { atMs: nowMs, kind: 'dispatch.withdrawn', actor: 'cp', subject: a.rolloutId, data: { reason: a.reason } } });
        break;
      case 'quarantine_closure':
        writes.push({ kind: 'audit', entry: { atMs: nowMs, kind: 'quarantine.added', actor: 'cp', subject: a.channel, data: { closure: a.closure, host: a.host, reason: a.reason } } });
        break;
      case 'rotate_trust_root':
        writes.push({ kind: 'audit', entry: { atMs: nowMs, kind: 'trust.rotate', actor: 'cp', subject: 'trust', data: { reason: a.reason } } });
        break;
      // Issue 14: drift and stalls start and end in the audit chain.
      case 'host_drifted':
        writes.push({ kind: 'audit', entry: { atMs: nowMs, kind: 'host.drifted', actor: 'cp', subject: a.host, data: { channel: a.channel, rolloutId: a.rolloutId, expected: a.expected, actual: a.actual, reason: a.reason } } });
        break;
      case 'drift_cleared':
        writes.push({ kind: 'audit', entry: { atMs: nowMs, kind: 'host.drift-cleared', actor: 'cp', subject: a.host, data: { channel: a.channel, reason: a.reason } } });
        break;
      case 'rollout_stalled':
        writes.push({ kind: 'audit', entry: { atMs: nowMs, kind: 'rollout.stalled', actor: 'cp', subject: a.rolloutId, data: { gate: a.gate, hosts: a.hosts, reason: a.reason } } });
        break;
      case 'rollout_unstalled':
        writes.push({ kind: 'audit', entry: { atMs: nowMs, kind: 'rollout.unstalled', actor: 'cp', subject: a.rolloutId, data: { reason: a.reason } } });
        break;
      // The change window closed on (or opened for) a rollout: change-management evidence (debounced).
      case 'window_hold':
        writes.push({ kind: 'audit', entry: { atMs: nowMs, kind: a.held ? 'rollout.window-hold' : 'rollout.window-open', actor: 'cp', subject: a.rolloutId, data: { channel: a.channel, reason: a.reason } } });
        break;
      default:
        break;
    }
  }
  return writes;
}

/** Who and why, for each closure a pass quarantines (the rollout that holds the failed host). */
export function quarantineMetaOf(actions: readonly Action[], after: Observed, nowMs: number): QuarantineMeta {
  const meta = new Map<string, Omit<QuarantineRow, 'channel' | 'closure'>>();
  for (const a of actions) {
    if (a.kind !== 'quarantine_closure') continue;
    const rid = Object.values(after.rollouts).find((r) => r.channel === a.channel && r.hosts[a.host] !== undefined && r.state !== 'Superseded')?.id ?? null;
    meta.set(`${a.channel}\0${a.closure}`, { rolloutId: rid, hostname: a.host, reason: a.reason, sinceMs: nowMs });
  }
  return meta;
}

/**
 * Every write that persists `before → after`: changed rows and new transitions, then for each
 * transition its audit entry and dispatch row, then the effects of the pass's actions — in the
 * order the audit chain records them.
 */
export function planWrites(before: Observed, after: Observed, ctx: PlanContext): { writes: Write[]; transitions: TransitionRow[] } {
  const actions = ctx.actions ?? [];
  const observed = planObservedWrites(before, after, ctx.nowMs, ctx.origin, quarantineMetaOf(actions, after, ctx.nowMs));
  const writes = observed.writes;
  writes.push(...planTransitionEffects(observed.transitions, after, ctx.nowMs, ctx.actor));
  writes.push(...planActionEffects(actions, ctx.nowMs));
  return { writes, transitions: observed.transitions };
}

/** A reconcile pass's first step: expire the confirm deadlines that passed (rows + audit + host events). */
export function planExpiries(expired: readonly DispatchRow[], nowMs: number): { writes: Write[]; events: { host: string; event: HostEvent }[] } {
  const writes: Write[] = [];
  for (const d of expired) {
    writes.push({ kind: 'dispatch.finish', rolloutId: d.rolloutId, hostname: d.hostname, status: 'expired', finishedMs: nowMs, rollbackReason: null, onlyIfPending: false });
    writes.push({ kind: 'audit', entry: { atMs: nowMs, kind: 'dispatch.expired', actor: 'cp', subject: d.rolloutId, data: { host: d.hostname, closure: d.closure, deadline: iso(d.deadlineMs ?? nowMs) } } });
  }
  return { writes, events: expired.map((d) => ({ host: d.hostname, event: { kind: 'deadline-expired', rolloutId: d.rolloutId } })) };
}

/** An audit write. */
export const audit = (entry: AuditInput): Write => ({ kind: 'audit', entry });

/** The state-relevant part of an agent report, as a reconciler host event (null: record only). */
export function toHostEvent(r: HostReport): HostEvent | null {
  const rid = r.rolloutId === null ? {} : { rolloutId: r.rolloutId };
  switch (r.event) {
    case 'activation-started':
      return { kind: 'activating', ...rid };
    case 'activation-switched':
      return { kind: 'switched', ...rid };
    case 'activation-failed':
      return { kind: 'failed', ...rid, reason: r.message || 'activation failed' };
    case 'rolled-back':
      return { kind: 'rolled-back', ...rid, reason: r.message || 'rolled back' };
    case 'probe-failed':
      return { kind: 'probes', probes: { observed: true, passing: false } };
    case 'activation-deferred':
      // Issue 14: activated for the next boot → PendingReboot (holds its slot, no confirm deadline).
      return { kind: 'deferred', ...rid };
    case 'stale-target':
    case 'closure-quarantined':
    case 'verify-failed':
      return null;
  }
}
