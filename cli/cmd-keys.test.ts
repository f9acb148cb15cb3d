import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { generateKeyPair, toOpenSshEd25519 } from '../protocol/crypto.ts';
import { documentedJsonFields, isOneLine, runCli, signArtifact, smallFleet, tempDir } from '../fixtures/cli-testing.ts';

const tmp = tempDir();
test.after(() => tmp.cleanup());
const io = { cwd: tmp.dir, env: {}, now: () => Date.parse('2026-03-01T12:30:00Z') };

test('derive-pubkey: ssh-ed25519 line → base64 raw 32 bytes, from a file or stdin', async () => {
  const kp = generateKeyPair('ed25519', new Uint8Array(32).fill(7));
  const line = toOpenSshEd25519(kp.publicKey, 'root@web1');
  writeFileSync(join(tmp.dir, 'host.pub'), `${line}\n`);
  const r = await runCli(['derive-pubkey', 'host.pub'], io);
  assert.is(r.code, 0, r.stderr);
  assert.is(r.stdout, `${kp.publicKeyB64}\n`);
  assert.is(Buffer.from(r.stdout.trim(), 'base64').length, 32);
  assert.match(r.stderr, /base64 of the raw 32-byte ed25519 key; a fleet's hosts\.\*\.pubkey takes the "ssh-ed25519 AAAA…" line itself/);
  const viaStdin = await runCli(['derive-pubkey'], { ...io, stdin: async () => line });
  assert.is(viaStdin.stdout, r.stdout);
  const dash = await runCli(['derive-pubkey', '-'], { ...io, stdin: async () => line });
  assert.is(dash.stdout, r.stdout);
});

test('derive-pubkey refuses what is not one ssh-ed25519 key', async () => {
  for (const text of ['ssh-rsa AAAAB3NzaC1yc2E user', 'ssh-ed25519 !!!', '', 'ssh-ed25519 AAAA a\nssh-ed25519 AAAA b']) {
    const r = await runCli(['derive-pubkey'], { ...io, stdin: async () => text });
    assert.is(r.code, 1, text);
    assert.ok(isOneLine(r.stderr), r.stderr);
    assert.is(r.stdout, '');
  }
  const missing = await runCli(['derive-pubkey', 'nope.pub'], io);
  assert.is(missing.code, 1);
  assert.match(missing.stderr, /cannot read .*nope\.pub: ENOENT/);
});

const signedAt = '2026-03-01T12:00:00Z';
const release = generateKeyPair('ed25519', new Uint8Array(32).fill(1));
const other = generateKeyPair('ed25519', new Uint8Array(32).fill(2));
const { bytes, sig } = signArtifact(smallFleet({ web1: null, web2: null }, signedAt), release);
writeFileSync(join(tmp.dir, 'fleet.resolved.json'), bytes);
writeFileSync(join(tmp.dir, 'fleet.resolved.json.sig'), sig);
writeFileSync(join(tmp.dir, 'trust.json'), JSON.stringify({ schemaVersion: 1, ciReleaseKey: { current: { algorithm: 'ed25519', public: other.publicKeyB64 }, previous: { algorithm: 'ed25519', public: release.publicKeyB64 } }, cacheKeys: [] }));

test('verify-artifact: valid with --public-key or --trust (reports which slot), JSON fields', async () => {
  const r = await runCli(['verify-artifact', 'fleet.resolved.json', '--public-key', release.publicKeyB64], io);
  assert.is(r.code, 0, r.stderr);
  assert.match(r.stdout, /^ok: fleet signed 2026-03-01T12:00:00Z by the current release key; 2 hosts, 1 channels; sha256 [0-9a-f]{64}\n$/);
  const t = await runCli(['verify-artifact', 'fleet.resolved.json', '--trust', 'trust.json', '--json'], io);
  assert.is(t.code, 0, t.stderr);
  const j = JSON.parse(t.stdout);
  assert.is(j.ok, true);
  assert.is(j.keyRole, 'previous');
  assert.is(j.signedAt, signedAt);
  assert.is(j.hosts, 2);
  assert.is(j.ciCommit, 'c0ffee');
  assert.equal(Object.keys(j).sort(), documentedJsonFields('verify-artifact').filter((f) => f !== 'code' && f !== 'message').sort());
});

test('verify-artifact: the verifier codes come through, exit 1, one line', async () => {
  const cases: [string[], RegExp][] = [
    [['--public-key', other.publicKeyB64], /^nixfleet verify-artifact: BAD_SIGNATURE: /],
    [['--public-key', release.publicKeyB64, '--now', '2026-03-02T12:00:00Z'], /STALE/],
    [['--public-key', release.publicKeyB64, '--now', '2026-03-01T11:00:00Z'], /FUTURE_DATED/],
    [['--public-key', release.publicKeyB64, '--kind', 'revocations'], /SCHEMA_INVALID|SCHEMA_VERSION/],
  ];
  for (const [flags, re] of cases) {
    const r = await runCli(['verify-artifact', 'fleet.resolved.json', ...flags], io);
    assert.is(r.code, 1, flags.join(' '));
    assert.match(r.stderr, re);
    assert.ok(isOneLine(r.stderr));
  }
  const j = await runCli(['verify-artifact', 'fleet.resolved.json', '--public-key', other.publicKeyB64, '--json'], io);
  assert.equal(Object.keys(JSON.parse(j.stdout)), ['ok', 'code', 'message']);
  writeFileSync(join(tmp.dir, 'tampered.json'), Buffer.from(Buffer.from(bytes).toString('utf8').replace('web2', 'web3')));
  const tampered = await runCli(['verify-artifact', 'tampered.json', '--signature', 'fleet.resolved.json.sig', '--public-key', release.publicKeyB64], io);
  assert.is(tampered.code, 1);
  assert.match(tampered.stderr, /BAD_SIGNATURE/);
});

test('verify-artifact: usage errors exit 2', async () => {
  for (const flags of [[], ['--trust', 'trust.json', '--public-key', release.publicKeyB64], ['--public-key', 'xx'], ['--public-key', release.publicKeyB64, '--now', 'noon']]) {
    const r = await runCli(['verify-artifact', 'fleet.resolved.json', ...flags], io);
    assert.is(r.code, 2, flags.join(' '));
    assert.ok(isOneLine(r.stderr));
  }
});

test.run();
