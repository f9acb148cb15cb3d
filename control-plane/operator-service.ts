/**
 * The operator side of the control plane (SPEC §5): hosts, rollouts, one rollout, its trace, the
 * audit log, pause / resume a channel, list and clear quarantines, skip a host and approve a
 * rollout (issue 14), compliance, evidence and audit anchoring (issue 15), certificates (issue 20):
 * every route of routes-operator.ts (`OperatorApi`). Only stopping actions are operator powers:
 * nothing here can start a deployment CI did not sign.
 */
import type { FleetResolved, Trust } from '../protocol/schema.ts';
import type {
  AuditResponse,
  HostsResponse,
  HostView,
  LastOutcome,
  PauseRequest,
  PauseResponse,
  ProbeResult,
  QuarantineClearRequest,
  QuarantineClearResponse,
  QuarantinesResponse,
  RolloutDetail,
  RolloutSkipRequest,
  RolloutSkipResponse,
  RolloutApproveRequest,
  RolloutApproveResponse,
  RolloutSummary,
  RolloutsResponse,
  RolloutState,
  TraceResponse,
} from '../protocol/api.ts';
import type { Checkpoint, CheckpointRequest, WitnessesResponse } from '../protocol/audit-witness.ts';
import type { CertificatesResponse } from '../protocol/certificates-api.ts';
import type { ComplianceResponse } from '../protocol/compliance-api.ts';
import type { EvidenceResponse } from '../protocol/evidence-packet.ts';
import { approveRollout, releaseHost } from '../reconciler/apply.ts';
import { complianceView } from './compliance-view.ts';
import type { Config } from './config.ts';
import { ApiError } from './errors.ts';
import { evidenceExport } from './evidence-export.ts';
import type { PeerIdentity } from './identity.ts';
import type { ObservedMirror } from './mirror.ts';
import { planControlWrites, planObservedWrites } from './plan.ts';
import type { OperatorApi } from './routes-operator.ts';
import type { Observed } from '../reconciler/types.ts';
import { parseTimestamp } from '../protocol/vocab.ts';
import type { HostRow, RolloutRow, Store } from './store/types.ts';
import { operatorCheckpoint, witnessesResponse } from './witnesses.ts';

const iso = (ms: number): string => new Date(ms).toISOString();

export type OperatorServiceDeps = {
  config: Pick<Config, 'offlineAfterSecs' | 'complianceStaleAfterSecs'>;
  store: Store;
  /** The signed fleet in force, or null before the first one. */
  fleet: () => FleetResolved | null;
  now: () => number;
  /** Run a reconcile pass now (after an operator action). */
  reconcileNow: (trigger: string) => Promise<unknown>;
  /** Issue 14: release a host from ordering in the reconcile loop's state (false: unknown rollout or host). */
  release?: (rolloutId: string, host: string, reason: string, by: string) => Promise<boolean>;
  /** Issue 14: record an operator's approval (requireApprovals); the operators so far, null: unknown rollout. */
  approve?: (rolloutId: string, by: string) => Promise<string[] | null>;
  /** Issue 14: drift and rollout controls as the reconcile loop holds them (null before the first pass). */
  controls?: () => Promise<Pick<Observed, 'drifted' | 'controls'> | null>;
  /** Issue 15: the trust root in force (the evidence packet carries it). */
  trust: () => Trust;
  /** Issue 20: certificate expiries this replica knows (metrics.ts). */
  certificates: () => CertificatesResponse;
};

/**
 * Issue 14's operator actions on the reconcile loop's state: a host released from ordering, an
 * approval, and the drift and controls the operator views read. They change the observed-state
 * mirror and store the change (it holds across a restart and a change of leader); a store failure
 * drops the mirror (the next read reloads it).
 */
export function mirroredOperatorState(d: { store: Store; mirror: ObservedMirror; now: () => number }): Required<Pick<OperatorServiceDeps, 'release' | 'approve' | 'controls'>> {
  const { store, mirror } = d;
  async function stored(next: Observed, writes: Parameters<Store['apply']>[0]): Promise<void> {
    mirror.replace(next);
    try {
      await store.apply(writes);
    } catch (e) {
      mirror.invalidate();
      throw e;
    }
  }
  return {
    // Stored since issue 14's state persists: a follower replica (whose mirror no pass refreshes) reads the store.
    controls: async () => (store.shared ? await store.loadChannelState() : await mirror.get()),
    release: async (rolloutId, host, reason, by) => {
      const before = await mirror.get();
      const nowMs = d.now();
      const next = releaseHost(before, rolloutId, host, reason, by, nowMs);
      if (next === null) return false;
      // The release and its trace line.
      await stored(next, planObservedWrites(before, next, nowMs, { signedAt: '', artifactSha256: '' }).writes);
      return true;
    },
    approve: async (rolloutId, by) => {
      const before = await mirror.get();
      const next = approveRollout(before, rolloutId, by, d.now());
      if (next === null) return null;
      // Stored with the rollout's controls.
      await stored(next, planControlWrites(before, next));
      return Object.keys(next.controls?.[rolloutId]?.approvals ?? {}).sort();
    },
  };
}

export class OperatorService implements OperatorApi {
  constructor(private readonly d: OperatorServiceDeps) {}

  private fleet(): FleetResolved {
    const f = this.d.fleet();
    if (f === null) throw new ApiError('NOT_READY', 'no verified fleet artefact yet');
    return f;
  }

  async hosts(): Promise<HostsResponse> {
    const fleet = this.fleet();
    const nowMs = this.d.now();
    const offlineAfterMs = this.d.config.offlineAfterSecs * 1000;
    const rows = new Map((await this.d.store.allHosts()).map((r) => [r.hostname, r]));
    const newest = await this.d.store.newestRolloutRowPerHost();
    const pending = new Map((await this.d.store.pendingDispatches()).map((d) => [d.hostname, d]));
    const drifted = (await this.d.controls?.())?.drifted ?? {};
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
          online: row?.lastCheckinMs != null && nowMs - row.lastCheckinMs <= offlineAfterMs,
          pendingReboot: row?.pendingReboot ?? false,
          failedUnits: row?.failedUnits ?? [],
          probes: row === undefined ? [] : (JSON.parse(row.probesJson) as ProbeResult[]),
          lastOutcome: row?.lastOutcomeJson == null ? null : (JSON.parse(row.lastOutcomeJson) as LastOutcome),
          rollout: rr === undefined ? null : { rolloutId: rr.rolloutId, state: rr.state, since: iso(rr.enteredAtMs), wave: rr.wave },
          dispatch: d === undefined || d.deadlineMs === null ? null : { rolloutId: d.rolloutId, closureHash: d.closure, confirmDeadline: iso(d.deadlineMs) },
          ...controlViews(fh, Object.prototype.hasOwnProperty.call(drifted, name) ? drifted[name]! : undefined, nowMs),
          ...(row?.certNotAfterMs == null ? {} : { certNotAfter: iso(row.certNotAfterMs) }),
        };
      });
    return { hosts };
  }

  private async summary(r: RolloutRow): Promise<RolloutSummary> {
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
      hostCounts: await this.d.store.rolloutHostCounts(r.id),
      ...(await this.rolloutControls(r.id)),
    };
  }

  /** Issue 14: the stall and window hold of a rollout, as the reconcile loop decided them (stored). */
  private async rolloutControls(id: string): Promise<Pick<RolloutSummary, 'stall' | 'windowHold'>> {
    const c = (await this.d.controls?.())?.controls?.[id];
    const out: Pick<RolloutSummary, 'stall' | 'windowHold'> = {};
    if (c?.stall != null) out.stall = { since: iso(c.stall.sinceMs), gate: c.stall.gate, hosts: c.stall.hosts, reason: c.stall.reason };
    if (c?.windowHold != null) out.windowHold = c.windowHold;
    return out;
  }

  async rollouts(filter: { channel?: string; state?: RolloutState }): Promise<RolloutsResponse> {
    this.fleet();
    const rows = (await this.d.store.allRollouts()).filter((r) => (filter.channel === undefined || r.channel === filter.channel) && (filter.state === undefined || r.state === filter.state));
    const rollouts: RolloutSummary[] = [];
    for (const r of rows) rollouts.push(await this.summary(r));
    return { rollouts };
  }

  private async rolloutOr404(id: string): Promise<RolloutRow> {
    const r = await this.d.store.getRollout(id);
    if (r === null) throw new ApiError('UNKNOWN_ROLLOUT', `no rollout ${JSON.stringify(id)}`);
    return r;
  }

  async rollout(id: string): Promise<RolloutDetail> {
    const r = await this.rolloutOr404(id);
    const hosts = (await this.d.store.rolloutHosts(id))
      .sort((a, b) => (a.hostname < b.hostname ? -1 : a.hostname > b.hostname ? 1 : 0))
      .map((h) => ({
        hostname: h.hostname,
        wave: h.wave,
        state: h.state,
        since: iso(h.enteredAtMs),
        closureHash: h.closure,
        ...skipOf(h.skipJson),
      }));
    return { ...(await this.summary(r)), hosts };
  }

  async trace(id: string): Promise<TraceResponse> {
    await this.rolloutOr404(id);
    return {
      rolloutId: id,
      events: (await this.d.store.transitions(id)).map((t) => ({ at: iso(t.atMs), subject: t.hostname === null ? 'rollout' : 'host', hostname: t.hostname, from: t.from, to: t.to, reason: t.reason })),
    };
  }

  async audit(after: number, limit: number): Promise<AuditResponse> {
    const entries = await this.d.store.auditPage(after, limit);
    return { entries, nextAfter: entries.length === limit ? entries[entries.length - 1]!.seq : null };
  }

  private requireChannel(channel: string): void {
    const fleet = this.fleet();
    if (!Object.prototype.hasOwnProperty.call(fleet.channels, channel)) throw new ApiError('UNKNOWN_CHANNEL', `channel ${JSON.stringify(channel)} is not in the signed fleet`);
  }

  async pause(peer: PeerIdentity, channel: string, req: PauseRequest): Promise<PauseResponse> {
    this.requireChannel(channel);
    const nowMs = this.d.now();
    const by = `operator:${peer.cn}`;
    const reason = req.reason ?? `paused by ${peer.cn}`;
    // Already paused: keep the first reason.
    if ((await this.d.store.getPause(channel)) === null) {
      await this.d.store.apply([
        { kind: 'pause.put', row: { channel, sinceMs: nowMs, reason, by } },
        { kind: 'audit', entry: { atMs: nowMs, kind: 'channel.paused', actor: by, subject: channel, data: { reason } } },
      ]);
    }
    await this.d.reconcileNow('operator');
    const p = (await this.d.store.getPause(channel))!;
    return { channel, paused: true, by: p.by, since: iso(p.sinceMs), reason: p.reason };
  }

  /** `nixfleet rollout skip` (issue 14): audited, then the next pass no longer holds the host on ordering. */
  async skip(peer: PeerIdentity, rolloutId: string, req: RolloutSkipRequest): Promise<RolloutSkipResponse> {
    await this.rolloutOr404(rolloutId);
    const by = `operator:${peer.cn}`;
    const released = this.d.release !== undefined && (await this.d.release(rolloutId, req.host, req.reason, by));
    if (!released) throw new ApiError('UNKNOWN_HOST', `host ${JSON.stringify(req.host)} is not in rollout ${rolloutId}`);
    await this.d.store.apply([{ kind: 'audit', entry: { atMs: this.d.now(), kind: 'rollout.host-released', actor: by, subject: rolloutId, data: { host: req.host, reason: req.reason } } }]);
    await this.d.reconcileNow('operator');
    return { rolloutId, host: req.host, released: true, by, reason: req.reason };
  }

  /** `nixfleet rollout approve` (issue 14): one approval per operator certificate (CN), audited; the pass after it may start the rollout. */
  async approve(peer: PeerIdentity, rolloutId: string, req: RolloutApproveRequest): Promise<RolloutApproveResponse> {
    const fleet = this.fleet();
    const row = await this.rolloutOr404(rolloutId);
    const by = `operator:${peer.cn}`;
    const approvals = this.d.approve === undefined ? null : await this.d.approve(rolloutId, by);
    if (approvals === null) throw new ApiError('UNKNOWN_ROLLOUT', `rollout ${rolloutId} is not live (superseded or pruned): nothing to approve`);
    const required = fleet.channels[row.channel]?.requireApprovals ?? 0;
    await this.d.store.apply([{ kind: 'audit', entry: { atMs: this.d.now(), kind: 'rollout.approved', actor: by, subject: rolloutId, data: { approvals, required, reason: req.reason ?? null } } }]);
    await this.d.reconcileNow('operator');
    return { rolloutId, by, approvals, required };
  }

  async resume(peer: PeerIdentity, channel: string, req: PauseRequest): Promise<PauseResponse> {
    this.requireChannel(channel);
    const nowMs = this.d.now();
    const by = `operator:${peer.cn}`;
    if ((await this.d.store.getPause(channel)) !== null) {
      await this.d.store.apply([
        { kind: 'pause.delete', channel },
        { kind: 'audit', entry: { atMs: nowMs, kind: 'channel.resumed', actor: by, subject: channel, data: { reason: req.reason ?? null } } },
      ]);
    }
    await this.d.reconcileNow('operator');
    return { channel, paused: false, by: null, since: null, reason: null };
  }

  /** Issue 15: per host, the status of every runtime control of its channel's frameworks. */
  /** `rows`: the host rows when the caller read them already (a metrics scrape reads them once). */
  async compliance(rows?: readonly HostRow[]): Promise<ComplianceResponse> {
    const fleet = this.fleet();
    return complianceView(fleet, rows ?? (await this.d.store.allHosts()), await this.d.store.latestEvidence(), this.d.now(), this.d.config.complianceStaleAfterSecs);
  }

  certificates(): CertificatesResponse {
    return this.d.certificates();
  }

  /** Issue 15: `nixfleet evidence export` (read-only). */
  evidence(fromMs: number, toMs: number): Promise<EvidenceResponse> {
    return evidenceExport(this.d.store, this.d.trust(), fromMs, toMs);
  }

  /** Issue 15: the audit chain head and every witness kept. */
  witnesses(): Promise<WitnessesResponse> {
    return witnessesResponse(this.d.store);
  }

  /** Issue 15: `nixfleet audit checkpoint`. */
  checkpoint(peer: PeerIdentity, req: CheckpointRequest): Promise<Checkpoint> {
    return operatorCheckpoint(this.d.store, peer.cn, req, this.d.now());
  }

  async quarantines(): Promise<QuarantinesResponse> {
    return {
      quarantines: (await this.d.store.quarantines()).map((q) => ({ channel: q.channel, closureHash: q.closure, rolloutId: q.rolloutId, reason: q.reason, since: iso(q.sinceMs) })),
    };
  }

  async clearQuarantines(peer: PeerIdentity, req: QuarantineClearRequest): Promise<QuarantineClearResponse> {
    this.requireChannel(req.channel);
    const nowMs = this.d.now();
    const closure = req.closureHash ?? null;
    const cleared = (await this.d.store.quarantines()).filter((q) => q.channel === req.channel && (closure === null || q.closure === closure)).length;
    if (cleared > 0) {
      await this.d.store.apply([
        { kind: 'quarantine.delete', channel: req.channel, closure },
        { kind: 'audit', entry: { atMs: nowMs, kind: 'quarantine.cleared', actor: `operator:${peer.cn}`, subject: req.channel, data: { closure, cleared } } },
      ]);
      await this.d.reconcileNow('operator');
    }
    return { cleared };
  }
}

/** Issue 14: a host's drift and its pin in force, for `GET /v1/hosts` (absent fields = none). */
function controlViews(fh: FleetResolved['hosts'][string], drift: NonNullable<Observed['drifted']>[string] | undefined, nowMs: number): Pick<HostView, 'drift' | 'pin'> {
  const out: Pick<HostView, 'drift' | 'pin'> = {};
  if (drift !== undefined) out.drift = { expected: drift.expected, actual: drift.actual, since: iso(drift.sinceMs), rolloutId: drift.rolloutId };
  const p = fh.pin;
  if (p !== undefined) {
    const until = p.expiresAt == null ? null : parseTimestamp(p.expiresAt);
    if (until === null || nowMs < until) out.pin = { commit: p.commit, reason: p.reason, until: until === null ? null : iso(until) };
  }
  return out;
}

/** A host's skip (gate block or operator release) as the rollout detail shows it: reason and, issue 20, its gate code. */
function skipOf(skipJson: string | null): { reason: string | null; gate?: string } {
  if (skipJson === null) return { reason: null };
  const s = JSON.parse(skipJson) as { reason?: string; code?: string };
  return { reason: s.reason ?? null, ...(typeof s.code === 'string' ? { gate: s.code } : {}) };
}
