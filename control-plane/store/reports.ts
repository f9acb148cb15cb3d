/** SQLite tables `reports` (host statements with their signatures and verdicts) and `artifacts` (accepted-artefact state). */
import type Database from 'better-sqlite3';
import type { ArtifactKind, ArtifactRow, ReportRow } from './types.ts';

type ArtifactRecord = { kind: ArtifactKind; signed_at: string; sha256: string; bytes: Buffer; signature: Buffer; accepted_ms: number };

export class ReportsTable {
  private readonly insert_: Database.Statement<[ReportRow]>;
  private readonly count_: Database.Statement<[], { n: number }>;

  constructor(db: Database.Database) {
    this.insert_ = db.prepare(`INSERT INTO reports (hostname, received_ms, event, rollout_id, report_json, signature, verdict)
      VALUES (@hostname, @receivedMs, @event, @rolloutId, @reportJson, @signature, @verdict)`);
    this.count_ = db.prepare('SELECT COUNT(*) AS n FROM reports');
  }

  insert(r: ReportRow): number {
    return Number(this.insert_.run(r).lastInsertRowid);
  }

  count(): number {
    return this.count_.get()?.n ?? 0;
  }
}

/** The last accepted artefact per kind: rollback protection survives restarts. */
export class ArtifactsTable {
  private readonly get_: Database.Statement<[ArtifactKind], ArtifactRecord>;
  private readonly put_: Database.Statement<[Omit<ArtifactRow, 'bytes' | 'signature'> & { bytes: Buffer; signature: Buffer }]>;
  private readonly keep_: Database.Statement<[Omit<ArtifactRow, 'bytes' | 'signature'> & { bytes: Buffer; signature: Buffer }]>;
  private readonly history_: Database.Statement<[ArtifactKind], ArtifactRecord>;

  constructor(db: Database.Database) {
    this.get_ = db.prepare('SELECT * FROM artifacts WHERE kind = ?');
    this.put_ = db.prepare(`INSERT INTO artifacts (kind, signed_at, sha256, bytes, signature, accepted_ms) VALUES (@kind, @signedAt, @sha256, @bytes, @signature, @acceptedMs)
      ON CONFLICT(kind) DO UPDATE SET signed_at = excluded.signed_at, sha256 = excluded.sha256, bytes = excluded.bytes,
        signature = excluded.signature, accepted_ms = excluded.accepted_ms`);
    this.keep_ = db.prepare(`INSERT INTO artifact_history (kind, sha256, signed_at, bytes, signature, accepted_ms) VALUES (@kind, @sha256, @signedAt, @bytes, @signature, @acceptedMs)
      ON CONFLICT(kind, sha256) DO NOTHING`);
    this.history_ = db.prepare('SELECT * FROM artifact_history WHERE kind = ? ORDER BY accepted_ms, signed_at');
  }

  get(kind: ArtifactKind): ArtifactRow | null {
    const r = this.get_.get(kind);
    if (r === undefined) return null;
    return { kind, signedAt: r.signed_at, sha256: r.sha256, bytes: new Uint8Array(r.bytes), signature: new Uint8Array(r.signature), acceptedMs: r.accepted_ms };
  }

  /** The newest per kind, and the history (first acceptance of each artefact: issue 15's evidence packet). */
  put(a: ArtifactRow): void {
    const row = { ...a, bytes: Buffer.from(a.bytes), signature: Buffer.from(a.signature) };
    this.put_.run(row);
    this.keep_.run(row);
  }

  /** Every artefact of `kind` ever accepted, in the order it was first accepted. */
  history(kind: ArtifactKind): ArtifactRow[] {
    return this.history_.all(kind).map((r) => ({ kind, signedAt: r.signed_at, sha256: r.sha256, bytes: new Uint8Array(r.bytes), signature: new Uint8Array(r.signature), acceptedMs: r.accepted_ms }));
  }
}
