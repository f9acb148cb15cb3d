/**
 * Prometheus metrics (SPEC §5): hosts by state, rollouts by state, check-ins, verification
 * failures by code, reconcile duration — plus requests by route/status and readiness. One
 * registry per control-plane instance (tests run several in one process).
 */
import { Counter, Gauge, Histogram, Registry } from 'prom-client';

type Counts = {
  hosts: Record<string, number>;
  rollouts: Record<string, number>;
  ready: boolean;
  /** Issue 15: hosts failing each control (fail / error, fresh evidence), per framework. */
  complianceFailures?: { framework: string; control: string; n: number }[];
};

/** This replica's part in a shared store (issue 17), read at scrape time; null: a single control plane. */
export type ReplicaState = () => { holder: string; leader: boolean; epoch: number | null; storeOk: boolean; listening: boolean; listenerReconnects: number } | null;

/** Computed at scrape time (from the store: possibly asynchronous). */
export type StateCounts = () => Counts | Promise<Counts>;

export class CpMetrics {
  readonly registry = new Registry();
  readonly checkins: Counter<'result'>;
  readonly verifyFailures: Counter<'kind' | 'code'>;
  readonly artifactsAccepted: Counter<'kind'>;
  readonly reconcileDuration: Histogram;
  readonly reconcileRuns: Counter<'trigger'>;
  readonly requests: Counter<'route' | 'status'>;
  readonly reports: Counter<'event' | 'verdict'>;
  /** Check-in outcomes not acted on (issue 14), by refusal code. */
  readonly outcomesRefused: Counter<'code'>;
  readonly tlsConnections: Counter<'resumed'>;
  readonly tlsConnectionsOpen: Gauge;
  readonly leaderWakeups: Counter<'direction'>;
  /** Issue 15: gate blocks the reconciler started (skip_host / wave_blocked / health-gate failures), by gate. */
  readonly gateBlocks: Counter<'gate'>;

  constructor(counts: StateCounts, replica: ReplicaState = () => null) {
    const registers = [this.registry];
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
    this.checkins = new Counter({ name: 'nixfleet_checkins_total', help: 'Agent check-ins handled', labelNames: ['result'], registers });
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
    this.requests = new Counter({ name: 'nixfleet_http_requests_total', help: 'HTTP requests by route and status', labelNames: ['route', 'status'], registers });
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
  tlsConnection(socket: { isSessionReused(): boolean; once(event: 'close', fn: () => void): unknown }): void {
    this.tlsConnections.inc({ resumed: socket.isSessionReused() ? 'true' : 'false' });
    this.tlsConnectionsOpen.inc();
    socket.once('close', () => this.tlsConnectionsOpen.dec());
  }

  async text(): Promise<{ contentType: string; body: string }> {
    return { contentType: this.registry.contentType, body: await this.registry.metrics() };
  }
}
