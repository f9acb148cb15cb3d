import { X509Certificate } from 'node:crypto';
import { readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { runCli, tempDir } from '../fixtures/cli-testing.ts';
import { mintReleaseKey } from '../fixtures/keys.ts';
import { verifyToken } from '../protocol/enrol.ts';
import { readIssuanceCaFacts } from '../pki/x509.ts';
import { parseDuration } from './cmd-enrol.ts';

const tmp = tempDir();
test.after(() => tmp.cleanup());
// Real certificates below are checked against the current time: base the clock on it.
const NOW = Math.floor(Date.now() / 1000) * 1000;
const io = { cwd: tmp.dir, env: { HOME: tmp.dir, USER: 'alice' }, now: () => NOW };
const org = mintReleaseKey('ed25519', 42);
writeFileSync(join(tmp.dir, 'org.key'), org.pem, { mode: 0o600 });

test('enroll token: signed by the org key, for the host, expiring after --ttl; verifies as the CP does', async () => {
  const r = await runCli(['enroll', 'token', '--host', 'web7', '--ttl', '2h', '--org-key', 'org.key'], io);
  assert.is(r.code, 0, r.stderr);
  const token = r.stdout.trim();
  const v = verifyToken(token, { orgKeys: { current: org.trustKey }, hostname: 'web7', nowMs: NOW, maxTtlMs: 86_400_000 });
  assert.ok(v.ok, JSON.stringify(v));
  if (v.ok) {
    assert.is(Date.parse(v.value.expiresAt) - Date.parse(v.value.issuedAt), 2 * 3_600_000);
    assert.is(v.value.issuedBy, 'alice');
  }
  // Another host, another org key, after expiry: refused.
  assert.equal(verifyToken(token, { orgKeys: { current: org.trustKey }, hostname: 'web8', nowMs: NOW, maxTtlMs: 86_400_000 }).ok, false);
  assert.equal(verifyToken(token, { orgKeys: { current: mintReleaseKey('ed25519', 1).trustKey }, hostname: 'web7', nowMs: NOW, maxTtlMs: 86_400_000 }).ok, false);
  const late = verifyToken(token, { orgKeys: { current: org.trustKey }, hostname: 'web7', nowMs: NOW + 3 * 3_600_000, maxTtlMs: 86_400_000 });
  assert.is(late.ok ? 'ok' : late.error.code, 'TOKEN_EXPIRED');
  // Two tokens for the same host differ (their nonces).
  const again = await runCli(['enroll', 'token', '--host', 'web7', '--org-key', 'org.key'], io);
  assert.is.not(again.stdout, r.stdout);

  const out = await runCli(['enroll', 'token', '--host', 'web7', '--org-key', 'org.key', '--out', 'web7.token'], io);
  assert.is(out.code, 0, out.stderr);
  assert.is(statSync(join(tmp.dir, 'web7.token')).mode & 0o777, 0o600);
  assert.is((await runCli(['enroll', 'token', '--host', 'web7', '--org-key', 'org.key', '--out', 'web7.token'], io)).code, 1, 'never overwritten');
  assert.is((await runCli(['enroll', 'token', '--host', 'web 7', '--org-key', 'org.key'], io)).code, 2, 'usage');
  assert.is((await runCli(['enroll', 'token', '--host', 'web7', '--ttl', 'soon', '--org-key', 'org.key'], io)).code, 2, 'usage');
  assert.is(parseDuration('90s'), 90);
  assert.is(parseDuration('2d'), 172_800);
  assert.is(parseDuration('1 h'), null);
});

test('pki init-issuance: a constrained intermediate signed by the fleet CA; the key 0600', async () => {
  assert.is((await runCli(['pki', 'init', '--pki-dir', 'pki'], io)).code, 0);
  const r = await runCli(['pki', 'init-issuance', '--pki-dir', 'pki', '--out-dir', 'cp'], io);
  assert.is(r.code, 0, r.stderr);
  const pem = readFileSync(join(tmp.dir, 'cp', 'issuance.pem'), 'utf8');
  assert.equal(readIssuanceCaFacts(pem), { isCa: true, pathLength: 0, clientAuthOnly: true, hostNameConstrained: true });
  const ca = new X509Certificate(readFileSync(join(tmp.dir, 'pki', 'ca.pem'), 'utf8'));
  assert.ok(new X509Certificate(pem).verify(ca.publicKey));
  assert.is(statSync(join(tmp.dir, 'cp', 'issuance.key')).mode & 0o777, 0o600);
  assert.is((await runCli(['pki', 'init-issuance', '--pki-dir', 'pki', '--out-dir', 'cp'], io)).code, 1, 'not replaced without --force');
});

test.run();
