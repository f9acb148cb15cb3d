/**
 * `nixfleet-release init` (issue 18) and the `resolve` pubkey check: a new fleet repository's
 * files come from one command, each accepted by the parser (the TypeBox schema behind
 * schemas/) that will read it, and the revocations verify as the CP and agents verify them.
 */
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { mintReleaseKey, writeKeyFile } from '../fixtures/keys.ts';
import { parseJsonStrict } from '../protocol/jcs.ts';
import { parseFleetDescription, parseRevocations, parseTrust, type Trust } from '../protocol/schema.ts';
import { verifyArtifact } from '../protocol/verify.ts';
import { runCli } from './cli.ts';
import { OPENSSH_ED25519_LINE } from './resolve.ts';
import { toOpenSshEd25519, fromBase64 } from '../protocol/crypto.ts';

const NOW_MS = Date.parse('2026-05-01T12:00:30Z');
type Run = { code: number; out: string; err: string };
async function cli(argv: string[]): Promise<Run> {
  let out = '';
  let err = '';
  const code = await runCli(argv, {
    stdout: (s) => void (out += typeof s === 'string' ? s : new TextDecoder().decode(s)),
    stderr: (s) => void (err += s),
    readStdin: async () => new Uint8Array(),
    nowMs: () => NOW_MS,
    env: {},
  });
  return { code, out, err };
}
const readJson = (p: string): unknown => {
  const r = parseJsonStrict(readFileSync(p), { integersOnly: true });
  if (!r.ok) throw new Error(r.error.message);
  return r.value;
};

let dir = '';
const init = suite('nixfleet-release init');
init.before.each(() => void (dir = mkdtempSync(join(tmpdir(), 'nixfleet-init-'))));
init.after.each(() => rmSync(dir, { recursive: true, force: true }));

function checkRevocations(out: string, trust: Trust): void {
  const v = verifyArtifact({ kind: 'revocations', bytes: readFileSync(join(out, 'revocations.json')), signature: readFileSync(join(out, 'revocations.json.sig')), trust, nowMs: NOW_MS, lastAccepted: null });
  assert.ok(v.ok, v.ok ? '' : `${v.error.code}: ${v.error.message}`);
}

init('with a fresh key: trust.json, signed empty revocations.json, fleet.json and release.key (0600); all parse and the revocations verify', async () => {
  const out = join(dir, 'repo');
  const r = await cli(['init', '--dir', out, '--host', 'web1,web2', '--host', 'db1']);
  assert.is(r.code, 0, r.err);
  assert.is(statSync(join(out, 'release.key')).mode & 0o777, 0o600);
  const trust = parseTrust(readJson(join(out, 'trust.json')));
  assert.ok(trust.ok, trust.ok ? '' : trust.error.message);
  const rev = parseRevocations(readJson(join(out, 'revocations.json')));
  assert.ok(rev.ok);
  if (rev.ok) assert.equal(rev.value.revocations, []);
  const fleet = parseFleetDescription(readJson(join(out, 'fleet.json')));
  assert.ok(fleet.ok, fleet.ok ? '' : fleet.error.message);
  if (fleet.ok) assert.equal(Object.keys(fleet.value.hosts).sort(), ['db1', 'web1', 'web2']);
  if (trust.ok) checkRevocations(out, trust.value);
  // The starter fleet resolves with the same tool.
  const res = await cli(['resolve', '--fleet', join(out, 'fleet.json'), '--out', join(dir, 'resolved.json')]);
  assert.is(res.code, 0, res.err);
  assert.match(r.err, /release\.key \(the release PRIVATE key/);
});

init('--cache-key puts binary-cache public keys into trust.json (what agents realise closures with); a malformed one is refused', async () => {
  const out = join(dir, 'repo');
  const k1 = 'cache-1:' + Buffer.alloc(32, 1).toString('base64');
  const k2 = 'cache-2:' + Buffer.alloc(32, 2).toString('base64');
  const r = await cli(['init', '--dir', out, '--cache-key', k1, '--cache-key', k2]);
  assert.is(r.code, 0, r.err);
  assert.equal((readJson(join(out, 'trust.json')) as Trust).cacheKeys, [k1, k2]);
  const bad = await cli(['init', '--dir', join(dir, 'other'), '--cache-key', 'no-colon']);
  assert.is(bad.code, 1);
  assert.match(bad.err, /--cache-key "no-colon" is not a Nix public key "name:base64"/);
  assert.not.ok(existsSync(join(dir, 'other', 'trust.json')));
});

init('with --key: trust.json holds that key and it signs the revocations; no release.key is written', async () => {
  const key = mintReleaseKey('ed25519', 7);
  const keyFile = writeKeyFile(dir, key, 'mine.key');
  const out = join(dir, 'repo');
  const r = await cli(['init', '--dir', out, '--key', keyFile, '--now', '2026-05-01T12:00:00Z']);
  assert.is(r.code, 0, r.err);
  const trust = readJson(join(out, 'trust.json')) as Trust;
  assert.is(trust.ciReleaseKey.current?.public, key.publicKeyB64);
  assert.not.ok(existsSync(join(out, 'release.key')));
  checkRevocations(out, trust);
});

init('with --public-key only: revocations.json is written unsigned and the command says how to sign it', async () => {
  const key = mintReleaseKey('ed25519', 8);
  const out = join(dir, 'repo');
  const r = await cli(['init', '--dir', out, '--public-key', key.publicKeyB64]);
  assert.is(r.code, 0, r.err);
  assert.not.ok(existsSync(join(out, 'revocations.json.sig')));
  assert.match(r.err, /NOT signed: sign it in CI with nixfleet-release sign --revocations/);
  const rev = parseRevocations(readJson(join(out, 'revocations.json')));
  assert.ok(rev.ok && rev.value.meta.signedAt === null);
});

init('refuses to overwrite any existing file and writes nothing; refuses a public key of the wrong length and a bad host name', async () => {
  writeFileSync(join(dir, 'fleet.json'), 'mine');
  const r = await cli(['init', '--dir', dir]);
  assert.is(r.code, 1);
  assert.match(r.err, /refusing to overwrite .*fleet\.json/);
  assert.not.ok(existsSync(join(dir, 'trust.json')));
  assert.is(readFileSync(join(dir, 'fleet.json'), 'utf8'), 'mine');
  const bad = await cli(['init', '--dir', join(dir, 'x'), '--public-key', 'AAAA']);
  assert.is(bad.code, 1);
  assert.match(bad.err, /ciReleaseKey\.current\.public: must be base64 of 32 raw bytes/);
  const host = await cli(['init', '--dir', join(dir, 'y'), '--host', 'bad/host']);
  assert.is(host.code, 1);
  assert.match(host.err, /--host "bad\/host" is not a host name/);
});

const pub = suite('resolve: hosts.*.pubkey must be an OpenSSH ed25519 line');
pub.before.each(() => void (dir = mkdtempSync(join(tmpdir(), 'nixfleet-pubkey-'))));
pub.after.each(() => rmSync(dir, { recursive: true, force: true }));

pub('the raw base64 of derive-pubkey is refused, naming the host and showing the expected form; the real line resolves', async () => {
  const key = mintReleaseKey('ed25519', 9);
  const line = toOpenSshEd25519(fromBase64(key.publicKeyB64)!, 'root@web1');
  assert.match(line, OPENSSH_ED25519_LINE);
  const desc = (pubkey: string) => ({
    hosts: { web1: { system: 'x86_64-linux', channel: 'stable', pubkey } },
    channels: { stable: { rolloutPolicy: 'p' } },
    rolloutPolicies: { p: { waves: [{ selector: { all: true } }] } },
  });
  writeFileSync(join(dir, 'bad.json'), JSON.stringify(desc(key.publicKeyB64)));
  const bad = await cli(['resolve', '--fleet', join(dir, 'bad.json')]);
  assert.is(bad.code, 1);
  assert.match(bad.err, /INVALID_PUBKEY: host "web1": pubkey is not an OpenSSH ed25519 public key line: expected "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAI… \[comment\]"/);
  writeFileSync(join(dir, 'good.json'), JSON.stringify(desc(line)));
  const good = await cli(['resolve', '--fleet', join(dir, 'good.json')]);
  assert.is(good.code, 0, good.err);
  // Without a comment too; a truncated key is not.
  assert.match(line.split(' ').slice(0, 2).join(' '), OPENSSH_ED25519_LINE);
  assert.not.match(line.slice(0, 40), OPENSSH_ED25519_LINE);
});

init.run();
pub.run();
