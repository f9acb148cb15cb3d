/**
 * The composition root (`buildAgent`): the real wiring reports unreadable material as values (what
 * `nixfleet-agent` turns into exit 2), and the same function, given in-memory parts, yields an
 * agent that verifies, activates and confirms a signed target without Nix or a network.
 */
import { mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { silentLogger } from '../io/log.ts';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { outcomeStatement } from '../protocol/api.ts';
import { canonicalBytes } from '../protocol/jcs.ts';
import { fromBase64, toBase64, verifySignature } from '../protocol/crypto.ts';
import { createFleetCa, mintHostCert } from '../pki/pki.ts';
import { fakeClosure, signFleet, stableTarget } from '../fixtures/artifacts.ts';
import { fakeWiring } from '../fixtures/agent-fake-backend.ts';
import { fleetFor, HOST } from '../fixtures/agent-harness.ts';
import { mintHostKey, mintReleaseKey, trustFor } from '../fixtures/keys.ts';
import { buildAgent, trustLoader } from './compose.ts';
import { resolveConfig, type Config } from './config.ts';

const test = suite('agent composition root');
const dir = mkdtempSync(join(tmpdir(), 'nixfleet-agent-compose-'));
test.after(() => rmSync(dir, { recursive: true, force: true }));

function config(over: Record<string, unknown> = {}): Config {
  const r = resolveConfig(
    {
      cpUrl: 'https://127.0.0.1:1',
      tls: { certFile: join(dir, 'host.pem'), keyFile: join(dir, 'host.key'), caFile: join(dir, 'ca.pem') },
      hostKeyFile: null,
      stateDir: join(dir, 'state'),
      trustFile: join(dir, 'trust.json'),
      ...over,
    },
    { hostname: HOST, platform: 'nixos' },
  );
  if (!r.ok) throw new Error(r.error.message);
  return r.value;
}

test('real wiring: unreadable TLS material or host key is an error value; readable material builds', async () => {
  const noLog = silentLogger;
  const missing = buildAgent(config(), { log: noLog });
  assert.is(missing.ok, false);
  if (!missing.ok) {
    assert.is(missing.error.code, 'UNREADABLE');
    assert.match(missing.error.message, /cannot read certificate .*host\.pem/);
  }

  const ca = await createFleetCa({ commonName: 'compose test' });
  const host = await mintHostCert(ca, HOST);
  writeFileSync(join(dir, 'ca.pem'), ca.certPem);
  writeFileSync(join(dir, 'host.pem'), host.certPem);
  writeFileSync(join(dir, 'host.key'), host.keyPem, { mode: 0o600 });

  const noKey = buildAgent(config({ hostKeyFile: join(dir, 'no_such_key') }), { log: noLog });
  assert.is(noKey.ok, false);
  if (!noKey.ok) assert.is(noKey.error.code, 'HOST_KEY');

  const built = buildAgent(config(), { log: noLog });
  assert.ok(built.ok);
  if (built.ok) await built.value.close();
});

test('in-memory parts through the same root: a signed target is verified, switched to and confirmed', async () => {
  const releaseKey = mintReleaseKey();
  const previous = `/nix/store/${fakeClosure(HOST, 1)}`;
  const next = fakeClosure(HOST, 2);
  const signedAt = '2026-05-01T12:00:00Z';
  const signed = signFleet(fleetFor(next, null), releaseKey, signedAt);
  const startMs = Date.parse(signedAt) + 30_000;
  const world = fakeWiring({ running: previous, trust: trustFor(releaseKey), startMs });
  const target = stableTarget(signed, next, startMs + 120_000);
  world.cp.target = target;
  world.cp.artifact = { bytes: signed.bytes, signature: signed.signature };

  const metricsFile = join(dir, 'textfile', 'nixfleet.prom');
  mkdirSync(dirname(metricsFile), { recursive: true });
  const built = buildAgent(config({ metricsFile }), world.wiring);
  assert.ok(built.ok, 'fakes need no readable files');
  if (!built.ok) return;
  const outcome = await built.value.agent.once();
  await built.value.close();

  assert.equal(outcome, { kind: 'activated', phase: 'idle', outcome: 'confirmed' }, world.logs.join('\n'));
  assert.equal(world.backend.activations, [`/nix/store/${next} switch`]);
  assert.is(world.backend.runningPath, `/nix/store/${next}`);
  assert.is(world.cp.confirms.length, 1);
  assert.is(world.cp.confirms[0]!.bootId, 'fake-boot');
  assert.is(world.cp.checkins[0]!.currentClosure, fakeClosure(HOST, 1));
  assert.is(world.store.pending, null);
  assert.is(world.store.accepted.fleet?.sha256, signed.sha256);
  // Agent metrics (issue 18): the text file node_exporter's textfile collector reads, rewritten each cycle.
  const prom = readFileSync(metricsFile, 'utf8');
  assert.match(prom, /^nixfleet_agent_activations_total\{outcome="confirmed",host="web1"\} 1$/m, prom);
  assert.match(prom, /^nixfleet_agent_consecutive_failures\{host="web1"\} 0$/m);
  assert.match(prom, /^nixfleet_agent_last_checkin_success_timestamp_seconds\{host="web1"\} \d+/m);
  assert.match(prom, /^nixfleet_agent_build_info\{version="[^"]+",node="v\d+[^"]*",host="web1"\} 1$/m);
  assert.is(statSync(metricsFile).mode & 0o777, 0o644, 'readable by node_exporter');
});

test('issue 14: the check-in after a roll-back carries the outcome signed by the host key (what the CP verifies)', async () => {
  const releaseKey = mintReleaseKey();
  const hostKey = mintHostKey(5, HOST);
  const previous = `/nix/store/${fakeClosure(HOST, 1)}`;
  const next = fakeClosure(HOST, 2);
  const signedAt = '2026-05-01T12:00:00Z';
  const signed = signFleet(fleetFor(next, hostKey.openssh), releaseKey, signedAt);
  const startMs = Date.parse(signedAt) + 30_000;
  const world = fakeWiring({ running: previous, trust: trustFor(releaseKey), startMs });
  world.wiring.hostKey = { algorithm: 'ed25519', secretKey: hostKey.secretKey };
  world.cp.target = stableTarget(signed, next, startMs + 120_000);
  world.cp.artifact = { bytes: signed.bytes, signature: signed.signature };
  world.cp.confirmResult = 'gone'; // the CP answers 410: the agent rolls back
  const built = buildAgent(config(), world.wiring);
  assert.ok(built.ok);
  if (!built.ok) return;
  const outcome = await built.value.agent.once();
  assert.equal(outcome, { kind: 'activated', phase: 'idle', outcome: 'rolled-back' }, world.logs.join('\n'));
  world.cp.target = null;
  await built.value.agent.cycle();
  await built.value.close();
  const last = world.cp.checkins.at(-1)!;
  assert.is(last.lastOutcome?.outcome, 'rolled-back');
  const sig = fromBase64(last.lastOutcomeSignature ?? '');
  const bytes = canonicalBytes(outcomeStatement(HOST, last.lastOutcome!));
  assert.ok(sig !== null && bytes.ok);
  if (sig === null || !bytes.ok) return;
  assert.ok(verifySignature('ed25519', toBase64(hostKey.publicKey), bytes.value, sig), 'verifies under the fleet pubkey');
  const tampered = canonicalBytes(outcomeStatement(HOST, { ...last.lastOutcome!, outcome: 'confirmed' }));
  assert.ok(tampered.ok && !verifySignature('ed25519', toBase64(hostKey.publicKey), tampered.value, sig), 'and covers the outcome');
});

test('trustLoader: a valid trust.json loads; a missing file, a duplicate key or a bad shape is a coded error', () => {
  const file = join(dir, 'trust-loader.json');
  const trust = trustFor(mintReleaseKey('ed25519', 3));
  const load = trustLoader(file);
  const code = (): string => {
    const r = load();
    return r.ok ? 'OK' : r.error.code;
  };
  assert.is(code(), 'TRUST_MISSING');
  writeFileSync(file, JSON.stringify(trust));
  assert.is(code(), 'OK');
  writeFileSync(file, JSON.stringify(trust).replace('{', '{"schemaVersion":1,'));
  assert.is(code(), 'TRUST_INVALID', 'duplicate schemaVersion key');
  writeFileSync(file, JSON.stringify({ ...trust, ciReleaseKey: 'nope' }));
  assert.is(code(), 'SCHEMA_INVALID');
});

test.run();
