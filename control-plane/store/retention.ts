/**
 * Retention (issue 17), the same rule on both backends: what is older than the cutoff goes —
 *  - host reports and signed evidence (`reports`, received before the cutoff), and the history of
 *    compliance evidence (`evidence`; the newest record per host and control, `evidence_latest`, stays);
 *  - finished rollouts' history: a Converged or Superseded rollout last updated before the cutoff
 *    that is not its channel's newest and has no pending dispatch, with its host rows,
 *    transitions and dispatches (the newest rollout of a channel is what the reconciler reads);
 *  - audit entries stamped before the cutoff — the chain stays verifiable: the newest pruned
 *    entry's seq and hash become the anchor (`audit_anchor`), the first kept entry's `prevHash` is
 *    that hash, new entries chain on from the head (or from the anchor when nothing is left), and
 *    the pruning itself, when it removed anything, is appended to the chain (`retention.pruned`,
 *    with the anchor) in the same transaction. Verify the kept log with `verifyAuditChain(entries, anchor.hash, anchor.seq + 1)`
 *    (`nixfleet audit verify` checks an export that starts later from its first line);
 *  - rollout controls (`rollout_controls`: stall, window hold, released hosts, approvals) of
 *    rollouts no longer stored — the ones pruned in the same pass, and any left by an earlier
 *    pruning. They must go with their rollout: a rollout id is `channel@targetRef`, so a channel
 *    that returns to an old target opens a rollout of the same id, which must not inherit the old
 *    one's approvals or released hosts;
 *  - witnessed audit heads (`audit_witness`, issue 15) received before the cutoff. A witness is
 *    evidence about the chain, and it goes with the entries it speaks about: a head witnessed
 *    before the cutoff is of an entry that existed then, so stamped before the cutoff and pruned
 *    in the same pass (its seq is at most the anchor's); an `audit.relinked` entry and the witness
 *    it carries are stamped with the same receive time, so they go together too. Every witness of
 *    a kept entry stays, and a kept witness of a pruned entry (a host that was offline longer than
 *    the retention) is counted by `audit verify --witnesses` as before the log, not as a failure.
 *    Operator checkpoint files are kept off the CP; verify counts one whose entry was pruned the
 *    same way. Dropping witness rows can never make `audit verify --witnesses` fail: each witness
 *    is checked on its own.
 * Live rollouts, hosts, quarantines, pauses and artefacts are never pruned.
 */
import type Database from 'better-sqlite3';
import { iso } from './audit.ts';
import type { Q } from './pg-queries.ts';
import type { AuditInput } from './types.ts';

/** Where a pruned audit log starts from: the last pruned entry. */
export type AuditAnchor = { seq: number; hash: string; at: string };

export type PruneResult = {
  cutoffMs: number;
  reports: number;
  rollouts: number;
  transitions: number;
  dispatches: number;
  /** `rollout_controls` rows of rollouts no longer stored. */
  controls: number;
  audit: number;
  /** `audit_witness` rows received before the cutoff. */
  witnesses: number;
  anchor: AuditAnchor | null;
};

/** Finished rollouts past the cutoff (`$1` = cutoff ms), in the SQL both backends share. */
const OLD_ROLLOUTS = `SELECT r.id FROM rollouts r WHERE r.state IN ('Converged', 'Superseded') AND r.updated_at_ms < $1
  AND r.id <> (SELECT r2.id FROM rollouts r2 WHERE r2.channel = r.channel ORDER BY r2.opened_at_ms DESC, r2.id DESC LIMIT 1)
  AND NOT EXISTS (SELECT 1 FROM dispatches d WHERE d.rollout_id = r.id AND d.status = 'pending')`;

/** Controls of rollouts that are gone (run after the rollouts are deleted). */
const ORPHAN_CONTROLS = 'DELETE FROM rollout_controls WHERE rollout_id NOT IN (SELECT id FROM rollouts)';
/** Witnesses received before the cutoff (`$1`). */
const OLD_WITNESSES = 'DELETE FROM audit_witness WHERE received_ms < $1';

/** Whether a pruning removed anything (only then is it recorded in the chain). */
export const prunedAnything = (r: PruneResult): boolean => r.reports + r.rollouts + r.transitions + r.dispatches + r.controls + r.audit + r.witnesses > 0;

/** The audit entry that records a pruning (appended by the caller's chain code). */
export function prunedEntry(r: PruneResult, nowMs: number): AuditInput {
  return {
    atMs: nowMs,
    kind: 'retention.pruned',
    actor: 'cp',
    subject: 'retention',
    data: {
      cutoff: iso(r.cutoffMs),
      reports: r.reports,
      rollouts: r.rollouts,
      transitions: r.transitions,
      dispatches: r.dispatches,
      controls: r.controls,
      audit: r.audit,
      witnesses: r.witnesses,
      anchor: r.anchor === null ? null : { seq: r.anchor.seq, hash: r.anchor.hash },
    },
  };
}

// ------------------------------------------------------------------------------------------
// SQLite (inside the caller's write transaction)

const sqlite = (text: string): string => text.replace(/\$\d+/g, '?');

export function pruneSqlite(db: Database.Database, cutoffMs: number, nowMs: number): PruneResult {
  const reports = db.prepare('DELETE FROM reports WHERE received_ms < ?').run(cutoffMs).changes + db.prepare('DELETE FROM evidence WHERE received_ms < ?').run(cutoffMs).changes;
  const ids = (db.prepare(sqlite(OLD_ROLLOUTS)).all(cutoffMs) as { id: string }[]).map((r) => r.id);
  let transitions = 0;
  let dispatches = 0;
  const del = {
    t: db.prepare('DELETE FROM transitions WHERE rollout_id = ?'),
    d: db.prepare('DELETE FROM dispatches WHERE rollout_id = ?'),
    h: db.prepare('DELETE FROM rollout_hosts WHERE rollout_id = ?'),
    r: db.prepare('DELETE FROM rollouts WHERE id = ?'),
  };
  for (const id of ids) {
    transitions += del.t.run(id).changes;
    dispatches += del.d.run(id).changes;
    del.h.run(id);
    del.r.run(id);
  }
  const controls = db.prepare(ORPHAN_CONTROLS).run().changes;
  const witnesses = db.prepare(sqlite(OLD_WITNESSES)).run(cutoffMs).changes;
  const last = db.prepare('SELECT seq, hash, at FROM audit WHERE at < ? ORDER BY seq DESC LIMIT 1').get(iso(cutoffMs)) as AuditAnchor | undefined;
  let audit = 0;
  if (last !== undefined) {
    audit = db.prepare('DELETE FROM audit WHERE seq <= ?').run(last.seq).changes;
    db.prepare(
      `INSERT INTO audit_anchor (id, seq, hash, at, pruned_ms) VALUES (1, ?, ?, ?, ?)
       ON CONFLICT (id) DO UPDATE SET seq = excluded.seq, hash = excluded.hash, at = excluded.at, pruned_ms = excluded.pruned_ms`,
    ).run(last.seq, last.hash, last.at, nowMs);
  }
  return { cutoffMs, reports, rollouts: ids.length, transitions, dispatches, controls, audit, witnesses, anchor: last ?? anchorSqlite(db) };
}

export function anchorSqlite(db: Database.Database): AuditAnchor | null {
  return (db.prepare('SELECT seq, hash, at FROM audit_anchor WHERE id = 1').get() as AuditAnchor | undefined) ?? null;
}

// ------------------------------------------------------------------------------------------
// PostgreSQL (inside the caller's transaction, which holds the audit lock)

export async function prunePg(q: Q, cutoffMs: number, nowMs: number): Promise<PruneResult> {
  const reports = ((await q.query('DELETE FROM reports WHERE received_ms < $1', [cutoffMs])).rowCount ?? 0) + ((await q.query('DELETE FROM evidence WHERE received_ms < $1', [cutoffMs])).rowCount ?? 0);
  const ids = (await q.query<{ id: string }>(OLD_ROLLOUTS, [cutoffMs])).rows.map((r) => r.id);
  let transitions = 0;
  let dispatches = 0;
  if (ids.length > 0) {
    transitions = (await q.query('DELETE FROM transitions WHERE rollout_id = ANY($1)', [ids])).rowCount ?? 0;
    dispatches = (await q.query('DELETE FROM dispatches WHERE rollout_id = ANY($1)', [ids])).rowCount ?? 0;
    await q.query('DELETE FROM rollout_hosts WHERE rollout_id = ANY($1)', [ids]);
    await q.query('DELETE FROM rollouts WHERE id = ANY($1)', [ids]);
  }
  const controls = (await q.query(ORPHAN_CONTROLS)).rowCount ?? 0;
  const witnesses = (await q.query(OLD_WITNESSES, [cutoffMs])).rowCount ?? 0;
  const last = (await q.query<AuditAnchor>('SELECT seq, hash, at FROM audit WHERE at < $1 ORDER BY seq DESC LIMIT 1', [iso(cutoffMs)])).rows[0];
  let audit = 0;
  if (last !== undefined) {
    audit = (await q.query('DELETE FROM audit WHERE seq <= $1', [last.seq])).rowCount ?? 0;
    await q.query(
      `INSERT INTO audit_anchor (id, seq, hash, at, pruned_ms) VALUES (1, $1, $2, $3, $4)
       ON CONFLICT (id) DO UPDATE SET seq = excluded.seq, hash = excluded.hash, at = excluded.at, pruned_ms = excluded.pruned_ms`,
      [last.seq, last.hash, last.at, nowMs],
    );
  }
  return { cutoffMs, reports, rollouts: ids.length, transitions, dispatches, controls, audit, witnesses, anchor: last ?? (await anchorPg(q)) };
}

export async function anchorPg(q: Q): Promise<AuditAnchor | null> {
  return (await q.query<AuditAnchor>('SELECT seq, hash, at FROM audit_anchor WHERE id = 1')).rows[0] ?? null;
}
