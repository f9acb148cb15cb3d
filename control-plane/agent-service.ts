/**
 * The agent side of the control plane (SPEC §5): check-in, confirm, report, and the signed
 * artefacts as served. Each call reads what it needs, decides on a one-host slice of the mirror
 * with the reconciler's `applyHostEvents` and `plan.ts` (pure), then hands the writes to the store
 * in one go — check-ins through the group commit.
 *
 * A *relevant* check-in (first one, back from offline, closure / probes / failed units changed,
 * state moved) asks the reconcile loop for a pass, coalesced. A host's first check-in (first
 * contact) waits for a pass that starts after its commit — shared by every first contact that
 * arrives before that pass starts — so it gets its target in the same answer when the gates allow.
 */
import { canonicalBytes } from '../protocol/jcs.ts';
import type { FleetResolved } from '../protocol/schema.ts';
import { applyHostEvents } from '../reconciler/apply.ts';
import type { HostEvent, HostRolloutState, Observed } from '../reconciler/types.ts';
import type {
  CheckinRequest,
  CheckinResponse,
  ConfirmRequest,
  ReportRequest,
  ReportResponse,
  RollbackInstruction,
  Target,
} from '../protocol/api.ts';
import type { ServedSlice } from './slices.ts';
import type { Config } from './config.ts';
import { ApiError } from './errors.ts';
import { checkEvidence } from './evidence.ts';
import type { PeerIdentity } from './identity.ts';
import type { Logger } from './log.ts';
import { ReportQuota } from './report-quota.ts';
import { WitnessKeeper } from './witnesses.ts';
import { certNotAfter, QuietCheckins, type DecisionInputs, type QuietDeps } from './quiet-checkins.ts';
import { HostStatements } from './host-statements.ts';
import { ObservedMirror } from './mirror.ts';
import { planWrites, toHostEvent } from './plan.ts';
import { StoreConflictError, type DispatchRow, type RolloutOrigin, type RolloutRow, type Store, type Write } from './store/types.ts';

const iso = (ms: number): string => new Date(ms).toISOString();
const ACTIVE_DISPATCH_STATES: readonly HostRolloutState[] = ['Dispatched', 'Activating', 'ConfirmWindow'];
/** States a confirm may come from: a deferred activation confirms after the boot (issue 14). */
const CONFIRMABLE_STATES: readonly HostRolloutState[] = [...ACTIVE_DISPATCH_STATES, 'PendingReboot'];

/** A signed artefact as served: the exact bytes and signature that were verified. */
export type ServedArtifact = {
  bytes: Uint8Array;
  signature: Uint8Array;
  sha256: string;
  /** gzip of `bytes`, computed once at acceptance (served on `Accept-Encoding: gzip`). */
  gzip?: Uint8Array;
};

export type AgentServiceDeps = QuietDeps & {
  config: Pick<Config, 'confirmDeadlineSecs' | 'reportQuotaPerHour'>;
  log: Logger;
  /** Ask the reconcile loop for a (debounced) pass. */
  requestReconcile: () => void;
  /** A full pass now (after the running one); `onStart` when it begins reading. */
  reconcileNow?: (trigger: string, onStart: () => void) => Promise<unknown>;
};

type ConfirmOutcome = { ok: true; reconcile: boolean } | { ok: false; error: ApiError };

export class AgentService {
  /** Host-signed statements (keys from the signed fleet): host-statements.ts. */
  private readonly sigs: HostStatements;
  private readonly witnesses: WitnessKeeper;
  /** The first-contact pass not yet started: later first contacts join it. */
  private firstContactPass: Promise<unknown> | null = null;

  private readonly quota: ReportQuota;
  private readonly quiet: QuietCheckins;

  constructor(private readonly d: AgentServiceDeps) {
    this.quota = new ReportQuota(d.config.reportQuotaPerHour);
    this.quiet = new QuietCheckins(d);
    this.sigs = new HostStatements(d);
    this.witnesses = new WitnessKeeper({ store: d.store });
  }

  private fleet(): FleetResolved {
    const f = this.d.artifacts.fleet()?.fleet ?? null;
    if (f === null) throw new ApiError('NOT_READY', 'no verified fleet artefact yet');
    return f;
  }

  private requireFleetHost(hostname: string): FleetResolved {
    const fleet = this.fleet();
    if (!Object.prototype.hasOwnProperty.call(fleet.hosts, hostname)) throw new ApiError('UNKNOWN_HOST', `host ${JSON.stringify(hostname)} is not in the signed fleet`);
    return fleet;
  }

  private origin(): RolloutOrigin {
    const a = this.d.artifacts.fleet();
    return { signedAt: a?.signedAt ?? '', artifactSha256: a?.sha256 ?? '' };
  }

  /**
   * The one-host slice a decision starts from: the mirror's (no await once loaded: the check-in hot
   * path), or — on a store shared by several replicas, where the mirror is only this replica's
   * cache — read from the store (its writes are then conditional on it: `StoreConflictError`).
   */
  private async hostSlice(h: string): Promise<Observed> {
    if (this.d.store.shared) return this.d.store.loadHostSlice(h);
    return ObservedMirror.slice(this.d.mirror.peek() ?? (await this.d.mirror.get()), h);
  }

  /** Decide again when another replica moved the host between our read and our write. */
  private async retryOnConflict<T>(fn: () => Promise<T>): Promise<T> {
    for (let attempt = 1; ; attempt++) {
      try {
        return await fn();
      } catch (e) {
        if (!(e instanceof StoreConflictError) || attempt >= 5) throw e;
      }
    }
  }

  /** The host's own signed slice (issue 19), or null when no verified index matches the fleet. */
  slice(hostname: string): ServedSlice | null {
    return this.d.artifacts.slices.slice(hostname);
  }

  artifact(kind: 'fleet' | 'revocations'): ServedArtifact | null {
    const a = kind === 'fleet' ? this.d.artifacts.fleet() : this.d.artifacts.revocations();
    return a === null ? null : { bytes: a.bytes, signature: a.signature, sha256: a.sha256, gzip: a.gzip };
  }

  // ------------------------------------------------------------------------------------------
  // Host signatures

  // ------------------------------------------------------------------------------------------
  // Check-in

  /**
   * A check-in joins the grouped transaction of this turn of the event loop (group commit: one
   * commit for every check-in that arrived together) and is answered once that commit is done.
   */
  checkin(peer: PeerIdentity, req: CheckinRequest): Promise<CheckinResponse> {
    return Promise.resolve(this.checkinNow(peer, req));
  }

  /** `checkin`, with a quiet check-in's answer given at once rather than in a promise (hot-checkin.ts). */
  checkinNow(peer: PeerIdentity, req: CheckinRequest): CheckinResponse | Promise<CheckinResponse> {
    // Issue 19: one that changes nothing the CP decides on is answered at once (quiet-checkins.ts).
    const quiet = this.quiet.answer(peer, req);
    if (quiet !== null) return quiet;
    const inputs = this.quiet.inputsOf(req);
    return this.retryOnConflict(() => this.checkinOnce(peer, req, inputs));
  }

  private async checkinOnce(peer: PeerIdentity, req: CheckinRequest, inputs: DecisionInputs | null): Promise<CheckinResponse> {
    const fleet = this.requireFleetHost(req.hostname);
    const h = req.hostname;
    const nowMs = this.d.now();
    const inForce = this.d.artifacts.fleet()!;
    const witnessed = await this.witnesses.forCheckin(h, req.auditWitness, this.sigs.hostKey(h), nowMs);
    const { pending, rollback: rollbackRow } = await this.d.store.checkinReads(h);
    const slice = await this.hostSlice(h);
    // From here to applyGrouped: synchronous, so the slice cannot move under the decision.
    const before = slice.hosts[h] ?? null;
    const writes: Write[] = [...witnessed];
    const probes = { observed: true, passing: req.probes.every((p) => p.ok) };
    const ev = req.compliance === undefined || req.compliance.length === 0 ? null : checkEvidence(h, req.compliance, this.sigs.hostKey(h), req.currentClosure, nowMs, 'checkin');
    if (ev !== null) writes.push({ kind: 'evidence', rows: ev.rows }, { kind: 'audit', entry: ev.audit });
    const events: { host: string; event: HostEvent }[] = [
      {
        host: h,
        event: { kind: 'checkin', currentClosure: req.currentClosure, bootId: req.bootId, probes, failedUnits: req.failedUnits, ...(ev?.failures !== undefined ? { complianceFailures: ev.failures } : {}) },
      },
    ];
    // A lost report must not leave the host in flight forever: the agent's own signed last outcome
    // for a rollout it was dispatched in carries the same information (issue 14: only a signed
    // statement moves a host; a forged, unsigned or replayed one is refused and changes nothing).
    const lo = req.lastOutcome;
    const outcome = lo === null ? null : await this.sigs.outcomeEvent(h, lo, req.lastOutcomeSignature ?? null, slice);
    const refused = outcome !== null && !outcome.ok ? { code: outcome.code, message: outcome.message } : null;
    if (outcome !== null && outcome.ok) events.push({ host: h, event: outcome.event });
    if (refused !== null) writes.push(this.sigs.refusedOutcome(h, lo!, req.lastOutcomeSignature ?? null, refused, nowMs));
    // The agent's signed record of what it last confirmed (SPEC §5, §6): after a wipe it restores
    // the host's soak. Verified once per distinct record, and only when it can matter (first
    // check-in into this database, or the host waits Queued in the record's rollout).
    const lc = req.lastConfirmed ?? null;
    let restoring = false;
    if (lc !== null && lc.record.hostname === h && this.d.restorer.isNew(h, lc.signature)) {
      const rh = slice.rollouts[lc.record.rolloutId]?.hosts[h];
      const useful = before === null || before.lastCheckinMs === null || (rh?.state === 'Queued' && rh.closure === lc.record.closureHash);
      if (useful) {
        restoring = true;
        this.d.restorer.markSeen(h, lc.signature);
        const s = this.sigs.confirmedStatement(h, lc, nowMs, 'checkin');
        writes.push(...s.writes);
        const confirmedAtMs = Date.parse(lc.record.confirmedAt);
        if (s.verdict === 'verified' && Number.isFinite(confirmedAtMs)) this.d.restorer.note(h, { rolloutId: lc.record.rolloutId, closure: lc.record.closureHash, confirmedAtMs });
      }
    }
    const after = this.d.restorer.apply(applyHostEvents(slice, events, nowMs), nowMs, h);
    // The host row (observation + the fields only the views read) in one write; the diff then
    // covers the rollout rows only.
    const o = after.hosts[h]!;
    writes.push({
      kind: 'host.put',
      row: {
        hostname: h,
        lastCheckinMs: o.lastCheckinMs,
        currentClosure: o.currentClosure,
        bootId: o.bootId,
        probesObserved: o.probes.observed,
        probesPassing: o.probes.passing,
        failedUnits: o.failedUnits,
        complianceFailures: o.complianceFailures ?? null,
        probesJson: JSON.stringify(req.probes),
        lastOutcomeJson: lo === null ? null : JSON.stringify(refused === null ? lo : { ...lo, refused: refused.code }),
        pendingReboot: req.pendingReboot === true,
        agentVersion: req.agentVersion ?? null,
        certNotAfterMs: certNotAfter(peer), // issue 16: seen in the handshake
      },
    });
    const plan = planWrites(slice, { ...after, hosts: slice.hosts }, { nowMs, origin: this.origin(), actor: `host:${h}` });
    writes.push(...plan.writes);
    const target = this.planTarget(h, pending, after, nowMs, fleet, inForce.sha256, inForce.signedAt);
    writes.push(...target.writes);
    const offlineAfterMs = this.d.config.offlineAfterSecs * 1000;
    const relevant =
      before === null ||
      before.lastCheckinMs === null ||
      nowMs - before.lastCheckinMs > offlineAfterMs ||
      before.currentClosure !== o.currentClosure ||
      before.probes.observed !== o.probes.observed ||
      before.probes.passing !== o.probes.passing ||
      JSON.stringify(before.failedUnits) !== JSON.stringify(o.failedUnits) ||
      JSON.stringify(before.complianceFailures ?? null) !== JSON.stringify(o.complianceFailures ?? null) ||
      plan.transitions.length > 0;
    const committed = this.d.store.applyGrouped(writes);
    // The mirror follows the connection's view at once (later check-ins of this group read it); a
    // failed group commit drops the mirror (`onGroupRollback`).
    this.d.mirror.merge(h, after);
    await committed;
    let handed = target.target;
    const firstContact = before === null || before.lastCheckinMs === null;
    if (firstContact && handed === null && this.d.reconcileNow !== undefined) handed = await this.firstContactTarget(h);
    else if (relevant) this.d.requestReconcile();
    this.d.metrics.checkin(handed !== null ? 'target' : 'none').inc();
    const res: CheckinResponse = { target: handed, nextCheckinSecs: this.d.config.agentPollIntervalSecs, serverTime: iso(nowMs) };
    const rollback = toRollback(rollbackRow);
    if (rollback !== null) res.rollback = rollback;
    // Only the host row written, nothing handed over: the next such check-in may be quiet.
    const quietNext = inputs !== null && writes.length === 1 && handed === null && rollback === null && outcome === null && !restoring && !firstContact;
    if (quietNext && !this.d.restorer.pending(h) && this.d.mirror.peek()?.hosts[h] === o) this.quiet.remember(h, inputs, certNotAfter(peer), inForce, slice, o);
    else this.quiet.forget(h);
    if (refused !== null) res.outcomeRefused = refused;
    // Issue 15: the head the host signs into its next check-in (its witness of this chain).
    const head = await this.d.store.auditHead();
    if (head !== null && head.seq > 0) res.auditHead = head;
    return res;
  }

  /**
   * First contact: join (or start) a pass that begins after this host's check-in was committed,
   * then hand over what it dispatched to the host, if anything.
   */
  private async firstContactTarget(h: string): Promise<Target | null> {
    let pass = this.firstContactPass;
    if (pass === null) {
      // onStart may run synchronously (no pass running): only a pass not yet started is joinable.
      const entry: { started: boolean; pass: Promise<unknown> | null } = { started: false, pass: null };
      entry.pass = this.d.reconcileNow!('first-contact', () => {
        entry.started = true;
        if (entry.pass !== null && this.firstContactPass === entry.pass) this.firstContactPass = null;
      });
      pass = entry.pass;
      if (!entry.started) this.firstContactPass = entry.pass;
    }
    await pass;
    const inForce = this.d.artifacts.fleet();
    if (inForce === null || inForce.fleet === null) return null;
    const nowMs = this.d.now();
    const pending = await this.d.store.pendingDispatchFor(h);
    const slice = ObservedMirror.slice(this.d.mirror.peek() ?? (await this.d.mirror.get()), h);
    const t = this.planTarget(h, pending, slice, nowMs, inForce.fleet, inForce.sha256, inForce.signedAt);
    if (t.writes.length > 0) await this.d.store.apply(t.writes);
    return t.target;
  }

  /**
   * The target to hand over: the host's pending dispatch, for a live rollout where it is still on
   * its way, and only what the artefact served now says (the agent checks it against those bytes).
   * The first hand-over starts the confirm clock.
   */
  private planTarget(h: string, d: DispatchRow | null, observed: Observed, nowMs: number, fleet: FleetResolved, sha256: string, signedAt: string): { target: Target | null; writes: Write[] } {
    const none = { target: null, writes: [] };
    if (d === null) return none;
    const rh = observed.rollouts[d.rolloutId]?.hosts[h];
    if (rh === undefined || !CONFIRMABLE_STATES.includes(rh.state)) return none;
    if (fleet.hosts[h]?.closureHash !== d.closure) return none;
    const writes: Write[] = [];
    let deadlineMs = d.deadlineMs;
    if (rh.state === 'PendingReboot') {
      // Issue 14: the same target again, so that the agent confirms it once it booted into it; the
      // deadline it reads counts from now (the boot), and none is stored until then.
      deadlineMs = nowMs + this.d.config.confirmDeadlineSecs * 1000;
    } else if (d.deliveredMs === null || deadlineMs === null) {
      deadlineMs = nowMs + this.d.config.confirmDeadlineSecs * 1000;
      writes.push({ kind: 'dispatch.deliver', rolloutId: d.rolloutId, hostname: h, deliveredMs: nowMs, deadlineMs });
      writes.push({ kind: 'audit', entry: { atMs: nowMs, kind: 'dispatch.delivered', actor: `host:${h}`, subject: d.rolloutId, data: { host: h, closure: d.closure, confirmDeadline: iso(deadlineMs) } } });
    }
    const target: Target = {
      closureHash: d.closure,
      rolloutId: d.rolloutId,
      channel: d.channel,
      wave: d.wave,
      signedAt,
      freshnessWindowMinutes: fleet.channels[d.channel]?.freshnessWindow ?? 0,
      artifactSha256: sha256,
      confirmDeadline: iso(deadlineMs),
    };
    if (this.d.artifacts.slices.offers(sha256, h)) target.slice = true;
    return { target, writes };
  }

  // ------------------------------------------------------------------------------------------
  // Confirm

  confirm(peer: PeerIdentity, req: ConfirmRequest): Promise<void> {
    return this.retryOnConflict(() => this.confirmOnce(peer, req));
  }

  private async confirmOnce(_peer: PeerIdentity, req: ConfirmRequest): Promise<void> {
    this.requireFleetHost(req.hostname);
    const h = req.hostname;
    const nowMs = this.d.now();
    const d = await this.d.store.getDispatch(req.rolloutId, h);
    const rollout = d === null ? null : await this.d.store.getRollout(d.rolloutId);
    const slice = await this.hostSlice(h);
    const ev = req.compliance === undefined || req.compliance.length === 0 ? null : checkEvidence(h, req.compliance, this.sigs.hostKey(h), req.closureHash, nowMs, 'confirm');
    const { outcome, writes, after } = this.planConfirm(h, req, d, rollout, slice, nowMs, ev?.failures);
    if (ev !== null) writes.push({ kind: 'evidence', rows: ev.rows }, { kind: 'audit', entry: ev.audit });
    if (writes.length > 0) await this.d.store.apply(writes);
    if (after !== null) this.d.mirror.merge(h, after);
    if (!outcome.ok) {
      this.d.requestReconcile();
      throw outcome.error;
    }
    if (outcome.reconcile) this.d.requestReconcile();
  }

  /** The confirm decision: outcome, writes, and the slice after (null: nothing observed changed). */
  private planConfirm(
    h: string,
    req: ConfirmRequest,
    d: DispatchRow | null,
    rollout: RolloutRow | null,
    slice: Observed,
    nowMs: number,
    complianceFailures: string[] | undefined,
  ): { outcome: ConfirmOutcome; writes: Write[]; after: Observed | null } {
    const fail = (error: ApiError, writes: Write[] = [], after: Observed | null = null) => ({ outcome: { ok: false as const, error }, writes, after });
    if (d === null) return fail(new ApiError('NO_DISPATCH', `no target of rollout ${req.rolloutId} was handed to ${h}`));
    if (d.closure !== req.closureHash) return fail(new ApiError('NO_DISPATCH', `rollout ${req.rolloutId} dispatched ${d.closure} to ${h}, not ${req.closureHash}`));
    if (d.status === 'confirmed') return { outcome: { ok: true, reconcile: false }, writes: [], after: null }; // a retried confirm
    if (d.status === 'expired') return fail(new ApiError('DEADLINE_PASSED', `the confirm deadline ${iso(d.deadlineMs ?? 0)} has passed: roll back`));
    if (d.status !== 'pending') return fail(new ApiError('DISPATCH_CANCELLED', `the dispatch was ${d.status === 'failed' ? 'marked failed' : 'cancelled'}: roll back`));
    const finish = (status: DispatchRow['status']): Write => ({ kind: 'dispatch.finish', rolloutId: d.rolloutId, hostname: h, status, finishedMs: nowMs, rollbackReason: null, onlyIfPending: false });
    if (d.deadlineMs !== null && nowMs > d.deadlineMs) {
      // Expire it now rather than waiting for the next pass: the answer and the state agree.
      const after = applyHostEvents(slice, [{ host: h, event: { kind: 'deadline-expired', rolloutId: d.rolloutId } }], nowMs);
      const writes: Write[] = [
        finish('expired'),
        { kind: 'audit', entry: { atMs: nowMs, kind: 'dispatch.expired', actor: 'cp', subject: d.rolloutId, data: { host: h, closure: d.closure, deadline: iso(d.deadlineMs), lateConfirm: true } } },
        ...planWrites(slice, after, { nowMs, origin: this.origin(), actor: 'cp' }).writes,
      ];
      return fail(new ApiError('DEADLINE_PASSED', `the confirm deadline ${iso(d.deadlineMs)} has passed: roll back`), writes, after);
    }
    const rh = slice.rollouts[d.rolloutId]?.hosts[h];
    if (rh === undefined && rollout?.state === 'Superseded') {
      // It activated a closure CI signed for the previous target in time: nothing to undo; the
      // newer rollout moves it on. No state change in a superseded rollout; the host runs it now.
      const after = applyHostEvents(slice, [{ host: h, event: { kind: 'confirmed', rolloutId: d.rolloutId, currentClosure: d.closure } }], nowMs);
      const writes: Write[] = [
        finish('confirmed'),
        { kind: 'audit', entry: { atMs: nowMs, kind: 'host.confirmed-superseded', actor: `host:${h}`, subject: d.rolloutId, data: { host: h, closure: d.closure } } },
        ...planWrites(slice, after, { nowMs, origin: this.origin(), actor: `host:${h}` }).writes,
      ];
      return { outcome: { ok: true, reconcile: true }, writes, after };
    }
    if (rh === undefined || !CONFIRMABLE_STATES.includes(rh.state)) {
      return fail(new ApiError('DISPATCH_CANCELLED', `rollout ${d.rolloutId} no longer expects ${h} to confirm (${rh?.state ?? 'superseded'}): roll back`), [finish('cancelled')]);
    }
    // The confirmed closure is what the host runs: the CP shows it as current in this write, not
    // at the next check-in.
    const events: { host: string; event: HostEvent }[] = [{ host: h, event: { kind: 'confirmed', rolloutId: d.rolloutId, currentClosure: d.closure } }];
    if (req.probes !== undefined) {
      events.push({
        host: h,
        event: {
          kind: 'probes',
          probes: { observed: true, passing: req.probes.every((p) => p.ok) },
          ...(req.failedUnits !== undefined ? { failedUnits: req.failedUnits } : {}),
          ...(complianceFailures !== undefined ? { complianceFailures } : {}),
        },
      });
    }
    const after = applyHostEvents(slice, events, nowMs);
    const writes: Write[] = [finish('confirmed'), ...planWrites(slice, after, { nowMs, origin: this.origin(), actor: `host:${h}` }).writes];
    if (req.confirmed !== undefined) writes.push(...this.sigs.confirmedStatement(h, req.confirmed, nowMs, 'confirm').writes);
    // A confirm from PendingReboot comes from the booted system: no reboot is pending from now on.
    if (rh.state === 'PendingReboot') writes.push({ kind: 'host.pending-reboot', hostname: h, pending: false });
    return { outcome: { ok: true, reconcile: true }, writes, after };
  }

  // ------------------------------------------------------------------------------------------
  // Report

  async report(peer: PeerIdentity, req: ReportRequest, rawReport: unknown): Promise<ReportResponse> {
    this.requireFleetHost(req.report.hostname);
    const h = req.report.hostname;
    const q = this.quota.take(h, this.d.now());
    if (!q.ok) {
      this.d.metrics.reportRefusals.inc({ reason: 'quota' });
      if (q.firstOfBurst) {
        await this.d.store.apply([{ kind: 'audit', entry: { atMs: this.d.now(), kind: 'report.quota-exceeded', actor: `host:${h}`, subject: h, data: { perHour: this.d.config.reportQuotaPerHour } } }]);
      }
      const e = new ApiError('REPORT_QUOTA', `${h} sent more than ${this.d.config.reportQuotaPerHour} reports in an hour; not stored, retry later`);
      e.retryAfterSecs = q.retryAfterSecs;
      throw e;
    }
    return this.retryOnConflict(() => this.reportOnce(peer, req, rawReport));
  }

  private async reportOnce(_peer: PeerIdentity, req: ReportRequest, rawReport: unknown): Promise<ReportResponse> {
    this.requireFleetHost(req.report.hostname);
    const h = req.report.hostname;
    const nowMs = this.d.now();
    const verdict = this.sigs.verify(h, rawReport, req.signature);
    const bytes = canonicalBytes(rawReport);
    const reportJson = bytes.ok ? new TextDecoder().decode(bytes.value) : JSON.stringify(req.report);
    const slice = await this.hostSlice(h);
    const writes: Write[] = [
      {
        kind: 'report',
        row: { hostname: h, receivedMs: nowMs, event: req.report.event, rolloutId: req.report.rolloutId, reportJson, signature: req.signature, verdict },
        audit: { atMs: nowMs, kind: verdict === 'invalid' ? 'report.invalid' : 'report', actor: `host:${h}`, subject: req.report.rolloutId ?? h, data: { report: JSON.parse(reportJson) as unknown, signature: req.signature, verdict } },
      },
    ];
    let after: Observed | null = null;
    if (verdict !== 'invalid') {
      // An invalid one is stored for the auditor and changes nothing.
      const event = toHostEvent(req.report);
      if (event !== null) {
        after = applyHostEvents(slice, [{ host: h, event }], nowMs);
        writes.push(...planWrites(slice, after, { nowMs, origin: this.origin(), actor: `host:${h}` }).writes);
        const rid = req.report.rolloutId;
        if (event.kind === 'deferred' && rid !== null && after.rollouts[rid]?.hosts[h]?.state === 'PendingReboot' && slice.rollouts[rid]?.hosts[h]?.state !== 'PendingReboot') {
          // No confirm deadline until the boot: the agent confirms from the booted system (issue 14).
          writes.push({ kind: 'dispatch.await-boot', rolloutId: rid, hostname: h });
        }
      }
      if (req.report.event === 'rolled-back' && req.report.rolloutId !== null) writes.push({ kind: 'dispatch.clear-rollback', rolloutId: req.report.rolloutId, hostname: h });
      if (req.report.event === 'activation-deferred') writes.push({ kind: 'host.pending-reboot', hostname: h, pending: true });
    }
    const applied = await this.d.store.apply(writes);
    if (after !== null) this.d.mirror.merge(h, after);
    this.d.metrics.reports.inc({ event: req.report.event, verdict });
    if (verdict === 'invalid') {
      throw new ApiError('REPORT_SIGNATURE_INVALID', `the report's signature does not verify under the host key of ${h} in the signed fleet; stored for audit, ignored`);
    }
    this.d.requestReconcile();
    return { id: applied.reportIds[0]!, verdict };
  }
}

function toRollback(d: DispatchRow | null): RollbackInstruction | null {
  if (d === null || d.rollbackReason === null) return null;
  return { rolloutId: d.rolloutId, closureHash: d.closure, reason: d.rollbackReason };
}
