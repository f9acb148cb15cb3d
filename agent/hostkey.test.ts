/**
 * Host key loading: a real `ssh-keygen` OpenSSH key and a PKCS#8 PEM key both sign verifiably.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { canonicalBytes } from '../protocol/jcs.ts';
import { fromBase64, parseOpenSshEd25519, publicKeyOf, toBase64, toOpenSshEd25519, verifySignature } from '../protocol/crypto.ts';
import { toPkcs8Pem } from '../io/keyfile.ts';
import { mintHostKey } from '../fixtures/keys.ts';
import { loadHostKey, parseOpenSshPrivateKey, signJcs } from './hostkey.ts';

const test = suite('agent/hostkey');
const dir = mkdtempSync(join(tmpdir(), 'nixfleet-hostkey-'));
test.after(() => rmSync(dir, { recursive: true, force: true }));

test('reads an unencrypted ssh-keygen ed25519 key; its public key is the .pub line', () => {
  const file = join(dir, 'ssh_host_ed25519_key');
  execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', 'web1', '-f', file]);
  const r = loadHostKey(file);
  assert.ok(r.ok, r.ok ? '' : r.error.message);
  if (!r.ok) return;
  const pubLine = readFileSync(`${file}.pub`, 'utf8').trim();
  assert.is(toOpenSshEd25519(publicKeyOf(r.value), 'web1'), pubLine);
  const report = { hostname: 'web1', event: 'rolled-back', at: '2026-01-01T00:00:00.000Z' };
  const sig = fromBase64(signJcs(report, r.value))!;
  const pub = parseOpenSshEd25519(pubLine);
  assert.ok(pub.ok);
  if (!pub.ok) return;
  const bytes = canonicalBytes(report);
  assert.ok(bytes.ok && verifySignature('ed25519', toBase64(pub.value), bytes.value, sig));
});

test('refuses a passphrase-protected key and garbage, with BAD_HOST_KEY', () => {
  const file = join(dir, 'enc');
  execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', 'secret', '-f', file]);
  const r = loadHostKey(file);
  assert.not.ok(r.ok);
  if (!r.ok) assert.match(r.error.message, /passphrase/);
  const g = parseOpenSshPrivateKey('-----BEGIN OPENSSH PRIVATE KEY-----\nAAAA\n-----END OPENSSH PRIVATE KEY-----');
  assert.not.ok(g.ok);
  assert.is(loadHostKey(join(dir, 'missing')).ok, false);
});

test('reads a PKCS#8 PEM ed25519 key', () => {
  const hk = mintHostKey(7);
  const file = join(dir, 'host.pem');
  writeFileSync(file, toPkcs8Pem({ algorithm: 'ed25519', secretKey: hk.secretKey }));
  const r = loadHostKey(file);
  assert.ok(r.ok);
  if (r.ok) assert.equal(publicKeyOf(r.value), hk.publicKey);
});

test.run();
