/** SQLite tables `evidence` (history) and `evidence_latest` (newest per host and control), issue 15. */
import type Database from 'better-sqlite3';
import { keepEvidence, type EvidenceRow } from './types.ts';

type Rec = {
  hostname: string;
  control: string;
  result: string;
  closure: string | null;
  rollout_id: string | null;
  at: string;
  received_ms: number;
  record_json: string;
  signature: string | null;
  verdict: EvidenceRow['verdict'];
};

/** A stored row as an {@link EvidenceRow} (shared with the PostgreSQL store). */
export const toEvidenceRow = (r: Rec): EvidenceRow => ({
  hostname: r.hostname,
  control: r.control,
  result: r.result,
  closure: r.closure,
  rolloutId: r.rollout_id,
  at: r.at,
  receivedMs: Number(r.received_ms),
  recordJson: r.record_json,
  signature: r.signature,
  verdict: r.verdict,
});

const COLS = 'hostname, control, result, closure, rollout_id, at, received_ms, record_json, signature, verdict';
const VALS = '@hostname, @control, @result, @closure, @rolloutId, @at, @receivedMs, @recordJson, @signature, @verdict';

export class EvidenceTables {
  private readonly latest_: Database.Statement<[string, string], Rec>;
  private readonly putLatest_: Database.Statement<[EvidenceRow]>;
  private readonly insert_: Database.Statement<[EvidenceRow]>;
  private readonly all_: Database.Statement<[], Rec>;
  private readonly between_: Database.Statement<[number, number], Rec>;

  constructor(db: Database.Database) {
    this.latest_ = db.prepare(`SELECT ${COLS} FROM evidence_latest WHERE hostname = ? AND control = ?`);
    this.putLatest_ = db.prepare(`INSERT OR REPLACE INTO evidence_latest (${COLS}) VALUES (${VALS})`);
    this.insert_ = db.prepare(`INSERT INTO evidence (${COLS}) VALUES (${VALS})`);
    this.all_ = db.prepare(`SELECT ${COLS} FROM evidence_latest ORDER BY hostname, control`);
    this.between_ = db.prepare(`SELECT ${COLS} FROM evidence WHERE received_ms >= ? AND received_ms <= ? ORDER BY id`);
  }

  put(rows: readonly EvidenceRow[]): void {
    for (const r of rows) {
      const prev = this.latest_.get(r.hostname, r.control);
      if (keepEvidence(prev === undefined ? null : toEvidenceRow(prev), r)) this.insert_.run(r);
      this.putLatest_.run(r);
    }
  }

  latest(): EvidenceRow[] {
    return this.all_.all().map(toEvidenceRow);
  }

  between(fromMs: number, toMs: number): EvidenceRow[] {
    return this.between_.all(fromMs, toMs).map(toEvidenceRow);
  }
}
