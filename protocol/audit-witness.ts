/**
 * Anchoring the audit chain (issue 15). The chain alone (protocol/audit-chain.ts) cannot tell a
 * rewrite that recomputed every hash after the edited row, a truncated tail, or a wiped database
 * that started over from seq 1. Witnesses can:
 *
 * - each check-in answer carries the CP's chain head `{seq, hash}`; the agent's next check-in
 *   carries its host-key signature (Ed25519 over JCS, like reports) over the head it was last
 *   shown: a {@link HeadWitness}. The CP verifies and keeps them (`audit_witness`), and hosts
 *   send theirs again after a CP wipe, so a rebuilt CP re-learns the old chain's last heads;
 * - an operator's `nixfleet audit checkpoint` records a head under the operator's name (an
 *   `audit.checkpoint` entry) and keeps a copy off the CP;
 * - a CP whose chain lacks a witnessed head (rebuilt from empty, or rewritten) appends one
 *   `audit.relinked` entry carrying that host-signed head: its new chain links to the last
 *   witnessed head of the old one instead of silently starting over.
 *
 * {@link checkWitnesses} is the offline rule `audit verify` / `evidence verify` apply: a witnessed
 * `{seq, hash}` must be the export's entry at `seq` — else `WITNESS_REWRITTEN` (different hash),
 * `WITNESS_TRUNCATED` (the export ends before it), or `WITNESS_REBUILT` (the chain was restarted
 * and relinked to it). Pure.
 */
import { Type, type Static } from '@sinclair/typebox';
import type { AuditEntry } from './api.ts';
import { fromBase64, verifySignature } from './crypto.ts';
import { canonicalBytes } from './jcs.ts';
import { err, ok, type Result } from './result.ts';
import { Hostname, Nullable, Timestamp } from './vocab.ts';

/** The chain head the CP shows a host on each check-in. */
export const AuditHeadSchema = Type.Object({ seq: Type.Integer({ minimum: 0 }), hash: Type.String({ pattern: '^[0-9a-f]{64}$' }) });
export type AuditHead = Static<typeof AuditHeadSchema>;

/** What a host signs: the head it was shown, and when it signed. */
export const HeadWitnessSchema = Type.Object(
  { hostname: Hostname(), seq: Type.Integer({ minimum: 1 }), hash: Type.String({ pattern: '^[0-9a-f]{64}$' }), at: Timestamp({ maxLength: 64 }) },
  { additionalProperties: false },
);
export type HeadWitness = Static<typeof HeadWitnessSchema>;

/** `signature`: base64 of the host key's Ed25519 signature over the JCS bytes of `witness`. */
export const SignedHeadWitnessSchema = Type.Object({
  witness: HeadWitnessSchema,
  signature: Nullable(Type.String({ pattern: '^[A-Za-z0-9+/]{86}==$', errorMessage: 'must be base64 of a 64-byte signature' })),
});
export type SignedHeadWitness = Static<typeof SignedHeadWitnessSchema>;

/**
 * A witness as kept and exported: `by` is `host:<name>` (signed head) or `operator:<name>` (a
 * checkpoint the CP recorded for an operator over mutual TLS; `signature` null).
 */
export const StoredWitnessSchema = Type.Object({
  by: Type.String(),
  seq: Type.Integer({ minimum: 1 }),
  hash: Type.String({ pattern: '^[0-9a-f]{64}$' }),
  at: Type.String(),
  witness: Nullable(HeadWitnessSchema),
  signature: Nullable(Type.String()),
});
export type StoredWitness = Static<typeof StoredWitnessSchema>;
export const WitnessListSchema = Type.Array(StoredWitnessSchema);

/** `GET /v1/audit/witnesses` → the chain head now and every witness the CP keeps. */
export const WitnessesResponseSchema = Type.Object({ head: Nullable(AuditHeadSchema), witnesses: WitnessListSchema });
export type WitnessesResponse = Static<typeof WitnessesResponseSchema>;

/** `POST /v1/audit/checkpoint` body: the head the operator read; the CP accepts it only if its chain holds it. */
export const CheckpointRequestSchema = AuditHeadSchema;
export type CheckpointRequest = Static<typeof CheckpointRequestSchema>;
/** Its answer, and the checkpoint file `nixfleet audit checkpoint --out` keeps off the CP. */
export const CheckpointSchema = Type.Object({ by: Type.String(), seq: Type.Integer({ minimum: 1 }), hash: Type.String({ pattern: '^[0-9a-f]{64}$' }), at: Type.String() });
export type Checkpoint = Static<typeof CheckpointSchema>;
/**
 * The checkpoint file: the CP's answer plus the operator's signature over the JCS of
 * {by, seq, hash, at}, made with the key of the operator certificate it carries (PEM).
 */
export const SignedCheckpointSchema = Type.Object({
  by: Type.String(),
  seq: Type.Integer({ minimum: 1 }),
  hash: Type.String({ pattern: '^[0-9a-f]{64}$' }),
  at: Type.String(),
  signature: Type.Optional(Type.Object({ certificate: Type.String({ maxLength: 16_384 }), value: Type.String({ maxLength: 2_048 }) })),
});
export type SignedCheckpoint = Static<typeof SignedCheckpointSchema>;
/** What an operator signs: the checkpoint without its signature. */
export const checkpointStatement = (c: Checkpoint): Checkpoint => ({ by: c.by, seq: c.seq, hash: c.hash, at: c.at });

/**
 * Host witnesses whose signature does not verify under any of the host's keys (from signed
 * fleets); `null` keys: not checked. Operator checkpoints carry no signature (recorded over mTLS).
 */
export function badWitnessSignature(ws: readonly StoredWitness[], keys: Readonly<Record<string, readonly string[]>> | null): StoredWitness | null {
  if (keys === null) return null;
  for (const w of ws) {
    if (!w.by.startsWith('host:')) continue;
    const host = w.by.slice(5);
    const k = keys[host] ?? [];
    if (k.length === 0) continue;
    const ok_ = w.witness !== null && w.witness.hostname === host && w.witness.seq === w.seq && w.witness.hash === w.hash && w.signature !== null && verifyJcsSignature(k, w.witness, w.signature);
    if (!ok_) return w;
  }
  return null;
}

function verifyJcsSignature(keys: readonly string[], value: unknown, signature: string): boolean {
  const bytes = canonicalBytes(value);
  const sig = fromBase64(signature);
  return bytes.ok && sig !== null && sig.length === 64 && keys.some((k) => verifySignature('ed25519', k, bytes.value, sig));
}

export type WitnessErrorCode = 'WITNESS_REWRITTEN' | 'WITNESS_TRUNCATED' | 'WITNESS_REBUILT';
export type WitnessError = { code: WitnessErrorCode; by: string; seq: number; message: string };

/** The host-signed old head an `audit.relinked` entry carries, if this is one. */
export function relinkOf(e: AuditEntry): { seq: number; hash: string } | null {
  if (e.kind !== 'audit.relinked') return null;
  const w = (e.data as { witness?: { seq?: unknown; hash?: unknown } } | null)?.witness;
  return typeof w?.seq === 'number' && typeof w.hash === 'string' ? { seq: w.seq, hash: w.hash } : null;
}

/**
 * Check a verified chain export (ascending, contiguous) against witnessed heads. Witnesses before
 * the export's first entry cannot be checked (a partial export) and are counted as such.
 */
export function checkWitnesses(entries: readonly AuditEntry[], witnesses: readonly Pick<StoredWitness, 'by' | 'seq' | 'hash'>[]): Result<{ matched: number; before: number }, WitnessError> {
  const first = entries[0]?.seq ?? Number.POSITIVE_INFINITY; // no entries: every witness is before the export
  const last = entries[entries.length - 1]?.seq ?? 0;
  const bySeq = new Map(entries.map((e) => [e.seq, e]));
  const relinks = entries.map(relinkOf).filter((x): x is { seq: number; hash: string } => x !== null);
  let matched = 0;
  let before = 0;
  for (const w of witnesses) {
    const name = `${w.by}'s witnessed head seq ${w.seq} (${w.hash.slice(0, 12)}…)`;
    const relinked = relinks.find((r) => r.seq === w.seq && r.hash === w.hash);
    const e = bySeq.get(w.seq);
    if (e !== undefined && e.hash === w.hash) {
      matched++;
      continue;
    }
    if (relinked !== undefined || (e === undefined && w.seq < first)) {
      if (relinked !== undefined) return err({ code: 'WITNESS_REBUILT', by: w.by, seq: w.seq, message: `${name}: the chain was restarted after it (the control plane's history up to it is gone; audit.relinked links the new chain to it)` });
      before++;
      continue;
    }
    if (e === undefined && w.seq > last) return err({ code: 'WITNESS_TRUNCATED', by: w.by, seq: w.seq, message: `${name}: the log ends at seq ${last} (its tail was cut)` });
    return err({ code: 'WITNESS_REWRITTEN', by: w.by, seq: w.seq, message: `${name}: the log has ${e === undefined ? 'no entry' : `hash ${e.hash.slice(0, 12)}…`} there (rewritten)` });
  }
  return ok({ matched, before });
}
