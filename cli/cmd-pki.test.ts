import { existsSync, mkdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { isIssuedBy, readCertIdentity } from '../pki/pki.ts';
import { isOneLine, runCli, tempDir } from '../fixtures/cli-testing.ts';

const tmp = tempDir();
test.after(() => tmp.cleanup());
const NOW = Date.parse('2026-03-01T00:00:00Z');
const io = { cwd: tmp.dir, env: { HOME: tmp.dir }, now: () => NOW };
const pki = join(tmp.dir, 'pki');

test('pki init writes ca.pem and ca.key (0600) and refuses to overwrite an existing CA', async () => {
  const r = await runCli(['pki', 'init', '--pki-dir', 'pki', '--name', 'Test CA'], io);
  assert.is(r.code, 0, r.stderr);
  const ca = readFileSync(join(pki, 'ca.pem'), 'utf8');
  const id = readCertIdentity(ca);
  assert.is(id.commonName, 'Test CA');
  assert.ok(id.isCa);
  assert.is(id.notBefore.getTime(), NOW);
  assert.is(statSync(join(pki, 'ca.key')).mode & 0o777, 0o600);
  const keyBefore = readFileSync(join(pki, 'ca.key'), 'utf8');

  const again = await runCli(['pki', 'init', '--pki-dir', 'pki'], io);
  assert.is(again.code, 1);
  assert.match(again.stderr, /a fleet CA already exists in .*refusing to overwrite/);
  assert.ok(isOneLine(again.stderr));
  assert.is(readFileSync(join(pki, 'ca.key'), 'utf8'), keyBefore, 'CA key untouched');
  assert.is(readFileSync(join(pki, 'ca.pem'), 'utf8'), ca);
  // Even with only the certificate present (key moved elsewhere), it does not overwrite it.
  const certOnly = join(tmp.dir, 'certonly');
  mkdirSync(certOnly);
  writeFileSync(join(certOnly, 'ca.pem'), ca);
  const third = await runCli(['pki', 'init', '--pki-dir', certOnly], io);
  assert.is(third.code, 1);
  assert.match(third.stderr, /ca\.pem/);
  assert.is(readFileSync(join(certOnly, 'ca.pem'), 'utf8'), ca);
  assert.ok(!existsSync(join(certOnly, 'ca.key')), 'no half CA left behind');
});

test('pki dir comes from NIXFLEET_PKI_DIR or the config file when not a flag', async () => {
  const viaEnv = await runCli(['mint-host-cert', 'envhost', '--out-dir', 'out-env'], { ...io, env: { HOME: tmp.dir, NIXFLEET_PKI_DIR: pki } });
  assert.is(viaEnv.code, 0, viaEnv.stderr);
  const missing = await runCli(['mint-host-cert', 'x'], { ...io, env: { HOME: join(tmp.dir, 'nohome') } });
  assert.is(missing.code, 2);
  assert.match(missing.stderr, /missing --pki-dir \(or NIXFLEET_PKI_DIR/);
});

test('mint-host-cert / mint-operator-cert: right CN and OU, issued by the CA, key 0600', async () => {
  const ca = readFileSync(join(pki, 'ca.pem'), 'utf8');
  for (const [cmd, name, ou] of [
    ['mint-host-cert', 'web1', 'host'],
    ['mint-operator-cert', 'alice', 'operator'],
  ] as const) {
    const r = await runCli([cmd, name, '--pki-dir', pki, '--out-dir', 'out', '--validity-days', '30'], io);
    assert.is(r.code, 0, r.stderr);
    assert.match(r.stdout, new RegExp(`CN=${name} OU=${ou}`));
    const cert = readFileSync(join(tmp.dir, 'out', `${name}.pem`), 'utf8');
    const id = readCertIdentity(cert);
    assert.is(id.commonName, name);
    assert.is(id.organizationalUnit, ou);
    assert.is(id.notAfter.getTime() - id.notBefore.getTime(), 30 * 86400_000);
    assert.ok(await isIssuedBy(ca, cert));
    assert.is(statSync(join(tmp.dir, 'out', `${name}.key`)).mode & 0o777, 0o600);
    const again = await runCli([cmd, name, '--pki-dir', pki, '--out-dir', 'out'], io);
    assert.is(again.code, 1, 'does not replace an identity silently');
    assert.match(again.stderr, /already exists \(use --force/);
    const forced = await runCli([cmd, name, '--pki-dir', pki, '--out-dir', 'out', '--force'], io);
    assert.is(forced.code, 0);
    assert.is.not(readFileSync(join(tmp.dir, 'out', `${name}.pem`), 'utf8'), cert);
  }
});

test('--not-before is honoured (for revocation tests); bad input is a usage error', async () => {
  const r = await runCli(['mint-host-cert', 'old', '--pki-dir', pki, '--out-dir', 'out', '--not-before', '2025-01-01T00:00:00Z'], io);
  assert.is(r.code, 0, r.stderr);
  assert.is(readCertIdentity(readFileSync(join(tmp.dir, 'out', 'old.pem'), 'utf8')).notBefore.toISOString(), '2025-01-01T00:00:00.000Z');
  const bad = await runCli(['mint-host-cert', 'old2', '--pki-dir', pki, '--not-before', 'yesterday'], io);
  assert.is(bad.code, 2);
  const badName = await runCli(['mint-host-cert', 'bad name!', '--pki-dir', pki, '--out-dir', 'out'], io);
  assert.is(badName.code, 2);
  assert.match(badName.stderr, /not a valid name/);
  assert.ok(isOneLine(badName.stderr));
  const noCa = await runCli(['mint-operator-cert', 'bob', '--pki-dir', join(tmp.dir, 'empty')], io);
  assert.is(noCa.code, 2);
  assert.match(noCa.stderr, /no fleet CA in .*run: nixfleet pki init/);
  assert.ok(!existsSync(join(tmp.dir, 'bob.pem')));
});

test('mint-server-cert: serverAuth certificate with the given names', async () => {
  const r = await runCli(['mint-server-cert', '--hostnames', 'cp.example.org,10.0.0.5', '--pki-dir', pki, '--out-dir', 'cp'], io);
  assert.is(r.code, 0, r.stderr);
  const { X509Certificate } = await import('node:crypto');
  const x = new X509Certificate(readFileSync(join(tmp.dir, 'cp', 'server.pem')));
  assert.match(x.subjectAltName ?? '', /DNS:cp\.example\.org/);
  assert.match(x.subjectAltName ?? '', /IP Address:10\.0\.0\.5/);
  assert.match(x.subjectAltName ?? '', /DNS:localhost/);
});

test.run();
