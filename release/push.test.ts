/**
 * `nixfleet-release push` with real Nix: a closure pushed to a file:// cache is signed by the
 * cache key, and after it is removed locally it can be realised from that cache with only that
 * key trusted (require-sigs); the hook variant; input errors.
 */
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { basenameOf, buildToys, deleteFromStore, generateCacheKey, isInStore, run, type CacheKey } from '../fixtures/nix.ts';
import { runPush, type PushIo } from './push.ts';

const test = suite('release push');
const root = mkdtempSync(join(tmpdir(), 'nixfleet-push-'));
let toys: Record<string, string> = {};
let key: CacheKey;

function io(): PushIo & { out: string; err: string } {
  const o = { out: '', err: '', env: process.env as Record<string, string | undefined>, stdout: (s: string) => void (o.out += s), stderr: (s: string) => void (o.err += s) };
  return o;
}

test.before(async () => {
  toys = await buildToys(root, [{ name: 'web' }, { name: 'db' }]);
  key = await generateCacheKey(root, 'push-test-cache');
});
test.after(() => rmSync(root, { recursive: true, force: true }));

test('push signs with the cache key and copies each closure; the cache alone can restore them', async () => {
  const map = join(root, 'closures.json');
  writeFileSync(map, JSON.stringify({ web1: basenameOf(toys['web']!), web2: toys['web'], db1: basenameOf(toys['db']!) }));
  const cache = join(root, 'cache');
  const o = io();
  const code = await runPush(['--cache', `file://${cache}`, '--signing-key', key.secretKeyFile, '--closures', map], o);
  assert.is(code, 0, o.err);
  assert.match(o.out, /pushed 2 closure\(s\)/);
  const narinfos = readdirSync(cache).filter((f) => f.endsWith('.narinfo'));
  assert.ok(narinfos.length >= 2);
  for (const f of narinfos) assert.match(readFileSync(join(cache, f), 'utf8'), /^Sig: push-test-cache:/m);

  await deleteFromStore([toys['web']!, toys['db']!]);
  assert.not.ok(isInStore(toys['web']!));
  const r = await run('nix-store', ['-r', toys['web']!, toys['db']!, '--option', 'substituters', `file://${cache}`, '--option', 'trusted-public-keys', key.publicKey, '--option', 'require-sigs', 'true']);
  assert.is(r.code, 0, r.stderr);
  assert.ok(isInStore(toys['web']!) && isInStore(toys['db']!));
});

test('--push-cmd runs once per distinct closure with NIXFLEET_CLOSURE / NIXFLEET_HOSTS', async () => {
  const map = join(root, 'closures2.json');
  writeFileSync(map, JSON.stringify({ a: toys['web'], b: toys['web'], c: toys['db'] }));
  const out = join(root, 'hook.log');
  const o = io();
  const code = await runPush(['--push-cmd', `echo "$NIXFLEET_CLOSURE|$NIXFLEET_HOSTS" >> ${out}`, '--closures', map], o);
  assert.is(code, 0, o.err);
  const lines = readFileSync(out, 'utf8').trim().split('\n').sort();
  assert.equal(lines, [`${toys['web']}|a b`, `${toys['db']}|c`].sort());
  // --closure HOST=PATH: the same map without a file.
  const out2 = join(root, 'hook2.log');
  const f = io();
  assert.is(await runPush(['--push-cmd', `echo "$NIXFLEET_CLOSURE|$NIXFLEET_HOSTS" >> ${out2}`, '--closure', `a=${toys['web']}`, '--closure', `c=${toys['db']!.slice('/nix/store/'.length)}`], f), 0, f.err);
  assert.equal(readFileSync(out2, 'utf8').trim().split('\n').sort(), [`${toys['web']}|a`, `${toys['db']}|c`].sort());
  const fail = io();
  assert.is(await runPush(['--push-cmd', 'exit 3', '--closures', map], fail), 2);
  assert.match(fail.err, /exit code 3/);
});

test('input errors exit 1 with a clear message', async () => {
  const cases: [string[], RegExp][] = [
    [['--cache', 'file:///tmp/x', '--signing-key', key.secretKeyFile], /--closures/],
    [['--closures', join(root, 'closures.json')], /--cache/],
    [['--cache', 'file:///tmp/x', '--closures', join(root, 'closures.json')], /--signing-key/],
    [['--bogus'], /bogus/],
    [['--push-cmd', 'true', '--closure', 'web1'], /--closure "web1" must be HOST=PATH/],
    [['--push-cmd', 'true', '--closure', 'web1=nope'], /invalid --closure: web1: "nope" is not a Nix store basename/],
    [['--push-cmd', 'true', '--closure', `web1=${toys['web']}`, '--closures', join(root, 'closures.json')], /not both/],
  ];
  for (const [args, re] of cases) {
    const o = io();
    assert.is(await runPush(args, o), 1, args.join(' '));
    assert.match(o.err, re);
  }
  const bad = join(root, 'bad.json');
  writeFileSync(bad, JSON.stringify({ h: 'not-a-store-path' }));
  const o = io();
  assert.is(await runPush(['--cache', 'file:///tmp/x', '--signing-key', key.secretKeyFile, '--closures', bad], o), 1);
  assert.match(o.err, /not a Nix store basename/);
  writeFileSync(bad, JSON.stringify({ h: '00000000000000000000000000000000-nixos-system-gone' }));
  const o2 = io();
  assert.is(await runPush(['--cache', 'file:///tmp/x', '--signing-key', key.secretKeyFile, '--closures', bad], o2), 1);
  assert.match(o2.err, /not in the local store/);
  const h = io();
  assert.is(await runPush(['--help'], h), 0);
  assert.match(h.out, /--signing-key/);
});

test.run();
