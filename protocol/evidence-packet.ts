/**
 * The evidence packet (issue 15): what `GET /v1/evidence` answers, and the layout of the file
 * `nixfleet evidence export` writes — a ustar archive (protocol/tar.ts) an auditor can open with
 * `tar -xf` and `nixfleet evidence verify` checks offline:
 *
 *   manifest.json        JCS {format, files: [{path, sha256, size}]} of every other file, sorted by path
 *   packet.json          {from, to, framework, generatedAt, auditHead}: what was asked, when
 *   trust.json           the control plane's trust root (verify prefers the auditor's `--trust`)
 *   releases.json        [{file, kind, signedAt, sha256, acceptedAt}]: the releases in force over the period
 *   releases/N-fleet-<sha12>.json + .sig   each signed artefact, as accepted, and its raw signature
 *   audit.jsonl          the audit-chain segment of the period, one JCS entry per line
 *   evidence.jsonl       every host-signed evidence record received in the period, one JCS line each:
 *                        {record, signature, receivedAt, verdict}
 *   witnesses.json       the witnessed audit heads up to the end of the period (protocol/audit-witness.ts)
 *
 * Pure: no I/O.
 */
import { Type, type Static } from '@sinclair/typebox';
import type { AuditEntry } from './api.ts';
import type { StoredWitness } from './audit-witness.ts';
import { EvidenceRecordSchema } from './compliance.ts';
import { fromBase64, sha256Hex } from './crypto.ts';
import { canonicalize } from './jcs.ts';
import type { TarFile } from './tar.ts';
import { Nullable } from './vocab.ts';

export const PACKET_FORMAT = 'nixfleet-evidence-packet/1';

/** `GET /v1/evidence?from=T&to=T` query bounds: RFC 3339 times, `from` ≤ `to`. */
export const EvidenceQuerySchema = Type.Object({ from: Type.String(), to: Type.String() });

/** A signed artefact as the CP accepted it: bytes and raw signature in base64. */
export const ReleaseCopySchema = Type.Object({
  kind: Type.Literal('fleet'),
  signedAt: Type.String(),
  sha256: Type.String({ pattern: '^[0-9a-f]{64}$' }),
  /** When the CP first accepted it (RFC 3339): it was in force from then until the next one. */
  acceptedAt: Type.String(),
  artifact: Type.String({ pattern: '^[A-Za-z0-9+/]*={0,2}$' }),
  signature: Type.String({ pattern: '^[A-Za-z0-9+/]{86}==$', errorMessage: 'must be base64 of a 64-byte signature' }),
});
export type ReleaseCopy = Static<typeof ReleaseCopySchema>;

export const StoredEvidenceSchema = Type.Object({
  record: EvidenceRecordSchema,
  signature: Nullable(Type.String()),
  receivedAt: Type.String(),
  verdict: Type.String(),
});
export type StoredEvidence = Static<typeof StoredEvidenceSchema>;

/**
 * `GET /v1/evidence?from=&to=` (operator) → the releases in force over [from, to] (the one in force
 * at `from` and every one accepted up to `to`), every evidence record received in it and the trust
 * root. Read-only; the audit segment is read through `GET /v1/audit`.
 */
export const EvidenceResponseSchema = Type.Object({
  trust: Type.Unknown(),
  releases: Type.Array(ReleaseCopySchema),
  evidence: Type.Array(StoredEvidenceSchema),
});
export type EvidenceResponse = Static<typeof EvidenceResponseSchema>;

/** Releases in force over [fromMs, toMs] out of the accepted history (ascending acceptance). */
export function releasesInForce<T extends { acceptedMs: number }>(history: readonly T[], fromMs: number, toMs: number): T[] {
  let before: T | null = null;
  const inRange: T[] = [];
  for (const r of history) {
    if (r.acceptedMs <= fromMs) before = r;
    else if (r.acceptedMs <= toMs) inRange.push(r);
  }
  return before === null ? inRange : [before, ...inRange];
}

export type PacketInfo = {
  from: string;
  to: string;
  framework: string | null;
  generatedAt: string;
  auditHead: { seq: number; hash: string } | null;
};

export type ManifestEntry = { path: string; sha256: string; size: number };
export type Manifest = { format: typeof PACKET_FORMAT; files: ManifestEntry[] };
export type ReleaseIndexEntry = { file: string; kind: 'fleet'; signedAt: string; sha256: string; acceptedAt: string };

export const PACKET_FILES = { manifest: 'manifest.json', info: 'packet.json', trust: 'trust.json', releases: 'releases.json', audit: 'audit.jsonl', evidence: 'evidence.jsonl', witnesses: 'witnesses.json' } as const;

const enc = new TextEncoder();
const jcs = (v: unknown): string => {
  const t = canonicalize(v);
  if (!t.ok) throw new Error(`evidence packet: value has no JCS form: ${t.error.message}`);
  return t.value;
};
const lines = (vs: readonly unknown[]): Uint8Array => enc.encode(vs.map((v) => jcs(v) + '\n').join(''));

const fromB64 = (s: string): Uint8Array => {
  const b = fromBase64(s);
  if (b === null) throw new Error('evidence packet: bad base64 (the response schema admits only base64)');
  return b;
};

/**
 * The packet's files (manifest first). `audit`: the chain segment of the period, ascending seq;
 * `evidence`: the records to include (already filtered by framework, if any).
 */
export function buildPacket(resp: EvidenceResponse, audit: readonly AuditEntry[], evidence: readonly StoredEvidence[], witnesses: readonly StoredWitness[], info: PacketInfo): TarFile[] {
  const files: TarFile[] = [];
  const index: ReleaseIndexEntry[] = [];
  resp.releases.forEach((r, i) => {
    const file = `releases/${String(i + 1).padStart(3, '0')}-${r.kind}-${r.sha256.slice(0, 12)}.json`;
    files.push({ path: file, bytes: fromB64(r.artifact) }, { path: `${file}.sig`, bytes: fromB64(r.signature) });
    index.push({ file, kind: r.kind, signedAt: r.signedAt, sha256: r.sha256, acceptedAt: r.acceptedAt });
  });
  files.unshift(
    { path: PACKET_FILES.info, bytes: enc.encode(jcs(info) + '\n') },
    { path: PACKET_FILES.trust, bytes: enc.encode(jcs(resp.trust) + '\n') },
    { path: PACKET_FILES.releases, bytes: enc.encode(jcs(index) + '\n') },
    { path: PACKET_FILES.audit, bytes: lines(audit) },
    { path: PACKET_FILES.evidence, bytes: lines(evidence) },
    { path: PACKET_FILES.witnesses, bytes: enc.encode(jcs(witnesses) + '\n') },
  );
  files.sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
  const manifest: Manifest = { format: PACKET_FORMAT, files: files.map((f) => ({ path: f.path, sha256: sha256Hex(f.bytes), size: f.bytes.length })) };
  return [{ path: PACKET_FILES.manifest, bytes: enc.encode(jcs(manifest)) }, ...files];
}
