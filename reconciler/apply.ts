/**
 * Pure state transitions: `applyActions` (the reconciler's decisions) and `applyHostEvent(s)`
 * (what agents tell). The control plane and the simulator both use these, so the transition
 * logic lives in one place. Every transition is appended to the rollout's `history` with its
 * time and reason (`nixfleet rollout trace`).
 *
 * Inputs are never mutated: each call copies what it touches (once per call, so a batch of
 * actions or events over one rollout costs one copy of that rollout). Each call notes the hosts
 * it touched in its input's journal, if any (journal.ts): the next reconcile re-reads only those.
 *
 * Pure module: no I/O.
 */
import type {
  Action,
  HostEvent,
  HostObservation,
  HostRolloutState,
  Observed,
  Rollout,
  RolloutControls,
  RolloutHost,
  RolloutState,
  Transition,
} from './types.ts';
import { noteDerived } from './journal.ts';
import { hasOwn } from './tick.ts';

/** An empty observation: what a control plane starts from after a wipe. */
export function emptyObserved(): Observed {
  return { hosts: {}, rollouts: {}, quarantinedClosures: {}, pausedChannels: {}, lastConverged: {}, deferrals: {} };
}

/** A host observation before any check-in. */
export function emptyHostObservation(): HostObservation {
  return { lastCheckinMs: null, currentClosure: null, probes: { observed: false, passing: false }, failedUnits: [], bootId: null };
}

/** Copy-on-write working copy of an `Observed` for one call. */
class Draft {
  readonly out: Observed;
  private readonly copied = new Set<string>();
  private hostsCopied = false;
  private mapsCopied = new Set<string>();
  private readonly touched = new Set<string>(); // hosts whose rollout record this draft replaced (journal.ts)
  private readonly observedOnly = new Map<string, HostObservation>(); // hosts whose observation it replaced, with the new one for the journal (a record too if in `touched`)
  /** A rollout record was put whole: any host may differ. */
  private wholesale = false;

  constructor(
    private readonly base: Observed,
    readonly nowMs: number,
  ) {
    this.out = { ...base, rollouts: { ...base.rollouts } };
  }

  /** The result, noted in the base's journal. */
  finish(): Observed {
    noteDerived(this.out, this.base, this.wholesale ? null : this.touched, this.observedOnly);
    return this.out;
  }

  rollout(id: string): Rollout | undefined {
    if (!hasOwn(this.out.rollouts, id)) return undefined;
    if (!this.copied.has(id)) {
      const r = this.out.rollouts[id]!;
      this.out.rollouts[id] = { ...r, hosts: { ...r.hosts }, history: r.history.slice() };
      this.copied.add(id);
    }
    return this.out.rollouts[id];
  }

  /** A fresh rollout record (already owned by this draft). */
  putRollout(r: Rollout): void {
    this.out.rollouts[r.id] = r;
    this.copied.add(r.id);
    this.wholesale = true;
  }

  /** Replaces a host's record in rollout `r` (a draft copy). Every such write goes through here or `setHost` (the journal). */
  putHost(r: Rollout, host: string, rh: RolloutHost): void {
    r.hosts[host] = rh;
    this.touched.add(host);
  }

  putObservation(host: string, o: HostObservation): void {
    if (!this.hostsCopied) {
      this.out.hosts = { ...this.out.hosts };
      this.hostsCopied = true;
    }
    this.out.hosts[host] = o;
    this.observedOnly.set(host, o);
  }

  map<K extends 'quarantinedClosures' | 'pausedChannels' | 'lastConverged' | 'deferrals'>(key: K): Observed[K] {
    if (!this.mapsCopied.has(key)) {
      this.out[key] = { ...this.out[key] } as Observed[K];
      this.mapsCopied.add(key);
    }
    return this.out[key];
  }

  record(r: Rollout, host: string | null, from: Transition['from'], to: Transition['to'], wave: number, reason: string): void {
    r.history.push({ atMs: this.nowMs, host, from, to, wave, reason });
  }

  setHost(r: Rollout, host: string, to: HostRolloutState, reason: string, patch: Partial<RolloutHost> = {}): void {
    const rh = r.hosts[host];
    if (rh === undefined) return;
    this.putHost(r, host, { ...rh, ...patch, state: to, enteredAtMs: rh.state === to ? rh.enteredAtMs : this.nowMs });
    this.record(r, host, rh.state, to, rh.wave, reason);
  }

  setRollout(r: Rollout, to: RolloutState, reason: string): void {
    this.record(r, null, r.state, to, r.currentWave, reason);
    r.state = to;
    r.stateReason = reason;
  }

  cancelDispatches(r: Rollout, reason: string): void {
    for (const h of Object.keys(r.hosts).sort()) if (r.hosts[h]!.state === 'Dispatched') this.setHost(r, h, 'Queued', reason);
  }
}

function must(d: Draft, id: string): Rollout {
  const r = d.rollout(id);
  // Actions come from `reconcile` over the same observed state: an unknown rollout is a bug.
  if (r === undefined) throw new Error(`applyActions: unknown rollout ${id}`);
  return r;
}

function applyOne(d: Draft, a: Action): void {
  switch (a.kind) {
    case 'open_rollout': {
      const prev = hasOwn(d.out.rollouts, a.rolloutId) ? d.out.rollouts[a.rolloutId]! : null;
      if (prev !== null && prev.state !== 'Superseded') return; // already open
      const hosts: Record<string, RolloutHost> = {};
      for (const m of a.hosts) {
        hosts[m.host] = { state: 'Queued', enteredAtMs: d.nowMs, closure: m.closure, wave: m.wave, skip: null, rollbackRequested: false };
      }
      const r: Rollout = {
        id: a.rolloutId,
        channel: a.channel,
        targetRef: a.targetRef,
        state: 'Pending',
        currentWave: 0,
        waveCount: a.waveCount,
        openedAtMs: d.nowMs,
        startedAtMs: null,
        stateReason: a.reason,
        hosts,
        history: prev === null ? [] : prev.history.slice(),
      };
      d.putRollout(r);
      d.record(r, null, prev === null ? null : prev.state, 'Pending', 0, a.reason);
      return;
    }
    case 'promote_wave': {
      const r = must(d, a.rolloutId);
      if (a.fromWave === null) {
        if (r.state !== 'Pending') return;
        r.currentWave = a.toWave;
        r.startedAtMs = d.nowMs;
        d.setRollout(r, 'Executing', a.reason);
        const deferrals = d.map('deferrals');
        if (hasOwn(deferrals, r.channel) && deferrals[r.channel]!.rolloutId === r.id) delete deferrals[r.channel];
      } else {
        if (r.state !== 'Executing') return;
        r.currentWave = a.toWave;
        d.record(r, null, 'Executing', 'Executing', a.toWave, a.reason);
        r.stateReason = a.reason;
        setControls(d, r.id, { promotedAtMs: d.nowMs }); // progress for the stall clock (controls.ts)
      }
      return;
    }
    case 'dispatch_host': {
      const r = must(d, a.rolloutId);
      if (r.hosts[a.host]?.state !== 'Queued') return;
      d.setHost(r, a.host, 'Dispatched', a.reason, { skip: null });
      return;
    }
    case 'soak_host': {
      const r = must(d, a.rolloutId);
      const s = r.hosts[a.host]?.state;
      if (s !== 'Healthy' && s !== 'Queued') return;
      // A rollout converges with hosts offline past the grace skipped; one that comes back and
      // soaks afterwards is done with a converged rollout: Converged, as its peers became.
      d.setHost(r, a.host, r.state === 'Converged' ? 'Converged' : 'Soaked', a.reason, { skip: null });
      return;
    }
    case 'converge_rollout': {
      const r = must(d, a.rolloutId);
      if (r.state !== 'Executing') return;
      r.currentWave = r.waveCount - 1;
      d.setRollout(r, 'Converged', a.reason);
      for (const h of Object.keys(r.hosts).sort()) {
        if (r.hosts[h]!.state === 'Soaked') d.setHost(r, h, 'Converged', `rollout ${r.id} converged`);
      }
      d.map('lastConverged')[r.channel] = r.targetRef;
      return;
    }
    case 'halt_rollout': {
      const r = must(d, a.rolloutId);
      if (r.state === 'Halted' || r.state === 'Superseded') return;
      d.setRollout(r, 'Halted', a.reason);
      d.cancelDispatches(r, `dispatch cancelled: rollout halted (${a.reason})`);
      return;
    }
    case 'rollback_host': {
      const r = must(d, a.rolloutId);
      const rh = r.hosts[a.host];
      if (rh === undefined || rh.rollbackRequested) return;
      d.putHost(r, a.host, { ...rh, rollbackRequested: true });
      d.record(r, a.host, rh.state, rh.state, rh.wave, `rollback requested: ${a.reason}`);
      return;
    }
    case 'supersede_rollout': {
      const r = must(d, a.rolloutId);
      if (r.state === 'Superseded') return;
      d.setRollout(r, 'Superseded', a.reason);
      return;
    }
    case 'skip_host': {
      const r = must(d, a.rolloutId);
      const rh = r.hosts[a.host];
      if (rh === undefined) return;
      const skip = { code: a.code, reason: a.reason, sinceMs: d.nowMs };
      if (rh.state === 'Dispatched') d.setHost(r, a.host, 'Queued', a.reason, { skip });
      else if (rh.state === 'Queued') {
        d.putHost(r, a.host, { ...rh, skip });
        d.record(r, a.host, 'Queued', 'Queued', rh.wave, `skipped (${a.code}): ${a.reason}`);
      }
      return;
    }
    case 'wave_blocked':
      return; // informational: nothing changes
    case 'rollout_deferred': {
      const r = must(d, a.rolloutId);
      d.map('deferrals')[a.channel] = { rolloutId: a.rolloutId, reason: a.reason, sinceMs: d.nowMs };
      d.record(r, null, r.state, r.state, r.currentWave, `deferred: ${a.reason}`);
      return;
    }
    case 'quarantine_closure': {
      const q = d.map('quarantinedClosures');
      const list = hasOwn(q, a.channel) ? q[a.channel]! : [];
      if (!list.includes(a.closure)) q[a.channel] = [...list, a.closure].sort();
      return;
    }
    case 'rotate_trust_root':
      d.out.trust = { successorRetireAtMs: null };
      return;
    case 'fail_host': {
      const r = must(d, a.rolloutId);
      const s = r.hosts[a.host]?.state;
      if (s === undefined || s === 'Failed' || s === 'Reverted' || s === 'Queued') return;
      d.setHost(r, a.host, 'Failed', a.reason);
      return;
    }
    case 'pause_rollout': {
      const r = must(d, a.rolloutId);
      if (r.state !== 'Pending' && r.state !== 'Executing') return;
      d.setRollout(r, 'Paused', a.reason);
      d.cancelDispatches(r, `dispatch cancelled: rollout paused (${a.reason})`);
      return;
    }
    case 'resume_rollout': {
      const r = must(d, a.rolloutId);
      if (r.state !== 'Paused') return;
      d.setRollout(r, r.startedAtMs === null ? 'Pending' : 'Executing', a.reason);
      return;
    }
    default:
      applyControl(d, a);
  }
}

const controlsOf = (o: Observed, id: string): RolloutControls => (o.controls !== undefined && hasOwn(o.controls, id) ? o.controls[id]! : {});

function setControls(d: Draft, id: string, patch: RolloutControls): void {
  d.out.controls = { ...(d.out.controls ?? {}), [id]: { ...controlsOf(d.out, id), ...patch } };
}

/** The issue-14 actions (controls.ts): stalls, drift, change-window holds. None is progress for the stall clock. */
function applyControl(d: Draft, a: Action): void {
  switch (a.kind) {
    case 'rollout_stalled': {
      const r = must(d, a.rolloutId);
      const prev = controlsOf(d.out, a.rolloutId).stall ?? null;
      setControls(d, a.rolloutId, { stall: { sinceMs: prev?.sinceMs ?? d.nowMs, gate: a.gate, hosts: [...a.hosts], reason: a.reason } });
      d.record(r, null, r.state, r.state, r.currentWave, `stalled: ${a.reason}`);
      return;
    }
    case 'rollout_unstalled': {
      const r = must(d, a.rolloutId);
      setControls(d, a.rolloutId, { stall: null });
      d.record(r, null, r.state, r.state, r.currentWave, `no longer stalled: ${a.reason}`);
      return;
    }
    case 'window_hold': {
      const r = must(d, a.rolloutId);
      setControls(d, a.rolloutId, { windowHold: a.held ? a.reason : null });
      d.record(r, null, r.state, r.state, r.currentWave, a.held ? `held: ${a.reason}` : a.reason);
      return;
    }
    case 'host_drifted': {
      d.out.drifted = { ...(d.out.drifted ?? {}) };
      const prev = d.out.drifted[a.host];
      d.out.drifted[a.host] = { sinceMs: prev?.sinceMs ?? d.nowMs, channel: a.channel, rolloutId: a.rolloutId, expected: a.expected, actual: a.actual };
      return;
    }
    case 'drift_cleared': {
      if (d.out.drifted === undefined || !hasOwn(d.out.drifted, a.host)) return;
      d.out.drifted = { ...d.out.drifted };
      delete d.out.drifted[a.host];
      return;
    }
    case 'redeploy_host': {
      const r = must(d, a.rolloutId);
      const s = r.hosts[a.host]?.state;
      if (s !== 'Soaked' && s !== 'Converged') return;
      d.setHost(r, a.host, 'Queued', a.reason, { skip: null });
      return;
    }
    default:
      return;
  }
}

/**
 * Applies the actions of one tick, in order, at `nowMs`. Pure: returns a new `Observed` and
 * leaves the input untouched. An action whose precondition no longer holds (for example a
 * dispatch of a host that is not Queued any more) is a no-op; an unknown rollout id throws.
 */
export function applyActions(observed: Observed, actions: readonly Action[], nowMs: number): Observed {
  if (actions.length === 0) return observed;
  const d = new Draft(observed, nowMs);
  for (const a of actions) applyOne(d, a);
  return d.finish();
}

/**
 * The host-state transition an event causes, or null when the event does not apply in that
 * state (a late confirm after the dispatch was cancelled, say: the CP then answers 410).
 * Exported so that a control plane updating one row can use exactly this table.
 */
export function hostTransition(from: HostRolloutState, event: HostEvent): { to: HostRolloutState; reason: string } | null {
  switch (event.kind) {
    case 'activating':
      return from === 'Dispatched' ? { to: 'Activating', reason: 'agent fetched the target and is activating' } : null;
    case 'switched':
      return from === 'Dispatched' || from === 'Activating' ? { to: 'ConfirmWindow', reason: 'switched; waiting for the confirm' } : null;
    case 'deferred':
      return from === 'Dispatched' || from === 'Activating' || from === 'ConfirmWindow'
        ? { to: 'PendingReboot', reason: 'activated for the next boot (switch-inhibitor): waiting for a reboot, no confirm deadline until then' }
        : null;
    case 'confirmed':
      if (from === 'PendingReboot') return { to: 'Healthy', reason: 'booted into the target and confirmed; soak starts' };
      return from === 'Dispatched' || from === 'Activating' || from === 'ConfirmWindow'
        ? { to: 'Healthy', reason: 'agent confirmed within the deadline; soak starts' }
        : null;
    case 'failed':
      return from === 'Dispatched' || from === 'Activating' || from === 'ConfirmWindow' || from === 'PendingReboot' || from === 'Healthy'
        ? { to: 'Failed', reason: `agent reported failure: ${event.reason}` }
        : null;
    case 'rolled-back':
      return from === 'Dispatched' || from === 'Activating' || from === 'ConfirmWindow' || from === 'PendingReboot' || from === 'Healthy' || from === 'Failed'
        ? { to: 'Reverted', reason: `agent rolled back: ${event.reason}` }
        : null;
    case 'deadline-expired':
      return from === 'Dispatched' || from === 'Activating' || from === 'ConfirmWindow'
        ? { to: 'Reverted', reason: 'confirm deadline passed without a confirm' }
        : null;
    case 'checkin':
    case 'probes':
      return null;
  }
}

/**
 * The rollout an event of `hostname` refers to: `rolloutId` when given, else the most recently
 * opened rollout that holds the host and is not Superseded. Undefined when none.
 */
export function findHostRollout(observed: Observed, hostname: string, rolloutId?: string): Rollout | undefined {
  if (rolloutId !== undefined) {
    const r = hasOwn(observed.rollouts, rolloutId) ? observed.rollouts[rolloutId] : undefined;
    return r !== undefined && hasOwn(r.hosts, hostname) ? r : undefined;
  }
  let best: Rollout | undefined;
  for (const id of Object.keys(observed.rollouts)) {
    const r = observed.rollouts[id]!;
    if (r.state === 'Superseded' || !hasOwn(r.hosts, hostname)) continue;
    if (best === undefined || r.openedAtMs > best.openedAtMs || (r.openedAtMs === best.openedAtMs && r.id > best.id)) best = r;
  }
  return best;
}

function applyEvent(d: Draft, hostname: string, event: HostEvent): void {
  // Every event but the CP's own deadline is a sign of life.
  if (event.kind !== 'deadline-expired') {
    const prev = hasOwn(d.out.hosts, hostname) ? d.out.hosts[hostname]! : emptyHostObservation();
    const next: HostObservation = { ...prev, lastCheckinMs: d.nowMs };
    if (event.kind === 'checkin') {
      next.currentClosure = event.currentClosure;
      if (event.bootId !== undefined) next.bootId = event.bootId;
    }
    if (event.kind === 'confirmed' && event.currentClosure !== undefined) next.currentClosure = event.currentClosure;
    if (event.kind === 'checkin' || event.kind === 'probes') {
      if (event.probes !== undefined) next.probes = event.probes;
      if (event.failedUnits !== undefined) next.failedUnits = event.failedUnits;
      if (event.complianceFailures !== undefined) next.complianceFailures = event.complianceFailures;
    }
    if (event.kind === 'activating' || event.kind === 'switched') {
      // Probe results from before this activation do not count for its soak (SPEC §4).
      next.probes = { observed: false, passing: false };
    }
    d.putObservation(hostname, next);
  }
  if (event.kind === 'checkin' || event.kind === 'probes') return;
  const found = findHostRollout(d.out, hostname, event.rolloutId);
  if (found === undefined || found.state === 'Superseded') return;
  const from = found.hosts[hostname]!.state;
  const tr = hostTransition(from, event);
  if (tr === null) return;
  const r = d.rollout(found.id)!;
  d.setHost(r, hostname, tr.to, tr.reason);
}

/** Applies one host event at `nowMs` (pure). See `applyHostEvents` for batches. */
export function applyHostEvent(observed: Observed, hostname: string, event: HostEvent, nowMs: number): Observed {
  return applyHostEvents(observed, [{ host: hostname, event }], nowMs);
}

/** Applies many host events at `nowMs`, in order, copying each touched rollout once (pure). */
export function applyHostEvents(observed: Observed, events: ReadonlyArray<{ host: string; event: HostEvent }>, nowMs: number): Observed {
  if (events.length === 0) return observed;
  const d = new Draft(observed, nowMs);
  for (const { host, event } of events) applyEvent(d, host, event);
  return d.finish();
}

/** Operator: pause a channel (SPEC §5: a stopping power). The next reconcile pauses its rollout. */
export function pauseChannel(observed: Observed, channel: string, reason: string, nowMs: number): Observed {
  return unchangedHosts(observed, { ...observed, pausedChannels: { ...observed.pausedChannels, [channel]: { sinceMs: nowMs, reason } } });
}

/** An operator change of no host's observation or record: noted as such in the journal. */
function unchangedHosts(base: Observed, next: Observed): Observed {
  noteDerived(next, base, []);
  return next;
}

/** Operator: resume a paused channel. The next reconcile resumes its rollout. */
export function resumeChannel(observed: Observed, channel: string): Observed {
  if (!hasOwn(observed.pausedChannels, channel)) return observed;
  const pausedChannels = { ...observed.pausedChannels };
  delete pausedChannels[channel];
  return unchangedHosts(observed, { ...observed, pausedChannels });
}

/**
 * Operator (`nixfleet rollout skip ROLLOUT HOST --reason`): releases a host from ordering (host
 * edges, wave order) for this rollout; it still gets its target when it is online. Pure; null
 * when the rollout or the host is unknown.
 */
export function releaseHost(observed: Observed, rolloutId: string, host: string, reason: string, by: string | null, nowMs: number): Observed | null {
  const r = hasOwn(observed.rollouts, rolloutId) ? observed.rollouts[rolloutId]! : undefined;
  if (r === undefined || !hasOwn(r.hosts, host)) return null;
  const rh = r.hosts[host]!;
  const next: Rollout = {
    ...r,
    history: [...r.history, { atMs: nowMs, host, from: rh.state, to: rh.state, wave: rh.wave, reason: `released from ordering by ${by ?? 'the operator'}: ${reason}` }],
  };
  const c = controlsOf(observed, rolloutId);
  const controls = { ...(observed.controls ?? {}), [rolloutId]: { ...c, released: { ...(c.released ?? {}), [host]: { atMs: nowMs, reason, by } } } };
  return unchangedHosts(observed, { ...observed, rollouts: { ...observed.rollouts, [rolloutId]: next }, controls });
}

/** Operator: clear quarantines (all channels when `channel` is absent; one closure when given). */
export function clearQuarantine(observed: Observed, channel?: string, closure?: string): Observed {
  if (channel === undefined) return unchangedHosts(observed, { ...observed, quarantinedClosures: {} });
  if (!hasOwn(observed.quarantinedClosures, channel)) return observed;
  const q = { ...observed.quarantinedClosures };
  const rest = closure === undefined ? [] : q[channel]!.filter((c) => c !== closure);
  if (rest.length === 0) delete q[channel];
  else q[channel] = rest;
  return unchangedHosts(observed, { ...observed, quarantinedClosures: q });
}

/**
 * Operator (`nixfleet rollout approve ROLLOUT`, issue 14 `requireApprovals`): records `by`'s
 * approval of the rollout (one per operator: approving twice counts once). Pure; null when the
 * rollout is unknown.
 */
export function approveRollout(observed: Observed, rolloutId: string, by: string, nowMs: number): Observed | null {
  if (!hasOwn(observed.rollouts, rolloutId)) return null;
  const c = controlsOf(observed, rolloutId);
  if (c.approvals !== undefined && hasOwn(c.approvals, by)) return observed;
  const controls = { ...(observed.controls ?? {}), [rolloutId]: { ...c, approvals: { ...(c.approvals ?? {}), [by]: { atMs: nowMs } } } };
  return unchangedHosts(observed, { ...observed, controls });
}
