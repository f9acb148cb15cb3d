/**
 * The SQLite `Store` (better-sqlite3, WAL, one writer: this process). Synchronous: every method
 * answers with a value, so the control plane's `await`s cost a microtask and no I/O wait.
 *
 * Writes arrive as lists (`Write[]`, see `plan.ts`) applied in one transaction (`apply`) or, for
 * check-ins, in the group commit (`applyGrouped`): the check-ins of one event-loop turn share one
 * write transaction, each in its own savepoint, committed once — that halved the CPU per check-in
 * (docs/performance.md).
 */
import Database from 'better-sqlite3';
import { closeSync, openSync } from 'node:fs';
import { anchorSqlite, prunedAnything, prunedEntry, pruneSqlite, type AuditAnchor, type PruneResult } from './retention.ts';
import type { HostRolloutState, Observed } from '../../reconciler/types.ts';
import { AuditTable } from './audit.ts';
import { ChannelStateTables } from './channel-state.ts';
import { DispatchesTable, NO_DISPATCH } from './dispatches.ts';
import { EvidenceTables } from './evidence.ts';
import { HostsTable, toObservation } from './hosts.ts';
import { migrate } from './migrations.ts';
import { ArtifactsTable, ReportsTable } from './reports.ts';
import { RolloutsTable } from './rollouts.ts';
import { WitnessTable, type WitnessRow } from './witness.ts';
import type {
  ApplyResult,
  ArtifactKind,
  ArtifactRow,
  AuditEntry,
  AuditInput,
  ChannelState,
  DispatchRow,
  EvidenceRow,
  Fence,
  HostObservation,
  HostRow,
  PauseRow,
  QuarantineRow,
  RolloutHostRow,
  RolloutRow,
  Store,
  TransitionRow,
  Write,
} from './types.ts';

export class SqliteStore implements Store {
  readonly db: Database.Database;
  /** Public for `flushTouches` (issue 19: quiet check-ins written in batches). */
  readonly hostsT: HostsTable;
  private readonly rolloutsT: RolloutsTable;
  private readonly dispatchesT: DispatchesTable;
  private readonly channelsT: ChannelStateTables;
  private readonly reportsT: ReportsTable;
  private readonly artifactsT: ArtifactsTable;
  private readonly witnessT: WitnessTable;
  private readonly auditT: AuditTable;
  private readonly evidenceT: EvidenceTables;
  private readonly begin: Database.Statement<[]>;
  private readonly commit: Database.Statement<[]>;
  private readonly rollback: Database.Statement<[]>;
  /** One transaction wrapper for every call (better-sqlite3 passes the arguments through). */
  private readonly runTx: Database.Transaction<(fn: () => unknown) => unknown>;
  /** Transaction bodies running now (`tx` / `txGrouped` nest instead of starting another). */
  private depth = 0;
  /** The open grouped transaction and the callers waiting for its commit. */
  private group: { settle: { resolve(): void; reject(e: unknown): void }[] } | null = null;
  onGroupRollback: ((e: unknown) => void) | null = null;

  constructor(path: string) {
    // The database holds host reports and the audit chain: owner-only (0600). SQLite creates the
    // -wal and -shm files with the database file's mode; an existing file keeps its mode.
    if (path !== ':memory:' && !path.startsWith('file:')) closeSync(openSync(path, 'a', 0o600));
    this.db = new Database(path);
    this.db.pragma('journal_mode = WAL');
    // WAL + NORMAL: a crash can lose the last transactions but never corrupts; everything here
    // is rebuildable from the artefact source and check-ins (SPEC §5).
    this.db.pragma('synchronous = NORMAL');
    this.db.pragma('foreign_keys = ON');
    this.db.pragma('busy_timeout = 5000');
    migrate(this.db);
    this.hostsT = new HostsTable(this.db, (fn) => this.tx(fn));
    this.rolloutsT = new RolloutsTable(this.db);
    this.dispatchesT = new DispatchesTable(this.db);
    this.channelsT = new ChannelStateTables(this.db);
    this.reportsT = new ReportsTable(this.db);
    this.artifactsT = new ArtifactsTable(this.db);
    this.witnessT = new WitnessTable(this.db);
    this.auditT = new AuditTable(this.db);
    this.evidenceT = new EvidenceTables(this.db);
    this.begin = this.db.prepare('BEGIN IMMEDIATE');
    this.commit = this.db.prepare('COMMIT');
    this.rollback = this.db.prepare('ROLLBACK');
    this.runTx = this.db.transaction((fn: () => unknown) => fn());
  }

  close(): void {
    this.hostsT.flushTouches();
    this.commitGroup();
    this.db.close();
  }

  // ------------------------------------------------------------------------------------------
  // Transactions

  /** Run `fn` in one write transaction (IMMEDIATE: take the write lock up front). */
  tx<T>(fn: () => T): T {
    if (this.depth > 0) return fn(); // nested in a running transaction body
    this.commitGroup(); // grouped writes that wait for their commit go first, in order
    this.depth++;
    try {
      return this.runTx.immediate(fn) as T;
    } catch (e) {
      this.resync(); // the rows of the rolled-back transaction are gone
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
    const g = this.openGroup();
    this.depth++;
    let value: T;
    try {
      value = this.runTx(fn) as T; // inside the open transaction better-sqlite3 uses a savepoint
    } catch (e) {
      this.resync();
      throw e;
    } finally {
      this.depth--;
    }
    const committed = new Promise<void>((resolve, reject) => g.settle.push({ resolve, reject }));
    return { value, committed };
  }

  /** The open grouped transaction, begun now (and committed on `setImmediate`) when there is none. */
  private openGroup(): { settle: { resolve(): void; reject(e: unknown): void }[] } {
    if (this.group === null) {
      this.begin.run();
      this.group = { settle: [] };
      setImmediate(() => this.commitGroup());
    }
    return this.group;
  }

  /** After a rollback: what is kept in memory of the rows (audit head, quiet hosts) is read again. */
  private resync(): void {
    this.auditT.resync();
    this.dispatchesT.forget();
  }

  /** Commit the grouped transaction now (no-op when none is open). */
  commitGroup(): void {
    const g = this.group;
    if (g === null) return;
    this.group = null;
    try {
      this.commit.run();
    } catch (e) {
      try {
        if (this.db.inTransaction) this.rollback.run();
      } catch {
        // the connection already rolled back
      }
      this.resync();
      this.onGroupRollback?.(e);
      for (const w of g.settle) w.reject(e);
      return;
    }
    for (const w of g.settle) w.resolve();
  }

  apply(writes: readonly Write[]): ApplyResult {
    return this.tx(() => this.applyNow(writes));
  }

  // One process owns the file: always the leader, nothing to fence.
  readonly shared = false;
  applyFenced(writes: readonly Write[], _fence: Fence): ApplyResult {
    return this.apply(writes);
  }
  lease(_holder: string, _leaseMs: number): number {
    return 1;
  }
  releaseLease(_holder: string): void {}
  leaseHolder(): null {
    return null;
  }
  auditAnchor(): AuditAnchor | null {
    return anchorSqlite(this.db);
  }
  prune(cutoffMs: number, nowMs: number, _fence: Fence): PruneResult {
    return this.tx(() => {
      const r = pruneSqlite(this.db, cutoffMs, nowMs);
      if (prunedAnything(r)) this.auditT.append(prunedEntry(r, nowMs));
      return r;
    });
  }
  notifyLeader(_from: string): void {}
  listenForWakeups(_onWake: (from: string) => void): void {}
  wakeupListener(): { listening: boolean; reconnects: number } {
    return { listening: false, reconnects: 0 };
  }

  /** Synchronous part first (the savepoint: throws on failure); the Promise settles with the group commit. */
  applyGrouped(writes: readonly Write[]): Promise<ApplyResult> {
    const { value, committed } = this.txGrouped(() => this.applyNow(writes));
    return committed.then(() => value);
  }

  /** Apply a list inside the running transaction. */
  private applyNow(writes: readonly Write[]): ApplyResult {
    const reportIds: number[] = [];
    for (const w of writes) {
      switch (w.kind) {
        case 'host.put':
          this.hostsT.put(w.row);
          break;
        case 'host.observation':
          this.hostsT.putObservation(w.hostname, w.observation);
          break;
        case 'host.pending-reboot':
          this.hostsT.setPendingReboot(w.hostname, w.pending);
          break;
        case 'rollout.insert':
          this.rolloutsT.insert(w.row);
          break;
        case 'rollout.update':
          this.rolloutsT.update(w.row);
          break;
        case 'rollout-host.put':
          this.rolloutsT.putHost(w.rolloutId, w.hostname, w.host);
          break;
        case 'transition':
          this.rolloutsT.insertTransition(w.row);
          break;
        case 'dispatch.put':
          this.dispatchesT.put({ rolloutId: w.rolloutId, hostname: w.hostname, channel: w.channel, closure: w.closure, wave: w.wave, createdMs: w.createdMs });
          break;
        case 'dispatch.deliver':
          this.dispatchesT.deliver(w.rolloutId, w.hostname, w.deliveredMs, w.deadlineMs);
          break;
        case 'dispatch.finish':
          this.dispatchesT.finish(w.rolloutId, w.hostname, w.status, w.finishedMs, w.rollbackReason, w.onlyIfPending);
          break;
        case 'dispatch.await-boot':
          this.dispatchesT.awaitBoot(w.rolloutId, w.hostname);
          break;
        case 'dispatch.clear-rollback':
          this.dispatchesT.clearRollback(w.rolloutId, w.hostname);
          break;
        case 'dispatch.withdraw': {
          const n = this.dispatchesT.withdrawUndelivered(w.rolloutId, w.finishedMs);
          if (n > 0) this.auditT.append({ ...w.auditIfAny, data: { undelivered: n, ...(w.auditIfAny.data as Record<string, unknown>) } });
          break;
        }
        case 'quarantine.put':
          this.channelsT.putQuarantine(w.row);
          break;
        case 'quarantine.delete':
          this.channelsT.deleteQuarantines(w.channel, w.closure);
          break;
        case 'pause.put':
          this.channelsT.putPause(w.row);
          break;
        case 'pause.delete':
          this.channelsT.deletePause(w.channel);
          break;
        case 'converged.put':
          this.channelsT.putConverged(w.channel, w.targetRef);
          break;
        case 'converged.delete':
          this.channelsT.deleteConverged(w.channel);
          break;
        case 'deferral.put':
          this.channelsT.putDeferral(w.channel, w.deferral);
          break;
        case 'drift.put':
          this.channelsT.putDrift(w.hostname, w.drift);
          break;
        case 'drift.delete':
          this.channelsT.deleteDrift(w.hostname);
          break;
        case 'controls.put':
          this.channelsT.putControls(w.rolloutId, w.controls);
          break;
        case 'controls.delete':
          this.channelsT.deleteControls(w.rolloutId);
          break;
        case 'deferral.delete':
          this.channelsT.deleteDeferral(w.channel);
          break;
        case 'report': {
          const id = this.reportsT.insert(w.row);
          reportIds.push(id);
          if (w.audit !== null) this.auditT.append({ ...w.audit, data: { id, ...w.audit.data } });
          break;
        }
        case 'artifact.put':
          this.artifactsT.put(w.row);
          break;
        case 'evidence':
          this.evidenceT.put(w.rows);
          break;
        case 'witness':
          this.witnessT.put(w.row);
          break;
        case 'audit':
          this.auditT.append(w.entry);
          break;
      }
    }
    return { reportIds };
  }

  // ------------------------------------------------------------------------------------------
  // Direct writes (tests and tools; the control plane goes through `apply`)

  /** Issue 19 (quiet-checkins.ts): written with the next batch (hosts.ts); read at once. */
  touchCheckin(hostname: string, lastCheckinMs: number, probes: readonly unknown[]): void {
    this.hostsT.touch(hostname, lastCheckinMs, probes);
  }

  putHost(h: HostRow): void {
    this.hostsT.put(h);
  }

  appendAudit(e: AuditInput): AuditEntry {
    return this.auditT.append(e);
  }

  putArtifact(a: ArtifactRow): void {
    this.artifactsT.put(a);
  }

  putDispatch(d: Omit<Extract<Write, { kind: 'dispatch.put' }>, 'kind'>): void {
    this.dispatchesT.put(d);
  }

  deliverDispatch(rolloutId: string, hostname: string, deliveredMs: number, deadlineMs: number): void {
    this.dispatchesT.deliver(rolloutId, hostname, deliveredMs, deadlineMs);
  }

  finishDispatch(rolloutId: string, hostname: string, status: DispatchRow['status'], finishedMs: number, rollbackReason: string | null = null): void {
    this.dispatchesT.finish(rolloutId, hostname, status, finishedMs, rollbackReason);
  }

  // ------------------------------------------------------------------------------------------
  // Observed state

  loadObserved(): Observed {
    const hosts: Record<string, HostObservation> = {};
    for (const h of this.hostsT.all()) hosts[h.hostname] = toObservation(h);
    return { hosts, rollouts: this.rolloutsT.loadLive(), ...this.channelsT.load() };
  }

  /**
   * The part of Observed one host event can touch: this host's observation and, for every rollout
   * holding the host that is not Superseded (a Converged one still dispatches a host returning
   * from offline), the rollout with only this host in `hosts`. Channel-level maps are empty: host
   * events do not use them.
   */
  loadHostSlice(hostname: string): Observed {
    const hosts: Record<string, HostObservation> = {};
    const h = this.hostsT.get(hostname);
    if (h !== null) hosts[hostname] = toObservation(h);
    return { hosts, rollouts: this.rolloutsT.loadForHost(hostname), quarantinedClosures: {}, pausedChannels: {}, lastConverged: {}, deferrals: {} };
  }

  loadChannelState(): ChannelState {
    return this.channelsT.load();
  }

  // ------------------------------------------------------------------------------------------
  // Reads

  getHost(hostname: string): HostRow | null {
    return this.hostsT.get(hostname);
  }

  allHosts(): HostRow[] {
    return this.hostsT.all();
  }

  getRollout(id: string): RolloutRow | null {
    return this.rolloutsT.get(id);
  }

  allRollouts(): RolloutRow[] {
    return this.rolloutsT.all();
  }

  rolloutHosts(id: string): RolloutHostRow[] {
    return this.rolloutsT.hosts(id);
  }

  rolloutHostCounts(id: string): Partial<Record<HostRolloutState, number>> {
    return this.rolloutsT.hostCounts(id);
  }

  transitions(id: string): TransitionRow[] {
    return this.rolloutsT.transitions(id);
  }

  newestRolloutRowPerHost(): Map<string, RolloutHostRow> {
    return this.rolloutsT.newestRowPerHost();
  }

  hostStateCounts(): Record<string, number> {
    return this.rolloutsT.hostStateCounts();
  }

  rolloutStateCounts(): Record<string, number> {
    return this.rolloutsT.stateCounts();
  }

  /** Read inside the grouped transaction the check-in's writes then join (opened here if needed). */
  checkinReads(hostname: string): { pending: DispatchRow | null; rollback: DispatchRow | null } {
    // A host with neither (the steady state) is answered from memory: no read, no transaction.
    if (this.dispatchesT.isQuiet(hostname)) return NO_DISPATCH;
    if (this.depth === 0) this.openGroup();
    return this.dispatchesT.checkinRows(hostname);
  }

  getDispatch(rolloutId: string, hostname: string): DispatchRow | null {
    return this.dispatchesT.get(rolloutId, hostname);
  }

  pendingDispatchFor(hostname: string): DispatchRow | null {
    return this.dispatchesT.pendingFor(hostname);
  }

  rollbackFor(hostname: string): DispatchRow | null {
    return this.dispatchesT.rollbackFor(hostname);
  }

  pendingDispatches(): DispatchRow[] {
    return this.dispatchesT.pending();
  }

  expiredDispatches(nowMs: number): DispatchRow[] {
    return this.dispatchesT.expired(nowMs);
  }

  quarantines(): QuarantineRow[] {
    return this.channelsT.quarantines();
  }

  getPause(channel: string): PauseRow | null {
    return this.channelsT.getPause(channel);
  }

  reportCount(): number {
    return this.reportsT.count();
  }

  getArtifact(kind: ArtifactKind): ArtifactRow | null {
    return this.artifactsT.get(kind);
  }

  artifactHistory(kind: ArtifactKind): ArtifactRow[] {
    return this.artifactsT.history(kind);
  }

  /** From memory (every check-in answers with it): the one writer's own head is the table's. */
  auditHead(): { seq: number; hash: string } | null {
    return this.auditT.head();
  }

  witnesses(): WitnessRow[] {
    return this.witnessT.all();
  }

  auditPage(after: number, limit: number): AuditEntry[] {
    return this.auditT.page(after, limit);
  }

  auditAll(): AuditEntry[] {
    return this.auditT.all();
  }

  latestEvidence(): EvidenceRow[] {
    return this.evidenceT.latest();
  }

  evidenceHistory(fromMs: number, toMs: number): EvidenceRow[] {
    return this.evidenceT.between(fromMs, toMs);
  }
}
