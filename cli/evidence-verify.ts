/**
 * `nixfleet evidence verify PACKET` (issue 15), offline and pure: the packet's bytes and a trust
 * root in, a verdict and a per-framework summary out. The checks, in order (the first failure is
 * the answer, with a stable code and the file — and line — it is about):
 *
 *  1. the archive (`TAR_FORMAT`), the manifest (`MANIFEST`: JCS, known format), every listed file
 *     present (`FILE_MISSING`) with its sha256 (`FILE_HASH`), no file outside it (`FILE_UNLISTED`);
 *  2. the trust root (`TRUST`): the auditor's `--trust`, else the packet's trust.json;
 *  3. every release: its signature and content under that trust, as of when the CP accepted it
 *     (`RELEASE_SIGNATURE`), and agreeing with releases.json (`RELEASE_INDEX`);
 *  4. the audit segment: chain continuity and every host statement in it under the host keys of
 *     those releases (`AUDIT_CHAIN`, `REPORT_SIGNATURE`, `EVIDENCE_SIGNATURE`); every activation it
 *     records is of a closure a verified release declared for that host (`ACTIVATION_UNDECLARED`);
 *     every witnessed head is in the segment (`WITNESS_SIGNATURE`, `WITNESS_REWRITTEN`,
 *     `WITNESS_TRUNCATED`, `WITNESS_REBUILT`: protocol/audit-witness.ts);
 *  5. every evidence record (`PACKET_FILE` for a malformed line): signed by its host's key from a
 *     verified release (`EVIDENCE_SIGNATURE`), received inside the period and not dated after its
 *     receipt (`EVIDENCE_FRESHNESS`).
 */
import { compile } from '../protocol/validate.ts';
import { badWitnessSignature, checkWitnesses, WitnessListSchema, type WitnessErrorCode } from '../protocol/audit-witness.ts';
import type { AuditEntry } from '../protocol/api.ts';
import { controlsOf, type Control } from '../protocol/compliance.ts';
import { fromBase64, parseOpenSshEd25519, sha256Hex, toBase64, verifySignature } from '../protocol/crypto.ts';
import { PACKET_FILES, PACKET_FORMAT, StoredEvidenceSchema, type PacketInfo, type ReleaseIndexEntry, type StoredEvidence } from '../protocol/evidence-packet.ts';
import { canonicalBytes, canonicalize, parseJsonStrict } from '../protocol/jcs.ts';
import { err, ok, type Result } from '../protocol/result.ts';
import { parseTrust, type FleetResolved, type Trust } from '../protocol/schema.ts';
import { readTar } from '../protocol/tar.ts';
import { verifyArtifact } from '../protocol/verify.ts';
import { signedStatementOf, verifyAuditLog, type AuditSummary } from './audit.ts';

export type PacketErrorCode =
  | 'TAR_FORMAT'
  | 'MANIFEST'
  | 'FILE_MISSING'
  | 'FILE_HASH'
  | 'FILE_UNLISTED'
  | 'PACKET_FILE'
  | 'TRUST'
  | 'RELEASE_SIGNATURE'
  | 'RELEASE_INDEX'
  | 'AUDIT_CHAIN'
  | 'REPORT_SIGNATURE'
  | 'EVIDENCE_SIGNATURE'
  | 'EVIDENCE_FRESHNESS'
  | 'ACTIVATION_UNDECLARED'
  | 'WITNESS_SIGNATURE'
  | WitnessErrorCode;

export type PacketError = { code: PacketErrorCode; file: string | null; line: number | null; message: string };

/** A record's status at the end of the period (as `nixfleet compliance`, over the packet). */
export type CellStatus = 'pass' | 'fail' | 'error' | 'stale' | 'missing';
export type Cell = { host: string; control: string; status: CellStatus; observed: string | null; at: string | null; closure: string | null; signed: boolean };

export type PacketSummary = {
  packet: PacketInfo;
  trustFrom: 'argument' | 'packet';
  files: number;
  releases: { file: string; signedAt: string; acceptedAt: string; sha256: string; ciCommit: string | null; hosts: number; keyRole: string }[];
  audit: Pick<AuditSummary, 'entries' | 'firstSeq' | 'lastSeq' | 'lastHash' | 'reports' | 'evidence'> | null;
  activations: number;
  /** Witnessed heads (host-signed, operator checkpoints) found in the segment, and before it. */
  witnesses: { matched: number; before: number };
  evidence: { records: number; verified: number; unsigned: number };
  frameworks: { framework: string; controls: number; pass: number; fail: number; error: number; stale: number; missing: number }[];
  controls: { id: string; title: string; severity: string; clauses: string[] }[];
  hosts: string[];
  cells: Cell[];
};

/** A host × control is stale when its newest record is this much older than the end of the period (as the CP's default). */
export const STALE_AFTER_MS = 24 * 3600 * 1000;
/** Clock skew tolerated between a host and the CP (the CP drops records further ahead). */
export const FUTURE_SKEW_MS = 5 * 60 * 1000;

const storedEvidence = compile(StoredEvidenceSchema);
const witnessList = compile(WitnessListSchema);
const dec = new TextDecoder();
const fault = (code: PacketErrorCode, file: string | null, line: number | null, message: string) =>
  err<PacketError>({ code, file, line, message: `${file === null ? '' : `${file}${line === null ? '' : `:${line}`}: `}${message}` });

function jsonOf(bytes: Uint8Array | undefined, file: string): Result<unknown, PacketError> {
  if (bytes === undefined) return fault('FILE_MISSING', file, null, 'missing from the packet');
  const v = parseJsonStrict(bytes);
  return v.ok ? v : fault('PACKET_FILE', file, null, `not JSON (${v.error.code}: ${v.error.message})`);
}

/** Verify a packet; `trust`: the auditor's trust root (null: the packet's own trust.json, said so in the summary). */
export function verifyEvidencePacket(bytes: Uint8Array, trust: Trust | null): Result<PacketSummary, PacketError> {
  // 1. archive and manifest
  const tar = readTar(bytes);
  if (!tar.ok) return fault('TAR_FORMAT', null, null, tar.error.message);
  const files = new Map(tar.value.map((f) => [f.path, f.bytes]));
  const mBytes = files.get(PACKET_FILES.manifest);
  const m = jsonOf(mBytes, PACKET_FILES.manifest);
  if (!m.ok) return m;
  const mText = canonicalize(m.value);
  if (!mText.ok || mText.value !== dec.decode(mBytes)) return fault('MANIFEST', PACKET_FILES.manifest, null, 'not in canonical JSON (JCS) form (edited)');
  const manifest = m.value as { format?: unknown; files?: unknown };
  if (manifest.format !== PACKET_FORMAT) return fault('MANIFEST', PACKET_FILES.manifest, null, `unknown format ${JSON.stringify(manifest.format)} (want ${PACKET_FORMAT})`);
  if (!Array.isArray(manifest.files)) return fault('MANIFEST', PACKET_FILES.manifest, null, '"files" must be a list');
  const listed = new Set<string>([PACKET_FILES.manifest]);
  for (const e of manifest.files as { path?: unknown; sha256?: unknown }[]) {
    if (typeof e?.path !== 'string' || typeof e.sha256 !== 'string') return fault('MANIFEST', PACKET_FILES.manifest, null, 'an entry without path or sha256');
    const b = files.get(e.path);
    if (b === undefined) return fault('FILE_MISSING', e.path, null, 'listed in the manifest but missing from the packet (removed)');
    if (sha256Hex(b) !== e.sha256) return fault('FILE_HASH', e.path, null, `sha256 ${sha256Hex(b).slice(0, 12)}… does not match the manifest's ${e.sha256.slice(0, 12)}… (edited)`);
    listed.add(e.path);
  }
  for (const p of files.keys()) if (!listed.has(p)) return fault('FILE_UNLISTED', p, null, 'in the packet but not in the manifest (added)');

  const info = jsonOf(files.get(PACKET_FILES.info), PACKET_FILES.info);
  if (!info.ok) return info;
  const packet = info.value as PacketInfo;
  const fromMs = Date.parse(packet.from);
  const toMs = Date.parse(packet.to);
  if (!Number.isFinite(fromMs) || !Number.isFinite(toMs)) return fault('PACKET_FILE', PACKET_FILES.info, null, 'from / to are not times');

  // 2. trust
  let trustRoot = trust;
  if (trustRoot === null) {
    const t = jsonOf(files.get(PACKET_FILES.trust), PACKET_FILES.trust);
    if (!t.ok) return t;
    const parsed = parseTrust(t.value);
    if (!parsed.ok) return fault('TRUST', PACKET_FILES.trust, null, parsed.error.message);
    trustRoot = parsed.value;
  }

  // 3. releases
  const idx = jsonOf(files.get(PACKET_FILES.releases), PACKET_FILES.releases);
  if (!idx.ok) return idx;
  if (!Array.isArray(idx.value)) return fault('PACKET_FILE', PACKET_FILES.releases, null, 'must be a list');
  const releases: PacketSummary['releases'] = [];
  const fleets: FleetResolved[] = [];
  const indexed = new Set<string>();
  for (const r of idx.value as ReleaseIndexEntry[]) {
    const art = files.get(r.file);
    const sig = files.get(`${r.file}.sig`);
    if (art === undefined || sig === undefined) return fault('FILE_MISSING', r.file, null, 'named by releases.json, missing (artefact or .sig)');
    indexed.add(r.file).add(`${r.file}.sig`);
    const acceptedMs = Date.parse(r.acceptedAt);
    const v = verifyArtifact({ kind: 'fleet', bytes: art, signature: sig, trust: trustRoot, nowMs: Number.isFinite(acceptedMs) ? acceptedMs : 0, lastAccepted: null });
    if (!v.ok) return fault('RELEASE_SIGNATURE', r.file, null, `${v.error.code}: ${v.error.message}`);
    if (v.value.sha256 !== r.sha256 || v.value.signedAt !== r.signedAt) return fault('RELEASE_INDEX', PACKET_FILES.releases, null, `${r.file}: sha256 / signedAt disagree with the signed artefact`);
    const fleet = v.value.fleet!;
    fleets.push(fleet);
    releases.push({ file: r.file, signedAt: r.signedAt, acceptedAt: r.acceptedAt, sha256: r.sha256, ciCommit: fleet.meta.ciCommit ?? null, hosts: Object.keys(fleet.hosts).length, keyRole: v.value.keyRole });
  }
  for (const p of files.keys()) if (p.startsWith('releases/') && !indexed.has(p)) return fault('RELEASE_INDEX', p, null, 'a release file releases.json does not name');

  const keys: Record<string, string[]> = {};
  const declared: Record<string, Set<string>> = {};
  for (const f of fleets) {
    for (const [h, host] of Object.entries(f.hosts)) {
      if (host.closureHash !== null) (declared[h] ??= new Set()).add(host.closureHash);
      if (host.pubkey === null) continue;
      const k = parseOpenSshEd25519(host.pubkey);
      if (!k.ok) continue; // verifyArtifact parsed the fleet; a key it admits but we cannot read verifies nothing
      const list = (keys[h] ??= []);
      if (!list.includes(toBase64(k.value))) list.push(toBase64(k.value));
    }
  }

  // 4. audit segment
  const auditBytes = files.get(PACKET_FILES.audit);
  if (auditBytes === undefined) return fault('FILE_MISSING', PACKET_FILES.audit, null, 'missing from the packet');
  let audit: PacketSummary['audit'] = null;
  let activations = 0;
  const auditText = dec.decode(auditBytes);
  if (auditText !== '') {
    const a = verifyAuditLog(auditText, keys);
    if (!a.ok) {
      const code: PacketErrorCode = a.error.code === 'REPORT_SIGNATURE' || a.error.code === 'EVIDENCE_SIGNATURE' ? a.error.code : 'AUDIT_CHAIN';
      return fault(code, PACKET_FILES.audit, a.error.line, `${a.error.code}: ${a.error.message}`);
    }
    audit = { entries: a.value.entries, firstSeq: a.value.firstSeq, lastSeq: a.value.lastSeq, lastHash: a.value.lastHash, reports: a.value.reports, evidence: a.value.evidence };
    const lines = auditText.split('\n');
    for (let i = 0; i < lines.length; i++) {
      if (lines[i] === '') continue;
      const s = signedStatementOf(JSON.parse(lines[i]!) as Parameters<typeof signedStatementOf>[0]);
      if (s === null || s.verdict === 'invalid') continue;
      const st = s.statement as { event?: unknown; closureHash?: unknown };
      const activation = s.what === 'confirmed record' || (typeof st.event === 'string' && st.event.startsWith('activation-') && st.event !== 'activation-failed');
      if (!activation || typeof st.closureHash !== 'string') continue;
      activations++;
      if (declared[s.hostname]?.has(st.closureHash) !== true) {
        return fault('ACTIVATION_UNDECLARED', PACKET_FILES.audit, i + 1, `host ${s.hostname} activated ${st.closureHash}, which no verified release in the packet declares for it`);
      }
    }
  }

  // 4b. witnessed heads: signed by their hosts, and each in the segment (or before it)
  const wj = jsonOf(files.get(PACKET_FILES.witnesses), PACKET_FILES.witnesses);
  if (!wj.ok) return wj;
  if (!witnessList.check(wj.value)) return fault('PACKET_FILE', PACKET_FILES.witnesses, null, 'not a list of witnessed heads');
  const badW = badWitnessSignature(wj.value, keys);
  if (badW !== null) return fault('WITNESS_SIGNATURE', PACKET_FILES.witnesses, null, `${badW.by}'s witness of seq ${badW.seq} does not verify under its host key`);
  const segment = auditText === '' ? [] : auditText.split('\n').filter((l) => l !== '').map((l) => JSON.parse(l) as AuditEntry);
  const wc = checkWitnesses(segment, wj.value);
  if (!wc.ok) return fault(wc.error.code, PACKET_FILES.witnesses, null, wc.error.message);

  // 5. evidence records
  const evBytes = files.get(PACKET_FILES.evidence);
  if (evBytes === undefined) return fault('FILE_MISSING', PACKET_FILES.evidence, null, 'missing from the packet');
  const records: StoredEvidence[] = [];
  let verified = 0;
  let unsigned = 0;
  const evLines = dec.decode(evBytes).split('\n');
  if (evLines[evLines.length - 1] === '') evLines.pop();
  for (let i = 0; i < evLines.length; i++) {
    const line = i + 1;
    const v = parseJsonStrict(evLines[i]!);
    if (!v.ok || !storedEvidence.check(v.value)) return fault('PACKET_FILE', PACKET_FILES.evidence, line, 'not a stored evidence record {record, signature, receivedAt, verdict}');
    const e = v.value;
    const what = `evidence of host ${e.record.hostname}, control ${e.record.control}`;
    const hostKeys = keys[e.record.hostname] ?? [];
    if (e.signature === null) {
      if (hostKeys.length > 0) return fault('EVIDENCE_SIGNATURE', PACKET_FILES.evidence, line, `${what} carries no signature, but the host has a key`);
      unsigned++;
    } else {
      const body = canonicalBytes(e.record);
      const sig = fromBase64(e.signature);
      const good = body.ok && sig !== null && hostKeys.some((k) => verifySignature('ed25519', k, body.value, sig));
      if (!good) return fault('EVIDENCE_SIGNATURE', PACKET_FILES.evidence, line, `${what} does not verify under the host's key in the signed releases${hostKeys.length === 0 ? ' (no release gives this host a key)' : ''}`);
      verified++;
    }
    const atMs = Date.parse(e.record.at);
    const recvMs = Date.parse(e.receivedAt);
    if (!(recvMs >= fromMs && recvMs <= toMs)) return fault('EVIDENCE_FRESHNESS', PACKET_FILES.evidence, line, `${what} was received at ${e.receivedAt}, outside the period`);
    if (atMs > recvMs + FUTURE_SKEW_MS) return fault('EVIDENCE_FRESHNESS', PACKET_FILES.evidence, line, `${what} is dated ${e.record.at}, after it was received (${e.receivedAt})`);
    records.push(e);
  }

  return ok({ packet, trustFrom: trust === null ? 'packet' : 'argument', files: files.size, releases, audit, activations, witnesses: wc.value, evidence: { records: records.length, verified, unsigned }, ...summarise(fleets[fleets.length - 1] ?? null, records, packet, toMs) });
}

/** Per framework / control / host: the newest record of each host × control at the end of the period. */
function summarise(fleet: FleetResolved | null, records: readonly StoredEvidence[], packet: PacketInfo, toMs: number): Pick<PacketSummary, 'frameworks' | 'controls' | 'hosts' | 'cells'> {
  if (fleet === null) return { frameworks: [], controls: [], hosts: [], cells: [] };
  const newest = new Map<string, StoredEvidence>();
  for (const r of records) {
    const k = `${r.record.hostname}\u0000${r.record.control}`;
    const prev = newest.get(k);
    if (prev === undefined || Date.parse(prev.record.at) <= Date.parse(r.record.at)) newest.set(k, r);
  }
  const own = fleet.compliance?.controls;
  const byControl = new Map<string, Control>();
  const cells: Cell[] = [];
  const heldTo = new Map<string, Set<string>>(); // framework → host×control keys
  for (const [h, host] of Object.entries(fleet.hosts).sort(([a], [b]) => (a < b ? -1 : 1))) {
    const ch = fleet.channels[host.channel];
    if (ch === undefined || ch.compliance.mode === 'disabled') continue;
    const fws = packet.framework === null ? ch.compliance.frameworks : ch.compliance.frameworks.filter((f) => f === packet.framework);
    for (const c of controlsOf(fws, own)) {
      byControl.set(c.id, c);
      const r = newest.get(`${h}\u0000${c.id}`);
      const stale = r !== undefined && toMs - Date.parse(r.record.at) > STALE_AFTER_MS;
      cells.push({ host: h, control: c.id, status: r === undefined ? 'missing' : stale ? 'stale' : r.record.result, observed: r?.record.observed ?? null, at: r?.record.at ?? null, closure: r?.record.closure ?? null, signed: r !== undefined && r.signature !== null });
      for (const f of fws) if (c.frameworks.some((cl) => cl.split(':')[0] === f)) (heldTo.get(f) ?? heldTo.set(f, new Set()).get(f)!).add(`${h}\u0000${c.id}`);
    }
  }
  const cellOf = new Map(cells.map((c) => [`${c.host}\u0000${c.control}`, c]));
  const frameworks = [...heldTo.entries()].sort(([a], [b]) => (a < b ? -1 : 1)).map(([framework, pairs]) => {
    const counts = { pass: 0, fail: 0, error: 0, stale: 0, missing: 0 };
    const ctrls = new Set<string>();
    for (const p of pairs) {
      const c = cellOf.get(p)!;
      counts[c.status]++;
      ctrls.add(c.control);
    }
    return { framework, controls: ctrls.size, ...counts };
  });
  return {
    frameworks,
    controls: [...byControl.values()].map((c) => ({ id: c.id, title: c.title, severity: c.severity, clauses: c.frameworks })),
    hosts: [...new Set(cells.map((c) => c.host))],
    cells,
  };
}
