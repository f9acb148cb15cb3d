/**
 * `trust.json` on the CP and the agents (SPEC §2.3): the release keys (with rotation), the Nix
 * binary-cache keys, and optionally the org root key and the fleet CA. Written by operators.
 *
 * Pure module: no I/O.
 */
import { Type, type Static } from '@sinclair/typebox';
import { asObject, NonEmpty, schemaParser, SchemaVersionSchema, SignatureAlgorithmSchema, type SchemaError } from './artifact.ts';
import type { Result } from './result.ts';
import { Timestamp } from './vocab.ts';

/** `public`: base64 of the raw 32 bytes (ed25519) or of X‖Y, 64 bytes (p256). */
export const PublicKeySchema = Type.Object({ algorithm: SignatureAlgorithmSchema, public: NonEmpty() });
export type PublicKey = Static<typeof PublicKeySchema>;

/**
 * Active keys: current, previous, and successor until `retireAt`. `rejectBefore` (RFC 3339):
 * artefacts signed before it are refused (REJECTED_BEFORE).
 */
export const KeySlotSchema = Type.Object({
  current: Type.Optional(PublicKeySchema),
  previous: Type.Optional(PublicKeySchema),
  rejectBefore: Type.Optional(Timestamp()),
  successor: Type.Optional(PublicKeySchema),
  retireAt: Type.Optional(Timestamp()),
});
export type KeySlot = Static<typeof KeySlotSchema>;

/** `cacheKeys`: Nix binary-cache public keys, `name:base64` (default none). */
export const TrustSchema = Type.Object(
  {
    schemaVersion: SchemaVersionSchema,
    ciReleaseKey: KeySlotSchema,
    cacheKeys: Type.Array(Type.String({ pattern: '^[^:\\s]+:[A-Za-z0-9+/]+={0,2}$', errorMessage: 'must be a Nix public key "name:base64"' }), { default: [] }),
    orgRootKey: Type.Optional(KeySlotSchema),
    fleetCaPem: Type.Optional(Type.String()),
  },
  { title: 'trust.json (SPEC §2.3)' },
);
export type Trust = Static<typeof TrustSchema>;

/** Decoded length of a strict, padded base64 string, or -1. */
function base64Length(s: string): number {
  if (s.length % 4 !== 0 || !/^[A-Za-z0-9+/]*={0,2}$/.test(s)) return -1;
  const pad = s.endsWith('==') ? 2 : s.endsWith('=') ? 1 : 0;
  return (s.length / 4) * 3 - pad;
}

const SLOTS = ['ciReleaseKey', 'orgRootKey'] as const;
const KEYS = ['current', 'previous', 'successor'] as const;

/** An explicit `null` for an optional field reads as absent (older trust files wrote them). Copy on write: `u` itself when there is none. */
function dropNulls(u: unknown): unknown {
  const top = asObject(u);
  if (top === null) return u;
  const without = (o: Record<string, unknown>, keys: readonly string[]): Record<string, unknown> =>
    keys.some((k) => o[k] === null) ? Object.fromEntries(Object.entries(o).filter(([k, v]) => !(v === null && keys.includes(k)))) : o;
  let out = without(top, ['orgRootKey', 'fleetCaPem']);
  for (const s of SLOTS) {
    const slot = asObject(out[s]);
    if (slot === null) continue;
    const clean = without(slot, [...KEYS, 'rejectBefore', 'retireAt']);
    if (clean !== slot) out = { ...out, [s]: clean };
  }
  return out;
}

/** A key's length must fit its algorithm. */
function keyLengths(u: unknown, add: (path: string, message: string) => void): void {
  for (const s of SLOTS) {
    const slot = asObject(asObject(u)?.[s]);
    for (const k of KEYS) {
      const key = asObject(slot?.[k]);
      const alg = key?.['algorithm'];
      const pub = key?.['public'];
      if ((alg !== 'ed25519' && alg !== 'ecdsa-p256') || typeof pub !== 'string' || pub === '') continue;
      const want = alg === 'ed25519' ? 32 : 64;
      if (base64Length(pub) !== want) add(`$.${s}.${k}.public`, `must be base64 of ${want} raw bytes for ${alg}`);
    }
  }
}

/** `trust.json` (SPEC §2.3). */
export const parseTrust: (u: unknown) => Result<Trust, SchemaError> = schemaParser(TrustSchema, 'trust.json', {
  defaults: true, // fills `cacheKeys: []`
  normalise: dropNulls,
  semantic: keyLengths,
});
