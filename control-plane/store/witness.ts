/**
 * Witnessed audit heads (issue 15, protocol/audit-witness.ts), both backends: one row per
 * witness `(by, seq)` — `by` is `host:<name>` (a host-signed head from a check-in) or
 * `operator:<name>` (a checkpoint). Kept like the audit log itself: they are what `audit verify`
 * checks a chain against.
 */
import type Database from 'better-sqlite3';
import type pg from 'pg';
import type { StoredWitness } from '../../protocol/audit-witness.ts';

export type WitnessRow = StoredWitness & { receivedMs: number };

type Rec = { by_who: string; seq: number | string; hash: string; at: string; witness_json: string | null; signature: string | null; received_ms: number | string };

const toRow = (r: Rec): WitnessRow => ({
  by: r.by_who,
  seq: Number(r.seq),
  hash: r.hash,
  at: r.at,
  witness: r.witness_json === null ? null : (JSON.parse(r.witness_json) as WitnessRow['witness']),
  signature: r.signature,
  receivedMs: Number(r.received_ms),
});

const params = (w: WitnessRow) => [w.by, w.seq, w.hash, w.at, w.witness === null ? null : JSON.stringify(w.witness), w.signature, w.receivedMs] as const;

/** Migration text, same on both backends (INTEGER / BIGINT differ only). */
export const witnessTable = (int: 'INTEGER' | 'BIGINT'): string => `
  CREATE TABLE audit_witness (
    by_who TEXT NOT NULL,
    seq ${int} NOT NULL,
    hash TEXT NOT NULL,
    at TEXT NOT NULL,
    witness_json TEXT,
    signature TEXT,
    received_ms ${int} NOT NULL,
    PRIMARY KEY (by_who, seq)
  );
`;

export class WitnessTable {
  private readonly put_: Database.Statement<unknown[]>;
  private readonly all_: Database.Statement<[], Rec>;

  constructor(db: Database.Database) {
    this.put_ = db.prepare('INSERT INTO audit_witness (by_who, seq, hash, at, witness_json, signature, received_ms) VALUES (?,?,?,?,?,?,?) ON CONFLICT (by_who, seq) DO NOTHING');
    this.all_ = db.prepare('SELECT * FROM audit_witness ORDER BY seq, by_who');
  }

  put(w: WitnessRow): void {
    this.put_.run(...params(w));
  }

  all(): WitnessRow[] {
    return this.all_.all().map(toRow);
  }
}

type Q = Pick<pg.ClientBase, 'query'>;

export async function putWitnessPg(q: Q, w: WitnessRow): Promise<void> {
  await q.query('INSERT INTO audit_witness (by_who, seq, hash, at, witness_json, signature, received_ms) VALUES ($1,$2,$3,$4,$5,$6,$7) ON CONFLICT (by_who, seq) DO NOTHING', [...params(w)]);
}

export async function witnessesPg(q: Q): Promise<WitnessRow[]> {
  return (await q.query<Rec>('SELECT * FROM audit_witness ORDER BY seq, by_who')).rows.map(toRow);
}

export async function auditHeadPg(q: Q): Promise<{ seq: number; hash: string } | null> {
  const r = (await q.query<{ seq: string | number; hash: string }>('SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1')).rows[0] ?? (await q.query<{ seq: string | number; hash: string }>('SELECT seq, hash FROM audit_anchor WHERE id = 1')).rows[0];
  return r === undefined ? null : { seq: Number(r.seq), hash: r.hash };
}
