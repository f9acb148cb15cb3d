/**
 * SQLite table `audit`: the hash-chained log (protocol/audit-chain.ts). The chain head is kept in
 * memory and re-read after a rolled-back transaction (`resync`).
 */
import type Database from 'better-sqlite3';
import { auditEntryHash, GENESIS_HASH } from '../../protocol/audit-chain.ts';
import type { AuditEntry, AuditInput } from './types.ts';

export type AuditRecord = { seq: number; at: string; kind: string; actor: string; subject: string; data_json: string; prev_hash: string; hash: string };

export const iso = (ms: number): string => new Date(ms).toISOString();

export const toAudit = (r: AuditRecord): AuditEntry => ({
  seq: r.seq,
  at: r.at,
  kind: r.kind,
  actor: r.actor,
  subject: r.subject,
  data: JSON.parse(r.data_json) as unknown,
  prevHash: r.prev_hash,
  hash: r.hash,
});

export class AuditTable {
  private lastHash: string = GENESIS_HASH;
  private lastSeq = 0;
  /** The last `head()` answer, handed out again while the head stays (every quiet check-in asks). */
  private headSeen: Readonly<{ seq: number; hash: string }> | null = null;
  private readonly last: Database.Statement<[], { seq: number; hash: string }>;
  private readonly insert: Database.Statement<[{ seq: number; at: string; kind: string; actor: string; subject: string; dataJson: string; prevHash: string; hash: string }]>;
  private readonly page_: Database.Statement<[number, number], AuditRecord>;
  private readonly all_: Database.Statement<[], AuditRecord>;

  private readonly anchor: Database.Statement<[], { seq: number; hash: string }>;

  constructor(db: Database.Database) {
    // After retention pruned every entry, the chain goes on from its anchor (retention.ts).
    this.last = db.prepare('SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1');
    this.anchor = db.prepare('SELECT seq, hash FROM audit_anchor WHERE id = 1');
    this.insert = db.prepare(`INSERT INTO audit (seq, at, kind, actor, subject, data_json, prev_hash, hash)
      VALUES (@seq, @at, @kind, @actor, @subject, @dataJson, @prevHash, @hash)`);
    this.page_ = db.prepare('SELECT * FROM audit WHERE seq > ? ORDER BY seq LIMIT ?');
    this.all_ = db.prepare('SELECT * FROM audit ORDER BY seq');
    this.resync();
  }

  /** Append one entry to the hash chain (inside the caller's transaction). */
  append(e: AuditInput): AuditEntry {
    // Round-trip through JSON so that what is hashed is exactly what is stored and served.
    const data: unknown = e.data === undefined ? null : JSON.parse(JSON.stringify(e.data));
    const entry = { seq: this.lastSeq + 1, at: iso(e.atMs), kind: e.kind, actor: e.actor, subject: e.subject, data, prevHash: this.lastHash };
    const hash = auditEntryHash(entry);
    this.insert.run({ seq: entry.seq, at: entry.at, kind: entry.kind, actor: entry.actor, subject: entry.subject, dataJson: JSON.stringify(entry.data), prevHash: entry.prevHash, hash });
    // Only advance the in-memory head once the row is written; a rolled-back transaction resets it
    // through `resync`.
    this.lastSeq = entry.seq;
    this.lastHash = hash;
    return { ...entry, hash };
  }

  /**
   * The chain head as this connection sees it (what `SELECT … ORDER BY seq DESC LIMIT 1`, or the
   * anchor once every entry was pruned, would read), from memory: null for an empty chain.
   */
  head(): { seq: number; hash: string } | null {
    if (this.lastSeq === 0) return null;
    const h = this.headSeen;
    if (h !== null && h.seq === this.lastSeq && h.hash === this.lastHash) return h;
    return (this.headSeen = Object.freeze({ seq: this.lastSeq, hash: this.lastHash }));
  }

  /** Re-read the chain head (after a rolled-back transaction). */
  resync(): void {
    const last = this.last.get() ?? this.anchor.get();
    this.lastHash = last === undefined ? GENESIS_HASH : last.hash;
    this.lastSeq = last === undefined ? 0 : last.seq;
  }

  page(after: number, limit: number): AuditEntry[] {
    return this.page_.all(after, limit).map(toAudit);
  }

  all(): AuditEntry[] {
    return this.all_.all().map(toAudit);
  }
}
