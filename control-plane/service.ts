/**
 * The control plane assembled (SPEC §5): a keyless caching router for already-signed intent. This
 * module is the composition root: it builds the parts, wires them together and runs their
 * lifecycle (start, timers, retention, stop); `api` is what the HTTP layer serves (cp-api.ts):
 *
 * - `artifacts.ts`: the signed artefacts in force (verify, keep last good, trust reload);
 * - `mirror.ts`: the in-memory observed state the reconciler reads;
 * - `agent-service.ts`: check-in, confirm, report, artefacts as served;
 * - `operator-service.ts`: hosts, rollouts, trace, audit, pause / resume, quarantines, skip and
 *   approve, compliance, evidence, audit anchoring;
 * - `cp-api.ts`: the `CpService` of app.ts over these (open routes, whoami, agent, operator);
 * - `reconcile-loop.ts`: the timer- and check-in-driven reconcile passes;
 * - `plan.ts`: the pure decision step (observed before/after → writes);
 * - `store/`: the `Store` interface and its SQLite and PostgreSQL implementations.
 *
 * Time is a parameter (`now`), so deadlines and soak are testable without waiting.
 */
import { failureCounts } from './compliance-view.ts';
import type { ReadyzResponse } from '../protocol/api.ts';
import type { Trust } from '../protocol/schema.ts';
import type { Action, Observed } from '../reconciler/types.ts';
import { AgentService } from './agent-service.ts';
import type { CpService } from './app.ts';
import { ArtifactManager } from './artifacts.ts';
import type { Config } from './config.ts';
import { createCpApi, readiness } from './cp-api.ts';
import { logBug, silentLogger, type Logger } from './log.ts';
import { withWriteLog } from './write-log.ts';
import { CpMetrics } from './metrics.ts';
import { ObservedMirror } from './mirror.ts';
import { mirroredOperatorState, OperatorService } from './operator-service.ts';
import { ReconcileLoop } from './reconcile-loop.ts';
import { Leadership } from './leadership.ts';
import { SoakRestorer } from './soak-restore.ts';
import { EnrolService } from './enrol-service.ts';
import { TokenLedger } from './enrol-ledger.ts';
import type { CertKeyPem } from '../pki/x509.ts';
import { certState } from '../protocol/enrol.ts';
import type { ArtifactSource } from './sources.ts';
import { prunedAnything } from './store/retention.ts';
import type { HostRow, PruneResult, Store } from './store/types.ts';

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

export class ControlPlane {
  /** What the HTTP layer serves (app.ts `createApp({ service: cp.api })`). */
  readonly api: CpService;
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
      // The host rows once per scrape, for the compliance failures and the certificates (at 10,000
      // hosts a read is ≈ 90 ms of CPU, most of a scrape's; docs/performance.md, session 14).
      const rows = await this.store.allHosts();
      return {
        hosts: { ...(await this.hostStateCounts()), drifted: Object.keys(o?.drifted ?? {}).length },
        rollouts: { ...(await this.store.rolloutStateCounts()), stalled },
        ready: this.artifacts.fleet() !== null,
        complianceFailures: this.artifacts.fleet()?.fleet == null ? [] : failureCounts(await this.operator.compliance(rows)),
        artifacts: this.artifactSignedAt(),
        offline: this.offlineCount(await this.mirror.get()),
        certs: this.certCounts(rows),
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
      ...mirroredOperatorState({ store: this.store, mirror: this.mirror, now: this.now }),
      trust: () => this.artifacts.currentTrust(),
      certificates: () => this.metrics.certificatesResponse(),
    });
    this.api = createCpApi({
      store: this.store,
      artifacts: this.artifacts,
      leadership: this.leadership,
      metrics: this.metrics,
      agent: this.agent,
      operator: this.operator,
      enrol: this.enrol,
      now: this.now,
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
  private certCounts(rows: readonly HostRow[]): Record<string, number> {
    const out: Record<string, number> = { valid: 0, expiring: 0, expired: 0 };
    const nowMs = this.now();
    for (const h of rows) if (h.certNotAfterMs !== null) out[certState(h.certNotAfterMs, nowMs)]! += 1;
    return out;
  }

  /** Issue 16: enrolment and renewal, when configured. */
  enrolment(): EnrolService | null {
    return this.enrol;
  }

  /** `GET /readyz` (also the enrolment listener's gate). */
  readiness(): ReadyzResponse {
    return readiness(this);
  }

  /** The Prometheus text of `GET /metrics`. */
  metricsText(): Promise<{ contentType: string; body: string }> {
    return this.metrics.text();
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
}
