import { generateKeyPairSync, sign as nodeSign } from 'node:crypto';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { sampleFleet, sampleRevocations, signArtifact, signFleet, signIndex, signRevocations, type SignedArtifact } from '../fixtures/artifacts.ts';
import { mintReleaseKey, trustFor } from '../fixtures/keys.ts';
import { canonicalBytes } from './jcs.ts';
import { sha256Hex, signBytes } from './crypto.ts';
import type { FleetResolved, Trust } from './schema.ts';
import { activeKeys, verifyArtifact, verifySliceIndex, type VerifyInput } from './verify.ts';

const key = mintReleaseKey('ed25519', 1);
const other = mintReleaseKey('ed25519', 2);
const p256key = mintReleaseKey('ecdsa-p256', 3);
const T0 = '2026-03-01T12:00:00Z';
const t0 = Date.parse(T0);
const MIN = 60_000;
const fleet = sampleFleet({ hosts: 5, channels: ['stable', 'beta'], waves: 2, closures: true, withPubkeys: true });
const signed = signFleet(fleet, key, T0, { ciCommit: 'abc' });

const run = (s: Pick<SignedArtifact, 'bytes' | 'signature'>, over: Partial<VerifyInput> = {}) =>
  verifyArtifact({ kind: 'fleet', bytes: s.bytes, signature: s.signature, trust: trustFor(key), nowMs: t0, lastAccepted: null, ...over });
const code = (r: ReturnType<typeof verifyArtifact>) => (r.ok ? 'OK' : r.error.code);
const enc = (s: string) => new TextEncoder().encode(s);
/** Sign arbitrary text's canonical form, for artefacts the fixtures would not produce. */
const signText = (value: unknown, k = key) => {
  const bytes = canonicalBytes(value);
  if (!bytes.ok) throw new Error('bad');
  return { bytes: bytes.value, signature: signBytes(bytes.value, k.privateKey) };
};
const withMeta = (f: FleetResolved, meta: Partial<FleetResolved['meta']>): FleetResolved => ({ ...structuredClone(f), meta: { ...f.meta, ...meta } });

const ok = suite('verifyArtifact: valid artefacts');

ok('a fresh signed fleet verifies and returns the model, canonical bytes and state to persist', () => {
  const r = run(signed);
  assert.ok(r.ok, r.ok ? '' : r.error.message);
  if (!r.ok) return;
  assert.is(r.value.sha256, signed.sha256);
  assert.is(r.value.sha256, sha256Hex(r.value.canonical));
  assert.equal(r.value.accepted, { signedAt: T0, sha256: signed.sha256 });
  assert.is(r.value.fleet!.meta.ciCommit, 'abc');
  assert.equal(r.value.fleet!.waves, fleet.waves);
  assert.is(r.value.keyRole, 'current');
});

ok('verifies over the JCS of the received text: pretty-printed, reordered input with the same content passes', () => {
  const pretty = enc(JSON.stringify(JSON.parse(new TextDecoder().decode(signed.bytes)), null, 2));
  assert.ok(run({ bytes: pretty, signature: signed.signature }).ok);
});

ok('ecdsa-p256 release keys work the same', () => {
  const s = signFleet(fleet, p256key, T0);
  assert.ok(run(s, { trust: trustFor(p256key) }).ok);
  assert.is(code(run(s)), 'BAD_SIGNATURE');
});

ok('revocations: signed even when empty; 180-minute default window', () => {
  const s = signRevocations(sampleRevocations(), key, T0);
  const r = verifyArtifact({ kind: 'revocations', bytes: s.bytes, signature: s.signature, trust: trustFor(key), nowMs: t0 + 180 * MIN, lastAccepted: null });
  assert.ok(r.ok && r.value.revocations!.revocations.length === 0);
  const stale = verifyArtifact({ kind: 'revocations', bytes: s.bytes, signature: s.signature, trust: trustFor(key), nowMs: t0 + 181 * MIN + 1, lastAccepted: null });
  assert.is(code(stale), 'STALE');
  // A fleet is not a revocations list.
  assert.is(code(verifyArtifact({ kind: 'revocations', bytes: signed.bytes, signature: signed.signature, trust: trustFor(key), nowMs: t0, lastAccepted: null })), 'SCHEMA_INVALID');
});

const codes = suite('verifyArtifact: each error code');

codes('TOO_LARGE before anything else', () => {
  assert.is(code(run(signed, { maxBytes: signed.bytes.length - 1 })), 'TOO_LARGE');
  assert.is(code(run(signed, { maxBytes: signed.bytes.length })), 'OK');
});

codes('PARSE_ERROR, DUPLICATE_KEY, NOT_CANONICALIZABLE', () => {
  assert.is(code(run({ bytes: enc('{"a":'), signature: signed.signature })), 'PARSE_ERROR');
  const text = new TextDecoder().decode(signed.bytes);
  const dup = enc('{"schemaVersion":1,' + text.slice(1));
  assert.ok(text.includes('"schemaVersion":1,"waves"'));
  assert.is(code(run({ bytes: dup, signature: signed.signature })), 'DUPLICATE_KEY');
  assert.is(code(run({ bytes: enc(text.replace('"soakMinutes":0', '"soakMinutes":0.5')), signature: signed.signature })), 'NOT_CANONICALIZABLE');
  assert.is(code(run({ bytes: enc('{"x":"\\udead"}'), signature: signed.signature })), 'NOT_CANONICALIZABLE');
});

codes('BAD_SIGNATURE: other key, truncated or flipped signature; NO_ACTIVE_KEY', () => {
  assert.is(code(run(signed, { trust: trustFor(other) })), 'BAD_SIGNATURE');
  assert.is(code(run({ bytes: signed.bytes, signature: signed.signature.subarray(0, 63) })), 'BAD_SIGNATURE');
  const flipped = Uint8Array.from(signed.signature);
  flipped[10]! ^= 1;
  assert.is(code(run({ bytes: signed.bytes, signature: flipped })), 'BAD_SIGNATURE');
  assert.is(code(run(signed, { trust: { schemaVersion: 1, ciReleaseKey: {}, cacheKeys: [] } })), 'NO_ACTIVE_KEY');
});

codes('SCHEMA_VERSION (checked before the schema), SCHEMA_INVALID', () => {
  const v2 = { ...structuredClone(signed.value), schemaVersion: 2, newShape: true, hosts: 'different' };
  assert.is(code(run(signText(v2))), 'SCHEMA_VERSION');
  const metaV2 = withMeta(signed.value, { schemaVersion: 2 as 1 });
  assert.is(code(run(signText(metaV2))), 'SCHEMA_VERSION');
  const broken = structuredClone(signed.value) as any;
  broken.hosts['host-0000'].system = 42;
  const r = run(signText(broken));
  assert.ok(!r.ok && r.error.code === 'SCHEMA_INVALID' && r.error.message.includes('host-0000'));
});

codes('NOT_SIGNED, REJECTED_BEFORE', () => {
  assert.is(code(run(signText(withMeta(signed.value, { signedAt: null })))), 'NOT_SIGNED');
  const trust: Trust = trustFor({ current: key, rejectBefore: '2026-03-01T12:00:01Z' });
  assert.is(code(run(signed, { trust })), 'REJECTED_BEFORE');
  assert.is(code(run(signed, { trust: trustFor({ current: key, rejectBefore: T0 }) })), 'OK');
});

codes('STALE: window = min over channels, + 60 s; explicit window wins', () => {
  const f = structuredClone(fleet);
  f.channels['beta']!.freshnessWindow = 120;
  const s = signFleet(f, key, T0);
  assert.is(code(run(s, { nowMs: t0 + 121 * MIN })), 'OK');
  assert.is(code(run(s, { nowMs: t0 + 121 * MIN + 1 })), 'STALE');
  assert.is(code(run(s, { nowMs: t0 + 121 * MIN + 1, freshnessWindowMinutes: 500 })), 'OK');
});

codes('FUTURE_DATED: more than 60 s ahead', () => {
  assert.is(code(run(signed, { nowMs: t0 - MIN })), 'OK');
  assert.is(code(run(signed, { nowMs: t0 - MIN - 1 })), 'FUTURE_DATED');
});

codes('ROLLBACK and EQUIVOCATION against the last accepted state; same bytes accepted again', () => {
  const newer = signFleet(fleet, key, '2026-03-01T12:30:00Z');
  const last = { signedAt: newer.signedAt!, sha256: newer.sha256 };
  assert.is(code(run(signed, { nowMs: t0 + 30 * MIN, lastAccepted: last })), 'ROLLBACK');
  assert.is(code(run(newer, { nowMs: t0 + 30 * MIN, lastAccepted: last })), 'OK');
  const twin = signFleet(sampleFleet({ hosts: 6 }), key, '2026-03-01T12:30:00Z');
  assert.is(code(run(twin, { nowMs: t0 + 30 * MIN, lastAccepted: last })), 'EQUIVOCATION');
  const newest = signFleet(fleet, key, '2026-03-01T12:45:00Z');
  assert.is(code(run(newest, { nowMs: t0 + 45 * MIN, lastAccepted: last })), 'OK');
});

const order = suite('verifyArtifact: SPEC §2.3 order');

order('signature is checked before schema and time; schemaVersion before NOT_SIGNED; REJECTED_BEFORE before STALE', () => {
  const unsignedOld = signText(withMeta(signed.value, { signedAt: null }), other);
  assert.is(code(run(unsignedOld)), 'BAD_SIGNATURE');
  assert.is(code(run(signed, { trust: trustFor(other), nowMs: t0 + 10_000 * MIN })), 'BAD_SIGNATURE');
  const v2unsigned = { ...withMeta(signed.value, { signedAt: null }), schemaVersion: 2 };
  assert.is(code(run(signText(v2unsigned))), 'SCHEMA_VERSION');
  const trust = trustFor({ current: key, rejectBefore: '2027-01-01T00:00:00Z' });
  assert.is(code(run(signed, { trust, nowMs: t0 + 10_000 * MIN })), 'REJECTED_BEFORE');
  const newer = { signedAt: '2026-03-01T13:00:00Z', sha256: 'ff' };
  assert.is(code(run(signed, { nowMs: t0 + 10_000 * MIN, lastAccepted: newer })), 'STALE');
  assert.is(code(run(signed, { nowMs: t0 - 10 * MIN, lastAccepted: newer })), 'FUTURE_DATED');
});

ok("an artefact signed over its JCS bytes by Node's crypto.sign verifies; the same with S + L is refused", () => {
  const { publicKey, privateKey } = generateKeyPairSync('ed25519');
  const jwkX = publicKey.export({ format: 'jwk' }).x as string;
  const pub = Buffer.from(jwkX, 'base64url').toString('base64');
  const sig = new Uint8Array(nodeSign(null, signed.bytes, privateKey));
  const trust: Trust = { schemaVersion: 1, ciReleaseKey: { current: { algorithm: 'ed25519', public: pub } }, cacheKeys: [] };
  assert.is(code(run({ bytes: signed.bytes, signature: sig }, { trust })), 'OK');
  const L = 2n ** 252n + 27742317777372353535851937790883648493n;
  let sVal = 0n;
  for (let i = 63; i >= 32; i--) sVal = (sVal << 8n) | BigInt(sig[i]!);
  const plusL = Uint8Array.from(sig);
  let n = sVal + L;
  for (let i = 32; i < 64; i++) {
    plusL[i] = Number(n & 0xffn);
    n >>= 8n;
  }
  assert.is(code(run({ bytes: signed.bytes, signature: plusL }, { trust })), 'BAD_SIGNATURE');
});

const idx = suite('verifyArtifact kind index: the same policy for the signed slice index');

idx('a fresh index verifies, returns the index, and ages with the window it carries', () => {
  const si = signIndex(signed, key);
  const at = (nowMs: number, over: Partial<VerifyInput> = {}) => verifySliceIndex({ bytes: si.bytes, signature: si.signature, trust: trustFor(key), nowMs, lastAccepted: null, ...over });
  const r = at(t0);
  assert.ok(r.ok, r.ok ? '' : r.error.message);
  if (!r.ok) return;
  assert.equal(r.value.index, si.index);
  assert.is(r.value.kind, 'index');
  assert.is(r.value.sha256, si.sha256);
  assert.is(r.value.freshnessWindowMinutes, si.index.freshnessWindowMinutes);
  const w = si.index.freshnessWindowMinutes;
  assert.ok(at(t0 + w * MIN + 60_000).ok);
  assert.is(code(at(t0 + w * MIN + 60_001)), 'STALE');
  assert.is(code(at(t0 - 61_000)), 'FUTURE_DATED');
});

idx('each code as for the artefact: other key, schema, NOT_SIGNED, REJECTED_BEFORE, ROLLBACK, EQUIVOCATION', () => {
  const si = signIndex(signed, key);
  const base = { bytes: si.bytes, signature: si.signature, trust: trustFor(key), nowMs: t0, lastAccepted: null };
  assert.is(code(verifySliceIndex({ ...base, trust: trustFor(other) })), 'BAD_SIGNATURE');
  assert.is(code(verifyArtifact({ ...base, kind: 'fleet' })), 'SCHEMA_INVALID');
  assert.is(code(verifyArtifact({ ...base, kind: 'index', bytes: signed.bytes, signature: signed.signature })), 'SCHEMA_INVALID');
  const v2 = signIndex(signed, key, (i) => ({ ...i, schemaVersion: 2 as 1 }));
  assert.is(code(verifySliceIndex({ ...base, bytes: v2.bytes, signature: v2.signature })), 'SCHEMA_VERSION');
  const unsigned = signIndex(signed, key, (i) => ({ ...i, meta: { ...i.meta, signedAt: null } }));
  assert.is(code(verifySliceIndex({ ...base, bytes: unsigned.bytes, signature: unsigned.signature })), 'NOT_SIGNED');
  const rb: Trust = { ...trustFor(key), ciReleaseKey: { ...trustFor(key).ciReleaseKey, rejectBefore: '2026-03-01T12:00:01Z' } };
  assert.is(code(verifySliceIndex({ ...base, trust: rb })), 'REJECTED_BEFORE');
  assert.is(code(verifySliceIndex({ ...base, lastAccepted: { signedAt: '2026-03-01T12:00:01Z', sha256: 'f'.repeat(64) } })), 'ROLLBACK');
  assert.is(code(verifySliceIndex({ ...base, lastAccepted: { signedAt: T0, sha256: 'f'.repeat(64) } })), 'EQUIVOCATION');
  assert.ok(verifySliceIndex({ ...base, lastAccepted: { signedAt: T0, sha256: si.sha256 } }).ok, 'the same bytes are accepted again');
});

const rot = suite('trust.json key rotation');

rot('current, previous and successor (until retireAt) are active', () => {
  const byPrevious = signFleet(fleet, other, T0);
  assert.is(code(run(byPrevious, { trust: trustFor({ current: key, previous: other }) })), 'OK');
  const r = run(byPrevious, { trust: trustFor({ current: key, successor: other, retireAt: '2026-03-01T12:00:01Z' }) });
  assert.ok(r.ok && r.value.keyRole === 'successor');
  assert.is(code(run(byPrevious, { trust: trustFor({ current: key, successor: other, retireAt: T0 }) })), 'BAD_SIGNATURE');
  assert.is(code(run(byPrevious, { trust: trustFor({ current: key, successor: other }) })), 'OK');
  assert.is(code(run(byPrevious, { trust: trustFor({ successor: other, retireAt: T0 }) })), 'NO_ACTIVE_KEY');
  assert.equal(activeKeys(trustFor({ current: key, previous: other, successor: p256key, retireAt: T0 }).ciReleaseKey, t0 - 1).map((k) => k.role), ['current', 'previous', 'successor']);
});

rot('an unknown signatureAlgorithm stamp does not matter: the trusted key decides', () => {
  const s = signArtifact(fleet, key, { signedAt: T0, stampAlgorithm: false });
  assert.is(code(run(s)), 'OK');
});

ok.run();
codes.run();
order.run();
idx.run();
rot.run();
