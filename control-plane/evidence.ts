/**
 * Host-signed compliance evidence arriving with a check-in or a confirm (issue 15): every record
 * must name the calling host and verify under its key in the signed fleet (JCS + Ed25519, like
 * reports) — one that does not refuses the whole request (`EVIDENCE_SIGNATURE_INVALID`: a host
 * cannot speak for another, nor anyone for a host). Records dated too far ahead of the CP clock
 * are dropped (counted). What the host's controls say about the closure it runs now becomes the
 * reconciler's `complianceFailures` (an `error` counts as a failure: nothing was proven).
 *
 * The audit entry of a batch (`host.evidence`) carries the signed records themselves when the
 * batch is about an activation (`via: confirm`) or holds a failure — what the gate decided on, so
 * `nixfleet audit export | audit verify --fleet` checks those host signatures offline; a periodic
 * all-pass batch is summarised (its records are in the evidence store).
 */
import type { SignedEvidence } from '../protocol/compliance-api.ts';
import { fromBase64, verifySignature } from '../protocol/crypto.ts';
import { canonicalBytes } from '../protocol/jcs.ts';
import { ApiError } from './errors.ts';
import type { AuditInput, EvidenceRow } from './store/types.ts';

/** A record more than this far ahead of the CP clock is not stored (the host's clock is wrong). */
export const EVIDENCE_MAX_FUTURE_MS = 5 * 60_000;

export type CheckedEvidence = {
  rows: EvidenceRow[];
  /** Failing control ids about `closure` (sorted), or undefined when no record is about it. */
  failures: string[] | undefined;
  audit: AuditInput;
};

/**
 * Verify `list` from host `h` (`hostKey`: base64 raw Ed25519 key from the fleet, or null when the
 * fleet has none for it), about the host now running `closure`.
 */
export function checkEvidence(h: string, list: readonly SignedEvidence[], hostKey: string | null, closure: string | null, nowMs: number, via: string): CheckedEvidence {
  const rows: EvidenceRow[] = [];
  let dropped = 0;
  for (const [i, e] of list.entries()) {
    const where = `evidence[${i}] (control ${JSON.stringify(e.record.control)})`;
    if (e.record.hostname !== h) throw new ApiError('EVIDENCE_SIGNATURE_INVALID', `${where} names host ${JSON.stringify(e.record.hostname)}, not ${h}`);
    const bytes = canonicalBytes(e.record);
    if (!bytes.ok) throw new ApiError('EVIDENCE_SIGNATURE_INVALID', `${where}: ${bytes.error.message}`);
    if (hostKey !== null) {
      const sig = e.signature === null ? null : fromBase64(e.signature);
      if (sig === null || sig.length !== 64 || !verifySignature('ed25519', hostKey, bytes.value, sig)) {
        throw new ApiError('EVIDENCE_SIGNATURE_INVALID', `${where}: the signature does not verify under the host key of ${h} in the signed fleet`);
      }
    }
    if (Date.parse(e.record.at) - nowMs > EVIDENCE_MAX_FUTURE_MS) {
      dropped++;
      continue;
    }
    rows.push({
      hostname: h,
      control: e.record.control,
      result: e.record.result,
      closure: e.record.closure,
      rolloutId: e.record.rolloutId,
      at: e.record.at,
      receivedMs: nowMs,
      recordJson: new TextDecoder().decode(bytes.value),
      signature: hostKey === null ? null : e.signature,
      verdict: hostKey === null ? 'unsigned-no-pubkey' : 'verified',
    });
  }
  const about = rows.filter((r) => closure !== null && r.closure === closure);
  const failures = about.length === 0 ? undefined : [...new Set(about.filter((r) => r.result !== 'pass').map((r) => r.control))].sort();
  const anyFailing = rows.some((r) => r.result !== 'pass');
  const kept = via === 'confirm' || anyFailing ? list.filter((e) => Date.parse(e.record.at) - nowMs <= EVIDENCE_MAX_FUTURE_MS) : null;
  const audit: AuditInput = {
    atMs: nowMs,
    kind: 'host.evidence',
    actor: `host:${h}`,
    subject: h,
    data: {
      via,
      closure,
      records: rows.length,
      failing: failures ?? null,
      dropped,
      verdict: hostKey === null ? 'unsigned-no-pubkey' : 'verified',
      ...(kept !== null ? { evidence: kept.map((e) => ({ record: e.record, signature: e.signature })) } : {}),
    },
  };
  return { rows, failures, audit };
}
