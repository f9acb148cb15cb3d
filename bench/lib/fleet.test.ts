import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { sampleFleet } from '../../fixtures/artifacts.ts';
import { signBytes, verifySignature } from '../../protocol/crypto.ts';
import { verifyArtifact } from '../../protocol/verify.ts';
import { trustFor } from '../../fixtures/keys.ts';
import { CHANNELS, WAVES, benchFleet, hostKeys, hostSigningKey, signEd25519B64, writeCpFiles } from './fleet.ts';
import { loadBenchPki } from './certs.ts';

const test = suite('bench/lib/fleet');
const dir = mkdtempSync(join(tmpdir(), 'bench-fleet-'));
test.after(() => rmSync(dir, { recursive: true, force: true }));

test('benchFleet equals the fixtures sample fleet with host keys (generation 1)', () => {
  const keys = hostKeys(12, dir, 16);
  const ours = benchFleet(12, keys).fleet(1);
  const ref = sampleFleet({ hosts: 12, channels: [...CHANNELS], waves: WAVES, soakMinutes: 0, closures: true, withPubkeys: true });
  assert.equal(ours, ref);
});

test('generation 2 changes every closure and nothing else', () => {
  const f = benchFleet(8, hostKeys(8, dir, 16));
  const a = f.fleet(1);
  const b = f.fleet(2);
  for (const h of Object.keys(a.hosts)) {
    assert.is.not(a.hosts[h]!.closureHash, b.hosts[h]!.closureHash);
    assert.equal({ ...a.hosts[h], closureHash: null }, { ...b.hosts[h], closureHash: null });
  }
  assert.equal(a.waves, b.waves);
});

test('host keys are cached as one batch and smaller fleets read a prefix', () => {
  const a = hostKeys(3, dir, 16);
  const b = hostKeys(5, dir, 16);
  assert.equal(b.slice(0, 3), a);
});

test('native Ed25519 signatures are the fixtures (noble) signatures and verify under the fleet pubkey', () => {
  const [k] = hostKeys(1, dir, 16);
  const msg = new TextEncoder().encode('{"hostname":"host-0000"}');
  const native = signEd25519B64(hostSigningKey(k!), msg);
  const noble = Buffer.from(signBytes(msg, { algorithm: 'ed25519', secretKey: Buffer.from(k!.seedHex, 'hex') })).toString('base64');
  assert.is(native, noble);
  assert.ok(verifySignature('ed25519', Buffer.from(k!.publicHex, 'hex').toString('base64'), msg, Buffer.from(native, 'base64')));
});

test('writeCpFiles publishes an artefact the release verifier accepts under the written trust', async () => {
  const pki = await loadBenchPki(['host-0000'], { cacheDir: dir });
  const files = writeCpFiles(join(dir, 'cp'), pki, 0);
  const nowMs = Date.now();
  const signed = files.publish(benchFleet(4, hostKeys(4, dir, 16)).fleet(1), nowMs);
  const bytes = readFileSync(join(files.releasesDir, 'fleet.resolved.json'));
  const sig = readFileSync(join(files.releasesDir, 'fleet.resolved.json.sig'));
  const r = verifyArtifact({ kind: 'fleet', bytes, signature: sig, trust: trustFor(files.release), nowMs, lastAccepted: null });
  assert.ok(r.ok, r.ok ? '' : r.error.message);
  if (r.ok) assert.is(r.value.sha256, signed.sha256);
  const cfg = JSON.parse(readFileSync(files.configFile, 'utf8')) as Record<string, unknown>;
  assert.is(cfg['clientCaFile'], files.caCertFile);
  assert.not.match(readFileSync(files.caCertFile, 'utf8'), /PRIVATE KEY/);
});

test.run();
