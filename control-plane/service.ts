/**
 * The control plane assembled (SPEC §5): a keyless caching router for already-signed intent. This
 * module only wires the parts and answers the HTTP layer's `CpService` by delegation:
 *
 * - `artifacts.ts`: the signed artefacts in force (verify, keep last good, trust reload);
 * - `mirror.ts`: the in-memory observed state the reconciler reads;
 * - `agent-service.ts`: check-in, confirm, report, artefacts as served;
 * - `operator-service.ts`: hosts, rollouts, trace, audit, pause / resume, quarantines;
 * - `reconcile-loop.ts`: the timer- and check-in-driven reconcile passes;
 * - `plan.ts`: the pure decision step (observed before/after → writes);
 * - `store/`: the `Store` interface and its SQLite implementation.
 *
 * Time is a parameter (`now`), so deadlines and soak are testable without waiting.
 */
import { failureCounts } from './compliance-view.ts';
import { evidenceExport } from './evidence-export.ts';
import { operatorCheckpoint, WitnessKeeper, witnessesResponse } from './witnesses.ts';
import type { Checkpoint, CheckpointRequest, WitnessesResponse } from '../protocol/audit-witness.ts';
import type { EvidenceResponse } from '../protocol/evidence-packet.ts';
import type { ComplianceResponse } from '../protocol/compliance-api.ts';
import type { CertificatesResponse } from '../protocol/certificates-api.ts';
import type { Trust } from '../protocol/schema.ts';
import type { Action, Observed } from '../reconciler/types.ts';
import type {
  AuditResponse, CheckinRequest, CheckinResponse, ConfirmRequest, HostsResponse, PauseRequest, PauseResponse, RolloutSkipRequest,
  RolloutSkipResponse, RolloutApproveRequest, RolloutApproveResponse, QuarantineClearRequest, QuarantineClearResponse, QuarantinesResponse,
  ReadyzResponse, ReportRequest, ReportResponse, RolloutDetail, RolloutsResponse, RolloutState, TraceResponse
} from '../protocol/api.ts';
import { AgentService, type ServedArtifact } from './agent-service.ts';
import type { CpService } from './app.ts';
import { ArtifactManager } from './artifacts.ts';
import type { Config } from './config.ts';
import { revocationTimeMs, type PeerIdentity } from './identity.ts';
import { logBug, silentLogger, type Logger } from './log.ts';
import { withWriteLog } from './write-log.ts';
import { CpMetrics } from './metrics.ts';
import { ObservedMirror } from './mirror.ts';
import { planControlWrites, planObservedWrites } from './plan.ts';
import { approveRollout, releaseHost } from '../reconciler/apply.ts';
import { OperatorService } from './operator-service.ts';
import { ReconcileLoop } from './reconcile-loop.ts';
import { Leadership } from './leadership.ts';
import { SoakRestorer } from './soak-restore.ts';
import { EnrolService } from './enrol-service.ts';
import { TokenLedger } from './enrol-ledger.ts';
import type { CertKeyPem } from '../pki/x509.ts';
import { certState, type WhoamiResponse } from '../protocol/enrol.ts';
import type { ArtifactSource } from './sources.ts';
import type { ServedSlice } from './slices.ts';
import { prunedAnything } from './store/retention.ts';
import type { PruneResult, Store } from './store/types.ts';

export type ControlPlaneDeps = {
  config: Config;
  store: Store;
  source: ArtifactSource;
  trust: Trust;
  /** Issue 16: the host-issuance intermediate (config.ts `loadStartupMaterial`), when enrolment is configured. */
  issuer?: CertKeyPem | null;
  now?: () => number;
  log?: Logger;
  /** Export the default process metrics (the real process only: they are process-global). */
  processMetrics?: boolean;
};

export class ControlPlane implements CpService {
  readonly metrics: CpMetrics;
  readonly artifacts: ArtifactManager;
  readonly store: Store;
  private readonly mirror: ObservedMirror;
  private readonly agent: AgentService;
  private readonly operator: OperatorService;
  private readonly loop: ReconcileLoop;
  private readonly enrol: EnrolService | null;
  readonly leadership: Leadership;
  private readonly config: Config;
  private readonly now: () => number;
  private readonly log: Logger;
  private readonly source: ArtifactSource;
  private stopped = false;
  private timersOn = false;
  private pollTimer: NodeJS.Timeout | null = null;
  private pruneTimer: NodeJS.Timeout | null = null;

  constructor(deps: ControlPlaneDeps) {
    this.config = deps.config;
    this.source = deps.source;
    this.now = deps.now ?? Date.now;
    this.log = deps.log ?? silentLogger;
    this.store = deps.log === undefined || deps.log === silentLogger ? deps.store : withWriteLog(deps.store, this.log);
    this.mirror = new ObservedMirror(() => this.store.loadObserved());
    this.store.onGroupRollback = (e) => {
      this.mirror.invalidate(); // reload from the store: the rolled-back check-ins were merged already
      logBug(this.log, 'checkin.commit-failed', e);
    };
    this.metrics = new CpMetrics(async () => {
      // Issue 14 overlays (a drifted host is also counted in its rollout state; a stalled rollout in Executing).
      const o = this.store.shared ? await this.store.loadChannelState() : await this.mirror.get();
      const stalled = Object.values(o?.controls ?? {}).filter((c) => c.stall != null).length;
      return {
        hosts: { ...(await this.hostStateCounts()), drifted: Object.keys(o?.drifted ?? {}).length },
        rollouts: { ...(await this.store.rolloutStateCounts()), stalled },
        ready: this.artifacts.fleet() !== null,
        complianceFailures: this.artifacts.fleet()?.fleet == null ? [] : failureCounts(await this.operator.compliance()),
        artifacts: this.artifactSignedAt(),
        offline: this.offlineCount(await this.mirror.get()),
        certs: await this.certCounts(),
      };
    }, {
      processMetrics: deps.processMetrics === true,
      now: this.now,
      replica: () => {
        if (!this.store.shared) return null;
        const l = this.leadership.status();
        const w = this.store.wakeupListener();
        return { holder: l.holder, leader: l.role === 'leader', epoch: l.epoch, storeOk: l.storeOk, listening: w.listening, listenerReconnects: w.reconnects };
      },
    });
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
    this.leadership = new Leadership({
      store: this.store,
      leaseMs: this.config.leaseSecs * 1000,
      log: this.log,
      onGained: () => {
        this.mirror.invalidate(); // the previous leader and the other replicas wrote meanwhile
        if (this.timersOn) this.requestReconcile(0);
      },
    });
    const enrolConf = this.config.enrolment;
    const issuer = deps.issuer ?? null;
    this.enrol =
      enrolConf === null || issuer === null
        ? null
        : new EnrolService({
            config: enrolConf,
            issuer,
            store: this.store,
            artifacts: this.artifacts,
            ledger: new TokenLedger(enrolConf.usedTokensFile, issuer.keyPem, this.now),
            now: this.now,
            observe: (what, outcome) => this.metrics.certificates.inc({ what, outcome }),
            observeUnaudited: (code) => this.metrics.enrolRefusalsUnaudited.inc({ code }),
          });
    const restorer = new SoakRestorer();
    this.loop = new ReconcileLoop({
      config: this.config,
      store: this.store,
      mirror: this.mirror,
      restorer,
      inForce: () => {
        const a = this.artifacts.fleet();
        return a === null || a.fleet === null ? null : { fleet: a.fleet, origin: { signedAt: a.signedAt, artifactSha256: a.sha256 } };
      },
      metrics: this.metrics,
      now: this.now,
      log: this.log,
      fence: () => this.leadership.fence(),
      onFollowerPass: (trigger) => this.wakeLeader(trigger),
    });
    this.agent = new AgentService({
      config: this.config,
      store: this.store,
      mirror: this.mirror,
      restorer,
      artifacts: this.artifacts,
      metrics: this.metrics,
      now: this.now,
      log: this.log,
      requestReconcile: () => this.requestReconcile(),
      reconcileNow: (trigger, onStart) => this.loop.runNow(trigger, onStart),
    });
    this.operator = new OperatorService({
      config: this.config,
      store: this.store,
      fleet: () => this.artifacts.fleet()?.fleet ?? null,
      now: this.now,
      reconcileNow: (trigger) => this.reconcileNow(trigger),
      // Stored since issue 14's state persists: a follower replica (whose mirror no pass refreshes) reads the store.
      controls: async () => (this.store.shared ? await this.store.loadChannelState() : await this.mirror.get()),
      release: async (rolloutId, host, reason, by) => {
        const before = await this.mirror.get();
        const nowMs = this.now();
        const next = releaseHost(before, rolloutId, host, reason, by, nowMs);
        if (next === null) return false;
        this.mirror.replace(next);
        // Stored (issue 14): the release (and its trace line) holds across a restart and a change of leader.
        try {
          await this.store.apply(planObservedWrites(before, next, nowMs, { signedAt: '', artifactSha256: '' }).writes);
        } catch (e) {
          this.mirror.invalidate();
          throw e;
        }
        return true;
      },
      approve: async (rolloutId, by) => {
        const before = await this.mirror.get();
        const next = approveRollout(before, rolloutId, by, this.now());
        if (next === null) return null;
        this.mirror.replace(next);
        // Stored with the rollout's controls: approvals hold across a restart and a change of leader.
        try {
          await this.store.apply(planControlWrites(before, next));
        } catch (e) {
          this.mirror.invalidate();
          throw e;
        }
        return Object.keys(next.controls?.[rolloutId]?.approvals ?? {}).sort();
      },
    });
  }

  /**
   * Issue 17: a follower that was asked for a pass by a check-in, a report, a confirm or an
   * operator wakes the leader (its own periodic passes and the leader's wake-ups do not: the leader
   * ticks by itself, and a wake-up must not bounce between followers).
   */
  private wakeLeader(trigger: string): void {
    if (!this.store.shared || trigger === 'tick' || trigger === 'wakeup' || trigger === 'start') return;
    this.metrics.leaderWakeups.inc({ direction: 'sent' });
    void Promise.resolve(this.store.notifyLeader(this.leadership.holder)).catch((e: unknown) => this.log.warn('replica.wakeup-failed', { error: String(e) }));
  }

  /** A wake-up from another replica: the leader runs a (debounced) pass; a follower ignores it. */
  private onWakeup(from: string): void {
    if (from === this.leadership.holder || this.leadership.status().role !== 'leader') return;
    this.metrics.leaderWakeups.inc({ direction: 'received' });
    this.loop.request(undefined, 'wakeup');
  }

  /** Hosts of the fleet in force without a check-in for offlineAfterSecs (never seen included). */
  private offlineCount(o: Observed | null): number {
    const fleet = this.artifacts.fleet()?.fleet;
    if (fleet === undefined || fleet === null) return 0;
    const since = this.now() - this.config.offlineAfterSecs * 1000;
    return Object.keys(fleet.hosts).filter((h) => (o?.hosts[h]?.lastCheckinMs ?? -Infinity) < since).length;
  }

  /** signedAt (ms) of each signed artefact in force, by kind (for the metrics). */
  private artifactSignedAt(): Record<string, number> {
    const out: Record<string, number> = {};
    for (const kind of this.artifacts.kinds) {
      const a = this.artifacts.inForceOf(kind);
      const ms = a === null ? NaN : Date.parse(a.signedAt);
      if (Number.isFinite(ms)) out[kind] = ms;
    }
    return out;
  }

  /** Put persisted artefacts back in force, poll the source once, start the timers. */
  async start(opts: { timers?: boolean } = {}): Promise<void> {
    if (this.store.shared) await this.store.listenForWakeups((from) => this.onWakeup(from));
    await this.artifacts.loadFromStore();
    await this.pollNow();
    await this.leadership.tick();
    await this.reconcileNow('start');
    if (opts.timers === false || this.stopped) return;
    this.timersOn = true;
    this.leadership.start();
    this.pollTimer = setInterval(() => void this.pollNow(), this.config.pollIntervalSecs * 1000);
    this.loop.start();
    this.pruneTimer = setInterval(() => void this.pruneNow().catch((e: unknown) => this.log.error('retention.failed', { error: String(e) })), this.config.retentionIntervalSecs * 1000);
    this.pruneTimer.unref();
  }

  /**
   * Retention (store/retention.ts): the leader prunes what is older than `retentionDays`, fenced
   * like its passes. Null: retention off, or not the leader.
   */
  async pruneNow(): Promise<PruneResult | null> {
    if (this.config.retentionDays === 0) return null;
    const fence = await this.leadership.fence();
    if (fence === null) return null;
    const nowMs = this.now();
    const r = await this.store.prune(nowMs - this.config.retentionDays * 86_400_000, nowMs, fence);
    if (prunedAnything(r)) this.log.info('retention.pruned', { ...r });
    return r;
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.pollTimer !== null) clearInterval(this.pollTimer);
    this.pollTimer = null;
    if (this.pruneTimer !== null) clearInterval(this.pruneTimer);
    this.pruneTimer = null;
    this.loop.stop();
    await this.leadership.stop();
    await this.source.close();
  }

  async pollNow(): Promise<void> {
    try {
      await this.artifacts.poll();
    } catch (e) {
      logBug(this.log, 'artifact.poll-crashed', e);
    }
  }

  /** Coalesce reconcile requests: at most one pass per `reconcileDebounceMs`. */
  requestReconcile(delayMs?: number): void {
    this.loop.request(delayMs);
  }

  /** One full reconcile pass now. Returns the actions (for tests and logs). */
  reconcileNow(trigger: string = 'manual'): Promise<Action[]> {
    return this.loop.runNow(trigger);
  }

  /** The mirror as the reconciler would load it from the store now (for consistency checks). */
  async cachedObserved(): Promise<Pick<Observed, 'hosts' | 'rollouts'>> {
    const c = await this.mirror.get();
    return { hosts: c.hosts, rollouts: c.rollouts };
  }

  /** Issue 16: hosts by the state of the certificate they presented last (the metric). */
  private async certCounts(): Promise<Record<string, number>> {
    const out: Record<string, number> = { valid: 0, expiring: 0, expired: 0 };
    const nowMs = this.now();
    for (const h of await this.store.allHosts()) if (h.certNotAfterMs !== null) out[certState(h.certNotAfterMs, nowMs)]! += 1;
    return out;
  }

  /** Issue 16: enrolment and renewal, when configured. */
  enrolment(): EnrolService | null {
    return this.enrol;
  }

  // ------------------------------------------------------------------------------------------
  // CpService: open routes

  readiness(): ReadyzResponse {
    const f = this.artifacts.fleet();
    const r = this.artifacts.revocations();
    const reasons = this.artifacts.notReadyReasons();
    const l = this.leadership.status();
    if (!l.storeOk) reasons.push(`store unreachable: ${l.storeError}`);
    return {
      ready: reasons.length === 0,
      reasons,
      ...(this.store.shared ? { replica: { role: l.role, holder: l.holder, epoch: l.epoch, storeOk: l.storeOk } } : {}),
      fleet: f === null ? null : { signedAt: f.signedAt, sha256: f.sha256, ciCommit: f.fleet?.meta.ciCommit ?? null },
      revocations: r === null ? null : { signedAt: r.signedAt, sha256: r.sha256 },
    };
  }

  isRevoked(peer: PeerIdentity): boolean {
    const nb = this.artifacts.revokedBeforeMs(peer.cn);
    // Issue 16: a certificate renewed from an identity proven before notBefore is covered too.
    return nb !== null && revocationTimeMs(peer) < nb;
  }

  /** Issue 16: `GET /v1/whoami` — the caller's certificate as this CP reads it. */
  whoami(peer: PeerIdentity): WhoamiResponse {
    const nb = this.artifacts.revokedBeforeMs(peer.cn);
    return {
      name: peer.cn,
      role: peer.role,
      serial: peer.serial,
      notBefore: new Date(peer.notBeforeMs).toISOString(),
      notAfter: new Date(peer.notAfterMs).toISOString(),
      certState: certState(peer.notAfterMs, this.now()),
      issuer: { commonName: peer.issuerCommonName, fingerprint256: peer.issuerFingerprint256 },
      revokedBefore: nb === null ? null : new Date(nb).toISOString(),
    };
  }

  metricsText(): Promise<{ contentType: string; body: string }> {
    return this.metrics.text();
  }

  observeRequest(route: string, status: number): void {
    this.metrics.requests.inc({ route, status: String(status) });
  }

  private async hostStateCounts(): Promise<Record<string, number>> {
    const counts = await this.store.hostStateCounts();
    const fleet = this.artifacts.fleet()?.fleet;
    if (fleet !== undefined && fleet !== null) {
      const inRollout = Object.values(counts).reduce((a, b) => a + b, 0);
      counts['Idle'] = Math.max(0, Object.keys(fleet.hosts).length - inRollout);
    }
    return counts;
  }

  // ------------------------------------------------------------------------------------------
  // CpService: agent routes

  artifact(kind: 'fleet' | 'revocations'): ServedArtifact | null {
    return this.agent.artifact(kind);
  }

  slice(hostname: string): ServedSlice | null {
    return this.agent.slice(hostname);
  }

  checkin(peer: PeerIdentity, req: CheckinRequest): Promise<CheckinResponse> {
    return this.agent.checkin(peer, req);
  }

  confirm(peer: PeerIdentity, req: ConfirmRequest): Promise<void> {
    return this.agent.confirm(peer, req);
  }

  report(peer: PeerIdentity, req: ReportRequest, rawReport: unknown): Promise<ReportResponse> {
    return this.agent.report(peer, req, rawReport);
  }

  // ------------------------------------------------------------------------------------------
  // CpService: operator routes

  hosts(): Promise<HostsResponse> {
    return this.operator.hosts();
  }

  rollouts(filter: { channel?: string; state?: RolloutState }): Promise<RolloutsResponse> {
    return this.operator.rollouts(filter);
  }

  rollout(id: string): Promise<RolloutDetail> {
    return this.operator.rollout(id);
  }

  trace(id: string): Promise<TraceResponse> {
    return this.operator.trace(id);
  }

  audit(after: number, limit: number): Promise<AuditResponse> {
    return this.operator.audit(after, limit);
  }

  pause(peer: PeerIdentity, channel: string, req: PauseRequest): Promise<PauseResponse> {
    return this.operator.pause(peer, channel, req);
  }

  resume(peer: PeerIdentity, channel: string, req: PauseRequest): Promise<PauseResponse> {
    return this.operator.resume(peer, channel, req);
  }

  skip(peer: PeerIdentity, rolloutId: string, req: RolloutSkipRequest): Promise<RolloutSkipResponse> {
    return this.operator.skip(peer, rolloutId, req);
  }

  approve(peer: PeerIdentity, rolloutId: string, req: RolloutApproveRequest): Promise<RolloutApproveResponse> {
    return this.operator.approve(peer, rolloutId, req);
  }

  compliance(): Promise<ComplianceResponse> {
    return this.operator.compliance();
  }

  certificates(): CertificatesResponse {
    return this.metrics.certificatesResponse();
  }

  evidence(fromMs: number, toMs: number): Promise<EvidenceResponse> {
    return evidenceExport(this.store, this.artifacts.currentTrust(), fromMs, toMs);
  }

  witnesses(): Promise<WitnessesResponse> {
    return witnessesResponse(this.store);
  }

  checkpoint(peer: PeerIdentity, req: CheckpointRequest): Promise<Checkpoint> {
    return operatorCheckpoint(this.store, peer.cn, req, this.now());
  }

  quarantines(): Promise<QuarantinesResponse> {
    return this.operator.quarantines();
  }

  clearQuarantines(peer: PeerIdentity, req: QuarantineClearRequest): Promise<QuarantineClearResponse> {
    return this.operator.clearQuarantines(peer, req);
  }
}
