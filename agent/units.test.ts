/**
 * Pure and small pieces of the agent: config resolution, target checks against the signed bytes,
 * poll jitter / backoff / Retry-After, the atomic state store.
 */
import { mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import type { Target } from '../protocol/api.ts';
import { signFleet } from '../fixtures/artifacts.ts';
import { mintReleaseKey, trustFor } from '../fixtures/keys.ts';
import { parseRetryAfter } from './client.ts';
import { DEFAULTS, resolveConfig } from './config.ts';
import { fleetFor, HOST } from '../fixtures/agent-harness.ts';
import { jitter, nextDelayMs } from './timing.ts';
import { FileStateStore, StateCorrupt } from './state.ts';
import { afterBoot, INITIAL_STATE, type MachineState } from './machine.ts';
import { checkTarget } from './target.ts';

const HOSTDEF = { hostname: 'web1', platform: 'nixos' as const };
const MIN = { cpUrl: 'https://cp:8443', tls: { certFile: '/c.pem', keyFile: '/k.pem', caFile: '/ca.pem' } };

const config = suite('agent/config');

config('minimal config gets the SPEC §6 defaults', () => {
  const r = resolveConfig(MIN, HOSTDEF);
  assert.ok(r.ok);
  if (!r.ok) return;
  assert.is(r.value.pollIntervalSecs, 60);
  assert.is(r.value.pollJitterPct, 20);
  assert.is(r.value.maxBackoffFactor, 8);
  assert.is(r.value.confirmDeadlineSecs, 120);
  assert.is(r.value.quarantineHours, 24);
  assert.is(r.value.stateDir, '/var/lib/nixfleet');
  assert.is(r.value.profilePath, '/nix/var/nix/profiles/system');
  assert.is(r.value.hostname, 'web1');
  assert.equal(r.value.agentServicePaths, ['etc/systemd/system/nixfleet-agent.service']);
  assert.ok(Object.isFrozen(DEFAULTS));
  const d = resolveConfig({ ...MIN, platform: 'darwin' }, HOSTDEF);
  assert.ok(d.ok && d.value.agentServicePaths[0]!.startsWith('Library/LaunchDaemons/'));
});

config('every bad field is reported with its path', () => {
  const r = resolveConfig(
    { cpUrl: 'http://cp', tls: { certFile: 'rel.pem' }, pollIntervalSecs: -1, bogus: 1, stateDir: 'var', probes: [{ kind: 'tcp', name: 'x' }, { kind: 'nope' }] },
    HOSTDEF,
  );
  assert.not.ok(r.ok);
  if (r.ok) return;
  assert.is(r.error.code, 'CONFIG_INVALID');
  const paths = r.error.issues.map((i) => i.path).sort();
  // An unknown probe kind is reported on `kind` alone: which other fields it needs depends on it.
  for (const p of ['$.cpUrl', '$.tls.certFile', '$.tls.keyFile', '$.tls.caFile', '$.pollIntervalSecs', '$.bogus', '$.stateDir', '$.probes[0].port', '$.probes[1].kind']) {
    assert.ok(paths.includes(p), `missing issue for ${p}: ${paths.join(', ')}`);
  }
  assert.ok(resolveConfig({ ...MIN, cpUrl: 'http://cp', allowPlainHttp: true }, HOSTDEF).ok);
  assert.not.ok(resolveConfig([], HOSTDEF).ok);
});

const target = suite('agent/target');
const key = mintReleaseKey('ed25519', 3);
const trust = trustFor(key);
const CLOSURE = '0123456789abcdfghijklmnpqrsvwxyz-nixos-system-web1';

function signedTarget(over: Partial<Target> = {}, signedAt = '2026-03-01T12:00:00Z') {
  const signed = signFleet(fleetFor(CLOSURE, null), key, signedAt);
  const t: Target = {
    closureHash: CLOSURE,
    rolloutId: `stable@${signed.sha256.slice(0, 8)}`,
    channel: 'stable',
    wave: 1,
    signedAt,
    freshnessWindowMinutes: 180,
    artifactSha256: signed.sha256,
    confirmDeadline: '2026-03-01T12:05:00Z',
    ...over,
  };
  return { signed, t };
}

target('a matching target passes and yields the accepted state and the CP deadline', () => {
  const { signed, t } = signedTarget();
  const r = checkTarget({ target: t, hostname: HOST, bytes: signed.bytes, signature: signed.signature, trust, nowMs: signed.nowMs + 1000, lastAccepted: null });
  assert.ok(r.ok);
  if (!r.ok) return;
  assert.is(r.value.verified.sha256, signed.sha256);
  assert.is(r.value.cpDeadlineMs, Date.parse('2026-03-01T12:05:00Z'));
  assert.is(r.value.host.closureHash, CLOSURE);
});

target('each mismatch against the signed bytes has its own code', () => {
  const { signed, t } = signedTarget();
  const nowMs = signed.nowMs + 1000;
  const check = (over: Partial<Target>, hostname = HOST) =>
    checkTarget({ target: { ...t, ...over }, hostname, bytes: signed.bytes, signature: signed.signature, trust, nowMs, lastAccepted: null });
  const codeOf = (r: ReturnType<typeof check>) => (r.ok ? 'ok' : r.error.code);
  assert.is(codeOf(check({ closureHash: 'zzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzz-nixos-system-evil' })), 'CLOSURE_MISMATCH');
  assert.is(codeOf(check({ closureHash: '../../etc' })), 'BAD_TARGET');
  assert.is(codeOf(check({ confirmDeadline: 'tomorrow' })), 'BAD_TARGET');
  assert.is(codeOf(check({ wave: 0 })), 'WAVE_MISMATCH');
  assert.is(codeOf(check({ wave: 7 })), 'WAVE_MISMATCH');
  assert.is(codeOf(check({ channel: 'beta', rolloutId: 'beta@x' })), 'CHANNEL_MISMATCH');
  assert.is(codeOf(check({ rolloutId: 'other@x' })), 'ROLLOUT_MISMATCH');
  assert.is(codeOf(check({ signedAt: '2026-03-01T11:00:00Z' })), 'SIGNED_AT_MISMATCH');
  assert.is(codeOf(check({ artifactSha256: '0'.repeat(64) })), 'ARTIFACT_MISMATCH');
  assert.is(codeOf(check({}, 'intruder')), 'UNKNOWN_HOST');
  // Issue 14: the signed change window and pin bind the agent too.
  const controlled = (patch: (f: ReturnType<typeof fleetFor>) => void) => {
    const f = fleetFor(CLOSURE, null);
    patch(f);
    const s = signFleet(f, key, '2026-03-01T12:00:00Z');
    return checkTarget({ target: { ...t, artifactSha256: s.sha256 }, hostname: HOST, bytes: s.bytes, signature: s.signature, trust, nowMs, lastAccepted: null });
  };
  const closedWindow = { timeZone: 'UTC', allow: [{ days: ['mon' as const], start: '00:00', end: '01:00' }], freezes: [] };
  assert.is(codeOf(controlled((f) => (f.channels['stable']!.changeWindow = closedWindow))), 'OUTSIDE_WINDOW'); // 2026-03-01 is a Sunday
  assert.is(codeOf(controlled((f) => (f.channels['stable']!.changeWindow = { ...closedWindow, allow: [] }))), 'ok');
  assert.is(codeOf(controlled((f) => (f.hosts[HOST]!.pin = { commit: 'abc', reason: 'r', expiresAt: '2026-04-01T00:00:00Z' }))), 'PINNED');
  assert.is(codeOf(controlled((f) => (f.hosts[HOST]!.pin = { commit: 'abc', reason: 'r', expiresAt: '2026-02-01T00:00:00Z' }))), 'ok', 'a lapsed pin');
  // A mismatch still lets the caller remember the (valid) artefact as accepted.
  const m = check({ wave: 0 });
  assert.ok(!m.ok && m.error.acceptedAnyway?.sha256 === signed.sha256);
  // Verification errors come straight from verifyArtifact, with no accepted state.
  const bad = checkTarget({ target: t, hostname: HOST, bytes: signed.bytes, signature: new Uint8Array(64), trust, nowMs, lastAccepted: null });
  assert.ok(!bad.ok && bad.error.code === 'BAD_SIGNATURE' && bad.error.acceptedAnyway === undefined);
  const stale = checkTarget({ target: t, hostname: HOST, bytes: signed.bytes, signature: signed.signature, trust, nowMs: nowMs + 5 * 3600_000, lastAccepted: null });
  assert.ok(!stale.ok && stale.error.code === 'STALE');
  const newer = signedTarget({}, '2026-03-01T12:30:00Z');
  const rollback = checkTarget({
    target: t,
    hostname: HOST,
    bytes: signed.bytes,
    signature: signed.signature,
    trust,
    nowMs,
    lastAccepted: { signedAt: newer.signed.signedAt!, sha256: newer.signed.sha256 },
  });
  assert.ok(!rollback.ok && rollback.error.code === 'ROLLBACK');
});

const timing = suite('agent/loop timing');

timing('jitter stays within ±pct and backoff caps at maxFactor × base, never under Retry-After', () => {
  fc.assert(
    fc.property(fc.integer({ min: 1, max: 3600 }), fc.integer({ min: 0, max: 50 }), fc.double({ min: 0, max: 0.999999, noNaN: true }), (secs, pct, r) => {
      const ms = secs * 1000;
      const j = jitter(ms, pct, r);
      return j >= Math.floor(ms * (1 - pct / 100)) - 1 && j <= Math.ceil(ms * (1 + pct / 100)) + 1;
    }),
  );
  const d = (failures: number, retryAfterSecs?: number) =>
    nextDelayMs({ baseSecs: 60, failures, maxFactor: 8, jitterPct: 0, random: 0.5, ...(retryAfterSecs === undefined ? {} : { retryAfterSecs }) });
  assert.equal([0, 1, 2, 3, 4, 5, 9].map((f) => d(f) / 60_000), [1, 1, 2, 4, 8, 8, 8]);
  assert.is(d(1, 600), 600_000);
  assert.is(d(4, 5), 480_000);
  assert.is(parseRetryAfter('120', 0), 120);
  assert.is(parseRetryAfter(new Date(30_000).toUTCString(), 0), 30);
  assert.is(parseRetryAfter('soon', 0), undefined);
  assert.is(parseRetryAfter(undefined, 0), undefined);
});

const state = suite('agent/state');

state('atomic store round-trips every record and leaves no temporary files', () => {
  const dir = mkdtempSync(join(tmpdir(), 'nixfleet-state-'));
  try {
    const s = new FileStateStore(dir);
    assert.is(s.loadPending(), null);
    const p = { rolloutId: 'r', closureHash: 'c', closurePath: '/nix/store/c', previous: '/nix/store/p', deadlineMs: 5, startedAtMs: 1, action: 'switch' as const, phase: 'switched' as const };
    s.savePending(p);
    assert.equal(s.loadPending(), p);
    s.saveQuarantine([{ closureHash: 'c', rolloutId: 'r', sinceMs: 1, untilMs: 2, reason: 'x' }]);
    assert.is(new FileStateStore(dir).loadQuarantine()[0]!.closureHash, 'c');
    s.saveOutcome({ rolloutId: 'r', closureHash: 'c', outcome: 'confirmed', atMs: 3, previous: '/nix/store/p' }, null);
    assert.is(s.loadOutcome().lastOutcome?.previous, '/nix/store/p');
    s.saveAccepted('fleet', { signedAt: '2026-01-01T00:00:00Z', sha256: 'a'.repeat(64) });
    assert.is(s.loadAccepted('fleet')?.sha256, 'a'.repeat(64));
    s.saveArtifact('b'.repeat(64), new Uint8Array([1, 2]), new Uint8Array([3]));
    assert.equal([...s.loadArtifact('b'.repeat(64))!.bytes], [1, 2]);
    assert.is(s.loadArtifact('../x'), null);
    for (const c of ['c', 'd', 'e', 'f']) s.saveArtifact(c.repeat(64), new Uint8Array([1]), new Uint8Array([2]));
    assert.is(readdirSync(join(dir, 'artifacts')).filter((f) => f.endsWith('.json')).length, 3, 'only the newest artefacts are kept');
    assert.ok(s.loadArtifact('f'.repeat(64)) !== null);
    s.clearPending();
    assert.is(s.loadPending(), null);
    assert.equal(readdirSync(dir).filter((f) => f.includes('.tmp-')), []);
    // A torn / foreign pending record is an error, never "no activation in progress".
    writeFileSync(join(dir, 'pending.json'), '{"rolloutId": 1');
    assert.throws(() => s.loadPending(), (e: unknown) => e instanceof StateCorrupt);
    writeFileSync(join(dir, 'pending.json'), '{"rolloutId": 1}');
    assert.throws(() => s.loadPending(), (e: unknown) => e instanceof StateCorrupt);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

const boot = suite('agent/machine afterBoot (issue 14)');
boot('a new boot on another system than the deferred closure rolls back with boot; same boot, the closure itself, or no recorded boot: nothing', () => {
  const deferred = 'aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa-nixos-system-new';
  const st: MachineState = { ...INITIAL_STATE, deferred, lastOutcome: { rolloutId: 'stable@1', closureHash: deferred, outcome: 'activation-deferred', atMs: 1, bootId: 'boot-1' } };
  const old = '/nix/store/bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb-nixos-system-old';
  assert.equal(afterBoot(st, 'boot-1', old, 10).effects, [], 'same boot: still waiting for the reboot');
  assert.equal(afterBoot(st, 'boot-2', `/nix/store/${deferred}`, 10).effects, [], 'booted into it: reconfirmed elsewhere');
  assert.equal(afterBoot({ ...st, lastOutcome: { rolloutId: 'stable@1', closureHash: deferred, outcome: 'activation-deferred', atMs: 1 } }, 'boot-2', old, 10).effects, [], 'no recorded boot');
  const r = afterBoot(st, 'boot-2', old, 10);
  assert.is(r.state.phase.tag, 'rolling-back');
  const rb = r.effects.find((e) => e.kind === 'rollback');
  assert.ok(rb !== undefined && rb.kind === 'rollback' && rb.pending.action === 'boot' && rb.pending.previous === old && rb.pending.closureHash === deferred);
});

config('rebootCommand and bootIdFile: defaults, and an empty argv is refused', () => {
  const r = resolveConfig(MIN, HOSTDEF);
  assert.ok(r.ok);
  if (!r.ok) return;
  assert.equal(r.value.rebootCommand, ['/run/current-system/sw/bin/systemctl', 'reboot']);
  const darwin = resolveConfig({ ...MIN, platform: 'darwin' }, HOSTDEF);
  assert.ok(darwin.ok && darwin.value.rebootCommand.join(' ') === '/sbin/shutdown -r now');
  assert.is(r.value.bootIdFile, '/proc/sys/kernel/random/boot_id');
  const bad = resolveConfig({ ...MIN, rebootCommand: [] }, HOSTDEF);
  assert.not.ok(bad.ok);
});

config.run();
target.run();
boot.run();
timing.run();
state.run();
