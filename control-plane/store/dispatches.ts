/** SQLite table `dispatches`: targets handed out, their confirm deadlines and how they ended. */
import type Database from 'better-sqlite3';
import type { DispatchRow, DispatchStatus, Write } from './types.ts';

export type DispatchRecord = {
  rollout_id: string;
  hostname: string;
  channel: string;
  closure: string;
  wave: number;
  created_ms: number;
  delivered_ms: number | null;
  deadline_ms: number | null;
  status: DispatchStatus;
  finished_ms: number | null;
  rollback_reason: string | null;
};

type FinishParams = { rolloutId: string; hostname: string; status: DispatchStatus; finishedMs: number; rollbackReason: string | null };

export const toDispatch = (r: DispatchRecord): DispatchRow => ({
  rolloutId: r.rollout_id,
  hostname: r.hostname,
  channel: r.channel,
  closure: r.closure,
  wave: r.wave,
  createdMs: r.created_ms,
  deliveredMs: r.delivered_ms,
  deadlineMs: r.deadline_ms,
  status: r.status,
  finishedMs: r.finished_ms,
  rollbackReason: r.rollback_reason,
});

/** What a check-in reads for a host with neither a pending dispatch nor a rollback (one object for all). */
export const NO_DISPATCH = Object.freeze({ pending: null, rollback: null });

export class DispatchesTable {
  private readonly get_: Database.Statement<[string, string], DispatchRecord>;
  private readonly pendingForHost: Database.Statement<[string], DispatchRecord>;
  private readonly rollbackForHost: Database.Statement<[string], DispatchRecord>;
  private readonly insert: Database.Statement<[Omit<Extract<Write, { kind: 'dispatch.put' }>, 'kind'>]>;
  private readonly deliver_: Database.Statement<[{ rolloutId: string; hostname: string; deliveredMs: number; deadlineMs: number }]>;
  private readonly finish_: Database.Statement<[FinishParams]>;
  private readonly finishPending: Database.Statement<[FinishParams]>;
  private readonly cancelUndelivered: Database.Statement<[{ rolloutId: string; finishedMs: number }]>;
  private readonly pendingAll: Database.Statement<[], DispatchRecord>;
  private readonly expired_: Database.Statement<[number], DispatchRecord>;
  private readonly clearRollback_: Database.Statement<[string, string]>;
  private readonly awaitBoot_: Database.Statement<[string, string]>;

  constructor(db: Database.Database) {
    this.get_ = db.prepare('SELECT * FROM dispatches WHERE rollout_id = ? AND hostname = ?');
    this.pendingForHost = db.prepare(`SELECT * FROM dispatches WHERE hostname = ? AND status = 'pending' ORDER BY created_ms DESC LIMIT 1`);
    this.rollbackForHost = db.prepare(`SELECT * FROM dispatches WHERE hostname = ? AND status = 'cancelled' AND rollback_reason IS NOT NULL
        ORDER BY created_ms DESC LIMIT 1`);
    this.insert = db.prepare(`INSERT INTO dispatches (rollout_id, hostname, channel, closure, wave, created_ms, delivered_ms, deadline_ms, status, finished_ms, rollback_reason)
      VALUES (@rolloutId, @hostname, @channel, @closure, @wave, @createdMs, NULL, NULL, 'pending', NULL, NULL)
      ON CONFLICT(rollout_id, hostname) DO UPDATE SET closure = excluded.closure, wave = excluded.wave, created_ms = excluded.created_ms,
        delivered_ms = NULL, deadline_ms = NULL, status = 'pending', finished_ms = NULL, rollback_reason = NULL`);
    this.deliver_ = db.prepare(`UPDATE dispatches SET delivered_ms = @deliveredMs, deadline_ms = @deadlineMs
      WHERE rollout_id = @rolloutId AND hostname = @hostname AND delivered_ms IS NULL`);
    this.finish_ = db.prepare(`UPDATE dispatches SET status = @status, finished_ms = @finishedMs, rollback_reason = @rollbackReason
      WHERE rollout_id = @rolloutId AND hostname = @hostname`);
    this.finishPending = db.prepare(`UPDATE dispatches SET status = @status, finished_ms = @finishedMs, rollback_reason = @rollbackReason
      WHERE rollout_id = @rolloutId AND hostname = @hostname AND status = 'pending'`);
    this.cancelUndelivered = db.prepare(`UPDATE dispatches SET status = 'cancelled', finished_ms = @finishedMs
      WHERE rollout_id = @rolloutId AND status = 'pending' AND delivered_ms IS NULL`);
    this.pendingAll = db.prepare(`SELECT * FROM dispatches WHERE status = 'pending'`);
    this.expired_ = db.prepare(`SELECT * FROM dispatches WHERE status = 'pending' AND deadline_ms IS NOT NULL AND deadline_ms <= ? ORDER BY deadline_ms LIMIT 1000`);
    this.clearRollback_ = db.prepare(`UPDATE dispatches SET rollback_reason = NULL WHERE rollout_id = ? AND hostname = ?`);
    this.awaitBoot_ = db.prepare(`UPDATE dispatches SET deadline_ms = NULL WHERE rollout_id = ? AND hostname = ? AND status = 'pending'`);
  }

  /** Issue 14: no confirm deadline while a deferred activation waits for the boot. */
  awaitBoot(rolloutId: string, hostname: string): void {
    this.quiet.delete(hostname);
    this.awaitBoot_.run(rolloutId, hostname);
  }

  get(rolloutId: string, hostname: string): DispatchRow | null {
    const r = this.get_.get(rolloutId, hostname);
    return r === undefined ? null : toDispatch(r);
  }

  /**
   * Hosts known to have neither a pending dispatch nor a cancelled one with a rollback reason: what
   * a check-in reads (`checkinRows`) is then known without a query. Only a new or re-opened dispatch
   * (`put`) or a finish (which may carry a rollback reason) can end that; every per-host write
   * drops the host from the set, and a rolled-back transaction empties it (`forget`), since the
   * rows it undid may have been what made a host quiet.
   */
  private readonly quiet = new Set<string>();

  /** The host's pending dispatch and its rollback instruction (issue 14), as `pendingFor` / `rollbackFor`. */
  checkinRows(hostname: string): { pending: DispatchRow | null; rollback: DispatchRow | null } {
    if (this.quiet.has(hostname)) return NO_DISPATCH;
    const pending = this.pendingFor(hostname);
    const rollback = this.rollbackFor(hostname);
    if (pending === null && rollback === null) this.quiet.add(hostname);
    return { pending, rollback };
  }

  /** Whether `checkinRows` would answer from memory (tests). */
  isQuiet(hostname: string): boolean {
    return this.quiet.has(hostname);
  }

  /** After a rolled-back transaction: nothing is known any more. */
  forget(): void {
    this.quiet.clear();
  }

  pendingFor(hostname: string): DispatchRow | null {
    const r = this.pendingForHost.get(hostname);
    return r === undefined ? null : toDispatch(r);
  }

  rollbackFor(hostname: string): DispatchRow | null {
    const r = this.rollbackForHost.get(hostname);
    return r === undefined ? null : toDispatch(r);
  }

  pending(): DispatchRow[] {
    return this.pendingAll.all().map(toDispatch);
  }

  expired(nowMs: number): DispatchRow[] {
    return this.expired_.all(nowMs).map(toDispatch);
  }

  put(d: Omit<Extract<Write, { kind: 'dispatch.put' }>, 'kind'>): void {
    this.quiet.delete(d.hostname);
    this.insert.run(d);
  }

  deliver(rolloutId: string, hostname: string, deliveredMs: number, deadlineMs: number): void {
    this.quiet.delete(hostname);
    this.deliver_.run({ rolloutId, hostname, deliveredMs, deadlineMs });
  }

  finish(rolloutId: string, hostname: string, status: DispatchStatus, finishedMs: number, rollbackReason: string | null, onlyIfPending = false): void {
    this.quiet.delete(hostname);
    (onlyIfPending ? this.finishPending : this.finish_).run({ rolloutId, hostname, status, finishedMs, rollbackReason });
  }

  clearRollback(rolloutId: string, hostname: string): void {
    this.quiet.delete(hostname);
    this.clearRollback_.run(rolloutId, hostname);
  }

  /** Cancel the targets of a rollout not yet handed over; returns how many. */
  withdrawUndelivered(rolloutId: string, finishedMs: number): number {
    return this.cancelUndelivered.run({ rolloutId, finishedMs }).changes;
  }
}
