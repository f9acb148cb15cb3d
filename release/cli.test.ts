import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { fakeClosure } from '../fixtures/artifacts.ts';
import { mintReleaseKey, trustFor, writeKeyFile, writeTrustFile } from '../fixtures/keys.ts';
import { runCli } from './cli.ts';
import { canonicalBytes, parseJsonStrict } from '../protocol/jcs.ts';
import { sha256Hex, verifySignature } from '../protocol/crypto.ts';
import { parseFleetResolved } from '../protocol/schema.ts';
import { parseSliceIndex, sliceFor, verifyIndexMatchesArtifact, verifySlice } from '../protocol/slice.ts';
import { interopDir, withInterop } from '../fixtures/interop.ts';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const FLEET = join(ROOT, 'fixtures/fleets/golden/canary-then-staged/fleet.json');
const NOW = '2026-05-01T12:00:00Z';

type Run = { code: number; out: string; err: string };
async function cli(argv: string[], stdin = ''): Promise<Run> {
  let out = '';
  let err = '';
  const code = await runCli(argv, {
    stdout: (s) => void (out += typeof s === 'string' ? s : new TextDecoder().decode(s)),
    stderr: (s) => void (err += s),
    readStdin: async () => new TextEncoder().encode(stdin),
    nowMs: () => Date.parse('2026-05-01T12:00:30Z'),
    env: { PATH: process.env['PATH'] },
  });
  return { code, out, err };
}

let dir = '';
const fresh = (): void => {
  dir = mkdtempSync(join(tmpdir(), 'nixfleet-release-cli-'));
};
const cleanup = () => rmSync(dir, { recursive: true, force: true });

/** keygen → resolve → sign; returns paths and the public key. */
async function release(d: string, extraSign: string[] = []): Promise<{ pub: string; artifact: string; sig: string }> {
  const k = await cli(['keygen', '--out', join(d, 'release.key')]);
  assert.is(k.code, 0, k.err);
  const pub = k.out.trim();
  const r = await cli(['resolve', '--fleet', FLEET, '--out', join(d, 'fleet.resolved.json')]);
  assert.is(r.code, 0, r.err);
  const closures: Record<string, string> = {};
  for (const h of ['web-01', 'web-02', 'web-03', 'db-01', 'db-02']) closures[h] = `/nix/store/${fakeClosure(h)}`;
  writeFileSync(join(d, 'closures.json'), JSON.stringify(closures));
  const s = await cli(['sign', '--in', join(d, 'fleet.resolved.json'), '--key', join(d, 'release.key'), '--closures', join(d, 'closures.json'), '--ci-commit', 'c0ffee', '--now', NOW, '--out-dir', join(d, 'out'), ...extraSign]);
  assert.is(s.code, 0, s.err);
  return { pub, artifact: join(d, 'out/fleet.resolved.json'), sig: join(d, 'out/fleet.resolved.json.sig') };
}

const flow = suite('nixfleet-release: keygen → resolve → sign → verify');
flow.before.each(fresh);
flow.after.each(cleanup);

flow('the happy path exits 0 with a summary; the artefact carries closures, commit, algorithm, signedAt', async () => {
  const { pub, artifact, sig } = await release(dir);
  assert.is(statSync(join(dir, 'release.key')).mode & 0o777, 0o600);
  assert.is(readFileSync(sig).length, 64);
  const v = await cli(['verify', '--artifact', artifact, '--public-key', pub, '--now', '2026-05-01T12:10:00Z']);
  assert.is(v.code, 0, v.err);
  assert.match(v.out, /^OK fleet signedAt=2026-05-01T12:00:00Z sha256=[0-9a-f]{64} key=current window=240m \(5 hosts, 1 channels\)\n$/);
  const parsed = parseJsonStrict(readFileSync(artifact)) as { ok: true; value: any };
  assert.is(parsed.value.hosts['web-01'].closureHash, fakeClosure('web-01'));
  assert.equal(parsed.value.meta, { ciCommit: 'c0ffee', schemaVersion: 1, signatureAlgorithm: 'ed25519', signedAt: NOW });
  // The file is exactly its own JCS.
  const c = await cli(['canonicalize', artifact]);
  assert.is(c.out, readFileSync(artifact, 'utf8'));
});

flow('sign also writes the signed slice index: it verifies, matches the artefact, and every host\'s slice proves', async () => {
  const { pub, artifact } = await release(dir);
  const indexBytes = readFileSync(join(dir, 'out/fleet.index.json'));
  const indexSig = readFileSync(join(dir, 'out/fleet.index.json.sig'));
  assert.ok(verifySignature('ed25519', pub, indexBytes, indexSig));
  const parsedIndex = parseJsonStrict(indexBytes);
  assert.ok(parsedIndex.ok);
  const index = parseSliceIndex(parsedIndex.ok ? parsedIndex.value : null);
  assert.ok(index.ok);
  if (!index.ok) return;
  const c = canonicalBytes(index.value);
  assert.ok(c.ok && Buffer.from(c.value).equals(indexBytes), 'the index file is its own JCS');
  assert.equal(index.value.meta, { ciCommit: 'c0ffee', schemaVersion: 1, signatureAlgorithm: 'ed25519', signedAt: NOW });
  const art = readFileSync(artifact);
  const fleet = parseFleetResolved(JSON.parse(art.toString('utf8')));
  assert.ok(fleet.ok);
  if (!fleet.ok) return;
  const match = verifyIndexMatchesArtifact(index.value, fleet.value, sha256Hex(art));
  assert.ok(match.ok);
  if (!match.ok) return;
  for (const h of ['web-01', 'web-02', 'web-03', 'db-01', 'db-02']) assert.ok(verifySlice({ index: index.value, slice: sliceFor(match.value, h)!, hostname: h }).ok, h);
});

flow('verify --kind index (inferred from the file name) checks the signed index; an older one is ROLLBACK', async () => {
  const { pub } = await release(dir);
  const index = join(dir, 'out/fleet.index.json');
  const v = await cli(['verify', '--artifact', index, '--public-key', pub, '--now', '2026-05-01T12:10:00Z']);
  assert.is(v.code, 0, v.err);
  assert.match(v.out, /^OK index signedAt=2026-05-01T12:00:00Z sha256=[0-9a-f]{64} key=current window=240m \(slice index: 5 leaves, root [0-9a-f]{64}, artefact [0-9a-f]{64}\)\n$/);
  const explicit = await cli(['verify', '--artifact', index, '--kind', 'index', '--public-key', pub, '--now', '2026-05-01T12:10:00Z', '--last-signed-at', '2026-05-01T13:00:00Z', '--last-sha256', '0'.repeat(64)]);
  assert.is(explicit.code, 1);
  assert.match(explicit.err, /^ROLLBACK: /);
  const asFleet = await cli(['verify', '--artifact', index, '--kind', 'fleet', '--public-key', pub, '--now', '2026-05-01T12:10:00Z']);
  assert.is(asFleet.code, 1);
  assert.match(asFleet.err, /^SCHEMA_INVALID: /);
});

flow('flipping any one byte of the artefact or of the .sig makes verify exit 1 with a code', async () => {
  const { pub, artifact, sig } = await release(dir);
  const bytes = readFileSync(artifact);
  const sigBytes = readFileSync(sig);
  const positions = [0, 1, 17, Math.floor(bytes.length / 2), bytes.length - 2, bytes.length - 1];
  for (const [file, orig, pos] of [...positions.map((p) => [artifact, bytes, p] as const), ...[0, 31, 32, 63].map((p) => [sig, sigBytes, p] as const)]) {
    const flipped = Buffer.from(orig);
    flipped[pos]! ^= 0x01;
    writeFileSync(file, flipped);
    const v = await cli(['verify', '--artifact', artifact, '--public-key', pub, '--now', NOW]);
    assert.is(v.code, 1, `${file}[${pos}]`);
    assert.match(v.err, /^(BAD_SIGNATURE|PARSE_ERROR|DUPLICATE_KEY|NOT_CANONICALIZABLE): /);
    writeFileSync(file, orig);
  }
  assert.is((await cli(['verify', '--artifact', artifact, '--public-key', pub, '--now', NOW])).code, 0);
});

flow('another key is refused; STALE past the window; FUTURE_DATED more than 60 s early; duplicate key refused', async () => {
  const { pub, artifact } = await release(dir);
  const otherKey = mintReleaseKey('ed25519', 99).publicKeyB64;
  const other = await cli(['verify', '--artifact', artifact, '--public-key', otherKey, '--now', NOW]);
  assert.is(other.code, 1);
  assert.match(other.err, /^BAD_SIGNATURE: /);
  // canary-then-staged has freshnessWindow 240: stale after 240 min + 60 s.
  assert.is((await cli(['verify', '--artifact', artifact, '--public-key', pub, '--now', '2026-05-01T16:01:00Z'])).code, 0);
  const stale = await cli(['verify', '--artifact', artifact, '--public-key', pub, '--now', '2026-05-01T16:01:01Z']);
  assert.is(stale.code, 1);
  assert.match(stale.err, /^STALE: /);
  const future = await cli(['verify', '--artifact', artifact, '--public-key', pub, '--now', '2026-05-01T11:58:59Z']);
  assert.is(future.code, 1);
  assert.match(future.err, /^FUTURE_DATED: /);
  const text = readFileSync(artifact, 'utf8');
  writeFileSync(artifact, text.replace('{"channelEdges":[]', '{"channelEdges":[],"channelEdges":[]'));
  const dup = await cli(['verify', '--artifact', artifact, '--public-key', pub, '--now', NOW]);
  assert.is(dup.code, 1);
  assert.match(dup.err, /^DUPLICATE_KEY: /);
});

flow('verify with a trust.json; ROLLBACK / EQUIVOCATION via --last-*', async () => {
  const { artifact } = await release(dir);
  writeTrustFile(dir, trustFor({ current: mintReleaseKey('ed25519', 5) }));
  const wrong = await cli(['verify', '--artifact', artifact, '--trust', join(dir, 'trust.json'), '--now', NOW]);
  assert.is(wrong.code, 1);
  assert.match(wrong.err, /^BAD_SIGNATURE/);
  assert.ok(readFileSync(join(dir, 'release.key'), 'utf8').startsWith('-----BEGIN PRIVATE KEY-----'));
  // Re-sign an already signed artefact with a new key, then verify through trust.json.
  const real = (await cli(['keygen', '--out', join(dir, 'release.key'), '--force'])).out.trim();
  const s = await cli(['sign', '--in', artifact, '--key', join(dir, 'release.key'), '--now', '2026-05-01T12:00:00Z', '--out-dir', join(dir, 'o2')]);
  assert.is(s.code, 0, s.err);
  writeFileSync(join(dir, 'trust.json'), JSON.stringify({ schemaVersion: 1, ciReleaseKey: { current: { algorithm: 'ed25519', public: real } }, cacheKeys: [] }));
  const art2 = join(dir, 'o2/fleet.resolved.json');
  assert.is((await cli(['verify', '--artifact', art2, '--trust', join(dir, 'trust.json'), '--now', NOW])).code, 0);
  const rb = await cli(['verify', '--artifact', art2, '--trust', join(dir, 'trust.json'), '--now', NOW, '--last-signed-at', '2026-05-01T12:00:01Z', '--last-sha256', 'aa']);
  assert.match(rb.err, /^ROLLBACK: /);
  const eq = await cli(['verify', '--artifact', art2, '--trust', join(dir, 'trust.json'), '--now', NOW, '--last-signed-at', NOW, '--last-sha256', 'aa']);
  assert.match(eq.err, /^EQUIVOCATION: /);
});

const sign = suite('nixfleet-release sign');
sign.before.each(fresh);
sign.after.each(cleanup);

sign('--sign-cmd gets the canonical bytes in $NIXFLEET_INPUT and writes the signature to $NIXFLEET_OUTPUT', async () => {
  const key = mintReleaseKey('ed25519', 7);
  const keyPath = writeKeyFile(dir, key);
  await cli(['resolve', '--fleet', FLEET, '--out', join(dir, 'f.json')]);
  // The hook signs with openssl-free Node: a small script using our own key file via the CLI is
  // circular, so use Node's crypto directly, as a hardware-token wrapper would use its own tool.
  const hook = join(dir, 'hook.mjs');
  writeFileSync(hook, `import { readFileSync, writeFileSync } from 'node:fs'; import { createPrivateKey, sign } from 'node:crypto';
const k = createPrivateKey(readFileSync(${JSON.stringify(keyPath)}, 'utf8'));
writeFileSync(process.env.NIXFLEET_OUTPUT, sign(null, readFileSync(process.env.NIXFLEET_INPUT), k));`);
  const s = await cli(['sign', '--in', join(dir, 'f.json'), '--sign-cmd', `${JSON.stringify(process.execPath)} ${JSON.stringify(hook)}`, '--public-key', key.publicKeyB64, '--now', NOW, '--out-dir', join(dir, 'out')]);
  assert.is(s.code, 0, s.err);
  assert.match(s.err, /warning: 5 host\(s\) have no closureHash/);
  assert.is((await cli(['verify', '--artifact', join(dir, 'out/fleet.resolved.json'), '--public-key', key.publicKeyB64, '--now', NOW])).code, 0);
  // A failing hook, a hook writing junk, and a hook signing with the wrong key: exit 2, nothing written.
  for (const [cmd, msg] of [
    ['exit 3', /exited with 3/],
    ['printf abc > "$NIXFLEET_OUTPUT"', /wrote 3 bytes/],
    ['head -c 64 /dev/zero > "$NIXFLEET_OUTPUT"', /does not verify/],
  ] as const) {
    const bad = await cli(['sign', '--in', join(dir, 'f.json'), '--sign-cmd', cmd, '--public-key', key.publicKeyB64, '--now', NOW, '--out-dir', join(dir, 'bad')]);
    assert.is(bad.code, 2, cmd);
    assert.match(bad.err, msg);
    assert.not.ok(existsSync(join(dir, 'bad/fleet.resolved.json')));
  }
});

sign('--reuse-unchanged-signature keeps the bytes when only time changed, re-signs on change or when due', async () => {
  const key = mintReleaseKey('ed25519', 8);
  const keyPath = writeKeyFile(dir, key);
  await cli(['resolve', '--fleet', FLEET, '--out', join(dir, 'f.json')]);
  const signAt = (now: string, extra: string[] = []) => cli(['sign', '--in', join(dir, 'f.json'), '--key', keyPath, '--now', now, '--out-dir', join(dir, 'out'), '--reuse-unchanged-signature', ...extra]);
  assert.is((await signAt('2026-05-01T12:00:00Z')).code, 0);
  const first = readFileSync(join(dir, 'out/fleet.resolved.json'));
  const firstIndex = readFileSync(join(dir, 'out/fleet.index.json'));
  const r = await signAt('2026-05-01T12:30:00Z');
  assert.is(r.code, 0);
  assert.match(r.err, /kept the existing signature/);
  assert.ok(readFileSync(join(dir, 'out/fleet.resolved.json')).equals(first));
  assert.ok(readFileSync(join(dir, 'out/fleet.index.json')).equals(firstIndex), 'a kept artefact keeps its index');
  // Due: signingIntervalMinutes is 60 in this fleet.
  await signAt('2026-05-01T13:00:00Z');
  assert.not.ok(readFileSync(join(dir, 'out/fleet.resolved.json')).equals(first));
  assert.not.ok(readFileSync(join(dir, 'out/fleet.index.json')).equals(firstIndex), 'a re-signed artefact gets a new index');
  const second = readFileSync(join(dir, 'out/fleet.resolved.json'));
  // Content changed (new commit): re-signed.
  await signAt('2026-05-01T13:01:00Z', ['--ci-commit', 'new']);
  assert.not.ok(readFileSync(join(dir, 'out/fleet.resolved.json')).equals(second));
});

sign('revocations are signed too; bad closure maps and inputs are exit 1', async () => {
  const key = mintReleaseKey('ecdsa-p256', 9);
  const keyPath = writeKeyFile(dir, key);
  writeFileSync(join(dir, 'revocations.json'), JSON.stringify({ schemaVersion: 1, revocations: [], meta: { schemaVersion: 1, signedAt: null, ciCommit: null } }));
  const s = await cli(['sign', '--revocations', join(dir, 'revocations.json'), '--key', keyPath, '--now', NOW, '--out-dir', join(dir, 'out')]);
  assert.is(s.code, 0, s.err);
  const v = await cli(['verify', '--artifact', join(dir, 'out/revocations.json'), '--public-key', key.publicKeyB64, '--now', NOW]);
  assert.is(v.code, 0, v.err);
  assert.match(v.out, /^OK revocations .* \(0 revocations\)/);
  await cli(['resolve', '--fleet', FLEET, '--out', join(dir, 'f.json')]);
  for (const map of [{ nope: fakeClosure('x') }, { 'web-01': 'not-a-store-path' }, { 'web-01': 42 }]) {
    writeFileSync(join(dir, 'c.json'), JSON.stringify(map));
    const bad = await cli(['sign', '--in', join(dir, 'f.json'), '--key', keyPath, '--closures', join(dir, 'c.json'), '--now', NOW, '--out-dir', join(dir, 'o')]);
    assert.is(bad.code, 1, JSON.stringify(map));
  }
  assert.is((await cli(['sign', '--in', join(dir, 'f.json'), '--now', NOW, '--out-dir', join(dir, 'o')])).code, 1);
  assert.is((await cli(['sign', '--in', join(dir, 'f.json'), '--key', keyPath, '--now', 'tomorrow', '--out-dir', join(dir, 'o')])).code, 1);
  assert.is((await cli(['sign', '--in', join(dir, 'missing.json'), '--key', keyPath, '--out-dir', join(dir, 'o')])).code, 2);
});

const misc = suite('nixfleet-release: other commands, help and exit codes');
misc.before.each(fresh);
misc.after.each(cleanup);

misc('--help on every subcommand, unknown command and flags', async () => {
  for (const c of ['keygen', 'canonicalize', 'resolve', 'sign', 'verify']) {
    const h = await cli([c, '--help']);
    assert.is(h.code, 0);
    assert.match(h.out, new RegExp(`^Usage: nixfleet-release ${c}`));
  }
  const push = await cli(['push', '--help']);
  assert.is(push.code, 0);
  assert.match(push.out, /nixfleet-release push/);
  assert.is((await cli(['push'])).code, 1);
  assert.is((await cli(['--help'])).code, 0);
  assert.is((await cli([])).code, 1);
  assert.is((await cli(['frobnicate'])).code, 1);
  const bad = await cli(['verify', '--artefact', 'x']);
  assert.is(bad.code, 1);
  assert.match(bad.err, /^nixfleet-release verify: unknown flag --artefact \(see --help\)$/m);
});

misc('usage errors are invalid input (exit 1, SPEC §3 has no other code for them), worded as by the other binaries', async () => {
  const cases: [string[], RegExp][] = [
    [['keygen', '--out'], /^nixfleet-release keygen: flag --out needs a value \(see --help\)$/m],
    [['keygen', '--out', '-k'], /^nixfleet-release keygen: flag --out needs a value \(for one that starts with "-": --out=VALUE\)/m],
    [['keygen', '--force=yes', '--out', join(dir, 'k')], /^nixfleet-release keygen: flag --force takes no value/m],
    [['keygen', '--out', join(dir, 'k'), 'extra'], /^nixfleet-release keygen: unexpected argument "extra"/m],
    [['canonicalize', '--bogus'], /^nixfleet-release canonicalize: unknown flag --bogus \(see --help\)$/m],
    [['push', '--bogus'], /^nixfleet-release push: unknown flag --bogus \(see --help\)$/m],
    [['push', '--cache'], /^nixfleet-release push: flag --cache needs a value/m],
    [['keygen'], /--out is required/],
    [['keygen', '--out', join(dir, 'k'), '--algorithm', 'rsa'], /--algorithm must be one of/],
  ];
  for (const [argv, message] of cases) {
    const r = await cli(argv);
    assert.is(r.code, 1, argv.join(' '));
    assert.match(r.err, message);
  }
  // The real binary, too.
  const bin = spawnSync(process.execPath, [join(ROOT, 'bin/nixfleet-release.js'), 'resolve', '--fleet'], { encoding: 'utf8' });
  assert.is(bin.status, 1, bin.stderr);
  assert.match(bin.stderr, /flag --fleet needs a value/);
});

withInterop(misc)('canonicalize: file or stdin, interop golden bytes, refusals exit 1', async () => {
  const c = await cli(['canonicalize', join(interopDir(), 'jcs-golden.json')]);
  assert.is(c.out, readFileSync(join(interopDir(), 'jcs-golden.canonical'), 'utf8'));
  assert.is((await cli(['canonicalize'], '{"b":1,"a":[true]}')).out, '{"a":[true],"b":1}');
  const dup = await cli(['canonicalize', '-'], '{"a":1,"a":1}');
  assert.is(dup.code, 1);
  assert.match(dup.err, /DUPLICATE_KEY/);
});

misc('resolve: errors carry their code; several --fleet files merge; warnings on stderr', async () => {
  const neg = join(ROOT, 'fixtures/fleets/negative/host-edge-cycle/fleet.json');
  const e = await cli(['resolve', '--fleet', neg]);
  assert.is(e.code, 1);
  assert.match(e.err, /HOST_EDGE_CYCLE: cycle in host edges/);
  const m = join(ROOT, 'fixtures/fleets/golden/merged-files');
  const r = await cli(['resolve', '--fleet', join(m, 'fleet.json'), '--fleet', join(m, 'fleet-2.json')]);
  assert.is(r.code, 0, r.err);
  assert.equal(JSON.parse(r.out), JSON.parse(readFileSync(join(m, 'expected.resolved.json'), 'utf8')));
  const w = await cli(['resolve', '--fleet', join(ROOT, 'fixtures/fleets/golden/unmatched-and-empty-waves/fleet.json')]);
  assert.match(w.err, /^warning: channel "c": host "c" matches no wave/m);
  assert.is((await cli(['resolve', '--fleet', join(dir, 'none.json')])).code, 2);
});

misc('keygen refuses to overwrite; p256 keys; the real binary entry point runs', async () => {
  assert.is((await cli(['keygen', '--out', join(dir, 'k')])).code, 0);
  assert.is((await cli(['keygen', '--out', join(dir, 'k')])).code, 1);
  const p = await cli(['keygen', '--out', join(dir, 'p'), '--algorithm', 'ecdsa-p256']);
  assert.is(Buffer.from(p.out.trim(), 'base64').length, 64);
  assert.is((await cli(['keygen', '--out', join(dir, 'q'), '--algorithm', 'rsa'])).code, 1);
  const bin = spawnSync(process.execPath, [join(ROOT, 'bin/nixfleet-release.js'), 'verify', '--artifact', join(dir, 'nothing'), '--public-key', p.out.trim()], { encoding: 'utf8' });
  assert.is(bin.status, 2, bin.stderr);
  assert.match(bin.stderr, /cannot read artefact/);
});

flow.run();
sign.run();
misc.run();
