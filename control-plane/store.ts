/**
 * The control plane's SQLite store (better-sqlite3, WAL, one writer: this process). Everything in
 * it can be rebuilt from the artefact source and the agents' check-ins (SPEC §5 rebuild from
 * empty); nothing in it can authorise a deployment.
 *
 * Tables: hosts (last check-in), rollouts + rollout_hosts (state with entry times) + transitions
 * (history), dispatches (targets handed out, with confirm deadlines), quarantines, pauses,
 * last_converged, deferrals, reports (with host signatures and verdict), artifacts (last accepted
 * artefact per kind: bytes, signature, signedAt — rollback protection survives restarts), audit
 * (hash chain).
 *
 * Observed state (reconciler/types.ts) is loaded from here for every reconcile pass
 * (`loadObserved`) or for one host (`loadHostSlice`), and written back as a diff
 * (`persistObserved`) inside the caller's transaction. History is loaded empty: the reconciler
 * only appends to it, so whatever `history` holds after a pass is new and is inserted.
 */
import Database from 'better-sqlite3';
import type { AuditEntry } from '../protocol/api.ts';
import { auditEntryHash, GENESIS_HASH } from '../protocol/audit-chain.ts';
import type {
  Deferral,
  HostObservation,
  HostRolloutState,
  Observed,
  PauseInfo,
  Rollout,
  RolloutHost,
  Transition,
} from '../reconciler/types.ts';

type DB = Database.Database;

const MIGRATIONS: readonly string[] = [
  // 1: initial schema
  `
  CREATE TABLE hosts (
    hostname TEXT PRIMARY KEY,
    last_checkin_ms INTEGER,
    current_closure TEXT,
    boot_id TEXT,
    probes_observed INTEGER NOT NULL DEFAULT 0,
    probes_passing INTEGER NOT NULL DEFAULT 0,
    failed_units TEXT NOT NULL DEFAULT '[]',
    compliance_failures TEXT,
    probes_json TEXT NOT NULL DEFAULT '[]',
    last_outcome_json TEXT,
    pending_reboot INTEGER NOT NULL DEFAULT 0,
    agent_version TEXT
  );
  CREATE TABLE rollouts (
    id TEXT PRIMARY KEY,
    channel TEXT NOT NULL,
    target_ref TEXT NOT NULL,
    state TEXT NOT NULL,
    current_wave INTEGER NOT NULL,
    wave_count INTEGER NOT NULL,
    opened_at_ms INTEGER NOT NULL,
    started_at_ms INTEGER,
    state_reason TEXT NOT NULL,
    signed_at TEXT NOT NULL,
    artifact_sha256 TEXT NOT NULL,
    updated_at_ms INTEGER NOT NULL
  );
  CREATE INDEX rollouts_channel ON rollouts(channel, opened_at_ms);
  CREATE INDEX rollouts_state ON rollouts(state);
  CREATE TABLE rollout_hosts (
    rollout_id TEXT NOT NULL REFERENCES rollouts(id),
    hostname TEXT NOT NULL,
    state TEXT NOT NULL,
    entered_at_ms INTEGER NOT NULL,
    closure TEXT NOT NULL,
    wave INTEGER NOT NULL,
    skip_json TEXT,
    rollback_requested INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (rollout_id, hostname)
  ) WITHOUT ROWID;
  CREATE INDEX rollout_hosts_host ON rollout_hosts(hostname);
  CREATE TABLE transitions (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    rollout_id TEXT NOT NULL,
    at_ms INTEGER NOT NULL,
    hostname TEXT,
    from_state TEXT,
    to_state TEXT NOT NULL,
    wave INTEGER NOT NULL,
    reason TEXT NOT NULL
  );
  CREATE INDEX transitions_rollout ON transitions(rollout_id, seq);
  CREATE TABLE dispatches (
    rollout_id TEXT NOT NULL,
    hostname TEXT NOT NULL,
    channel TEXT NOT NULL,
    closure TEXT NOT NULL,
    wave INTEGER NOT NULL,
    created_ms INTEGER NOT NULL,
    delivered_ms INTEGER,
    deadline_ms INTEGER,
    status TEXT NOT NULL, -- pending | confirmed | expired | cancelled | failed
    finished_ms INTEGER,
    rollback_reason TEXT,
    PRIMARY KEY (rollout_id, hostname)
  ) WITHOUT ROWID;
  CREATE INDEX dispatches_host ON dispatches(hostname, status);
  CREATE INDEX dispatches_deadline ON dispatches(status, deadline_ms);
  CREATE TABLE quarantines (
    channel TEXT NOT NULL,
    closure TEXT NOT NULL,
    rollout_id TEXT,
    hostname TEXT,
    reason TEXT NOT NULL,
    since_ms INTEGER NOT NULL,
    PRIMARY KEY (channel, closure)
  ) WITHOUT ROWID;
  CREATE TABLE pauses (
    channel TEXT PRIMARY KEY,
    since_ms INTEGER NOT NULL,
    reason TEXT NOT NULL,
    by_actor TEXT NOT NULL
  );
  CREATE TABLE last_converged (channel TEXT PRIMARY KEY, target_ref TEXT NOT NULL);
  CREATE TABLE deferrals (channel TEXT PRIMARY KEY, rollout_id TEXT NOT NULL, reason TEXT NOT NULL, since_ms INTEGER NOT NULL);
  CREATE TABLE reports (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    hostname TEXT NOT NULL,
    received_ms INTEGER NOT NULL,
    event TEXT NOT NULL,
    rollout_id TEXT,
    report_json TEXT NOT NULL,
    signature TEXT,
    verdict TEXT NOT NULL
  );
  CREATE TABLE artifacts (
    kind TEXT PRIMARY KEY,
    signed_at TEXT NOT NULL,
    sha256 TEXT NOT NULL,
    bytes BLOB NOT NULL,
    signature BLOB NOT NULL,
    accepted_ms INTEGER NOT NULL
  );
  CREATE TABLE audit (
    seq INTEGER PRIMARY KEY,
    at TEXT NOT NULL,
    kind TEXT NOT NULL,
    actor TEXT NOT NULL,
    subject TEXT NOT NULL,
    data_json TEXT NOT NULL,
    prev_hash TEXT NOT NULL,
    hash TEXT NOT NULL
  );
  `,
];

export type HostRow = {
  hostname: string;
  lastCheckinMs: number | null;
  currentClosure: string | null;
  bootId: string | null;
  probesObserved: boolean;
  probesPassing: boolean;
  failedUnits: string[];
  complianceFailures: string[] | null;
  probesJson: string;
  lastOutcomeJson: string | null;
  pendingReboot: boolean;
  agentVersion: string | null;
};

export type DispatchStatus = 'pending' | 'confirmed' | 'expired' | 'cancelled' | 'failed';

export type DispatchRow = {
  rolloutId: string;
  hostname: string;
  channel: string;
  closure: string;
  wave: number;
  createdMs: number;
  deliveredMs: number | null;
  deadlineMs: number | null;
  status: DispatchStatus;
  finishedMs: number | null;
  rollbackReason: string | null;
};

/** A rollout as stored: the reconciler's record without its hosts and history (their own tables). */
export type RolloutRow = Omit<Rollout, 'hosts' | 'history'> & {
  signedAt: string;
  artifactSha256: string;
  updatedAtMs: number;
};

export type RolloutHostRow = { rolloutId: string; hostname: string; state: HostRolloutState; enteredAtMs: number; closure: string; wave: number; skipJson: string | null };

export type TransitionRow = { rolloutId: string; atMs: number; hostname: string | null; from: string | null; to: string; wave: number; reason: string };

export type QuarantineRow = { channel: string; closure: string; rolloutId: string | null; hostname: string | null; reason: string; sinceMs: number };

export type PauseRow = { channel: string; sinceMs: number; reason: string; by: string };

export type ArtifactRow = { kind: 'fleet' | 'revocations'; signedAt: string; sha256: string; bytes: Uint8Array; signature: Uint8Array; acceptedMs: number };

export type AuditInput = { atMs: number; kind: string; actor: string; subject: string; data: unknown };

/** Metadata the store adds to a rollout it has not seen before. */
export type RolloutOrigin = { signedAt: string; artifactSha256: string };

const iso = (ms: number): string => new Date(ms).toISOString();

/* eslint-disable @typescript-eslint/no-explicit-any */
type Row = Record<string, any>;

function toHostRow(r: Row): HostRow {
  return {
    hostname: r['hostname'],
    lastCheckinMs: r['last_checkin_ms'],
    currentClosure: r['current_closure'],
    bootId: r['boot_id'],
    probesObserved: r['probes_observed'] === 1,
    probesPassing: r['probes_passing'] === 1,
    failedUnits: JSON.parse(r['failed_units']) as string[],
    complianceFailures: r['compliance_failures'] === null ? null : (JSON.parse(r['compliance_failures']) as string[]),
    probesJson: r['probes_json'],
    lastOutcomeJson: r['last_outcome_json'],
    pendingReboot: r['pending_reboot'] === 1,
    agentVersion: r['agent_version'],
  };
}

function toObservation(h: HostRow): HostObservation {
  const o: HostObservation = {
    lastCheckinMs: h.lastCheckinMs,
    currentClosure: h.currentClosure,
    probes: { observed: h.probesObserved, passing: h.probesPassing },
    failedUnits: h.failedUnits,
    bootId: h.bootId,
  };
  if (h.complianceFailures !== null) o.complianceFailures = h.complianceFailures;
  return o;
}

function toDispatch(r: Row): DispatchRow {
  return {
    rolloutId: r['rollout_id'],
    hostname: r['hostname'],
    channel: r['channel'],
    closure: r['closure'],
    wave: r['wave'],
    createdMs: r['created_ms'],
    deliveredMs: r['delivered_ms'],
    deadlineMs: r['deadline_ms'],
    status: r['status'],
    finishedMs: r['finished_ms'],
    rollbackReason: r['rollback_reason'],
  };
}

function toRolloutRow(r: Row): RolloutRow {
  return {
    id: r['id'],
    channel: r['channel'],
    targetRef: r['target_ref'],
    state: r['state'],
    currentWave: r['current_wave'],
    waveCount: r['wave_count'],
    openedAtMs: r['opened_at_ms'],
    startedAtMs: r['started_at_ms'],
    stateReason: r['state_reason'],
    signedAt: r['signed_at'],
    artifactSha256: r['artifact_sha256'],
    updatedAtMs: r['updated_at_ms'],
  };
}

function toRolloutHost(r: Row): RolloutHost {
  return {
    state: r['state'],
    enteredAtMs: r['entered_at_ms'],
    closure: r['closure'],
    wave: r['wave'],
    skip: r['skip_json'] === null ? null : JSON.parse(r['skip_json']),
    rollbackRequested: r['rollback_requested'] === 1,
  };
}

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

export class Store {
  readonly db: DB;
  private lastAuditHash: string;
  private lastAuditSeq: number;
  private readonly s: ReturnType<Store['prepare']>;
  /** One transaction wrapper for every call (better-sqlite3 passes the arguments through). */
  private readonly runTx: Database.Transaction<(fn: () => unknown) => unknown>;
  /** Transaction bodies running now (`tx` / `txGrouped` nest instead of starting another). */
  private depth = 0;
  /** The open grouped transaction and the callers waiting for its commit. */
  private group: { settle: { resolve(): void; reject(e: unknown): void }[] } | null = null;
  /** Called after a grouped commit failed and was rolled back. */
  onGroupRollback: ((e: unknown) => void) | null = null;

  constructor(path: string) {
    this.db = new Database(path);
    this.db.pragma('journal_mode = WAL');
    // WAL + NORMAL: a crash can lose the last transactions but never corrupts; everything here
    // is rebuildable from the artefact source and check-ins (SPEC §5).
    this.db.pragma('synchronous = NORMAL');
    this.db.pragma('foreign_keys = ON');
    this.db.pragma('busy_timeout = 5000');
    this.migrate();
    this.s = this.prepare();
    this.runTx = this.db.transaction((fn: () => unknown) => fn());
    const last = this.s.auditLast.get() as Row | undefined;
    this.lastAuditHash = last === undefined ? GENESIS_HASH : last['hash'];
    this.lastAuditSeq = last === undefined ? 0 : last['seq'];
  }

  private migrate(): void {
    const version = this.db.pragma('user_version', { simple: true }) as number;
    if (version > MIGRATIONS.length) {
      throw new Error(`database schema version ${version} is newer than this control plane (${MIGRATIONS.length}); refusing to touch it`);
    }
    for (let v = version; v < MIGRATIONS.length; v++) {
      this.db.transaction(() => {
        this.db.exec(MIGRATIONS[v]!);
        this.db.pragma(`user_version = ${v + 1}`);
      })();
    }
  }

  private prepare() {
    const p = (sql: string) => this.db.prepare(sql);
    return {
      begin: p('BEGIN IMMEDIATE'),
      commit: p('COMMIT'),
      rollback: p('ROLLBACK'),
      hostGet: p('SELECT * FROM hosts WHERE hostname = ?'),
      hostAll: p('SELECT * FROM hosts ORDER BY hostname'),
      hostUpsert: p(`INSERT INTO hosts (hostname, last_checkin_ms, current_closure, boot_id, probes_observed, probes_passing, failed_units,
          compliance_failures, probes_json, last_outcome_json, pending_reboot, agent_version)
        VALUES (@hostname, @lastCheckinMs, @currentClosure, @bootId, @probesObserved, @probesPassing, @failedUnits, @complianceFailures,
          @probesJson, @lastOutcomeJson, @pendingReboot, @agentVersion)
        ON CONFLICT(hostname) DO UPDATE SET last_checkin_ms = excluded.last_checkin_ms, current_closure = excluded.current_closure,
          boot_id = excluded.boot_id, probes_observed = excluded.probes_observed, probes_passing = excluded.probes_passing,
          failed_units = excluded.failed_units, compliance_failures = excluded.compliance_failures, probes_json = excluded.probes_json,
          last_outcome_json = excluded.last_outcome_json, pending_reboot = excluded.pending_reboot, agent_version = excluded.agent_version`),
      hostObsUpdate: p(`INSERT INTO hosts (hostname, last_checkin_ms, current_closure, boot_id, probes_observed, probes_passing, failed_units, compliance_failures)
        VALUES (@hostname, @lastCheckinMs, @currentClosure, @bootId, @probesObserved, @probesPassing, @failedUnits, @complianceFailures)
        ON CONFLICT(hostname) DO UPDATE SET last_checkin_ms = excluded.last_checkin_ms, current_closure = excluded.current_closure,
          boot_id = excluded.boot_id, probes_observed = excluded.probes_observed, probes_passing = excluded.probes_passing,
          failed_units = excluded.failed_units, compliance_failures = excluded.compliance_failures`),
      hostPendingReboot: p('UPDATE hosts SET pending_reboot = ? WHERE hostname = ?'),
      rolloutsLoad: p(`SELECT * FROM rollouts r WHERE r.state NOT IN ('Converged', 'Superseded')
          OR r.id = (SELECT id FROM rollouts r2 WHERE r2.channel = r.channel ORDER BY opened_at_ms DESC, id DESC LIMIT 1)`),
      rolloutAll: p('SELECT * FROM rollouts ORDER BY opened_at_ms DESC, id'),
      rolloutGet: p('SELECT * FROM rollouts WHERE id = ?'),
      // Upsert: a target that comes back after its rollout was superseded reopens the same id.
      rolloutInsert: p(`INSERT INTO rollouts (id, channel, target_ref, state, current_wave, wave_count, opened_at_ms, started_at_ms, state_reason,
          signed_at, artifact_sha256, updated_at_ms)
        VALUES (@id, @channel, @targetRef, @state, @currentWave, @waveCount, @openedAtMs, @startedAtMs, @stateReason, @signedAt, @artifactSha256, @updatedAtMs)
        ON CONFLICT(id) DO UPDATE SET state = excluded.state, current_wave = excluded.current_wave, wave_count = excluded.wave_count,
          opened_at_ms = excluded.opened_at_ms, started_at_ms = excluded.started_at_ms, state_reason = excluded.state_reason,
          signed_at = excluded.signed_at, artifact_sha256 = excluded.artifact_sha256, updated_at_ms = excluded.updated_at_ms`),
      rhDeleteFor: p('DELETE FROM rollout_hosts WHERE rollout_id = ?'),
      rolloutUpdate: p(`UPDATE rollouts SET state = @state, current_wave = @currentWave, wave_count = @waveCount, started_at_ms = @startedAtMs,
          opened_at_ms = @openedAtMs, state_reason = @stateReason, updated_at_ms = @updatedAtMs WHERE id = @id`),
      rhLiveForHost: p(`SELECT rh.*, r.id AS r_id FROM rollout_hosts rh JOIN rollouts r ON r.id = rh.rollout_id
        WHERE rh.hostname = ? AND r.state <> 'Superseded'`),
      rhNewestPerHost: p(`SELECT rh.*, r.opened_at_ms AS r_opened FROM rollout_hosts rh JOIN rollouts r ON r.id = rh.rollout_id
        ORDER BY rh.hostname, r.opened_at_ms DESC, r.id DESC`),
      hostStateCounts: p(`SELECT rh.state AS state, COUNT(*) AS n FROM rollout_hosts rh WHERE rh.rollout_id IN (
          SELECT r.id FROM rollouts r WHERE r.id = (SELECT r2.id FROM rollouts r2 WHERE r2.channel = r.channel ORDER BY r2.opened_at_ms DESC, r2.id DESC LIMIT 1))
        GROUP BY rh.state`),
      rhAllFor: p('SELECT * FROM rollout_hosts WHERE rollout_id = ?'),
      rhForHost: p('SELECT * FROM rollout_hosts WHERE hostname = ?'),
      rhUpsert: p(`INSERT INTO rollout_hosts (rollout_id, hostname, state, entered_at_ms, closure, wave, skip_json, rollback_requested)
        VALUES (@rolloutId, @hostname, @state, @enteredAtMs, @closure, @wave, @skipJson, @rollbackRequested)
        ON CONFLICT(rollout_id, hostname) DO UPDATE SET state = excluded.state, entered_at_ms = excluded.entered_at_ms, closure = excluded.closure,
          wave = excluded.wave, skip_json = excluded.skip_json, rollback_requested = excluded.rollback_requested`),
      rhCountsByState: p(`SELECT rh.state AS state, COUNT(*) AS n FROM rollout_hosts rh WHERE rh.rollout_id = ? GROUP BY rh.state`),
      transitionInsert: p(`INSERT INTO transitions (rollout_id, at_ms, hostname, from_state, to_state, wave, reason)
        VALUES (@rolloutId, @atMs, @hostname, @from, @to, @wave, @reason)`),
      transitionsFor: p('SELECT * FROM transitions WHERE rollout_id = ? ORDER BY seq'),
      rolloutCounts: p('SELECT state, COUNT(*) AS n FROM rollouts GROUP BY state'),
      dispatchGet: p('SELECT * FROM dispatches WHERE rollout_id = ? AND hostname = ?'),
      dispatchPendingForHost: p(`SELECT * FROM dispatches WHERE hostname = ? AND status = 'pending' ORDER BY created_ms DESC LIMIT 1`),
      dispatchRollbackForHost: p(`SELECT * FROM dispatches WHERE hostname = ? AND status = 'cancelled' AND rollback_reason IS NOT NULL
          ORDER BY created_ms DESC LIMIT 1`),
      dispatchInsert: p(`INSERT INTO dispatches (rollout_id, hostname, channel, closure, wave, created_ms, delivered_ms, deadline_ms, status, finished_ms, rollback_reason)
        VALUES (@rolloutId, @hostname, @channel, @closure, @wave, @createdMs, NULL, NULL, 'pending', NULL, NULL)
        ON CONFLICT(rollout_id, hostname) DO UPDATE SET closure = excluded.closure, wave = excluded.wave, created_ms = excluded.created_ms,
          delivered_ms = NULL, deadline_ms = NULL, status = 'pending', finished_ms = NULL, rollback_reason = NULL`),
      dispatchDeliver: p(`UPDATE dispatches SET delivered_ms = @deliveredMs, deadline_ms = @deadlineMs
        WHERE rollout_id = @rolloutId AND hostname = @hostname AND delivered_ms IS NULL`),
      dispatchFinish: p(`UPDATE dispatches SET status = @status, finished_ms = @finishedMs, rollback_reason = @rollbackReason
        WHERE rollout_id = @rolloutId AND hostname = @hostname`),
      dispatchCancelUndelivered: p(`UPDATE dispatches SET status = 'cancelled', finished_ms = @finishedMs
        WHERE rollout_id = @rolloutId AND status = 'pending' AND delivered_ms IS NULL`),
      dispatchPendingAll: p(`SELECT * FROM dispatches WHERE status = 'pending'`),
      dispatchExpired: p(`SELECT * FROM dispatches WHERE status = 'pending' AND deadline_ms IS NOT NULL AND deadline_ms <= ? ORDER BY deadline_ms LIMIT 1000`),
      dispatchClearRollback: p(`UPDATE dispatches SET rollback_reason = NULL WHERE rollout_id = ? AND hostname = ?`),
      quarantineAll: p('SELECT * FROM quarantines ORDER BY channel, since_ms'),
      quarantineInsert: p(`INSERT OR IGNORE INTO quarantines (channel, closure, rollout_id, hostname, reason, since_ms)
        VALUES (@channel, @closure, @rolloutId, @hostname, @reason, @sinceMs)`),
      quarantineDeleteChannel: p('DELETE FROM quarantines WHERE channel = ?'),
      quarantineDeleteOne: p('DELETE FROM quarantines WHERE channel = ? AND closure = ?'),
      pauseAll: p('SELECT * FROM pauses ORDER BY channel'),
      pauseGet: p('SELECT * FROM pauses WHERE channel = ?'),
      pauseUpsert: p(`INSERT INTO pauses (channel, since_ms, reason, by_actor) VALUES (@channel, @sinceMs, @reason, @by)
        ON CONFLICT(channel) DO UPDATE SET since_ms = excluded.since_ms, reason = excluded.reason, by_actor = excluded.by_actor`),
      pauseDelete: p('DELETE FROM pauses WHERE channel = ?'),
      convergedAll: p('SELECT * FROM last_converged'),
      convergedUpsert: p(`INSERT INTO last_converged (channel, target_ref) VALUES (?, ?) ON CONFLICT(channel) DO UPDATE SET target_ref = excluded.target_ref`),
      convergedDelete: p('DELETE FROM last_converged WHERE channel = ?'),
      deferralAll: p('SELECT * FROM deferrals'),
      deferralUpsert: p(`INSERT INTO deferrals (channel, rollout_id, reason, since_ms) VALUES (@channel, @rolloutId, @reason, @sinceMs)
        ON CONFLICT(channel) DO UPDATE SET rollout_id = excluded.rollout_id, reason = excluded.reason, since_ms = excluded.since_ms`),
      deferralDelete: p('DELETE FROM deferrals WHERE channel = ?'),
      reportInsert: p(`INSERT INTO reports (hostname, received_ms, event, rollout_id, report_json, signature, verdict)
        VALUES (@hostname, @receivedMs, @event, @rolloutId, @reportJson, @signature, @verdict)`),
      reportCount: p('SELECT COUNT(*) AS n FROM reports'),
      artifactGet: p('SELECT * FROM artifacts WHERE kind = ?'),
      artifactPut: p(`INSERT INTO artifacts (kind, signed_at, sha256, bytes, signature, accepted_ms) VALUES (@kind, @signedAt, @sha256, @bytes, @signature, @acceptedMs)
        ON CONFLICT(kind) DO UPDATE SET signed_at = excluded.signed_at, sha256 = excluded.sha256, bytes = excluded.bytes,
          signature = excluded.signature, accepted_ms = excluded.accepted_ms`),
      auditLast: p('SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1'),
      auditInsert: p(`INSERT INTO audit (seq, at, kind, actor, subject, data_json, prev_hash, hash)
        VALUES (@seq, @at, @kind, @actor, @subject, @dataJson, @prevHash, @hash)`),
      auditPage: p('SELECT * FROM audit WHERE seq > ? ORDER BY seq LIMIT ?'),
      auditAll: p('SELECT * FROM audit ORDER BY seq'),
    };
  }

  close(): void {
    this.commitGroup();
    this.db.close();
  }

  /** Run `fn` in one write transaction (IMMEDIATE: take the write lock up front). */
  tx<T>(fn: () => T): T {
    if (this.depth > 0) return fn(); // nested in a running transaction body
    this.commitGroup(); // grouped writes that wait for their commit go first, in order
    this.depth++;
    try {
      return this.runTx.immediate(fn) as T;
    } catch (e) {
      this.resyncAudit(); // the audit rows of the rolled-back transaction are gone
      throw e;
    } finally {
      this.depth--;
    }
  }

  /**
   * Group commit (issue 9): run `fn` in the write transaction shared by every grouped caller of
   * this turn of the event loop, inside its own savepoint (a throw undoes its own writes only).
   * The shared transaction commits once, on `setImmediate`, or earlier when `tx` or `close` needs
   * the database; `committed` settles then. A caller must not answer before `committed` resolves:
   * what it answers is then as durable as a `tx` commit. If the commit fails, every grouped write
   * of that turn is rolled back, `committed` rejects for each caller and `onGroupRollback` runs
   * (in-memory mirrors of the rows must be reloaded).
   */
  txGrouped<T>(fn: () => T): { value: T; committed: Promise<void> } {
    if (this.depth > 0) return { value: fn(), committed: Promise.resolve() };
    if (this.group === null) {
      this.s.begin.run();
      this.group = { settle: [] };
      setImmediate(() => this.commitGroup());
    }
    this.depth++;
    let value: T;
    try {
      value = this.runTx(fn) as T; // inside the open transaction better-sqlite3 uses a savepoint
    } catch (e) {
      this.resyncAudit();
      throw e;
    } finally {
      this.depth--;
    }
    const g = this.group;
    const committed = new Promise<void>((resolve, reject) => g.settle.push({ resolve, reject }));
    return { value, committed };
  }

  /** Commit the grouped transaction now (no-op when none is open). */
  commitGroup(): void {
    const g = this.group;
    if (g === null) return;
    this.group = null;
    try {
      this.s.commit.run();
    } catch (e) {
      try {
        if (this.db.inTransaction) this.s.rollback.run();
      } catch {
        // the connection already rolled back
      }
      this.resyncAudit();
      this.onGroupRollback?.(e);
      for (const w of g.settle) w.reject(e);
      return;
    }
    for (const w of g.settle) w.resolve();
  }

  // ------------------------------------------------------------------------------------------
  // Hosts

  getHost(hostname: string): HostRow | null {
    const r = this.s.hostGet.get(hostname) as Row | undefined;
    return r === undefined ? null : toHostRow(r);
  }

  allHosts(): HostRow[] {
    return (this.s.hostAll.all() as Row[]).map(toHostRow);
  }

  putHost(h: HostRow): void {
    this.s.hostUpsert.run({
      hostname: h.hostname,
      lastCheckinMs: h.lastCheckinMs,
      currentClosure: h.currentClosure,
      bootId: h.bootId,
      probesObserved: h.probesObserved ? 1 : 0,
      probesPassing: h.probesPassing ? 1 : 0,
      failedUnits: JSON.stringify(h.failedUnits),
      complianceFailures: h.complianceFailures === null ? null : JSON.stringify(h.complianceFailures),
      probesJson: h.probesJson,
      lastOutcomeJson: h.lastOutcomeJson,
      pendingReboot: h.pendingReboot ? 1 : 0,
      agentVersion: h.agentVersion,
    });
  }

  setPendingReboot(hostname: string, pending: boolean): void {
    this.s.hostPendingReboot.run(pending ? 1 : 0, hostname);
  }

  private putObservation(hostname: string, o: HostObservation): void {
    this.s.hostObsUpdate.run({
      hostname,
      lastCheckinMs: o.lastCheckinMs,
      currentClosure: o.currentClosure,
      bootId: o.bootId,
      probesObserved: o.probes.observed ? 1 : 0,
      probesPassing: o.probes.passing ? 1 : 0,
      failedUnits: JSON.stringify(o.failedUnits),
      complianceFailures: o.complianceFailures === undefined ? null : JSON.stringify(o.complianceFailures),
    });
  }

  // ------------------------------------------------------------------------------------------
  // Observed state

  /** Everything the reconciler reads (rollout histories empty; see the file comment). */
  loadObserved(): Observed {
    const hosts: Record<string, HostObservation> = {};
    for (const r of this.s.hostAll.all() as Row[]) hosts[r['hostname']] = toObservation(toHostRow(r));
    const rollouts: Record<string, Rollout> = {};
    for (const r of this.s.rolloutsLoad.all() as Row[]) {
      const row = toRolloutRow(r);
      const rhs: Record<string, RolloutHost> = {};
      for (const h of this.s.rhAllFor.all(row.id) as Row[]) rhs[h['hostname']] = toRolloutHost(h);
      rollouts[row.id] = this.toRollout(row, rhs);
    }
    return { hosts, rollouts, ...this.loadChannelState() };
  }

  /**
   * The part of Observed one host event can touch: this host's observation and, for every rollout
   * holding the host that is not Superseded (a Converged one still dispatches a host returning
   * from offline), the rollout with only this host in `hosts`. Channel-level maps are empty: host
   * events do not use them.
   */
  loadHostSlice(hostname: string): Observed {
    const hosts: Record<string, HostObservation> = {};
    const h = this.getHost(hostname);
    if (h !== null) hosts[hostname] = toObservation(h);
    const rollouts: Record<string, Rollout> = {};
    for (const rh of this.s.rhLiveForHost.all(hostname) as Row[]) {
      const r = this.s.rolloutGet.get(rh['rollout_id']) as Row | undefined;
      if (r === undefined) continue;
      const row = toRolloutRow(r);
      rollouts[row.id] = this.toRollout(row, { [hostname]: toRolloutHost(rh) });
    }
    // Host events never read or write the channel-level maps (reconciler/apply.ts), so the hot
    // check-in path skips loading them; persistObserved sees them unchanged (empty → empty).
    return { hosts, rollouts, quarantinedClosures: {}, pausedChannels: {}, lastConverged: {}, deferrals: {} };
  }

  private toRollout(row: RolloutRow, hosts: Record<string, RolloutHost>): Rollout {
    return {
      id: row.id,
      channel: row.channel,
      targetRef: row.targetRef,
      state: row.state,
      currentWave: row.currentWave,
      waveCount: row.waveCount,
      openedAtMs: row.openedAtMs,
      startedAtMs: row.startedAtMs,
      stateReason: row.stateReason,
      hosts,
      history: [],
    };
  }

  /** The channel-level maps (quarantines, pauses, last converged, deferrals): small tables. */
  loadChannelState(): Pick<Observed, 'quarantinedClosures' | 'pausedChannels' | 'lastConverged' | 'deferrals'> {
    const quarantinedClosures: Record<string, string[]> = {};
    for (const q of this.s.quarantineAll.all() as Row[]) (quarantinedClosures[q['channel']] ??= []).push(q['closure']);
    const pausedChannels: Record<string, PauseInfo> = {};
    for (const p of this.s.pauseAll.all() as Row[]) pausedChannels[p['channel']] = { sinceMs: p['since_ms'], reason: p['reason'] };
    const lastConverged: Record<string, string> = {};
    for (const c of this.s.convergedAll.all() as Row[]) lastConverged[c['channel']] = c['target_ref'];
    const deferrals: Record<string, Deferral> = {};
    for (const d of this.s.deferralAll.all() as Row[]) deferrals[d['channel']] = { rolloutId: d['rollout_id'], reason: d['reason'], sinceMs: d['since_ms'] };
    return { quarantinedClosures, pausedChannels, lastConverged, deferrals };
  }

  /**
   * Write what changed between `before` (as loaded) and `after` (after the reconciler's
   * transitions). Returns the new transitions (for the audit). Call inside `tx`.
   * Quarantines added here get their metadata from `quarantineMeta` (keyed `channel\0closure`).
   */
  persistObserved(
    before: Observed,
    after: Observed,
    nowMs: number,
    origin: RolloutOrigin,
    quarantineMeta: ReadonlyMap<string, Omit<QuarantineRow, 'channel' | 'closure'>> = new Map(),
  ): TransitionRow[] {
    // Reference equality first: applyActions / applyHostEvents copy only what they change.
    if (before.hosts !== after.hosts) {
      for (const [h, o] of Object.entries(after.hosts)) {
        const b = before.hosts[h];
        if (b !== o && !sameHostObs(b, o)) this.putObservation(h, o);
      }
    }
    const newTransitions: TransitionRow[] = [];
    for (const [id, r] of Object.entries(after.rollouts)) {
      const b = before.rollouts[id];
      if (b === r) continue;
      if (b === undefined) {
        this.s.rhDeleteFor.run(id); // rows of an earlier, superseded incarnation of this id
        this.s.rolloutInsert.run({
          id,
          channel: r.channel,
          targetRef: r.targetRef,
          state: r.state,
          currentWave: r.currentWave,
          waveCount: r.waveCount,
          openedAtMs: r.openedAtMs,
          startedAtMs: r.startedAtMs,
          stateReason: r.stateReason,
          signedAt: origin.signedAt,
          artifactSha256: origin.artifactSha256,
          updatedAtMs: nowMs,
        });
      } else if (
        b.state !== r.state ||
        b.currentWave !== r.currentWave ||
        b.waveCount !== r.waveCount ||
        b.startedAtMs !== r.startedAtMs ||
        b.openedAtMs !== r.openedAtMs ||
        b.stateReason !== r.stateReason
      ) {
        this.s.rolloutUpdate.run({
          id,
          openedAtMs: r.openedAtMs,
          state: r.state,
          currentWave: r.currentWave,
          waveCount: r.waveCount,
          startedAtMs: r.startedAtMs,
          stateReason: r.stateReason,
          updatedAtMs: nowMs,
        });
      }
      for (const [h, rh] of Object.entries(r.hosts)) {
        const bh = b?.hosts[h];
        if (bh === rh || sameRolloutHost(bh, rh)) continue;
        this.s.rhUpsert.run({
          rolloutId: id,
          hostname: h,
          state: rh.state,
          enteredAtMs: rh.enteredAtMs,
          closure: rh.closure,
          wave: rh.wave,
          skipJson: rh.skip === null ? null : JSON.stringify(rh.skip),
          rollbackRequested: rh.rollbackRequested ? 1 : 0,
        });
      }
      const fresh = r.history.slice(b?.history.length ?? 0);
      for (const t of fresh) {
        const row: TransitionRow = { rolloutId: id, atMs: t.atMs, hostname: t.host, from: t.from, to: t.to, wave: t.wave, reason: t.reason };
        this.s.transitionInsert.run(row);
        newTransitions.push(row);
      }
    }
    // Channel-level maps.
    const bq = new Set(Object.entries(before.quarantinedClosures).flatMap(([c, cs]) => cs.map((x) => `${c}\0${x}`)));
    const aq = new Set(Object.entries(after.quarantinedClosures).flatMap(([c, cs]) => cs.map((x) => `${c}\0${x}`)));
    for (const k of aq) {
      if (bq.has(k)) continue;
      const [channel, closure] = k.split('\0') as [string, string];
      const meta = quarantineMeta.get(k) ?? { rolloutId: null, hostname: null, reason: 'quarantined by the reconciler', sinceMs: nowMs };
      this.s.quarantineInsert.run({ channel, closure, ...meta });
    }
    for (const k of bq) {
      if (aq.has(k)) continue;
      const [channel, closure] = k.split('\0') as [string, string];
      this.s.quarantineDeleteOne.run(channel, closure);
    }
    for (const [c, t] of Object.entries(after.lastConverged)) if (before.lastConverged[c] !== t) this.s.convergedUpsert.run(c, t);
    for (const c of Object.keys(before.lastConverged)) if (!(c in after.lastConverged)) this.s.convergedDelete.run(c);
    for (const [c, d] of Object.entries(after.deferrals)) {
      const bd = before.deferrals[c];
      if (bd === undefined || bd.rolloutId !== d.rolloutId || bd.reason !== d.reason || bd.sinceMs !== d.sinceMs) {
        this.s.deferralUpsert.run({ channel: c, rolloutId: d.rolloutId, reason: d.reason, sinceMs: d.sinceMs });
      }
    }
    for (const c of Object.keys(before.deferrals)) if (!(c in after.deferrals)) this.s.deferralDelete.run(c);
    // pausedChannels are operator state: written by setPause / clearPause only.
    return newTransitions;
  }

  // ------------------------------------------------------------------------------------------
  // Rollouts (read side)

  allRollouts(): RolloutRow[] {
    return (this.s.rolloutAll.all() as Row[]).map(toRolloutRow);
  }

  getRollout(id: string): RolloutRow | null {
    const r = this.s.rolloutGet.get(id) as Row | undefined;
    return r === undefined ? null : toRolloutRow(r);
  }

  rolloutHosts(id: string): RolloutHostRow[] {
    return (this.s.rhAllFor.all(id) as Row[]).map((r) => ({
      rolloutId: id,
      hostname: r['hostname'],
      state: r['state'],
      enteredAtMs: r['entered_at_ms'],
      closure: r['closure'],
      wave: r['wave'],
      skipJson: r['skip_json'],
    }));
  }

  rolloutHostCounts(id: string): Partial<Record<HostRolloutState, number>> {
    const out: Partial<Record<HostRolloutState, number>> = {};
    for (const r of this.s.rhCountsByState.all(id) as Row[]) out[r['state'] as HostRolloutState] = r['n'];
    return out;
  }

  hostRolloutRows(hostname: string): RolloutHostRow[] {
    return (this.s.rhForHost.all(hostname) as Row[]).map((r) => ({
      rolloutId: r['rollout_id'],
      hostname,
      state: r['state'],
      enteredAtMs: r['entered_at_ms'],
      closure: r['closure'],
      wave: r['wave'],
      skipJson: r['skip_json'],
    }));
  }

  transitions(id: string): TransitionRow[] {
    return (this.s.transitionsFor.all(id) as Row[]).map((r) => ({
      rolloutId: id,
      atMs: r['at_ms'],
      hostname: r['hostname'],
      from: r['from_state'],
      to: r['to_state'],
      wave: r['wave'],
      reason: r['reason'],
    }));
  }

  /** Per host, its row in the newest rollout that holds it. */
  newestRolloutRowPerHost(): Map<string, RolloutHostRow> {
    const out = new Map<string, RolloutHostRow>();
    for (const r of this.s.rhNewestPerHost.iterate() as IterableIterator<Row>) {
      const h = r['hostname'] as string;
      if (out.has(h)) continue;
      out.set(h, { rolloutId: r['rollout_id'], hostname: h, state: r['state'], enteredAtMs: r['entered_at_ms'], closure: r['closure'], wave: r['wave'], skipJson: r['skip_json'] });
    }
    return out;
  }

  /** Hosts by state in the newest rollout of each channel. */
  hostStateCounts(): Record<string, number> {
    const out: Record<string, number> = {};
    for (const r of this.s.hostStateCounts.all() as Row[]) out[r['state']] = r['n'];
    return out;
  }

  rolloutStateCounts(): Record<string, number> {
    const out: Record<string, number> = {};
    for (const r of this.s.rolloutCounts.all() as Row[]) out[r['state']] = r['n'];
    return out;
  }

  // ------------------------------------------------------------------------------------------
  // Dispatches

  getDispatch(rolloutId: string, hostname: string): DispatchRow | null {
    const r = this.s.dispatchGet.get(rolloutId, hostname) as Row | undefined;
    return r === undefined ? null : toDispatch(r);
  }

  pendingDispatchFor(hostname: string): DispatchRow | null {
    const r = this.s.dispatchPendingForHost.get(hostname) as Row | undefined;
    return r === undefined ? null : toDispatch(r);
  }

  rollbackFor(hostname: string): DispatchRow | null {
    const r = this.s.dispatchRollbackForHost.get(hostname) as Row | undefined;
    return r === undefined ? null : toDispatch(r);
  }

  pendingDispatches(): DispatchRow[] {
    return (this.s.dispatchPendingAll.all() as Row[]).map(toDispatch);
  }

  putDispatch(d: { rolloutId: string; hostname: string; channel: string; closure: string; wave: number; createdMs: number }): void {
    this.s.dispatchInsert.run(d);
  }

  /** First hand-over of a target: starts the confirm clock. No-op when already delivered. */
  deliverDispatch(rolloutId: string, hostname: string, deliveredMs: number, deadlineMs: number): void {
    this.s.dispatchDeliver.run({ rolloutId, hostname, deliveredMs, deadlineMs });
  }

  finishDispatch(rolloutId: string, hostname: string, status: DispatchStatus, finishedMs: number, rollbackReason: string | null = null): void {
    this.s.dispatchFinish.run({ rolloutId, hostname, status, finishedMs, rollbackReason });
  }

  clearRollback(rolloutId: string, hostname: string): void {
    this.s.dispatchClearRollback.run(rolloutId, hostname);
  }

  cancelUndelivered(rolloutId: string, finishedMs: number): number {
    return this.s.dispatchCancelUndelivered.run({ rolloutId, finishedMs }).changes;
  }

  expiredDispatches(nowMs: number): DispatchRow[] {
    return (this.s.dispatchExpired.all(nowMs) as Row[]).map(toDispatch);
  }

  // ------------------------------------------------------------------------------------------
  // Quarantines and pauses (operator state)

  quarantines(): QuarantineRow[] {
    return (this.s.quarantineAll.all() as Row[]).map((r) => ({
      channel: r['channel'],
      closure: r['closure'],
      rolloutId: r['rollout_id'],
      hostname: r['hostname'],
      reason: r['reason'],
      sinceMs: r['since_ms'],
    }));
  }

  clearQuarantines(channel: string, closure: string | null): number {
    return closure === null ? this.s.quarantineDeleteChannel.run(channel).changes : this.s.quarantineDeleteOne.run(channel, closure).changes;
  }

  getPause(channel: string): PauseRow | null {
    const r = this.s.pauseGet.get(channel) as Row | undefined;
    return r === undefined ? null : { channel, sinceMs: r['since_ms'], reason: r['reason'], by: r['by_actor'] };
  }

  setPause(p: PauseRow): void {
    this.s.pauseUpsert.run(p);
  }

  clearPause(channel: string): boolean {
    return this.s.pauseDelete.run(channel).changes > 0;
  }

  // ------------------------------------------------------------------------------------------
  // Reports

  insertReport(r: { hostname: string; receivedMs: number; event: string; rolloutId: string | null; reportJson: string; signature: string | null; verdict: string }): number {
    return Number(this.s.reportInsert.run(r).lastInsertRowid);
  }

  reportCount(): number {
    return (this.s.reportCount.get() as Row)['n'];
  }

  // ------------------------------------------------------------------------------------------
  // Accepted artefacts (rollback protection across restarts)

  getArtifact(kind: 'fleet' | 'revocations'): ArtifactRow | null {
    const r = this.s.artifactGet.get(kind) as Row | undefined;
    if (r === undefined) return null;
    return { kind, signedAt: r['signed_at'], sha256: r['sha256'], bytes: new Uint8Array(r['bytes']), signature: new Uint8Array(r['signature']), acceptedMs: r['accepted_ms'] };
  }

  putArtifact(a: ArtifactRow): void {
    this.s.artifactPut.run({ ...a, bytes: Buffer.from(a.bytes), signature: Buffer.from(a.signature) });
  }

  // ------------------------------------------------------------------------------------------
  // Audit

  /** Append one entry to the hash chain. Call inside `tx` when it goes with a state change. */
  appendAudit(e: AuditInput): AuditEntry {
    // Round-trip through JSON so that what is hashed is exactly what is stored and served.
    const data: unknown = e.data === undefined ? null : JSON.parse(JSON.stringify(e.data));
    const entry = { seq: this.lastAuditSeq + 1, at: iso(e.atMs), kind: e.kind, actor: e.actor, subject: e.subject, data, prevHash: this.lastAuditHash };
    const hash = auditEntryHash(entry);
    this.s.auditInsert.run({ seq: entry.seq, at: entry.at, kind: entry.kind, actor: entry.actor, subject: entry.subject, dataJson: JSON.stringify(entry.data), prevHash: entry.prevHash, hash });
    // Only advance the in-memory head once the row is written; a rolled-back transaction resets it
    // through `resyncAudit`.
    this.lastAuditSeq = entry.seq;
    this.lastAuditHash = hash;
    return { ...entry, hash };
  }

  /** Re-read the chain head (after a rolled-back transaction). */
  resyncAudit(): void {
    const last = this.s.auditLast.get() as Row | undefined;
    this.lastAuditHash = last === undefined ? GENESIS_HASH : last['hash'];
    this.lastAuditSeq = last === undefined ? 0 : last['seq'];
  }

  auditPage(after: number, limit: number): AuditEntry[] {
    return (this.s.auditPage.all(after, limit) as Row[]).map(toAudit);
  }

  auditAll(): AuditEntry[] {
    return (this.s.auditAll.all() as Row[]).map(toAudit);
  }
}

function toAudit(r: Row): AuditEntry {
  return { seq: r['seq'], at: r['at'], kind: r['kind'], actor: r['actor'], subject: r['subject'], data: JSON.parse(r['data_json']), prevHash: r['prev_hash'], hash: r['hash'] };
}

export type { Transition };
