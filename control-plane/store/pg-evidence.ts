/** The SQL of the evidence tables on PostgreSQL (issue 15; = evidence.ts on SQLite, same rule). */
import type pg from 'pg';
import { toEvidenceRow } from './evidence.ts';
import { keepEvidence, type EvidenceRow } from './types.ts';

type Q = Pick<pg.ClientBase, 'query'>;
type Rec = Parameters<typeof toEvidenceRow>[0];

const COLS = 'hostname, control, result, closure, rollout_id, at, received_ms, record_json, signature, verdict';
const args = (r: EvidenceRow): unknown[] => [r.hostname, r.control, r.result, r.closure, r.rolloutId, r.at, r.receivedMs, r.recordJson, r.signature, r.verdict];

export async function putEvidence(q: Q, rows: readonly EvidenceRow[]): Promise<void> {
  for (const r of rows) {
    // FOR UPDATE: two replicas storing the same host's evidence keep one history.
    const prev = (await q.query<Rec>(`SELECT ${COLS} FROM evidence_latest WHERE hostname = $1 AND control = $2 FOR UPDATE`, [r.hostname, r.control])).rows[0];
    if (keepEvidence(prev === undefined ? null : toEvidenceRow(prev), r)) await q.query(`INSERT INTO evidence (${COLS}) VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10)`, args(r));
    await q.query(
      `INSERT INTO evidence_latest (${COLS}) VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10)
       ON CONFLICT (hostname, control) DO UPDATE SET result = excluded.result, closure = excluded.closure, rollout_id = excluded.rollout_id,
         at = excluded.at, received_ms = excluded.received_ms, record_json = excluded.record_json, signature = excluded.signature, verdict = excluded.verdict`,
      args(r),
    );
  }
}

export async function latestEvidence(q: Q): Promise<EvidenceRow[]> {
  return (await q.query<Rec>(`SELECT ${COLS} FROM evidence_latest ORDER BY hostname, control`)).rows.map(toEvidenceRow);
}

export async function evidenceHistory(q: Q, fromMs: number, toMs: number): Promise<EvidenceRow[]> {
  return (await q.query<Rec>(`SELECT ${COLS} FROM evidence WHERE received_ms >= $1 AND received_ms <= $2 ORDER BY id`, [fromMs, toMs])).rows.map(toEvidenceRow);
}
