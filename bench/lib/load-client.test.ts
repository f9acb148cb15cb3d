/**
 * The load client and the bare server in their own processes, over real mTLS on loopback: every
 * phase answers with the right statuses and counts. No timing assertions.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { startBareServer, type BareServer } from './bare-server.ts';
import { loadBenchPki } from './certs.ts';
import { startLoadClient, type LoadClient, type RequestTemplate } from './load-client.ts';

const test = suite('bench/lib/load-client');
const dir = mkdtempSync(join(tmpdir(), 'bench-load-client-'));
const names = ['host-0000', 'host-0001', 'host-0002', 'host-0003'];
const pki = await loadBenchPki(names, { cacheDir: dir });
const RESPONSE = '{"target":null,"nextCheckinSecs":60,"serverTime":"2026-01-01T00:00:00.000Z"}';
let bare: BareServer;
let lc: LoadClient;
const request: RequestTemplate = { method: 'POST', path: '/v1/agent/checkin', bodies: names.map((n) => JSON.stringify({ hostname: n })) };

test.before(async () => {
  bare = await startBareServer({ certPem: pki.server.certPem, keyPem: pki.server.keyPem, caPem: pki.ca.certPem, responseBody: RESPONSE });
  const init = join(dir, 'init.json');
  writeFileSync(init, JSON.stringify({ origin: `https://127.0.0.1:${bare.port}`, servername: 'localhost', caPem: pki.ca.certPem, hostKeyPem: pki.hostKeyPem, hosts: pki.hosts }));
  lc = await startLoadClient(init);
});

test.after(async () => {
  await lc.close();
  await bare.close();
  rmSync(dir, { recursive: true, force: true });
});

test('sweep: every host checks in once over its own new connection', async () => {
  const r = await lc.run({ kind: 'sweep', request, from: 0, to: names.length, concurrency: 2 });
  assert.equal(r.statuses, { '200': 4 });
  assert.is(r.completed, 4);
  assert.is(r.connectionsOpened, 4);
  assert.is(r.errors, 0);
});

test('closed loop: connections rotate to the next host after N check-ins; the server CPU is read in the window', async () => {
  const r = await lc.run({ kind: 'closed', request, connections: 2, checkinsPerConnection: 3, warmupMs: 50, durationMs: 300, serverPid: bare.pid });
  assert.is(r.errors, 0);
  // The 2 pre-opening check-ins always answer; how many more fall inside the 300 ms window depends
  // on the machine's load (0 on a busy one), so only relations are asserted, not counts.
  assert.ok((r.statuses['200'] ?? 0) >= 2 + r.completed, `${JSON.stringify(r.statuses)} for ${r.completed} check-ins in the window`);
  // 2 pre-opened connections, then one new connection per 3 check-ins.
  assert.ok(r.connectionsOpened >= 2 + Math.floor(r.completed / 3) - 2, `${r.connectionsOpened} connections for ${r.completed} check-ins`);
  assert.ok(r.server !== undefined && r.server.cpuMs >= 0);
});

test('open loop: a fixed schedule is served in full', async () => {
  const r = await lc.run({ kind: 'open', request, connections: 2, checkinsPerConnection: 100, ratePerSec: 200, warmupMs: 50, durationMs: 250 });
  assert.is(r.errors, 0);
  assert.ok(r.completed >= 45 && r.completed <= 52, `${r.completed} check-ins scheduled at 200/s for 250 ms`);
  assert.is(r.latencyMs.count, r.completed);
});

test('handshake: sequential TLS handshakes with host certificates', async () => {
  const r = await lc.run({ kind: 'handshake', count: 3 });
  assert.equal(r.statuses, { handshake: 3 });
});

test('fetch: bytes per request count the status line, headers and body', async () => {
  const r = await lc.run({ kind: 'fetch', path: '/', count: 2, ifNoneMatch: null });
  assert.equal(r.statuses, { '400': 2 }); // the bare server answers 400 to a request without a body
  assert.ok(r.bytesPerRequest !== undefined && r.bytesPerRequest.p50 > RESPONSE.length);
});

test('a host certificate from another CA is refused by the TLS layer (counted as an error)', async () => {
  const other = await loadBenchPki(['host-0000'], { cacheDir: mkdtempSync(join(dir, 'other-')) });
  const init = join(dir, 'other.json');
  writeFileSync(init, JSON.stringify({ origin: `https://127.0.0.1:${bare.port}`, servername: 'localhost', caPem: pki.ca.certPem, hostKeyPem: other.hostKeyPem, hosts: other.hosts }));
  const intruder = await startLoadClient(init);
  try {
    const r = await intruder.run({ kind: 'sweep', request, from: 0, to: 1, concurrency: 1 });
    assert.is(r.completed, 0);
    assert.is(r.errors, 1);
  } finally {
    await intruder.close();
  }
});

test.run();
