/**
 * Prometheus metrics (SPEC §5): hosts by state, rollouts by state, check-ins, verification
 * failures by code, reconcile duration — plus requests by route/status and readiness, and for
 * operations (issue 18): build info, the signed artefacts' signedAt and age, TLS handshake
 * failures by reason, certificate expiry (the CP's own server and CA certificates, and the
 * earliest expiry among the client certificates seen per role), report refusals by reason, and
 * the default process metrics (`processMetrics`: the real process only, they are global); issue 16:
 * hosts by the state of their certificate, certificates issued or refused. One
 * registry per control-plane instance (tests run several in one process). monitoring/ holds the
 * dashboard and alert rules built on these names (monitoring/metrics.test.ts keeps them in step).
 */
import type { CertificatesResponse } from '../protocol/certificates-api.ts';
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import { NIXFLEET_VERSION } from '../io/version.ts';
import { TLS_FAILURE_REASONS, type TlsFailureReason } from './tls-failures.ts';
import { peerIdentity, type PeerSocket } from './identity.ts';

type Counts = {
  hosts: Record<string, number>;
  rollouts: Record<string, number>;
  ready: boolean;
  /** Issue 15: hosts failing each control (fail / error, fresh evidence), per framework. */
  complianceFailures?: { framework: string; control: string; n: number }[];
  /** signedAt (ms) of each signed artefact in force, by kind. */
  artifacts?: Record<string, number>;
  /** Hosts of the fleet without a check-in for offlineAfterSecs. */
  offline?: number;
  /** Issue 16: hosts by the state of the certificate they presented last (valid / expiring / expired). */
  certs?: Record<string, number>;
};

/** This replica's part in a shared store (issue 17), read at scrape time; null: a single control plane. */
export type ReplicaState = () => { holder: string; leader: boolean; epoch: number | null; storeOk: boolean; listening: boolean; listenerReconnects: number } | null;

export type CpMetricsOptions = { processMetrics?: boolean; now?: () => number; replica?: ReplicaState };


/** A client certificate as seen on a TLS connection: enough for its expiry. */
export type SeenCertificate = { cn: string; role: string; notAfterMs: number };

/** Computed at scrape time (from the store: possibly asynchronous). */
export type StateCounts = () => Counts | Promise<Counts>;

/** A counter's child for one set of labels, on a path taken for every check-in. */
export type Tally = { inc(): void };

/**
 * Counts in a plain number, added to its prom-client counter when that is scraped (its `collect`).
 * prom-client's own `inc` hashes and validates the labels and allocates on every call: at 10,000
 * hosts, a measurable part of a check-in (issue 19). Reads go through prom-client (`get`,
 * `registry.metrics()`), which call `collect` first, so they always see every count.
 */
class Tallies {
  private readonly list: { labels: Record<string, string>; t: { n: number; inc(): void } }[] = [];

  /** A new tally for `labels` (the caller keeps it: one per set of labels). */
  add(labels: Record<string, string>): Tally {
    const entry = { labels, t: { n: 0, inc(): void { this.n++; } } };
    this.list.push(entry);
    return entry.t;
  }

  /** Into `counter` (from its `collect`). */
  flush(counter: Counter<string>): void {
    for (const e of this.list) {
      if (e.t.n === 0) continue;
      counter.inc(e.labels, e.t.n);
      e.t.n = 0;
    }
  }
}

export class CpMetrics {
  readonly registry = new Registry();
  readonly checkins: Counter<'result'>;
  /** Issue 19: check-ins answered without a new decision (control-plane/quiet-checkins.ts); also counted in `checkins`. */
  readonly quietCheckins: Counter;
  readonly verifyFailures: Counter<'kind' | 'code'>;
  readonly artifactsAccepted: Counter<'kind'>;
  readonly reconcileDuration: Histogram;
  readonly reconcileRuns: Counter<'trigger'>;
  readonly requests: Counter<'route' | 'status'>;
  readonly reports: Counter<'event' | 'verdict'>;
  /** Check-in outcomes not acted on (issue 14), by refusal code. */
  readonly outcomesRefused: Counter<'code'>;
  /** Issue 16: certificates issued or refused, by route (enrol / renew) and outcome (issued or the error code). */
  readonly certificates: Counter<'what' | 'outcome'>;
  /** Issue 16: unauthenticated enrolment refusals counted but not audited one by one (refusal-throttle.ts). */
  readonly enrolRefusalsUnaudited: Counter<'code'>;
  readonly tlsConnections: Counter<'resumed'>;
  readonly tlsConnectionsOpen: Gauge;
  readonly leaderWakeups: Counter<'direction'>;
  /** Issue 15: gate blocks the reconciler started (skip_host / wave_blocked / health-gate failures), by gate. */
  readonly gateBlocks: Counter<'gate'>;
  readonly tlsFailures: Counter<'reason'>;
  readonly reportRefusals: Counter<'reason'>;
  readonly certificateExpiry: Gauge<'cert'>;
  /** Newest notAfter seen per client certificate CN (role → cn → ms). */
  private readonly clientExpiry = new Map<string, Map<string, number>>();
  private readonly requestChildren = new Map<string, Map<number, Tally>>();
  private readonly requestTallies = new Tallies();
  private readonly checkinTallies = new Tallies();
  private readonly checkinResults = { target: this.checkinTallies.add({ result: 'target' }), none: this.checkinTallies.add({ result: 'none' }) };
  private readonly quietTallies = new Tallies();
  private readonly quiet = this.quietTallies.add({});
  /** notAfter (ms) of this CP's own certificates (`server`, `ca`), for `GET /v1/certificates`. */
  private readonly ownExpiry = new Map<'server' | 'ca', number>();

  constructor(counts: StateCounts, opts: CpMetricsOptions = {}) {
    const registers = [this.registry];
    const replica = opts.replica ?? ((): null => null);
    // Per replica (each replica serves its own /metrics; `holder` tells them apart in one Prometheus).
    const perReplica = (name: string, help: string, value: (r: NonNullable<ReturnType<ReplicaState>>) => number): void => {
      new Gauge({
        name,
        help,
        labelNames: ['holder'],
        registers,
        collect() {
          this.reset();
          const r = replica();
          if (r !== null) this.set({ holder: r.holder }, value(r));
        },
      });
    };
    perReplica('nixfleet_replica_leader', 'Several replicas (PostgreSQL): 1 while this replica holds the leader lease', (r) => (r.leader ? 1 : 0));
    perReplica('nixfleet_replica_epoch', 'The leader lease epoch this replica holds (0: a follower)', (r) => r.epoch ?? 0);
    perReplica('nixfleet_replica_store_up', '1 when the last lease renewal reached the database', (r) => (r.storeOk ? 1 : 0));
    perReplica('nixfleet_replica_listening', '1 while the LISTEN session for leader wake-ups is connected', (r) => (r.listening ? 1 : 0));
    perReplica('nixfleet_replica_listener_reconnects', 'Reconnections of the LISTEN session (database restarts seen)', (r) => r.listenerReconnects);
    const now = opts.now ?? Date.now;
    if (opts.processMetrics === true) {
      collectDefaultMetrics({ register: this.registry });
      // Gauges named *_total fail `promtool check metrics`; the same counts are in nodejs_active_handles / _requests / _resources by type.
      for (const n of ['nodejs_active_handles_total', 'nodejs_active_requests_total', 'nodejs_active_resources_total']) this.registry.removeSingleMetric(n);
    }
    new Gauge({ name: 'nixfleet_build_info', help: 'Always 1; the version and Node.js runtime of this control plane', labelNames: ['version', 'node'], registers }).set({ version: NIXFLEET_VERSION, node: process.version }, 1);
    this.tlsFailures = new Counter({
      name: 'nixfleet_tls_handshake_failures_total',
      help: 'TLS handshakes that failed (no client certificate, another CA, expired, not TLS, …), by reason',
      labelNames: ['reason'],
      registers,
    });
    for (const reason of TLS_FAILURE_REASONS) this.tlsFailures.inc({ reason }, 0);
    this.reportRefusals = new Counter({
      name: 'nixfleet_report_refusals_total',
      help: 'Agent reports refused before being stored, by reason (quota: over the per-host rate or storage limit)',
      labelNames: ['reason'],
      registers,
    });
    this.certificateExpiry = new Gauge({
      name: 'nixfleet_certificate_expiry_timestamp_seconds',
      help: 'notAfter of the certificates this control plane uses (cert="server": its TLS certificate, cert="ca": the fleet CA)',
      labelNames: ['cert'],
      registers,
    });
    const clientExpiry = this.clientExpiry;
    new Gauge({
      name: 'nixfleet_client_certificate_expiry_min_timestamp_seconds',
      help: 'Earliest notAfter among the client certificates seen since start, by role (host, operator)',
      labelNames: ['role'],
      registers,
      collect() {
        this.reset();
        for (const [role, byCn] of clientExpiry) if (byCn.size > 0) this.set({ role }, Math.min(...byCn.values()) / 1000);
      },
    });

    const checkinTallies = this.checkinTallies;
    this.checkins = new Counter({
      name: 'nixfleet_checkins_total',
      help: 'Agent check-ins handled',
      labelNames: ['result'],
      registers,
      collect() {
        checkinTallies.flush(this);
      },
    });
    const quietTallies = this.quietTallies;
    this.quietCheckins = new Counter({
      name: 'nixfleet_checkins_quiet_total',
      help: 'Check-ins that changed nothing the CP decides on, answered without a new decision',
      registers,
      collect() {
        quietTallies.flush(this);
      },
    });
    this.verifyFailures = new Counter({
      name: 'nixfleet_artifact_verification_failures_total',
      help: 'Artefacts from the source that failed verification, by kind and error code',
      labelNames: ['kind', 'code'],
      registers,
    });
    this.artifactsAccepted = new Counter({ name: 'nixfleet_artifacts_accepted_total', help: 'Artefacts verified and put in force', labelNames: ['kind'], registers });
    this.reconcileDuration = new Histogram({
      name: 'nixfleet_reconcile_duration_seconds',
      help: 'Duration of one reconcile pass (load observed, reconcile, apply, persist)',
      buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5],
      registers,
    });
    this.reconcileRuns = new Counter({ name: 'nixfleet_reconcile_runs_total', help: 'Reconcile passes by trigger', labelNames: ['trigger'], registers });
    const requestTallies = this.requestTallies;
    this.requests = new Counter({
      name: 'nixfleet_http_requests_total',
      help: 'HTTP requests by route and status',
      labelNames: ['route', 'status'],
      registers,
      collect() {
        requestTallies.flush(this);
      },
    });
    this.certificates = new Counter({ name: 'nixfleet_certificates_total', help: 'Host certificates issued or refused (enrolment, renewal) by outcome', labelNames: ['what', 'outcome'], registers });
    this.enrolRefusalsUnaudited = new Counter({ name: 'nixfleet_enrol_refusals_unaudited_total', help: 'Unauthenticated enrolment refusals not audited one by one (same source and code within enrolment.refusalAuditWindowSecs), by code', labelNames: ['code'], registers });
    this.reports = new Counter({ name: 'nixfleet_agent_reports_total', help: 'Agent reports by event and signature verdict', labelNames: ['event', 'verdict'], registers });
    this.outcomesRefused = new Counter({ name: 'nixfleet_checkin_outcomes_refused_total', help: 'Check-in last outcomes the CP did not act on (forged, unsigned or replayed), by code', labelNames: ['code'], registers });
    this.tlsConnections = new Counter({
      name: 'nixfleet_tls_connections_total',
      help: 'mTLS connections accepted, by whether the client resumed a TLS session (a resumed handshake skips certificate signing and verification)',
      labelNames: ['resumed'],
      registers,
    });
    this.leaderWakeups = new Counter({
      name: 'nixfleet_replica_wakeups_total',
      help: 'Several replicas (PostgreSQL): wake-ups a follower sent to the leader after a relevant event, and those the leader received and acted on',
      labelNames: ['direction'],
      registers,
    });
    this.tlsConnectionsOpen = new Gauge({ name: 'nixfleet_tls_connections_open', help: 'mTLS connections open now (each idle one holds about 45 KiB of native memory)', registers });
    this.gateBlocks = new Counter({ name: 'nixfleet_gate_blocks_total', help: 'Gate blocks started by the reconciler, by gate (a debounced block counts once)', labelNames: ['gate'], registers });
    // Gauges computed at scrape time from the store.
    let snapshot: Promise<Counts> | null = null;
    const take = (): Promise<Counts> => (snapshot ??= Promise.resolve(counts()));
    new Gauge({
      name: 'nixfleet_hosts',
      help: 'Hosts by state in their newest rollout (Idle: in no rollout)',
      labelNames: ['state'],
      registers,
      async collect() {
        const { hosts } = await take();
        this.reset();
        for (const [state, n] of Object.entries(hosts)) this.set({ state }, n);
      },
    });
    new Gauge({
      name: 'nixfleet_rollouts',
      help: 'Rollouts by state',
      labelNames: ['state'],
      registers,
      async collect() {
        const { rollouts } = await take();
        this.reset();
        for (const [state, n] of Object.entries(rollouts)) this.set({ state }, n);
      },
    });
    new Gauge({
      name: 'nixfleet_compliance_failures',
      help: 'Hosts whose newest evidence for a control fails (fail or error), by framework and control',
      labelNames: ['framework', 'control'],
      registers,
      async collect() {
        const { complianceFailures } = await take();
        this.reset();
        for (const f of complianceFailures ?? []) this.set({ framework: f.framework, control: f.control }, f.n);
      },
    });
    new Gauge({
      name: 'nixfleet_hosts_offline',
      help: 'Hosts of the fleet in force without a check-in for offlineAfterSecs (including never seen)',
      registers,
      async collect() {
        this.set((await take()).offline ?? 0);
      },
    });
    new Gauge({
      name: 'nixfleet_artifact_signed_timestamp_seconds',
      help: 'signedAt of the signed artefact in force, by kind (fleet, revocations, index)',
      labelNames: ['kind'],
      registers,
      async collect() {
        const { artifacts } = await take();
        this.reset();
        for (const [kind, ms] of Object.entries(artifacts ?? {})) this.set({ kind }, ms / 1000);
      },
    });
    new Gauge({
      name: 'nixfleet_artifact_age_seconds',
      help: 'Seconds since the signed artefact in force was signed, by kind (freshness: compare with the trust maxAgeSecs)',
      labelNames: ['kind'],
      registers,
      async collect() {
        const { artifacts } = await take();
        this.reset();
        for (const [kind, ms] of Object.entries(artifacts ?? {})) this.set({ kind }, Math.max(0, (now() - ms) / 1000));
      },
    });
    new Gauge({
      name: 'nixfleet_host_certificates',
      help: 'Hosts by the state of the client certificate they presented last: valid, expiring (under 7 days left), expired (issue 16)',
      labelNames: ['state'],
      registers,
      async collect() {
        const { certs } = await take();
        this.reset();
        for (const state of ['valid', 'expiring', 'expired']) this.set({ state }, certs?.[state] ?? 0);
      },
    });
    new Gauge({
      name: 'nixfleet_ready',
      help: '1 when a verified fleet artefact is in force',
      registers,
      async collect() {
        this.set((await take()).ready ? 1 : 0);
        snapshot = null; // last gauge in registration order: next scrape recomputes
      },
    });
  }

  /** Count one accepted mTLS connection while it is open (`listenHttps` `onTlsConnection`). */
  tlsConnection(socket: PeerSocket & { isSessionReused(): boolean; once(event: 'close', fn: () => void): unknown }): void {
    const resumed = socket.isSessionReused();
    this.tlsConnections.inc({ resumed: resumed ? 'true' : 'false' });
    // A full handshake presented the client certificate: note its expiry (a resumed one has the
    // same). The identity is read once per connection (identity.ts caches it for the requests).
    if (!resumed) {
      const peer = peerIdentity(socket);
      if (peer !== null) this.clientCertificate({ cn: peer.cn, role: peer.role ?? 'other', notAfterMs: peer.notAfterMs });
    }
    this.tlsConnectionsOpen.inc();
    socket.once('close', () => this.tlsConnectionsOpen.dec());
  }

  /** A check-in handled, by result (`nixfleet_checkins_total`). */
  checkin(result: 'target' | 'none'): Tally {
    return this.checkinResults[result];
  }

  /** A quiet check-in (`nixfleet_checkins_quiet_total`). */
  quietCheckin(): Tally {
    return this.quiet;
  }

  /** One HTTP request by matched route pattern (bounded) and status; a tally each (the check-in path: no allocation). */
  request(route: string, status: number): void {
    this.requestTally(route, status).inc();
  }

  /** The tally `request(route, status)` adds to, for a caller that counts one pair often (hot-checkin.ts). */
  requestTally(route: string, status: number): Tally {
    let byStatus = this.requestChildren.get(route);
    if (byStatus === undefined) this.requestChildren.set(route, (byStatus = new Map()));
    let child = byStatus.get(status);
    if (child === undefined) byStatus.set(status, (child = this.requestTallies.add({ route, status: String(status) })));
    return child;
  }

  /** A failed TLS handshake (server.ts `onTlsClientError`, via tls-failures.ts). */
  tlsFailure(reason: TlsFailureReason): void {
    this.tlsFailures.inc({ reason });
  }

  /** The notAfter of a certificate this CP uses (`server`, `ca`). */
  setCertificateExpiry(cert: 'server' | 'ca', notAfterMs: number): void {
    this.certificateExpiry.set({ cert }, notAfterMs / 1000);
    this.ownExpiry.set(cert, notAfterMs);
  }

  /** Issue 20 (`GET /v1/certificates`): the expiries behind the certificate gauges. */
  certificateExpiries(): { server: number | null; ca: number | null; clients: SeenCertificate[] } {
    const clients: SeenCertificate[] = [];
    for (const [role, byCn] of this.clientExpiry) for (const [cn, notAfterMs] of byCn) clients.push({ cn, role, notAfterMs });
    clients.sort((a, b) => a.notAfterMs - b.notAfterMs || (a.cn < b.cn ? -1 : a.cn > b.cn ? 1 : 0));
    return { server: this.ownExpiry.get('server') ?? null, ca: this.ownExpiry.get('ca') ?? null, clients };
  }

  /** `GET /v1/certificates` (issue 20): the same expiries as RFC 3339 times. */
  certificatesResponse(): CertificatesResponse {
    const c = this.certificateExpiries();
    const iso = (ms: number | null) => (ms === null ? null : new Date(ms).toISOString());
    return { server: iso(c.server), ca: iso(c.ca), clients: c.clients.map((x) => ({ cn: x.cn, role: x.role, notAfter: new Date(x.notAfterMs).toISOString() })) };
  }

  /** A client certificate seen on a connection: its newest notAfter per CN counts for the role's minimum. */
  clientCertificate(c: SeenCertificate): void {
    let byCn = this.clientExpiry.get(c.role);
    if (byCn === undefined) this.clientExpiry.set(c.role, (byCn = new Map()));
    const had = byCn.get(c.cn);
    if (had === undefined || c.notAfterMs > had) byCn.set(c.cn, c.notAfterMs);
  }

  async text(): Promise<{ contentType: string; body: string }> {
    return { contentType: this.registry.contentType, body: await this.registry.metrics() };
  }
}
