/**
 * Offline verification of an audit export (SPEC §5 audit, §7 `nixfleet audit verify`). Pure: text
 * and keys in, a verdict out.
 *
 * Export format: JSON Lines, one `AuditEntry` (protocol/api.ts) per line, ascending `seq`,
 * each line the JCS form of the entry (so an export is byte-stable and diff-able).
 *
 * Chain rule (protocol/api.ts): `hash = hex(sha256(JCS({seq, at, kind, actor, subject, data,
 * prevHash})))`, `prevHash` = the previous entry's `hash`, 64 zeros for `seq = 1`. An export that
 * starts later (`audit export --since`) is checked from its first line on; its first `prevHash`
 * cannot be checked and the summary says so (`complete: false`).
 *
 * Host statements: an entry whose `data` holds a stored agent report or confirmed record (see
 * `signedStatementOf`) carries the host's Ed25519 signature over the statement's JCS bytes. With
 * the hosts' keys (from a signed fleet), each is checked; one the CP itself recorded as `invalid`
 * must indeed not verify, any other must.
 */
import type { AuditEntry, ReportVerdict } from '../protocol/api.ts';
import { GENESIS_HASH, auditEntryHash } from '../protocol/audit-chain.ts';
import { fromBase64, verifySignature } from '../protocol/crypto.ts';
import { canonicalBytes, parseJsonStrict } from '../protocol/jcs.ts';
import type { Result } from '../protocol/result.ts';
import { err, ok } from '../protocol/result.ts';

/** The chain rule itself is the CP's (protocol/audit-chain.ts), so the two cannot disagree. */
export { GENESIS_HASH, auditEntryHash };

export type AuditVerifyErrorCode = 'EMPTY' | 'PARSE_ERROR' | 'SHAPE' | 'SEQ' | 'PREV_HASH' | 'HASH' | 'REPORT_SIGNATURE' | 'EVIDENCE_SIGNATURE';

/** The first bad line, 1-based, as an editor shows it. */
export type AuditVerifyError = { code: AuditVerifyErrorCode; line: number; seq: number | null; message: string };

export type AuditSummary = {
  entries: number;
  firstSeq: number;
  lastSeq: number;
  /** `hash` of the last entry: compare it with the CP's current head to detect truncation. */
  lastHash: string;
  /** The export starts at seq 1 (genesis), so the whole chain was checked. */
  complete: boolean;
  reports: {
    /** Signature good under the host's key. */
    verified: number;
    /** Signature bad, and the CP recorded it as `invalid` (it refused the report). */
    rejectedByCp: number;
    /** Host has no key in the given fleet(s), or no keys were given at all. */
    unchecked: number;
  };
  /** Issue 15: host-signed evidence records carried by `host.evidence` entries. */
  evidence: { verified: number; unchecked: number };
};

const ENTRY_KEYS = ['seq', 'at', 'kind', 'actor', 'subject', 'data', 'prevHash', 'hash'] as const;
const HEX64 = /^[0-9a-f]{64}$/;

/**
 * A host-signed statement inside an entry's data, if this entry holds one: an agent report
 * (`{report: HostReport, signature, verdict}`, kinds `report` / `report.invalid`) or a confirmed
 * record (`{record: ConfirmedRecord, signature, verdict}`, kind `host.confirmed-record`). Both are
 * signed by the host key over the JCS bytes of the statement (protocol/api.ts).
 */
export function signedStatementOf(entry: AuditEntry): { hostname: string; what: string; statement: unknown; signature: string | null; verdict: ReportVerdict | null } | null {
  const d = entry.data;
  if (typeof d !== 'object' || d === null || Array.isArray(d)) return null;
  const rec = d as Record<string, unknown>;
  if (!('signature' in rec)) return null;
  const field = 'report' in rec ? 'report' : 'record' in rec ? 'record' : null;
  if (field === null) return null;
  const statement = rec[field];
  if (typeof statement !== 'object' || statement === null || Array.isArray(statement)) return null;
  const s = statement as Record<string, unknown>;
  if (typeof s['hostname'] !== 'string') return null;
  const sig = rec['signature'];
  const verdict = rec['verdict'];
  return {
    hostname: s['hostname'],
    what: field === 'report' ? `report ${typeof s['event'] === 'string' ? s['event'] : '?'}` : 'confirmed record',
    statement,
    signature: typeof sig === 'string' ? sig : null,
    verdict: verdict === 'verified' || verdict === 'unsigned-no-pubkey' || verdict === 'invalid' ? verdict : null,
  };
}

/**
 * Verify an export. `hostKeys`: hostname → base64 raw Ed25519 public keys (any may verify, so
 * several fleet generations can be given); `null` = no keys given, report signatures unchecked.
 */
export function verifyAuditLog(text: string, hostKeys: Readonly<Record<string, readonly string[]>> | null): Result<AuditSummary, AuditVerifyError> {
  const lines = text.split('\n');
  if (lines.length > 0 && lines[lines.length - 1] === '') lines.pop();
  if (lines.length === 0) return err({ code: 'EMPTY', line: 0, seq: null, message: 'the export holds no entries' });

  const reports = { verified: 0, rejectedByCp: 0, unchecked: 0 };
  const evidence = { verified: 0, unchecked: 0 };
  let prev: AuditEntry | null = null;
  let first: AuditEntry | null = null;
  for (let i = 0; i < lines.length; i++) {
    const line = i + 1;
    const fault = (code: AuditVerifyErrorCode, seq: number | null, message: string) =>
      err<AuditVerifyError>({ code, line, seq, message: `line ${line}${seq !== null ? ` (seq ${seq})` : ''}: ${message}` });

    const parsed = parseJsonStrict(lines[i]!);
    if (!parsed.ok) return fault('PARSE_ERROR', null, `not a JSON entry (${parsed.error.code}: ${parsed.error.message})`);
    const shape = checkShape(parsed.value);
    if (typeof shape === 'string') {
      const seq = typeof (parsed.value as { seq?: unknown } | null)?.seq === 'number' ? ((parsed.value as { seq: number }).seq) : null;
      return fault('SHAPE', seq, shape);
    }
    const e = shape;
    if (prev === null) {
      if (e.seq === 1 && e.prevHash !== GENESIS_HASH) return fault('PREV_HASH', e.seq, 'the first entry of the log must have prevHash of 64 zeros');
    } else {
      if (e.seq !== prev.seq + 1) return fault('SEQ', e.seq, `expected seq ${prev.seq + 1} after ${prev.seq} (entries removed, added or reordered)`);
      if (e.prevHash !== prev.hash) return fault('PREV_HASH', e.seq, `prevHash does not match the hash of line ${line - 1} (the chain is broken here)`);
    }
    let want: string;
    try {
      want = auditEntryHash(e);
    } catch {
      return fault('SHAPE', e.seq, 'the entry has no canonical JSON form (JCS), so it cannot be hashed');
    }
    if (want !== e.hash) return fault('HASH', e.seq, `hash does not match the entry's content (edited; expected ${want.slice(0, 12)}…, found ${e.hash.slice(0, 12)}…)`);

    const r = signedStatementOf(e);
    if (r !== null) {
      const keys = hostKeys?.[r.hostname] ?? [];
      if (keys.length === 0) {
        reports.unchecked++;
      } else {
        const bytes = canonicalBytes(r.statement);
        const sig = r.signature === null ? null : fromBase64(r.signature);
        const good = bytes.ok && sig !== null && keys.some((k) => verifySignature('ed25519', k, bytes.value, sig));
        if (good) reports.verified++;
        else if (r.verdict === 'invalid') reports.rejectedByCp++;
        else return fault('REPORT_SIGNATURE', e.seq, `${r.what} of host ${r.hostname} does not verify under its key${r.signature === null ? ' (no signature)' : ''}`);
      }
    }
    for (const [k, ev] of evidenceOf(e).entries()) {
      const keys = hostKeys?.[ev.hostname] ?? [];
      if (ev.hostname !== e.actor.replace(/^host:/, '')) return fault('EVIDENCE_SIGNATURE', e.seq, `evidence[${k}] names host ${ev.hostname}, but the entry is host ${e.actor}'s`);
      if (keys.length === 0) {
        evidence.unchecked++;
        continue;
      }
      const bytes = canonicalBytes(ev.record);
      const sig = ev.signature === null ? null : fromBase64(ev.signature);
      if (bytes.ok && sig !== null && keys.some((key) => verifySignature('ed25519', key, bytes.value, sig))) evidence.verified++;
      else return fault('EVIDENCE_SIGNATURE', e.seq, `evidence[${k}] (control ${ev.control}) of host ${ev.hostname} does not verify under its key${ev.signature === null ? ' (no signature)' : ''}`);
    }
    first ??= e;
    prev = e;
  }
  return ok({
    entries: lines.length,
    firstSeq: first!.seq,
    lastSeq: prev!.seq,
    lastHash: prev!.hash,
    complete: first!.seq === 1,
    reports,
    evidence,
  });
}

/** The host-signed evidence records a `host.evidence` entry carries (issue 15), if any. */
export function evidenceOf(entry: AuditEntry): { hostname: string; control: string; record: unknown; signature: string | null }[] {
  if (entry.kind !== 'host.evidence') return [];
  const d = entry.data as { evidence?: unknown } | null;
  if (typeof d !== 'object' || d === null || !Array.isArray(d.evidence)) return [];
  return d.evidence.map((x: unknown) => {
    const o = (typeof x === 'object' && x !== null ? x : {}) as { record?: { hostname?: unknown; control?: unknown }; signature?: unknown };
    return {
      hostname: typeof o.record?.hostname === 'string' ? o.record.hostname : '?',
      control: typeof o.record?.control === 'string' ? o.record.control : '?',
      record: o.record ?? null,
      signature: typeof o.signature === 'string' ? o.signature : null,
    };
  });
}

function checkShape(v: unknown): AuditEntry | string {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) return 'not a JSON object';
  const o = v as Record<string, unknown>;
  for (const k of Object.keys(o)) if (!(ENTRY_KEYS as readonly string[]).includes(k)) return `unexpected field "${k}" (not covered by the hash)`;
  for (const k of ENTRY_KEYS) if (!(k in o)) return `missing field "${k}"`;
  if (typeof o['seq'] !== 'number' || !Number.isSafeInteger(o['seq']) || o['seq'] < 1) return '"seq" must be a positive integer';
  for (const k of ['at', 'kind', 'actor', 'subject'] as const) if (typeof o[k] !== 'string') return `"${k}" must be a string`;
  for (const k of ['prevHash', 'hash'] as const) if (typeof o[k] !== 'string' || !HEX64.test(o[k] as string)) return `"${k}" must be 64 lower-case hex digits`;
  return o as AuditEntry;
}

/** Parse host keys out of a fleet's hosts (OpenSSH lines already converted to base64 raw by the caller). */
export function mergeHostKeys(into: Record<string, string[]>, keys: Readonly<Record<string, string>>): void {
  for (const [h, k] of Object.entries(keys)) {
    const list = (into[h] ??= []);
    if (!list.includes(k)) list.push(k);
  }
}
