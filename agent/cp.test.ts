/**
 * The agent against the REAL control plane (fixtures/cp-testing.ts: Hono over HTTPS + mTLS,
 * SQLite, the reconciler) and real Nix: the CP dispatches the signed target, the agent verifies,
 * activates from the signed cache, confirms on a new connection; then a failing closure is rolled
 * back, and the CP takes the host's signed report (the host is Reverted in that rollout).
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import type { AuditResponse, HostsResponse } from '../protocol/api.ts';
import { Client, makeEnv as makeCpEnv, startCp, stamp, type Env as CpEnv, type RunningCp } from '../fixtures/cp-testing.ts';
import { trustFor, writeTrustFile } from '../fixtures/keys.ts';
import { basenameOf } from '../fixtures/nix.ts';
import { resolveFleet } from '../release/resolve.ts';
import type { FleetResolved } from '../protocol/schema.ts';
import { HOST, makeEnv, type Env } from '../fixtures/agent-harness.ts';
import { askWhoami } from './compose.ts';

const test = suite('agent ↔ real control plane');
let env: Env;
let cpEnv: CpEnv;
let cp: RunningCp;
let operator: Client;

function fleet(closure: string): FleetResolved {
  const r = resolveFleet({
    hosts: { [HOST]: { system: 'x86_64-linux', channel: 'stable', tags: [], closureHash: basenameOf(closure), pubkey: env.hostPubkey } },
    channels: { stable: { rolloutPolicy: 'all' } },
    rolloutPolicies: { all: { strategy: 'all-at-once', waves: [{ selector: { all: true } }] } },
  });
  if (!r.ok) throw new Error(r.error.message);
  return r.value.fleet;
}

test.before(async () => {
  env = await makeEnv([{ name: 'base' }, { name: 'good' }, { name: 'bad', variant: 'fail' }], { cached: ['good', 'bad'] });
  cpEnv = await makeCpEnv('nixfleet-agent-cp-');
  // The agent trusts the CP test environment's release key (and our cache key), and talks to the
  // CP with a host certificate of that environment's fleet CA.
  writeTrustFile(env.root, trustFor(cpEnv.release, { cacheKeys: [env.cacheKey.publicKey] }));
  const host = await cpEnv.hostCert(HOST);
  writeFileSync(env.files.cert, host.certPem);
  writeFileSync(env.files.key, host.keyPem);
  writeFileSync(env.files.ca, cpEnv.ca.certPem);
  lastSignedMs = Math.floor(Date.now() / 1000) * 1000 - 2000;
  cpEnv.publish(fleet(env.toys['base']!), { signedAt: stamp(lastSignedMs) });
  cp = await startCp(cpEnv);
  operator = new Client(cp.url, cpEnv.ca.certPem, await cpEnv.operatorCert('alice'));
});
test.after(async () => {
  await operator.close();
  await cp.stop();
  cpEnv.cleanup();
  await env.close();
});

async function hostView() {
  const r = await operator.call('GET', '/v1/hosts');
  return (r.body as HostsResponse).hosts.find((h) => h.hostname === HOST)!;
}

/** Publish a fleet for `closure`, let the CP load it and reconcile, as its timers would. */
let lastSignedMs = 0;
async function release(closure: string): Promise<void> {
  cpEnv.clock.ms = Date.now();
  // Strictly newer whole seconds: the same signedAt with other bytes is EQUIVOCATION (refused).
  lastSignedMs = Math.max(Math.floor(Date.now() / 1000) * 1000, lastSignedMs + 1000);
  cpEnv.publish(fleet(closure), { signedAt: stamp(lastSignedMs) });
  await cp.cp.pollNow();
  await cp.cp.reconcileNow();
}

test('the CP dispatches, the agent verifies, realises, switches and confirms; the CP sees it converge', async () => {
  const good = env.toys['good']!;
  const probes = [{ name: 'true', kind: 'exec', command: ['/bin/sh', '-c', 'exit 0'], intervalSecs: 1, timeoutSecs: 5 }];
  const { agent, close, logs } = env.agent({ cpUrl: cp.url, probes });
  try {
    assert.is((await agent.cycle()).outcome.kind, 'no-target', 'registered, nothing to do yet');
    await release(good);
    const out = await agent.once();
    assert.equal(out, { kind: 'activated', phase: 'idle', outcome: 'confirmed' }, logs.join('\n'));
    await agent.cycle(); // reports the new current closure
  } finally {
    await close();
  }
  assert.is(env.running(), good);
  const h = await hostView();
  assert.is(h.currentClosure, basenameOf(good));
  assert.is(h.dispatch, null, 'no outstanding dispatch after the confirm');
  assert.is(h.lastOutcome?.outcome, 'confirmed');
  assert.ok(h.probes.some((p) => p.name === 'true' && p.ok), `probe results reach the CP: ${JSON.stringify(h.probes)}`);
});

test('nixfleet-agent whoami: the CP names this host from its certificate; an unreadable key is an I/O error, no request', async () => {
  const w = await askWhoami(env.config({ cpUrl: cp.url }));
  assert.ok(w.ok, w.ok ? '' : w.error.message);
  assert.is(w.value.name, HOST);
  assert.is(w.value.role, 'host');
  const missing = await askWhoami(env.config({ cpUrl: cp.url, tls: { certFile: env.files.cert, keyFile: join(env.root, 'no-such.key'), caFile: env.files.ca } }));
  assert.ok(!missing.ok && missing.error.code === 'UNREADABLE', JSON.stringify(missing));
});

test('a failing closure: rolled back on the host, its signed report accepted, Reverted on the CP', async () => {
  const bad = env.toys['bad']!;
  const good = env.toys['good']!;
  const { agent, close, logs } = env.agent({ cpUrl: cp.url });
  try {
    await release(bad);
    const out = await agent.once();
    assert.equal(out, { kind: 'activated', phase: 'idle', outcome: 'rolled-back' }, logs.join('\n'));
    await agent.cycle();
  } finally {
    await close();
  }
  assert.is(env.running(), good);
  assert.equal(env.switchLog().slice(-2), ['bad switch', 'good switch']);
  await cp.cp.reconcileNow(); // what the CP's timer does after a relevant report
  const h = await hostView();
  assert.is(h.rollout?.state, 'Reverted', JSON.stringify(h.rollout));
  assert.is(h.currentClosure, basenameOf(good));
  assert.is(h.lastOutcome?.outcome, 'rolled-back');
  const audit = (await operator.call('GET', '/v1/audit?limit=1000')).body as AuditResponse;
  const reports = audit.entries.filter((e) => e.kind === 'report' && JSON.stringify(e.data).includes('rolled-back'));
  assert.ok(reports.length > 0, 'the rolled-back report is in the audit log');
  assert.match(JSON.stringify(reports[0]!.data), /verified/);
});

test.run();
