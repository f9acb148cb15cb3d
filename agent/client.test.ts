/**
 * The agent's HTTP client against the REAL control plane (fixtures/cp-testing.ts: HTTPS + mTLS):
 * connection behaviour that decides the CP's memory and handshake cost at scale (issue 9).
 *
 * - A poll after the CP closed the idle keep-alive connection reconnects with a RESUMED TLS
 *   session, even after garbage collections in between (undici alone keeps the ticket through a
 *   WeakRef and loses it; agent/client.ts `resumingConnector`), so a short CP keep-alive costs an
 *   abbreviated handshake per poll, not a full one.
 * - A confirm never resumes: a brand-new connection with a full handshake (SPEC §6).
 *
 * Counted by the CP itself (`nixfleet_tls_connections_total{resumed}`, served on /metrics).
 */
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { makeEnv, startCp, type Env, type RunningCp } from '../fixtures/cp-testing.ts';
import { fakeClosure } from '../fixtures/artifacts.ts';
import { resolveFleet } from '../release/resolve.ts';
import { CpClient } from './client.ts';

const HOST = 'web-01';
const test = suite('agent client ↔ control plane connections');
let env: Env;
let cp: RunningCp;

test.before(async () => {
  env = await makeEnv('nixfleet-agent-client-');
  const r = resolveFleet({
    hosts: { [HOST]: { system: 'x86_64-linux', channel: 'stable', tags: [], closureHash: fakeClosure(HOST) } },
    channels: { stable: { rolloutPolicy: 'all' } },
    rolloutPolicies: { all: { strategy: 'all-at-once', waves: [{ selector: { all: true } }] } },
  });
  if (!r.ok) throw new Error(r.error.message);
  env.publish(r.value.fleet);
  // A one-second keep-alive: the idle connection is gone well before the next poll.
  cp = await startCp(env, { keepAliveSecs: 1 });
});
test.after(async () => {
  await cp.stop();
  env.cleanup();
});

/** CP-side counts of accepted mTLS connections, by `resumed` (the CP's own metric, read in-process). */
async function tlsCounts(): Promise<{ full: number; resumed: number }> {
  const { values } = await cp.cp.metrics.tlsConnections.get();
  const n = (resumed: string): number => values.find((v) => v.labels['resumed'] === resumed)?.value ?? 0;
  return { full: n('false'), resumed: n('true') };
}

setFlagsFromString('--expose-gc');
const gc = runInNewContext('gc') as () => void;

/** Past the CP's one-second keep-alive, with full garbage collections meanwhile (as over a 60 s poll). */
const waitForIdleClose = async (): Promise<void> => {
  await new Promise((r) => setTimeout(r, 1500));
  for (let i = 0; i < 3; i++) {
    gc();
    await new Promise((r) => setImmediate(r));
  }
};

test('polls after the idle connection closed resume the TLS session; a confirm never does', async () => {
  const host = await env.hostCert(HOST);
  const client = new CpClient({ cpUrl: cp.url, tls: { ca: env.ca.certPem, cert: host.certPem, key: host.keyPem }, requestTimeoutSecs: 10, maxArtifactBytes: 1 << 20 });
  const body = { hostname: HOST, currentClosure: fakeClosure(HOST), bootId: 'b', probes: [], failedUnits: [], lastOutcome: null };
  try {
    const c0 = await tlsCounts();
    assert.ok((await client.checkin(body)).ok);
    const c1 = await tlsCounts();
    assert.equal({ full: c1.full - c0.full, resumed: c1.resumed - c0.resumed }, { full: 1, resumed: 0 }, 'first poll: full handshake');
    for (let i = 0; i < 2; i++) {
      await waitForIdleClose();
      assert.ok((await client.checkin(body)).ok);
    }
    const c2 = await tlsCounts();
    assert.equal({ full: c2.full - c1.full, resumed: c2.resumed - c1.resumed }, { full: 0, resumed: 2 }, 'later polls: resumed sessions');
    const confirm = await client.confirm({ hostname: HOST, rolloutId: 'none', closureHash: fakeClosure(HOST), bootId: 'b', probes: [], failedUnits: [] });
    assert.is(confirm.result, 'error', 'nothing was dispatched: the CP refuses, but over a connection of its own');
    const c3 = await tlsCounts();
    assert.equal({ full: c3.full - c2.full, resumed: c3.resumed - c2.resumed }, { full: 1, resumed: 0 }, 'confirm: a new connection, full handshake');
  } finally {
    await client.close();
  }
});

test('a CP that cannot be reached is a NETWORK error, not a crash (the connector\'s error path)', async () => {
  const host = await env.hostCert(HOST);
  const dead = new URL(cp.url);
  dead.port = '1'; // nothing listens on port 1 here: connection refused
  const client = new CpClient({ cpUrl: dead.href, tls: { ca: env.ca.certPem, cert: host.certPem, key: host.keyPem }, requestTimeoutSecs: 10, maxArtifactBytes: 1 << 20 });
  try {
    for (let i = 0; i < 2; i++) {
      const r = await client.checkin({ hostname: HOST, currentClosure: fakeClosure(HOST), bootId: 'b', probes: [], failedUnits: [], lastOutcome: null });
      assert.ok(!r.ok && r.error.code === 'NETWORK', JSON.stringify(r));
    }
  } finally {
    await client.close();
  }
});

test.run();
