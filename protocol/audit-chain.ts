/**
 * The hash-chained audit log rule (SPEC §5), pure so that `nixfleet audit verify` can check an
 * exported log offline with the same code:
 *
 *   hash = hex(sha256(JCS({seq, at, kind, actor, subject, data, prevHash})))
 *
 * `prevHash` is the previous entry's `hash`; entry 1 has 64 zeros.
 */
import { sha256Hex } from './crypto.ts';
import { canonicalBytes } from './jcs.ts';
import type { AuditEntry } from './api.ts';

export const GENESIS_HASH = '0'.repeat(64);

export type UnhashedEntry = Omit<AuditEntry, 'hash'>;

/** Hash of one entry under the chain rule. Throws if `data` has no JCS form (a bug: we write it). */
export function auditEntryHash(e: UnhashedEntry): string {
  const bytes = canonicalBytes({ seq: e.seq, at: e.at, kind: e.kind, actor: e.actor, subject: e.subject, data: e.data, prevHash: e.prevHash });
  if (!bytes.ok) throw new Error(`audit entry ${e.seq} is not canonicalizable: ${bytes.error.message}`);
  return sha256Hex(bytes.value);
}

export type ChainCheck = { ok: true; count: number; lastHash: string } | { ok: false; seq: number; reason: string };

/**
 * Verify a run of entries in ascending `seq`. `prevHash` is the hash the first entry must chain to
 * (genesis for a full log, or the hash of the entry before an exported page).
 */
export function verifyAuditChain(entries: readonly AuditEntry[], prevHash: string = GENESIS_HASH, firstSeq: number | null = null): ChainCheck {
  let prev = prevHash;
  let expectSeq = firstSeq ?? entries[0]?.seq ?? 1;
  for (const e of entries) {
    if (e.seq !== expectSeq) return { ok: false, seq: e.seq, reason: `expected seq ${expectSeq}, found ${e.seq} (entry missing or reordered)` };
    if (e.prevHash !== prev) return { ok: false, seq: e.seq, reason: 'prevHash does not match the previous entry' };
    let h: string;
    try {
      h = auditEntryHash(e);
    } catch (err) {
      return { ok: false, seq: e.seq, reason: String(err) };
    }
    if (h !== e.hash) return { ok: false, seq: e.seq, reason: 'hash does not match the entry content' };
    prev = e.hash;
    expectSeq++;
  }
  return { ok: true, count: entries.length, lastHash: prev };
}
