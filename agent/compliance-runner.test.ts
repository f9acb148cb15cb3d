/**
 * The agent carries runtime compliance evidence (issue 15): after an activation, before the
 * confirm, it runs the checks of its channel's frameworks (policy from the signed artefact,
 * including the fleet's own controls) and the confirm carries every record signed by the host key;
 * periodic runs ride on check-ins and are sent once; `disabled` collects nothing; evidence the CP
 * refuses is dropped so the host keeps checking in.
 */
import { mkdtempSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { controlsOf, type Control } from '../protocol/compliance.ts';
import { verifySignature, toBase64, fromBase64 } from '../protocol/crypto.ts';
import { canonicalBytes } from '../protocol/jcs.ts';
import type { ComplianceMode, FleetResolved } from '../protocol/schema.ts';
import { fakeClosure, signFleet, stableTarget } from '../fixtures/artifacts.ts';
import { fakeWiring } from '../fixtures/agent-fake-backend.ts';
import { fleetFor, HOST } from '../fixtures/agent-harness.ts';
import { mintHostKey, mintReleaseKey, trustFor } from '../fixtures/keys.ts';
import { hostCheckIo } from './compliance.ts';
import { buildAgent } from './compose.ts';
import { resolveConfig } from './config.ts';

const test = suite('agent: runtime compliance evidence');
const dir = mkdtempSync(join(tmpdir(), 'nixfleet-agent-compliance-'));
test.after(() => rmSync(dir, { recursive: true, force: true }));

/** A fleet own control: a marker file the "new closure" leaves behind (or not). */
const MARKER: Control = { id: 'toy-marker', title: 'The hardening marker is present', severity: 'high', frameworks: ['nis2:21.2(h)'], static: null, runtime: { kind: 'file', path: '/etc/hardened', matches: '^yes$' } };

function scenario(mode: ComplianceMode, marker: string | null) {
  const root = mkdtempSync(join(dir, 'root-'));
  mkdirSync(join(root, 'etc'));
  if (marker !== null) writeFileSync(join(root, 'etc/hardened'), marker);
  const releaseKey = mintReleaseKey();
  const hk = mintHostKey(7);
  const next = fakeClosure(HOST, 2);
  const signedAt = '2026-05-01T12:00:00Z';
  const fleet: FleetResolved = fleetFor(next, hk.openssh);
  fleet.channels['stable']!.compliance = { frameworks: ['nis2'], mode };
  fleet.compliance = { controls: [MARKER], staticFailures: [] };
  const signed = signFleet(fleet, releaseKey, signedAt);
  const startMs = Date.parse(signedAt) + 30_000;
  const world = fakeWiring({ running: `/nix/store/${fakeClosure(HOST, 1)}`, trust: trustFor(releaseKey), startMs });
  world.wiring.hostKey = { algorithm: 'ed25519', secretKey: hk.secretKey };
  world.wiring.checkIo = hostCheckIo(root);
  const target = stableTarget(signed, next, startMs + 120_000);
  world.cp.target = target;
  world.cp.artifact = { bytes: signed.bytes, signature: signed.signature };
  const cfg = resolveConfig(
    { cpUrl: 'https://127.0.0.1:1', tls: { certFile: '/x/h.pem', keyFile: '/x/h.key', caFile: '/x/ca.pem' }, hostKeyFile: null, stateDir: join(root, 'state'), complianceIntervalSecs: 600 },
    { hostname: HOST, platform: 'nixos' },
  );
  if (!cfg.ok) throw new Error(cfg.error.message);
  const built = buildAgent(cfg.value, world.wiring);
  if (!built.ok) throw new Error(built.error.message);
  return { world, agent: built.value.agent, close: built.value.close, hk, next, target };
}

const verifies = (e: { record: unknown; signature: string | null }, pub: Uint8Array): boolean => {
  const b = canonicalBytes(e.record);
  return b.ok && e.signature !== null && verifySignature('ed25519', toBase64(pub), b.value, fromBase64(e.signature)!);
};

test('enforce: the confirm carries one signed record per runtime control of nis2 + the fleet own control; the marker failure is named', async () => {
  const s = scenario('enforce', 'no');
  try {
    const out = await s.agent.once();
    assert.equal(out, { kind: 'activated', phase: 'idle', outcome: 'confirmed' }, s.world.logs.join('\n'));
  } finally {
    await s.close();
  }
  const ev = s.world.cp.confirms[0]!.compliance ?? [];
  const want = controlsOf(['nis2'], [MARKER]).filter((c) => c.runtime !== null).map((c) => c.id);
  assert.equal(ev.map((e) => e.record.control), want);
  assert.ok(ev.every((e) => verifies(e, s.hk.publicKey)), 'every record verifies under the host key');
  const marker = ev.find((e) => e.record.control === 'toy-marker')!.record;
  assert.is(marker.result, 'fail');
  assert.is(marker.closure, s.next, 'about the activated closure');
  assert.is(marker.rolloutId, s.target.rolloutId);
  assert.is(marker.hostname, HOST);
  assert.is(marker.bootId, 'fake-boot');
  assert.ok(s.world.logs.some((l) => l.includes('agent.compliance-run') && l.includes('"failing":[') && l.includes('toy-marker')));
  // Sent once: the first check-in after the confirm carries nothing new.
  s.world.cp.target = null;
  await s.agent.once();
  assert.is(s.world.cp.checkins.at(-1)!.compliance, undefined);
});

test('periodic: after complianceIntervalSecs a check-in carries a fresh set about the running closure (rolloutId null)', async () => {
  const s = scenario('permissive', 'yes');
  try {
    await s.agent.once();
    s.world.cp.target = null;
    s.world.clock.nowMs += 601_000;
    await s.agent.once();
  } finally {
    await s.close();
  }
  const ev = s.world.cp.checkins.at(-1)!.compliance ?? [];
  assert.ok(ev.length > 0);
  assert.ok(ev.every((e) => e.record.rolloutId === null && e.record.closure === s.next));
  assert.is(ev.find((e) => e.record.control === 'toy-marker')!.record.result, 'pass');
});

test('a confirm refused for its evidence (EVIDENCE_SIGNATURE_INVALID, e.g. a host key the fleet does not know yet) is retried without it: the activation is not lost', async () => {
  const s = scenario('permissive', 'yes');
  const orig = s.world.cp.confirm.bind(s.world.cp);
  s.world.cp.confirm = async (body) => {
    if (body.compliance !== undefined) {
      s.world.cp.confirms.push(structuredClone(body));
      return { result: 'error', message: '/v1/agent/confirm: HTTP 400 EVIDENCE_SIGNATURE_INVALID: evidence[0] does not verify' };
    }
    return orig(body);
  };
  try {
    const out = await s.agent.once();
    assert.equal(out, { kind: 'activated', phase: 'idle', outcome: 'confirmed' }, s.world.logs.join('\n'));
  } finally {
    await s.close();
  }
  assert.equal(s.world.cp.confirms.map((c) => c.compliance === undefined), [false, true]);
});

test('disabled: no checks, nothing sent', async () => {
  const s = scenario('disabled', 'no');
  try {
    await s.agent.once();
  } finally {
    await s.close();
  }
  assert.is(s.world.cp.confirms[0]!.compliance, undefined);
  assert.ok(s.world.cp.checkins.every((c) => c.compliance === undefined));
});

test.run();
