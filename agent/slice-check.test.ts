/**
 * `checkSliceTarget` (agent/slice.ts), pure: every refusal code of the slice path, including
 * those the real-Nix tests (agent/slice.test.ts) do not drive — a stale or future index, a
 * non-canonical leaf, a channel / signedAt / rollout mismatch, a bad base64 signature, and the
 * cross-kind rules against the newest accepted fleet artefact (ROLLBACK, EQUIVOCATION).
 */
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { sampleFleet, signFleet, signIndex } from '../fixtures/artifacts.ts';
import { mintReleaseKey, trustFor } from '../fixtures/keys.ts';
import type { SliceResponse, Target } from '../protocol/api.ts';
import { toBase64 } from '../protocol/crypto.ts';
import type { FleetResolved } from '../protocol/schema.ts';
import { sliceFor, type SliceIndex } from '../protocol/slice.ts';
import { checkSliceTarget, type CheckSliceInput } from './slice.ts';

const key = mintReleaseKey('ed25519', 5);
const T0 = '2026-04-01T10:00:00Z';
const t0 = Date.parse(T0);
const HOST = 'host-0002';
const fleet = sampleFleet({ hosts: 6, channels: ['stable'], waves: 2, closures: true });
const signed = signFleet(fleet, key, T0);

function setup(over: { index?: (i: SliceIndex) => SliceIndex; fleet?: FleetResolved; signedAt?: string } = {}) {
  const s = over.fleet === undefined && over.signedAt === undefined ? signed : signFleet(over.fleet ?? fleet, key, over.signedAt ?? T0);
  const si = signIndex(s, key, over.index);
  const body: SliceResponse = { ...sliceFor(si.tree, HOST)!, index: new TextDecoder().decode(si.bytes), indexSignature: toBase64(si.signature) };
  const host = s.value.hosts[HOST]!;
  const wave = s.value.waves['stable']!.findIndex((w) => w.hosts.includes(HOST));
  const target: Target = {
    closureHash: host.closureHash!,
    rolloutId: `stable@${s.sha256.slice(0, 12)}`,
    channel: 'stable',
    wave,
    signedAt: s.signedAt!,
    freshnessWindowMinutes: 180,
    artifactSha256: s.sha256,
    confirmDeadline: '2026-04-01T10:05:00Z',
    slice: true,
  };
  return { s, si, body, target };
}

const run = (o: ReturnType<typeof setup>, over: Partial<CheckSliceInput> = {}) =>
  checkSliceTarget({ target: o.target, hostname: HOST, slice: o.body, trust: trustFor(key), nowMs: t0, lastAccepted: null, lastAcceptedFleet: null, ...over });
const code = (r: ReturnType<typeof checkSliceTarget>) => (r.ok ? 'OK' : r.error.code);

const t = suite('checkSliceTarget');

t('a good slice gives the leaf, the index to persist and the artefact it names', () => {
  const o = setup();
  const r = run(o);
  assert.ok(r.ok, r.ok ? '' : r.error.message);
  if (!r.ok) return;
  assert.equal(r.value.host, signed.value.hosts[HOST]);
  assert.equal(r.value.fleetAccepted, { signedAt: T0, sha256: signed.sha256 });
  assert.is(r.value.verified.accepted.sha256, o.si.sha256);
});

t('time rules of the index: STALE, FUTURE_DATED; a signature that is not base64 → BAD_SIGNATURE', () => {
  const o = setup();
  assert.is(code(run(o, { nowMs: t0 + 181 * 60_000 + 1 })), 'STALE');
  assert.is(code(run(o, { nowMs: t0 - 61_000 })), 'FUTURE_DATED');
  assert.is(code(run({ ...o, body: { ...o.body, indexSignature: '%%%' } })), 'BAD_SIGNATURE');
});

t('against the newest accepted index and fleet: ROLLBACK, EQUIVOCATION; the same artefact is fine', () => {
  const o = setup();
  const later = '2026-04-01T10:00:01Z';
  assert.is(code(run(o, { lastAccepted: { signedAt: later, sha256: 'f'.repeat(64) } })), 'ROLLBACK');
  assert.is(code(run(o, { lastAccepted: { signedAt: T0, sha256: 'f'.repeat(64) } })), 'EQUIVOCATION');
  assert.is(code(run(o, { lastAcceptedFleet: { signedAt: later, sha256: 'f'.repeat(64) } })), 'ROLLBACK');
  assert.is(code(run(o, { lastAcceptedFleet: { signedAt: T0, sha256: 'f'.repeat(64) } })), 'EQUIVOCATION');
  assert.is(code(run(o, { lastAcceptedFleet: { signedAt: T0, sha256: signed.sha256 } })), 'OK');
});

t('the leaf: not canonical → SLICE_NOT_CANONICAL; not JSON → SLICE_INVALID', () => {
  const o = setup();
  assert.is(code(run({ ...o, body: { ...o.body, leaf: JSON.stringify(JSON.parse(o.body.leaf), null, 1) } })), 'SLICE_NOT_CANONICAL');
  assert.is(code(run({ ...o, body: { ...o.body, leaf: '{' } })), 'SLICE_INVALID');
});

t('the target against the leaf: CHANNEL_MISMATCH, ROLLOUT_MISMATCH, SIGNED_AT_MISMATCH, BAD_TARGET', () => {
  const o = setup();
  assert.is(code(run({ ...o, target: { ...o.target, channel: 'edge', rolloutId: 'edge@x' } })), 'CHANNEL_MISMATCH');
  assert.is(code(run({ ...o, target: { ...o.target, rolloutId: 'edge@x' } })), 'ROLLOUT_MISMATCH');
  assert.is(code(run({ ...o, target: { ...o.target, signedAt: '2026-04-01T09:00:00Z' } })), 'SIGNED_AT_MISMATCH');
  assert.is(code(run({ ...o, target: { ...o.target, closureHash: '../etc' } })), 'BAD_TARGET');
  assert.is(code(run({ ...o, target: { ...o.target, confirmDeadline: 'soon' } })), 'BAD_TARGET');
});

t('a refusal after the index verified carries the index state to persist; an index refusal does not', () => {
  const o = setup();
  const after = run({ ...o, target: { ...o.target, wave: 7 } });
  assert.is(code(after), 'WAVE_MISMATCH');
  assert.is(!after.ok && after.error.acceptedAnyway?.sha256, o.si.sha256);
  const before = run(o, { trust: trustFor(mintReleaseKey('ed25519', 6)) });
  assert.is(code(before), 'BAD_SIGNATURE');
  assert.is(!before.ok && before.error.acceptedAnyway, undefined);
});

t('issue 14: the signed controls in the slice bind too — a closed change window → OUTSIDE_WINDOW, a pin → PINNED; the channel settings come back', () => {
  const frozen = structuredClone(fleet);
  frozen.channels['stable'] = { ...frozen.channels['stable']!, rebootPolicy: 'automatic', changeWindow: { timeZone: 'UTC', allow: [], freezes: [{ from: '2026-03-01T00:00:00Z', until: '2026-05-01T00:00:00Z', reason: 'audit' }] } };
  assert.is(code(run(setup({ fleet: frozen }))), 'OUTSIDE_WINDOW');
  const pinned = structuredClone(fleet);
  pinned.hosts[HOST] = { ...pinned.hosts[HOST]!, pin: { commit: 'abc', reason: 'hold', expiresAt: '2026-04-02T00:00:00Z' } };
  assert.is(code(run(setup({ fleet: pinned }))), 'PINNED');
  const open = structuredClone(fleet);
  open.channels['stable'] = { ...open.channels['stable']!, rebootPolicy: 'automatic' };
  const r = run(setup({ fleet: open }));
  assert.ok(r.ok && r.value.channel?.rebootPolicy === 'automatic');
});

t.run();
