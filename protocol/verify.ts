/**
 * The verification pipeline for signed artefacts (SPEC §2.1, §2.3), used by the control plane, the
 * agent, the CLI and `nixfleet-release verify`. Steps, in this order, each with its own code:
 *
 *  1. size                      TOO_LARGE
 *  2. strict parse              PARSE_ERROR | DUPLICATE_KEY | NOT_CANONICALIZABLE
 *  3. canonical bytes           NOT_CANONICALIZABLE (JCS of the *received* text, never of a model)
 *  4. signature, any active key NO_ACTIVE_KEY | BAD_SIGNATURE
 *  5. schemaVersion             SCHEMA_VERSION (top level or meta ≠ 1)
 *  6. schema                    SCHEMA_INVALID (the typed model is built from the same parsed value)
 *  7. signedAt null             NOT_SIGNED
 *  8. signedAt < rejectBefore   REJECTED_BEFORE
 *  9. now − signedAt > window + 60 s        STALE
 * 10. signedAt − now > 60 s                 FUTURE_DATED
 * 11. signedAt < lastAccepted.signedAt      ROLLBACK
 *     signedAt = lastAccepted.signedAt with other bytes: EQUIVOCATION (same bytes: accepted again)
 *
 * The same pipeline verifies the three signed kinds: `fleet` (fleet.resolved.json), `revocations`
 * and `index` (fleet.index.json, the signed slice index of issue 19) — only step 6 (the schema)
 * and the default freshness window differ by kind; the last accepted state is kept per kind.
 *
 * Pure: `nowMs` and the last accepted state are parameters; persisting `accepted` is the caller's
 * job. Never throws on any input bytes.
 */
import { canonicalBytesOfText, DEFAULT_MAX_BYTES } from './jcs.ts';
import { sha256Hex, verifySignature } from './crypto.ts';
import { err, ok, type Result } from './result.ts';
import {
  CHANNEL_DEFAULTS,
  parseFleetResolved,
  parseRevocations,
  parseTimestamp,
  SCHEMA_VERSION,
  type ArtifactKind,
  type FleetResolved,
  type KeySlot,
  type PublicKey,
  type Revocations,
  type Trust,
} from './schema.ts';
import { parseSliceIndex, type SliceIndex } from './slice.ts';

export type VerifyErrorCode =
  | 'TOO_LARGE'
  | 'PARSE_ERROR'
  | 'DUPLICATE_KEY'
  | 'NOT_CANONICALIZABLE'
  | 'BAD_SIGNATURE'
  | 'NO_ACTIVE_KEY'
  | 'SCHEMA_INVALID'
  | 'SCHEMA_VERSION'
  | 'NOT_SIGNED'
  | 'REJECTED_BEFORE'
  | 'STALE'
  | 'FUTURE_DATED'
  | 'ROLLBACK'
  | 'EQUIVOCATION';

export const VERIFY_ERROR_CODES: readonly VerifyErrorCode[] = [
  'TOO_LARGE',
  'PARSE_ERROR',
  'DUPLICATE_KEY',
  'NOT_CANONICALIZABLE',
  'BAD_SIGNATURE',
  'NO_ACTIVE_KEY',
  'SCHEMA_INVALID',
  'SCHEMA_VERSION',
  'NOT_SIGNED',
  'REJECTED_BEFORE',
  'STALE',
  'FUTURE_DATED',
  'ROLLBACK',
  'EQUIVOCATION',
];

export type VerifyError = { code: VerifyErrorCode; message: string };

/** Newest accepted artefact of one kind, persisted by the caller (CP database, agent stateDir). */
export type AcceptedState = { signedAt: string; sha256: string };

/** What the pipeline verifies: a release artefact, or the signed slice index beside the fleet. */
export type SignedKind = ArtifactKind | 'index';

/** Which trust.json slot verified the signature. */
export type KeyRole = 'current' | 'previous' | 'successor';

export type VerifyInput = {
  kind: SignedKind;
  /** Exactly as received. */
  bytes: Uint8Array;
  /** Raw 64 bytes. */
  signature: Uint8Array;
  trust: Trust;
  nowMs: number;
  lastAccepted: AcceptedState | null;
  /**
   * Default: fleet = min freshnessWindow over its channels (180 if none); revocations = 180;
   * index = its signed `freshnessWindowMinutes` (the fleet's, so both age alike).
   */
  freshnessWindowMinutes?: number;
  /** Default 16 MiB. */
  maxBytes?: number;
};

export type VerifiedArtifact = {
  kind: SignedKind;
  fleet?: FleetResolved;
  revocations?: Revocations;
  index?: SliceIndex;
  /** The JCS bytes the signature covers. */
  canonical: Uint8Array;
  /** Hex SHA-256 of `canonical`. */
  sha256: string;
  signedAt: string;
  /** What the caller persists as the new lastAccepted. */
  accepted: AcceptedState;
  /** The trust.json slot whose key verified the signature. */
  keyRole: KeyRole;
  /** Freshness window (minutes) that was applied. */
  freshnessWindowMinutes: number;
  /**
   * The typed model is the value of `canonical` exactly as parsed (the schema filled no default
   * and normalised nothing), so `JCS(model) = canonical`: parts of the model can be read from the
   * bytes instead of serialised again (the CP's slice tree, protocol/slice.ts `buildSliceTree`).
   */
  modelIsCanonical: boolean;
  /**
   * A fleet whose model is canonical (`modelIsCanonical`), found canonical in one pass over the
   * bytes: where each host entry is in `canonical` (`[nameStart, nameEnd, valueStart, valueEnd]`
   * per host, in the bytes' order), for protocol/slice.ts `buildSliceTree`.
   */
  hostSpans?: Uint32Array;
};

/** Clock skew tolerated in both directions (SPEC §2.3). */
export const CLOCK_SKEW_MS = 60_000;
/** Freshness window of revocations.json when the caller passes none (minutes). */
export const DEFAULT_REVOCATIONS_WINDOW_MINUTES = CHANNEL_DEFAULTS.freshnessWindow;

/**
 * Active keys of a slot at `nowMs` (SPEC §2.3): current, previous, and the successor until
 * `retireAt` (a successor with no `retireAt` stays active).
 */
export function activeKeys(slot: KeySlot, nowMs: number): { role: KeyRole; key: PublicKey }[] {
  const out: { role: KeyRole; key: PublicKey }[] = [];
  if (slot.current !== undefined) out.push({ role: 'current', key: slot.current });
  if (slot.previous !== undefined) out.push({ role: 'previous', key: slot.previous });
  if (slot.successor !== undefined) {
    const retire = slot.retireAt === undefined ? null : parseTimestamp(slot.retireAt);
    if (retire === null || nowMs < retire) out.push({ role: 'successor', key: slot.successor });
  }
  return out;
}

const fail = (code: VerifyErrorCode, message: string) => err<VerifyError>({ code, message });

/** Verify a signed artefact; see the file comment for the exact order of checks. */
export function verifyArtifact(input: VerifyInput): Result<VerifiedArtifact, VerifyError> {
  const { kind, bytes, signature, trust, nowMs, lastAccepted } = input;
  const maxBytes = input.maxBytes ?? DEFAULT_MAX_BYTES;

  // 1–3: bytes → strict value → canonical bytes.
  if (bytes.byteLength > maxBytes) return fail('TOO_LARGE', `artefact is ${bytes.byteLength} bytes, limit is ${maxBytes}`);
  // A fleet's host entries are located in the same pass (the CP's slice tree reads them from the bytes).
  const parsed = canonicalBytesOfText(bytes, kind === 'fleet' ? { maxBytes, integersOnly: true, memberSpansOf: 'hosts' } : { maxBytes, integersOnly: true });
  if (!parsed.ok) return fail(parsed.error.code, parsed.error.message);
  const canonical = parsed.value.bytes;

  // 4: signature over the canonical bytes, with any active key.
  const keys = activeKeys(trust.ciReleaseKey, nowMs);
  if (keys.length === 0) return fail('NO_ACTIVE_KEY', 'trust.json has no active ciReleaseKey (current, previous or unexpired successor)');
  if (signature.byteLength !== 64) return fail('BAD_SIGNATURE', `signature must be 64 raw bytes, got ${signature.byteLength}`);
  const match = keys.find(({ key }) => verifySignature(key.algorithm, key.public, canonical, signature));
  if (match === undefined) return fail('BAD_SIGNATURE', `signature does not verify with any of the ${keys.length} active release key(s) (${keys.map((k) => k.role).join(', ')})`);

  // 5: schemaVersion before the full schema, so a v2 artefact says so rather than "invalid".
  const v = parsed.value.value;
  if (typeof v === 'object' && v !== null && !Array.isArray(v)) {
    const o = v as Record<string, unknown>;
    const meta = o['meta'];
    const metaVersion = typeof meta === 'object' && meta !== null ? (meta as Record<string, unknown>)['schemaVersion'] : SCHEMA_VERSION;
    if ((o['schemaVersion'] !== undefined && o['schemaVersion'] !== SCHEMA_VERSION) || (metaVersion !== undefined && typeof metaVersion === 'number' && metaVersion !== SCHEMA_VERSION)) {
      return fail('SCHEMA_VERSION', `unsupported schemaVersion ${JSON.stringify(o['schemaVersion'])} (this verifier reads ${SCHEMA_VERSION})`);
    }
  }

  // 6: typed model from the same parsed value.
  let fleet: FleetResolved | undefined;
  let revocations: Revocations | undefined;
  let index: SliceIndex | undefined;
  let signedAt: string | null;
  let windowMinutes: number;
  let model: unknown;
  if (kind === 'fleet') {
    const r = parseFleetResolved(v);
    if (!r.ok) return fail('SCHEMA_INVALID', r.error.message);
    fleet = r.value;
    model = fleet;
    signedAt = fleet.meta.signedAt;
    const windows = Object.values(fleet.channels).map((c) => c.freshnessWindow);
    windowMinutes = input.freshnessWindowMinutes ?? (windows.length > 0 ? Math.min(...windows) : CHANNEL_DEFAULTS.freshnessWindow);
  } else if (kind === 'index') {
    const r = parseSliceIndex(v);
    if (!r.ok) return fail('SCHEMA_INVALID', r.error.message);
    index = r.value;
    model = index;
    signedAt = index.meta.signedAt;
    windowMinutes = input.freshnessWindowMinutes ?? index.freshnessWindowMinutes;
  } else {
    const r = parseRevocations(v);
    if (!r.ok) return fail('SCHEMA_INVALID', r.error.message);
    revocations = r.value;
    model = revocations;
    signedAt = revocations.meta.signedAt;
    windowMinutes = input.freshnessWindowMinutes ?? DEFAULT_REVOCATIONS_WINDOW_MINUTES;
  }

  // 7–10: time.
  if (signedAt === null) return fail('NOT_SIGNED', 'meta.signedAt is null: the artefact was never stamped by `nixfleet-release sign`');
  const signedMs = parseTimestamp(signedAt, true);
  if (signedMs === null) return fail('SCHEMA_INVALID', `meta.signedAt ${JSON.stringify(signedAt)} is not an RFC 3339 UTC timestamp`);
  if (trust.ciReleaseKey.rejectBefore !== undefined) {
    const rb = parseTimestamp(trust.ciReleaseKey.rejectBefore);
    if (rb !== null && signedMs < rb) return fail('REJECTED_BEFORE', `signedAt ${signedAt} is before trust.json rejectBefore ${trust.ciReleaseKey.rejectBefore}`);
  }
  const ageMs = nowMs - signedMs;
  if (ageMs > windowMinutes * 60_000 + CLOCK_SKEW_MS) {
    return fail('STALE', `signed at ${signedAt}, ${Math.floor(ageMs / 60_000)} min ago: older than the freshness window of ${windowMinutes} min (+60 s)`);
  }
  if (-ageMs > CLOCK_SKEW_MS) return fail('FUTURE_DATED', `signed at ${signedAt}, ${Math.ceil(-ageMs / 1000)} s in the future (more than 60 s)`);

  // 11: rollback / equivocation against what this verifier accepted before.
  const sha256 = sha256Hex(canonical);
  if (lastAccepted !== null) {
    const lastMs = parseTimestamp(lastAccepted.signedAt, false);
    if (lastMs !== null && sha256 !== lastAccepted.sha256) {
      if (signedMs < lastMs) return fail('ROLLBACK', `signed at ${signedAt}, older than the already accepted ${lastAccepted.signedAt}`);
      if (signedMs === lastMs) return fail('EQUIVOCATION', `signed at ${signedAt} like the already accepted artefact, but with different bytes`);
    }
  }

  const value: VerifiedArtifact = {
    kind,
    canonical,
    sha256,
    signedAt,
    accepted: { signedAt, sha256 },
    keyRole: match.role,
    freshnessWindowMinutes: windowMinutes,
    // The parsers copy on write: an unchanged value comes back as itself (protocol/validate.ts).
    modelIsCanonical: model === v,
  };
  if (fleet !== undefined) value.fleet = fleet;
  if (value.modelIsCanonical && parsed.value.memberSpans !== undefined) value.hostSpans = parsed.value.memberSpans;
  if (revocations !== undefined) value.revocations = revocations;
  if (index !== undefined) value.index = index;
  return ok(value);
}

/** The signed slice index (`fleet.index.json`): {@link verifyArtifact} with kind `index`. */
export function verifySliceIndex(input: Omit<VerifyInput, 'kind'>): Result<VerifiedArtifact & { index: SliceIndex }, VerifyError> {
  const r = verifyArtifact({ ...input, kind: 'index' });
  if (!r.ok) return r;
  if (r.value.index === undefined) throw new Error('bug: verifyArtifact(kind index) returned no index');
  return ok({ ...r.value, index: r.value.index });
}
