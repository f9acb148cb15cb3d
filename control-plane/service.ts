/**
 * The control plane's behaviour behind the HTTP routes (SPEC §5): a keyless caching router for
 * already-signed intent.
 *
 * - Check-ins, confirms and reports become reconciler `HostEvent`s applied with
 *   `applyHostEvents` to the slice of observed state they touch (one host), persisted in one
 *   transaction — cheap enough for thousands of check-ins per second.
 * - A full reconcile pass (`reconcileNow`) loads observed state from SQLite, expires confirm
 *   deadlines, calls the pure `reconcile`, applies its actions with `applyActions` and persists the
 *   diff, the dispatches and the audit entries in one transaction. It runs every
 *   `reconcileIntervalSecs`, after a new fleet artefact, after operator actions, and — coalesced by
 *   `reconcileDebounceMs` — after relevant check-ins (never synchronously per check-in).
 * - Targets are dispatch rows written by the reconcile pass; the confirm clock starts when a
 *   target is first handed to the host.
 *
 * Time is a parameter (`now`), so deadlines and soak are testable without waiting.
 */
import { fromBase64, toBase64, verifySignature, parseOpenSshEd25519 } from '../protocol/crypto.ts';
import { canonicalBytes } from '../protocol/jcs.ts';
import type { FleetResolved, Trust } from '../protocol/schema.ts';
import { reconcile } from '../reconciler/reconcile.ts';
import { applyActions, applyHostEvents } from '../reconciler/apply.ts';
import type { Action, HostEvent, HostRolloutState, Observed, Rollout } from '../reconciler/types.ts';
import type {
  AuditResponse,
  CheckinRequest,
  CheckinResponse,
  ConfirmRequest,
  HostReport,
  HostsResponse,
  HostView,
  LastOutcome,
  PauseRequest,
  PauseResponse,
  ProbeResult,
  QuarantineClearRequest,
  QuarantineClearResponse,
  QuarantinesResponse,
  ReadyzResponse,
  ReportRequest,
  ReportResponse,
  ReportVerdict,
  RollbackInstruction,
  RolloutDetail,
  RolloutSummary,
  RolloutsResponse,
  RolloutState,
  SignedConfirmedRecord,
  Target,
  TraceResponse,
} from '../protocol/api.ts';
import type { CpService, ServedArtifact } from './app.ts';
import { ArtifactManager } from './artifacts.ts';
import type { Config } from './config.ts';
import { ApiError } from './errors.ts';
import type { PeerIdentity } from './identity.ts';
import { silentLogger, type Logger } from './log.ts';
import { CpMetrics } from './metrics.ts';
import type { ArtifactSource } from './sources.ts';
import type { QuarantineRow, RolloutRow, Store, TransitionRow } from './store.ts';

export type ControlPlaneDeps = {
  config: Config;
  store: Store;
  source: ArtifactSource;
  trust: Trust;
  now?: () => number;
  log?: Logger;
};

const iso = (ms: number): string => new Date(ms).toISOString();
const ACTIVE_DISPATCH_STATES: readonly HostRolloutState[] = ['Dispatched', 'Activating', 'ConfirmWindow'];

type HostKey = { pubkeyB64: string | null };

export class ControlPlane implements CpService {
  readonly metrics: CpMetrics;
  readonly artifacts: ArtifactManager;
  readonly store: Store;
  private readonly config: Config;
  private readonly now: () => number;
  private readonly log: Logger;
  private readonly source: ArtifactSource;
  private hostKeys = new Map<string, HostKey>();
  private keysFor: string | null = null;
  /**
   * Write-through mirror of the hosts and rollouts of observed state (histories empty), loaded
   * from SQLite on first use and updated only after each transaction commits. A reconcile pass
   * then costs the reconciler's time, not 20,000 row reads; the channel-level maps (operator
   * state) are still read from SQLite on every pass.
   */
  private cache: Observed | null = null;
  /** Verified signed confirmed records not applied yet (host → what it confirmed, when). */
  private readonly restorable = new Map<string, { rolloutId: string; closure: string; confirmedAtMs: number }>();
  /** Signature of the last confirmed record examined per host (each record is verified once). */
  private readonly recordSeen = new Map<string, string>();
  private timers: NodeJS.Timeout[] = [];
  private debounce: NodeJS.Timeout | null = null;
  private stopped = false;

  constructor(deps: ControlPlaneDeps) {
    this.config = deps.config;
    this.store = deps.store;
    this.store.onGroupRollback = (e) => {
      this.cache = null; // reload from SQLite: the rolled-back check-ins were merged already
      this.log.error('grouped check-in commit failed; rolled back', { error: String(e) });
    };
    this.source = deps.source;
    this.now = deps.now ?? Date.now;
    this.log = deps.log ?? silentLogger;
    this.metrics = new CpMetrics(() => ({
      hosts: this.hostStateCounts(),
      rollouts: this.store.rolloutStateCounts(),
      ready: this.artifacts.fleet() !== null,
    }));
    this.artifacts = new ArtifactManager({
      store: this.store,
      source: deps.source,
      trustFile: deps.config.trustFile,
      trust: deps.trust,
      requireRevocations: deps.config.revocations,
      maxBytes: deps.config.maxArtifactBytes,
      now: this.now,
      metrics: this.metrics,
      log: this.log,
      onFleetChanged: () => this.requestReconcile(),
    });
  }

  /** Put persisted artefacts back in force, poll the source once, start the timers. */
  async start(opts: { timers?: boolean } = {}): Promise<void> {
    this.artifacts.loadFromStore();
    await this.pollNow();
    this.reconcileNow('start');
    if (opts.timers === false) return;
    const every = (ms: number, fn: () => void) => this.timers.push(setInterval(fn, ms));
    every(this.config.pollIntervalSecs * 1000, () => void this.pollNow());
    every(this.config.reconcileIntervalSecs * 1000, () => this.safeReconcile('tick'));
  }

  async stop(): Promise<void> {
    this.stopped = true;
    for (const t of this.timers) clearInterval(t);
    this.timers = [];
    if (this.debounce !== null) clearTimeout(this.debounce);
    this.debounce = null;
    await this.source.close();
  }

  async pollNow(): Promise<void> {
    try {
      await this.artifacts.poll();
    } catch (e) {
      this.log.error('artefact poll crashed', { error: String(e) });
    }
  }

  /** Coalesce reconcile requests: at most one pass per `reconcileDebounceMs`. */
  requestReconcile(delayMs: number = this.config.reconcileDebounceMs): void {
    if (this.stopped || this.debounce !== null) return;
    this.debounce = setTimeout(() => {
      this.debounce = null;
      this.safeReconcile('event');
    }, delayMs);
  }

  private safeReconcile(trigger: string): void {
    try {
      this.reconcileNow(trigger);
    } catch (e) {
      this.log.error('reconcile pass failed', { trigger, error: e instanceof Error ? (e.stack ?? e.message) : String(e) });
    }
  }

  private fleet(): FleetResolved {
    const f = this.artifacts.fleet()?.fleet ?? null;
    if (f === null) throw new ApiError('NOT_READY', 'no verified fleet artefact yet');
    return f;
  }

  private origin(): { signedAt: string; artifactSha256: string } {
    const a = this.artifacts.fleet();
    return { signedAt: a?.signedAt ?? '', artifactSha256: a?.sha256 ?? '' };
  }

  // ------------------------------------------------------------------------------------------
  // Reconcile

  /**
   * One full pass in one transaction: load observed → expire confirm deadlines → reconcile →
   * applyActions → persist + dispatches + audit. Returns the actions (for tests and logs).
   */
  reconcileNow(trigger: string = 'manual'): Action[] {
    const inForce = this.artifacts.fleet();
    if (inForce === null || inForce.fleet === null) return [];
    const fleet = inForce.fleet;
    const started = performance.now();
    const nowMs = this.now();
    const base = this.cached();
    const { acts: actions, final } = this.store.tx(() => {
      const loaded: Observed = { ...base, ...this.store.loadChannelState() };
      const expired = this.store.expiredDispatches(nowMs);
      const events = expired.map((d) => ({ host: d.hostname, event: { kind: 'deadline-expired', rolloutId: d.rolloutId } as HostEvent }));
      for (const d of expired) {
        this.store.finishDispatch(d.rolloutId, d.hostname, 'expired', nowMs);
        this.store.appendAudit({ atMs: nowMs, kind: 'dispatch.expired', actor: 'cp', subject: d.rolloutId, data: { host: d.hostname, closure: d.closure, deadline: iso(d.deadlineMs ?? nowMs) } });
      }
      const mid = this.restoreSoak(applyHostEvents(loaded, events, nowMs), nowMs);
      const acts = reconcile(fleet, mid, nowMs, { offlineAfterMs: this.config.offlineAfterSecs * 1000, offlineGraceMs: this.config.offlineGraceSecs * 1000 });
      const final = applyActions(mid, acts, nowMs);
      const qmeta = new Map<string, Omit<QuarantineRow, 'channel' | 'closure'>>();
      for (const a of acts) {
        if (a.kind === 'quarantine_closure') {
          const rid = Object.values(final.rollouts).find((r) => r.channel === a.channel && r.hosts[a.host] !== undefined && r.state !== 'Superseded')?.id ?? null;
          qmeta.set(`${a.channel}\0${a.closure}`, { rolloutId: rid, hostname: a.host, reason: a.reason, sinceMs: nowMs });
        }
      }
      const transitions = this.store.persistObserved(loaded, final, nowMs, this.origin(), qmeta);
      this.afterTransitions(transitions, final, nowMs, 'cp');
      for (const a of acts) this.afterAction(a, nowMs);
      return { acts, final };
    });
    this.cache = toCache(final);
    this.metrics.reconcileDuration.observe((performance.now() - started) / 1000);
    this.metrics.reconcileRuns.inc({ trigger });
    return actions;
  }

  private cached(): Observed {
    this.cache ??= toCache(this.store.loadObserved());
    return this.cache;
  }

  /** The mirror as the reconciler would load it from SQLite now (for consistency checks). */
  cachedObserved(): Pick<Observed, 'hosts' | 'rollouts'> {
    const c = this.cached();
    return { hosts: c.hosts, rollouts: c.rollouts };
  }

  /**
   * The part of observed state a host event can touch: the host's observation and its entry in
   * every rollout that is not Superseded (the rollout with only this host). Channel maps are empty: host events do
   * not use them (reconciler/apply.ts).
   */
  private slice(h: string): Observed {
    const c = this.cached();
    const hosts: Observed['hosts'] = {};
    if (Object.prototype.hasOwnProperty.call(c.hosts, h)) hosts[h] = c.hosts[h]!;
    const rollouts: Observed['rollouts'] = {};
    for (const r of Object.values(c.rollouts)) {
      // Converged rollouts stay: a host that was offline past the grace gets its target when it
      // returns (SPEC §4), after the rollout converged without it.
      if (r.state === 'Superseded' || !Object.prototype.hasOwnProperty.call(r.hosts, h)) continue;
      rollouts[r.id] = { ...r, hosts: { [h]: r.hosts[h]! }, history: [] };
    }
    return { hosts, rollouts, quarantinedClosures: {}, pausedChannels: {}, lastConverged: {}, deferrals: {} };
  }

  /** Fold a committed one-host slice back into the mirror (host events change nothing else). */
  private merge(h: string, after: Observed): void {
    const c = this.cached();
    const o = after.hosts[h];
    if (o !== undefined) c.hosts[h] = o;
    for (const r of Object.values(after.rollouts)) {
      const rh = r.hosts[h];
      const target = c.rollouts[r.id];
      if (rh !== undefined && target !== undefined) target.hosts[h] = rh;
    }
  }

  /**
   * Restore soak state from verified signed confirmed records (SPEC §6): a host that waits Queued
   * in the rollout its record names, runs the record's closure, and that closure is its target
   * there, is Healthy since it confirmed — so its wave's soak counts from `confirmedAt`, not from
   * the rebuild (without a record the reconciler would take it as already Soaked). This is state
   * restoration, not a decision: the reconciler then soaks, promotes and dispatches as usual.
   * Pure over `o` (copies what it changes); `only` limits it to one host.
   */
  private restoreSoak(o: Observed, nowMs: number, only?: string): Observed {
    if (this.restorable.size === 0) return o;
    const touched = new Map<string, Rollout>();
    for (const [h, rec] of this.restorable) {
      if (only !== undefined && h !== only) continue;
      const r0 = touched.get(rec.rolloutId) ?? o.rollouts[rec.rolloutId];
      const rh = r0?.hosts[h];
      if (r0 === undefined || rh === undefined || r0.state === 'Superseded') continue;
      if (rh.state !== 'Queued') {
        this.restorable.delete(h); // it moved on: nothing to restore
        continue;
      }
      if (rh.closure !== rec.closure || o.hosts[h]?.currentClosure !== rec.closure) continue;
      const r = touched.get(r0.id) ?? { ...r0, hosts: { ...r0.hosts }, history: r0.history.slice() };
      touched.set(r.id, r);
      const at = Math.min(rec.confirmedAtMs, nowMs);
      r.hosts[h] = { ...rh, state: 'Healthy', enteredAtMs: at, skip: null };
      r.history.push({ atMs: nowMs, host: h, from: 'Queued', to: 'Healthy', wave: rh.wave, reason: `restored from the host's signed confirmed record (confirmed ${iso(at)}): the soak counts from then` });
      this.restorable.delete(h);
    }
    if (touched.size === 0) return o;
    return { ...o, rollouts: { ...o.rollouts, ...Object.fromEntries(touched) } };
  }

  /** Dispatch rows and audit entries that follow host/rollout transitions. */
  private afterTransitions(transitions: readonly TransitionRow[], after: Observed, nowMs: number, actor: string): void {
    for (const t of transitions) {
      this.store.appendAudit({
        atMs: t.atMs,
        kind: t.hostname === null ? 'rollout.state' : 'host.state',
        actor,
        subject: t.rolloutId,
        data: { host: t.hostname, from: t.from, to: t.to, wave: t.wave, reason: t.reason },
      });
      if (t.hostname === null || t.from === t.to) continue;
      const r = after.rollouts[t.rolloutId];
      const rh = r?.hosts[t.hostname];
      if (t.to === 'Dispatched' && r !== undefined && rh !== undefined) {
        this.store.putDispatch({ rolloutId: t.rolloutId, hostname: t.hostname, channel: r.channel, closure: rh.closure, wave: rh.wave, createdMs: nowMs });
        continue;
      }
      const d = this.store.getDispatch(t.rolloutId, t.hostname);
      if (d === null || d.status !== 'pending') continue;
      if (t.from === 'Dispatched' && t.to === 'Queued') this.store.finishDispatch(t.rolloutId, t.hostname, 'cancelled', nowMs);
      else if (t.to === 'Failed' || t.to === 'Reverted') this.store.finishDispatch(t.rolloutId, t.hostname, 'failed', nowMs);
      else if (t.to === 'Healthy') this.store.finishDispatch(t.rolloutId, t.hostname, 'confirmed', nowMs);
    }
  }

  private afterAction(a: Action, nowMs: number): void {
    switch (a.kind) {
      case 'rollback_host': {
        // A stopping instruction: the host undoes its activation (never a new closure).
        const d = this.store.getDispatch(a.rolloutId, a.host);
        if (d !== null) this.store.finishDispatch(a.rolloutId, a.host, 'cancelled', nowMs, a.reason);
        this.store.appendAudit({ atMs: nowMs, kind: 'host.rollback', actor: 'cp', subject: a.rolloutId, data: { host: a.host, closure: a.closure, reason: a.reason } });
        return;
      }
      case 'supersede_rollout': {
        // Targets not yet handed over are withdrawn; a host already activating may still confirm.
        const n = this.store.cancelUndelivered(a.rolloutId, nowMs);
        if (n > 0) this.store.appendAudit({ atMs: nowMs, kind: 'dispatch.withdrawn', actor: 'cp', subject: a.rolloutId, data: { undelivered: n, reason: a.reason } });
        return;
      }
      case 'quarantine_closure':
        this.store.appendAudit({ atMs: nowMs, kind: 'quarantine.added', actor: 'cp', subject: a.channel, data: { closure: a.closure, host: a.host, reason: a.reason } });
        return;
      case 'rotate_trust_root':
        this.store.appendAudit({ atMs: nowMs, kind: 'trust.rotate', actor: 'cp', subject: 'trust', data: { reason: a.reason } });
        return;
      default:
        return;
    }
  }

  // ------------------------------------------------------------------------------------------
  // Agent routes

  private requireFleetHost(hostname: string): { fleet: FleetResolved; channel: string } {
    const fleet = this.fleet();
    const h = Object.prototype.hasOwnProperty.call(fleet.hosts, hostname) ? fleet.hosts[hostname] : undefined;
    if (h === undefined) throw new ApiError('UNKNOWN_HOST', `host ${JSON.stringify(hostname)} is not in the signed fleet`);
    return { fleet, channel: h.channel };
  }

  private hostKey(hostname: string): HostKey {
    const a = this.artifacts.fleet();
    if (a === null || a.fleet === null) return { pubkeyB64: null };
    if (this.keysFor !== a.sha256) {
      this.hostKeys = new Map();
      this.keysFor = a.sha256;
    }
    let k = this.hostKeys.get(hostname);
    if (k === undefined) {
      const line = a.fleet.hosts[hostname]?.pubkey ?? null;
      const raw = line === null ? null : parseOpenSshEd25519(line);
      k = { pubkeyB64: raw !== null && raw.ok ? toBase64(raw.value) : null };
      if (line !== null && (raw === null || !raw.ok)) this.log.warn('host pubkey in the fleet is not an OpenSSH ed25519 key', { host: hostname });
      this.hostKeys.set(hostname, k);
    }
    return k;
  }

  /** Verify a host's Ed25519 signature (base64, 64 raw bytes) over the JCS bytes of `value`. */
  private verifyHostSignature(hostname: string, value: unknown, signatureB64: string | null): ReportVerdict {
    const key = this.hostKey(hostname);
    if (key.pubkeyB64 === null) return 'unsigned-no-pubkey';
    if (signatureB64 === null) return 'invalid';
    const sig = fromBase64(signatureB64);
    const bytes = canonicalBytes(value);
    if (sig === null || sig.length !== 64 || !bytes.ok) return 'invalid';
    return verifySignature('ed25519', key.pubkeyB64, bytes.value, sig) ? 'verified' : 'invalid';
  }

  /**
   * A check-in joins the grouped transaction of this turn of the event loop (group commit: one
   * commit for every check-in that arrived together) and is answered once that commit is done.
   */
  async checkin(_peer: PeerIdentity, req: CheckinRequest): Promise<CheckinResponse> {
    const { fleet } = this.requireFleetHost(req.hostname);
    const h = req.hostname;
    const nowMs = this.now();
    const inForce = this.artifacts.fleet()!;
    const offlineAfterMs = this.config.offlineAfterSecs * 1000;
    const probes = { observed: true, passing: req.probes.every((p) => p.ok) };
    const { value: out, committed } = this.store.txGrouped(() => {
      const slice = this.slice(h);
      const before = slice.hosts[h] ?? null;
      const events: { host: string; event: HostEvent }[] = [
        { host: h, event: { kind: 'checkin', currentClosure: req.currentClosure, bootId: req.bootId, probes, failedUnits: req.failedUnits } },
      ];
      // A lost report must not leave the host in flight forever: the agent's own last outcome
      // for a rollout it was dispatched in carries the same information.
      const lo = req.lastOutcome;
      if (lo !== null && slice.rollouts[lo.rolloutId]?.hosts[h] !== undefined) {
        if (lo.outcome === 'rolled-back') events.push({ host: h, event: { kind: 'rolled-back', rolloutId: lo.rolloutId, reason: 'agent reports it rolled back (check-in)' } });
        else if (lo.outcome === 'activation-failed') events.push({ host: h, event: { kind: 'failed', rolloutId: lo.rolloutId, reason: 'agent reports activation failed (check-in)' } });
      }
      // The agent's signed record of what it last confirmed (SPEC §5, §6): after a wipe it restores
      // the host's soak. Verified once per distinct record, and only when it can matter (first
      // check-in into this database, or the host waits Queued in the record's rollout).
      const lc = req.lastConfirmed ?? null;
      if (lc !== null && lc.record.hostname === h && this.recordSeen.get(h) !== lc.signature) {
        const rh = slice.rollouts[lc.record.rolloutId]?.hosts[h];
        const useful = before === null || before.lastCheckinMs === null || (rh?.state === 'Queued' && rh.closure === lc.record.closureHash);
        if (useful) {
          this.recordSeen.set(h, lc.signature);
          const verdict = this.recordConfirmedStatement(h, lc, nowMs, 'checkin');
          const confirmedAtMs = Date.parse(lc.record.confirmedAt);
          if (verdict === 'verified' && Number.isFinite(confirmedAtMs)) {
            this.restorable.set(h, { rolloutId: lc.record.rolloutId, closure: lc.record.closureHash, confirmedAtMs });
          }
        }
      }
      const after = this.restoreSoak(applyHostEvents(slice, events, nowMs), nowMs, h);
      // The host row (observation + the fields only the views read) in one upsert; the diff then
      // covers the rollout rows only.
      const o = after.hosts[h]!;
      this.store.putHost({
        hostname: h,
        lastCheckinMs: o.lastCheckinMs,
        currentClosure: o.currentClosure,
        bootId: o.bootId,
        probesObserved: o.probes.observed,
        probesPassing: o.probes.passing,
        failedUnits: o.failedUnits,
        complianceFailures: o.complianceFailures ?? null,
        probesJson: JSON.stringify(req.probes),
        lastOutcomeJson: lo === null ? null : JSON.stringify(lo),
        pendingReboot: req.pendingReboot === true,
        agentVersion: req.agentVersion ?? null,
      });
      const transitions = this.store.persistObserved(slice, { ...after, hosts: slice.hosts }, nowMs, this.origin());
      this.afterTransitions(transitions, after, nowMs, `host:${h}`);
      const relevant =
        before === null ||
        before.lastCheckinMs === null ||
        nowMs - before.lastCheckinMs > offlineAfterMs ||
        before.currentClosure !== o.currentClosure ||
        before.probes.observed !== o.probes.observed ||
        before.probes.passing !== o.probes.passing ||
        JSON.stringify(before.failedUnits) !== JSON.stringify(o.failedUnits) ||
        transitions.length > 0;
      return { after, target: this.targetFor(h, after, nowMs, fleet, inForce.sha256, inForce.signedAt), rollback: this.rollbackFor(h), relevant };
    });
    // The mirror follows the connection's view at once (later check-ins of this group read it);
    // a failed group commit drops the mirror (`onGroupRollback`).
    this.merge(h, out.after);
    await committed;
    this.metrics.checkins.inc({ result: out.target !== null ? 'target' : 'none' });
    if (out.relevant) this.requestReconcile();
    const res: CheckinResponse = { target: out.target, nextCheckinSecs: this.config.agentPollIntervalSecs, serverTime: iso(nowMs) };
    if (out.rollback !== null) res.rollback = out.rollback;
    return res;
  }

  private targetFor(h: string, observed: Observed, nowMs: number, fleet: FleetResolved, sha256: string, signedAt: string): Target | null {
    const d = this.store.pendingDispatchFor(h);
    if (d === null) return null;
    const r = observed.rollouts[d.rolloutId];
    const rh = r?.hosts[h];
    // Only for a live rollout where the host is still on its way (not cancelled, not superseded).
    if (r === undefined || rh === undefined || !ACTIVE_DISPATCH_STATES.includes(rh.state)) return null;
    // The target must be what the artefact served now says (the agent checks it against those bytes).
    if (fleet.hosts[h]?.closureHash !== d.closure) return null;
    let deadlineMs = d.deadlineMs;
    if (d.deliveredMs === null || deadlineMs === null) {
      deadlineMs = nowMs + this.config.confirmDeadlineSecs * 1000;
      this.store.deliverDispatch(d.rolloutId, h, nowMs, deadlineMs);
      this.store.appendAudit({ atMs: nowMs, kind: 'dispatch.delivered', actor: `host:${h}`, subject: d.rolloutId, data: { host: h, closure: d.closure, confirmDeadline: iso(deadlineMs) } });
    }
    return {
      closureHash: d.closure,
      rolloutId: d.rolloutId,
      channel: d.channel,
      wave: d.wave,
      signedAt,
      freshnessWindowMinutes: fleet.channels[d.channel]?.freshnessWindow ?? 0,
      artifactSha256: sha256,
      confirmDeadline: iso(deadlineMs),
    };
  }

  private rollbackFor(h: string): RollbackInstruction | null {
    const d = this.store.rollbackFor(h);
    if (d === null || d.rollbackReason === null) return null;
    return { rolloutId: d.rolloutId, closureHash: d.closure, reason: d.rollbackReason };
  }

  /** Store a host's signed statement of what it confirmed (rebuild evidence), with its verdict. */
  private recordConfirmedStatement(h: string, s: SignedConfirmedRecord, nowMs: number, via: string): ReportVerdict {
    const verdict = this.verifyHostSignature(h, s.record, s.signature);
    const bytes = canonicalBytes(s.record);
    this.store.insertReport({
      hostname: h,
      receivedMs: nowMs,
      event: 'confirmed-record',
      rolloutId: s.record.rolloutId,
      reportJson: bytes.ok ? new TextDecoder().decode(bytes.value) : JSON.stringify(s.record),
      signature: s.signature,
      verdict,
    });
    this.store.appendAudit({ atMs: nowMs, kind: 'host.confirmed-record', actor: `host:${h}`, subject: s.record.rolloutId, data: { via, record: s.record, signature: s.signature, verdict } });
    return verdict;
  }

  confirm(_peer: PeerIdentity, req: ConfirmRequest): void {
    this.requireFleetHost(req.hostname);
    const h = req.hostname;
    const nowMs = this.now();
    let merged: Observed | null = null;
    const result = this.store.tx((): { ok: true; reconcile: boolean } | { ok: false; error: ApiError } => {
      const d = this.store.getDispatch(req.rolloutId, h);
      if (d === null) return { ok: false, error: new ApiError('NO_DISPATCH', `no target of rollout ${req.rolloutId} was handed to ${h}`) };
      if (d.closure !== req.closureHash) {
        return { ok: false, error: new ApiError('NO_DISPATCH', `rollout ${req.rolloutId} dispatched ${d.closure} to ${h}, not ${req.closureHash}`) };
      }
      if (d.status === 'confirmed') return { ok: true, reconcile: false }; // a retried confirm
      if (d.status === 'expired') return { ok: false, error: new ApiError('DEADLINE_PASSED', `the confirm deadline ${iso(d.deadlineMs ?? 0)} has passed: roll back`) };
      if (d.status !== 'pending') return { ok: false, error: new ApiError('DISPATCH_CANCELLED', `the dispatch was ${d.status === 'failed' ? 'marked failed' : 'cancelled'}: roll back`) };
      const slice = this.slice(h);
      if (d.deadlineMs !== null && nowMs > d.deadlineMs) {
        // Expire it now rather than waiting for the next pass: the answer and the state agree.
        this.store.finishDispatch(d.rolloutId, h, 'expired', nowMs);
        this.store.appendAudit({ atMs: nowMs, kind: 'dispatch.expired', actor: 'cp', subject: d.rolloutId, data: { host: h, closure: d.closure, deadline: iso(d.deadlineMs), lateConfirm: true } });
        const after = applyHostEvents(slice, [{ host: h, event: { kind: 'deadline-expired', rolloutId: d.rolloutId } }], nowMs);
        this.afterTransitions(this.store.persistObserved(slice, after, nowMs, this.origin()), after, nowMs, 'cp');
        merged = after;
        return { ok: false, error: new ApiError('DEADLINE_PASSED', `the confirm deadline ${iso(d.deadlineMs)} has passed: roll back`) };
      }
      const rh = slice.rollouts[d.rolloutId]?.hosts[h];
      if (rh === undefined && this.store.getRollout(d.rolloutId)?.state === 'Superseded') {
        // It activated a closure CI signed for the previous target in time: nothing to undo; the
        // newer rollout moves it on. No state change in a superseded rollout.
        this.store.finishDispatch(d.rolloutId, h, 'confirmed', nowMs);
        this.store.appendAudit({ atMs: nowMs, kind: 'host.confirmed-superseded', actor: `host:${h}`, subject: d.rolloutId, data: { host: h, closure: d.closure } });
        return { ok: true, reconcile: true };
      }
      if (rh === undefined || !ACTIVE_DISPATCH_STATES.includes(rh.state)) {
        this.store.finishDispatch(d.rolloutId, h, 'cancelled', nowMs);
        return { ok: false, error: new ApiError('DISPATCH_CANCELLED', `rollout ${d.rolloutId} no longer expects ${h} to confirm (${rh?.state ?? 'superseded'}): roll back`) };
      }
      const events: { host: string; event: HostEvent }[] = [{ host: h, event: { kind: 'confirmed', rolloutId: d.rolloutId } }];
      if (req.probes !== undefined) {
        events.push({ host: h, event: { kind: 'probes', probes: { observed: true, passing: req.probes.every((p) => p.ok) }, ...(req.failedUnits !== undefined ? { failedUnits: req.failedUnits } : {}) } });
      }
      const after = applyHostEvents(slice, events, nowMs);
      this.store.finishDispatch(d.rolloutId, h, 'confirmed', nowMs);
      this.afterTransitions(this.store.persistObserved(slice, after, nowMs, this.origin()), after, nowMs, `host:${h}`);
      merged = after;
      if (req.confirmed !== undefined) this.recordConfirmedStatement(h, req.confirmed, nowMs, 'confirm');
      return { ok: true, reconcile: true };
    });
    if (merged !== null) this.merge(h, merged);
    if (!result.ok) {
      this.requestReconcile();
      throw result.error;
    }
    if (result.reconcile) this.requestReconcile();
  }

  report(_peer: PeerIdentity, req: ReportRequest, rawReport: unknown): ReportResponse {
    this.requireFleetHost(req.report.hostname);
    const h = req.report.hostname;
    const nowMs = this.now();
    const verdict = this.verifyHostSignature(h, rawReport, req.signature);
    const bytes = canonicalBytes(rawReport);
    const reportJson = bytes.ok ? new TextDecoder().decode(bytes.value) : JSON.stringify(req.report);
    let merged: Observed | null = null;
    const id = this.store.tx(() => {
      const id = this.store.insertReport({ hostname: h, receivedMs: nowMs, event: req.report.event, rolloutId: req.report.rolloutId, reportJson, signature: req.signature, verdict });
      this.store.appendAudit({
        atMs: nowMs,
        kind: verdict === 'invalid' ? 'report.invalid' : 'report',
        actor: `host:${h}`,
        subject: req.report.rolloutId ?? h,
        data: { id, report: JSON.parse(reportJson), signature: req.signature, verdict },
      });
      if (verdict === 'invalid') return id; // stored for the auditor, changes nothing
      const event = toHostEvent(req.report);
      if (event !== null) {
        const slice = this.slice(h);
        const after = applyHostEvents(slice, [{ host: h, event }], nowMs);
        this.afterTransitions(this.store.persistObserved(slice, after, nowMs, this.origin()), after, nowMs, `host:${h}`);
        merged = after;
      }
      if (req.report.event === 'rolled-back' && req.report.rolloutId !== null) this.store.clearRollback(req.report.rolloutId, h);
      if (req.report.event === 'activation-deferred') this.store.setPendingReboot(h, true);
      return id;
    });
    if (merged !== null) this.merge(h, merged);
    this.metrics.reports.inc({ event: req.report.event, verdict });
    if (verdict === 'invalid') {
      throw new ApiError('REPORT_SIGNATURE_INVALID', `the report's signature does not verify under the host key of ${h} in the signed fleet; stored for audit, ignored`);
    }
    this.requestReconcile();
    return { id, verdict };
  }

  readiness(): ReadyzResponse {
    const f = this.artifacts.fleet();
    const r = this.artifacts.revocations();
    const reasons = this.artifacts.notReadyReasons();
    return {
      ready: reasons.length === 0,
      reasons,
      fleet: f === null ? null : { signedAt: f.signedAt, sha256: f.sha256, ciCommit: f.fleet?.meta.ciCommit ?? null },
      revocations: r === null ? null : { signedAt: r.signedAt, sha256: r.sha256 },
    };
  }

  isRevoked(peer: PeerIdentity): boolean {
    const nb = this.artifacts.revokedBeforeMs(peer.cn);
    return nb !== null && peer.notBeforeMs < nb;
  }

  artifact(kind: 'fleet' | 'revocations'): ServedArtifact | null {
    const a = kind === 'fleet' ? this.artifacts.fleet() : this.artifacts.revocations();
    return a === null ? null : { bytes: a.bytes, signature: a.signature, sha256: a.sha256, gzip: a.gzip };
  }

  // ------------------------------------------------------------------------------------------
  // Operator routes

  hosts(): HostsResponse {
    const fleet = this.fleet();
    const nowMs = this.now();
    const rows = new Map(this.store.allHosts().map((r) => [r.hostname, r]));
    const newest = this.store.newestRolloutRowPerHost();
    const pending = new Map(this.store.pendingDispatches().map((d) => [d.hostname, d]));
    const hosts: HostView[] = Object.keys(fleet.hosts)
      .sort()
      .map((name) => {
        const fh = fleet.hosts[name]!;
        const row = rows.get(name);
        const rr = newest.get(name);
        const d = pending.get(name);
        return {
          hostname: name,
          channel: fh.channel,
          declaredClosure: fh.closureHash,
          currentClosure: row?.currentClosure ?? null,
          lastCheckinAt: row?.lastCheckinMs == null ? null : iso(row.lastCheckinMs),
          bootId: row?.bootId ?? null,
          online: row?.lastCheckinMs != null && nowMs - row.lastCheckinMs <= this.config.offlineAfterSecs * 1000,
          pendingReboot: row?.pendingReboot ?? false,
          failedUnits: row?.failedUnits ?? [],
          probes: row === undefined ? [] : (JSON.parse(row.probesJson) as ProbeResult[]),
          lastOutcome: row?.lastOutcomeJson == null ? null : (JSON.parse(row.lastOutcomeJson) as LastOutcome),
          rollout: rr === undefined ? null : { rolloutId: rr.rolloutId, state: rr.state, since: iso(rr.enteredAtMs), wave: rr.wave },
          dispatch: d === undefined || d.deadlineMs === null ? null : { rolloutId: d.rolloutId, closureHash: d.closure, confirmDeadline: iso(d.deadlineMs) },
        };
      });
    return { hosts };
  }

  private summary(r: RolloutRow): RolloutSummary {
    return {
      id: r.id,
      channel: r.channel,
      state: r.state,
      currentWave: r.currentWave,
      signedAt: r.signedAt,
      artifactSha256: r.artifactSha256,
      openedAt: iso(r.openedAtMs),
      updatedAt: iso(r.updatedAtMs),
      reason: r.stateReason,
      hostCounts: this.store.rolloutHostCounts(r.id),
    };
  }

  rollouts(filter: { channel?: string; state?: RolloutState }): RolloutsResponse {
    this.fleet();
    const rows = this.store.allRollouts().filter((r) => (filter.channel === undefined || r.channel === filter.channel) && (filter.state === undefined || r.state === filter.state));
    return { rollouts: rows.map((r) => this.summary(r)) };
  }

  private rolloutOr404(id: string): RolloutRow {
    const r = this.store.getRollout(id);
    if (r === null) throw new ApiError('UNKNOWN_ROLLOUT', `no rollout ${JSON.stringify(id)}`);
    return r;
  }

  rollout(id: string): RolloutDetail {
    const r = this.rolloutOr404(id);
    const hosts = this.store
      .rolloutHosts(id)
      .sort((a, b) => (a.hostname < b.hostname ? -1 : a.hostname > b.hostname ? 1 : 0))
      .map((h) => ({
        hostname: h.hostname,
        wave: h.wave,
        state: h.state,
        since: iso(h.enteredAtMs),
        closureHash: h.closure,
        reason: h.skipJson === null ? null : ((JSON.parse(h.skipJson) as { reason: string }).reason ?? null),
      }));
    return { ...this.summary(r), hosts };
  }

  trace(id: string): TraceResponse {
    this.rolloutOr404(id);
    return {
      rolloutId: id,
      events: this.store.transitions(id).map((t) => ({ at: iso(t.atMs), subject: t.hostname === null ? 'rollout' : 'host', hostname: t.hostname, from: t.from, to: t.to, reason: t.reason })),
    };
  }

  audit(after: number, limit: number): AuditResponse {
    const entries = this.store.auditPage(after, limit);
    return { entries, nextAfter: entries.length === limit ? entries[entries.length - 1]!.seq : null };
  }

  private requireChannel(channel: string): void {
    const fleet = this.fleet();
    if (!Object.prototype.hasOwnProperty.call(fleet.channels, channel)) throw new ApiError('UNKNOWN_CHANNEL', `channel ${JSON.stringify(channel)} is not in the signed fleet`);
  }

  pause(peer: PeerIdentity, channel: string, req: PauseRequest): PauseResponse {
    this.requireChannel(channel);
    const nowMs = this.now();
    const by = `operator:${peer.cn}`;
    const reason = req.reason ?? `paused by ${peer.cn}`;
    this.store.tx(() => {
      if (this.store.getPause(channel) !== null) return; // already paused: keep the first reason
      this.store.setPause({ channel, sinceMs: nowMs, reason, by });
      this.store.appendAudit({ atMs: nowMs, kind: 'channel.paused', actor: by, subject: channel, data: { reason } });
    });
    this.reconcileNow('operator');
    const p = this.store.getPause(channel)!;
    return { channel, paused: true, by: p.by, since: iso(p.sinceMs), reason: p.reason };
  }

  resume(peer: PeerIdentity, channel: string, req: PauseRequest): PauseResponse {
    this.requireChannel(channel);
    const nowMs = this.now();
    const by = `operator:${peer.cn}`;
    this.store.tx(() => {
      if (this.store.clearPause(channel)) this.store.appendAudit({ atMs: nowMs, kind: 'channel.resumed', actor: by, subject: channel, data: { reason: req.reason ?? null } });
    });
    this.reconcileNow('operator');
    return { channel, paused: false, by: null, since: null, reason: null };
  }

  quarantines(): QuarantinesResponse {
    return {
      quarantines: this.store.quarantines().map((q) => ({ channel: q.channel, closureHash: q.closure, rolloutId: q.rolloutId, reason: q.reason, since: iso(q.sinceMs) })),
    };
  }

  clearQuarantines(peer: PeerIdentity, req: QuarantineClearRequest): QuarantineClearResponse {
    this.requireChannel(req.channel);
    const nowMs = this.now();
    const cleared = this.store.tx(() => {
      const n = this.store.clearQuarantines(req.channel, req.closureHash ?? null);
      if (n > 0) {
        this.store.appendAudit({ atMs: nowMs, kind: 'quarantine.cleared', actor: `operator:${peer.cn}`, subject: req.channel, data: { closure: req.closureHash ?? null, cleared: n } });
      }
      return n;
    });
    if (cleared > 0) this.reconcileNow('operator');
    return { cleared };
  }

  metricsText(): Promise<{ contentType: string; body: string }> {
    return this.metrics.text();
  }

  observeRequest(route: string, status: number): void {
    this.metrics.requests.inc({ route, status: String(status) });
  }

  private hostStateCounts(): Record<string, number> {
    const counts = this.store.hostStateCounts();
    const fleet = this.artifacts.fleet()?.fleet;
    if (fleet !== undefined && fleet !== null) {
      const inRollout = Object.values(counts).reduce((a, b) => a + b, 0);
      counts['Idle'] = Math.max(0, Object.keys(fleet.hosts).length - inRollout);
    }
    return counts;
  }
}

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
    case 'stale-target':
    case 'closure-quarantined':
    case 'verify-failed':
      return null;
  }
}

/**
 * The mirror of observed state as `Store.loadObserved` would read it: histories empty, and only
 * the rollouts it loads (live ones, plus the newest of each channel whatever its state).
 */
function toCache(o: Observed): Observed {
  const newest = new Map<string, { openedAtMs: number; id: string }>();
  for (const r of Object.values(o.rollouts)) {
    const n = newest.get(r.channel);
    if (n === undefined || r.openedAtMs > n.openedAtMs || (r.openedAtMs === n.openedAtMs && r.id > n.id)) newest.set(r.channel, { openedAtMs: r.openedAtMs, id: r.id });
  }
  const rollouts: Observed['rollouts'] = {};
  for (const [id, r] of Object.entries(o.rollouts)) {
    const terminal = r.state === 'Converged' || r.state === 'Superseded';
    if (terminal && newest.get(r.channel)?.id !== id) continue;
    rollouts[id] = r.history.length === 0 ? r : { ...r, history: [] };
  }
  return { ...o, hosts: o.hosts, rollouts };
}
