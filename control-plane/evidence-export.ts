/**
 * `GET /v1/evidence?from=&to=` (issue 15): what `nixfleet evidence export` packs — the signed
 * releases in force over the period (from the store's artefact history, bytes and signatures as
 * accepted), every host-signed evidence record received in it, the trust root the CP verifies
 * with. Read-only; the CLI reads the audit segment through `GET /v1/audit`.
 */
import { toBase64 } from '../protocol/crypto.ts';
import { releasesInForce, type EvidenceResponse, type StoredEvidence } from '../protocol/evidence-packet.ts';
import type { Trust } from '../protocol/schema.ts';
import { parseTimestamp } from '../protocol/vocab.ts';
import { ApiError } from './errors.ts';
import type { EvidenceRow, Store } from './store/types.ts';

const iso = (ms: number): string => new Date(ms).toISOString();

/** The query bounds as epoch ms; `INVALID_QUERY` when missing, not RFC 3339, or reversed. */
export function evidenceRange(from: string | undefined, to: string | undefined): { fromMs: number; toMs: number } {
  const fromMs = from === undefined ? null : parseTimestamp(from);
  const toMs = to === undefined ? null : parseTimestamp(to);
  if (fromMs === null || toMs === null) throw new ApiError('INVALID_QUERY', 'from and to must be RFC 3339 times');
  if (fromMs > toMs) throw new ApiError('INVALID_QUERY', 'from must not be after to');
  return { fromMs, toMs };
}

const toStored = (r: EvidenceRow): StoredEvidence => ({
  record: JSON.parse(r.recordJson) as StoredEvidence['record'],
  signature: r.signature,
  receivedAt: iso(r.receivedMs),
  verdict: r.verdict,
});

export async function evidenceExport(store: Store, trust: Trust, fromMs: number, toMs: number): Promise<EvidenceResponse> {
  const releases = releasesInForce(await store.artifactHistory('fleet'), fromMs, toMs).map((a) => ({
    kind: 'fleet' as const,
    signedAt: a.signedAt,
    sha256: a.sha256,
    acceptedAt: iso(a.acceptedMs),
    artifact: toBase64(a.bytes),
    signature: toBase64(a.signature),
  }));
  const evidence = (await store.evidenceHistory(fromMs, toMs)).map(toStored);
  return { trust, releases, evidence };
}
