/**
 * The real mTLS path on loopback: handshake refusals, identity rules (host acts only as itself,
 * roles per route), revocations (401 on every /v1 route), readiness gate (503 + Retry-After).
 */
import { X509Certificate } from 'node:crypto';
import { gunzipSync } from 'node:zlib';
import type { WhoamiResponse } from '../protocol/enrol.ts';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { createFleetCa, mintHostCert } from '../pki/pki.ts';
import { sampleFleet, sampleRevocations } from '../fixtures/artifacts.ts';
import type { CheckinRequest, ErrorBody } from '../protocol/api.ts';
import { Client, makeEnv, startCp, stamp, type Env, type RunningCp } from '../fixtures/cp-testing.ts';

const env: Env = await makeEnv();
const fleet = sampleFleet({ hosts: 4, waves: 2, closures: true, withPubkeys: true });
const [H0, H1] = ['host-0000', 'host-0001'];

const checkin = (hostname: string): CheckinRequest => ({ hostname, currentClosure: null, bootId: 'boot-1', probes: [], failedUnits: [], lastOutcome: null });
const code = (b: unknown): string => (b as ErrorBody).error.code;
async function handshakeFails(c: Client): Promise<void> {
  let error: unknown = null;
  try {
    await c.call('GET', '/healthz');
  } catch (e) {
    error = e;
  }
  assert.ok(error !== null, 'request without an acceptable client certificate must fail');
  // Refused in TLS, before HTTP: a socket/TLS error, never an HTTP status.
  assert.match(String((error as Error & { cause?: unknown }).cause ?? error), /socket|TLS|SSL|certificate|ECONNRESET|alert|closed/i);
}

const t = suite('mtls');
let cp: RunningCp;
const clients: Client[] = [];
const client = async (cert: Parameters<Env['hostCert']>[0] | null, role: 'host' | 'operator' = 'host'): Promise<Client> => {
  const c = new Client(cp.url, env.ca.certPem, cert === null ? null : role === 'host' ? await env.hostCert(cert) : await env.operatorCert(cert));
  clients.push(c);
  return c;
};

t.before(async () => {
  cp = await startCp(env, { revocations: true, keepAliveSecs: 7 });
});

t.after(async () => {
  for (const c of clients) await c.close();
  await cp.stop();
  env.cleanup();
});

t('not ready: every /v1 route answers 503 with Retry-After; /healthz 200; /readyz says why', async () => {
  const host = await client(H0);
  const op = await client('alice', 'operator');
  for (const [c, m, p, b] of [
    [host, 'POST', '/v1/agent/checkin', checkin(H0)],
    [host, 'GET', '/v1/artifact', undefined],
    [op, 'GET', '/v1/hosts', undefined],
    [op, 'POST', '/v1/channels/stable/pause', undefined],
    [host, 'GET', '/v1/no-such-route', undefined],
  ] as const) {
    const r = await c.call(m, p, b);
    assert.is(r.status, 503, `${m} ${p}`);
    assert.is(r.headers['retry-after'], '5');
    assert.is(code(r.body), 'NOT_READY');
    assert.is(r.headers['x-nixfleet-protocol'], '1');
  }
  assert.is((await host.call('GET', '/healthz')).status, 200);
  const ready = await host.call('GET', '/readyz');
  assert.is(ready.status, 503);
  assert.match(JSON.stringify(ready.body), /no verified fleet artefact/);
});

t('after publishing fleet and revocations the CP becomes ready', async () => {
  env.publish(fleet);
  await cp.cp.pollNow();
  // Revocations are configured: still not ready.
  assert.is((await (await client(H0)).call('GET', '/v1/artifact')).status, 503);
  const revokedAt = new Date(Date.now() - 30 * 60_000);
  env.publish(sampleRevocations([{ hostname: 'host-0003', notBefore: stamp(revokedAt.getTime()), reason: 'key leaked', revokedBy: 'ops' }]));
  await cp.cp.pollNow();
  const r = await (await client(H0)).call('GET', '/readyz');
  assert.is(r.status, 200, JSON.stringify(r.body));
});

t('the idle keep-alive of agent connections is the configured keepAliveSecs', async () => {
  assert.is(cp.server.server.keepAliveTimeout, 7000);
});

t('no client certificate, or one from another CA: the TLS handshake fails', async () => {
  const none = await client(null);
  await handshakeFails(none);
  const other = await createFleetCa({ commonName: 'other CA' });
  const foreign = new Client(cp.url, env.ca.certPem, await mintHostCert(other, H0));
  clients.push(foreign);
  await handshakeFails(foreign);
});

t('a host certificate for host-0000 cannot check in, confirm or report as host-0001 (403)', async () => {
  const c = await client(H0);
  const ok = await c.call('POST', '/v1/agent/checkin', checkin(H0));
  assert.is(ok.status, 200, JSON.stringify(ok.body));
  const r1 = await c.call('POST', '/v1/agent/checkin', checkin(H1));
  assert.is(r1.status, 403);
  assert.is(code(r1.body), 'IDENTITY_MISMATCH');
  const closure = fleet.hosts[H1]!.closureHash!;
  const r2 = await c.call('POST', '/v1/agent/confirm', { hostname: H1, rolloutId: 'stable@x', closureHash: closure, bootId: 'b' });
  assert.is(r2.status, 403);
  const r3 = await c.call('POST', '/v1/agent/report', {
    report: { hostname: H1, event: 'activation-failed', rolloutId: null, closureHash: null, at: new Date().toISOString(), message: '' },
    signature: null,
  });
  assert.is(r3.status, 403);
  assert.is(code(r3.body), 'IDENTITY_MISMATCH');
  // Nothing of host-0001 was recorded.
  assert.is((await cp.store.getHost(H1)), null);
});

t('a host certificate cannot call operator routes (403); an operator cannot check in (403)', async () => {
  const host = await client(H0);
  for (const [m, p] of [
    ['GET', '/v1/hosts'],
    ['GET', '/v1/rollouts'],
    ['GET', '/v1/audit'],
    ['GET', '/v1/quarantines'],
    ['POST', '/v1/channels/stable/pause'],
    ['POST', '/v1/quarantines/clear'],
  ] as const) {
    const r = await host.call(m, p, m === 'POST' ? { channel: 'stable' } : undefined);
    assert.is(r.status, 403, `${m} ${p}`);
    assert.is(code(r.body), 'FORBIDDEN_ROLE');
  }
  assert.is((await cp.store.getPause('stable')), null);
  const op = await client('alice', 'operator');
  const r = await op.call('POST', '/v1/agent/checkin', checkin('alice'));
  assert.is(r.status, 403);
  assert.is((await op.call('GET', '/v1/hosts')).status, 200);
  // Both roles may read the signed artefact.
  assert.is((await op.call('GET', '/v1/artifact')).status, 200);
});

t('a certificate issued before its revocation notBefore gets 401 on every /v1 route; a newer one works', async () => {
  const old = new Client(cp.url, env.ca.certPem, await env.hostCert('host-0003', { notBefore: new Date(Date.now() - 60 * 60_000) }));
  clients.push(old);
  for (const [m, p, b] of [
    ['POST', '/v1/agent/checkin', checkin('host-0003')],
    ['POST', '/v1/agent/confirm', { hostname: 'host-0003', rolloutId: 'x', closureHash: fleet.hosts['host-0003']!.closureHash, bootId: 'b' }],
    ['POST', '/v1/agent/report', {}],
    ['GET', '/v1/artifact', undefined],
    ['GET', '/v1/artifact.sig', undefined],
    ['GET', '/v1/hosts', undefined],
    ['GET', '/v1/whoami', undefined],
  ] as const) {
    const r = await old.call(m, p, b);
    assert.is(r.status, 401, `${m} ${p}`);
    assert.is(code(r.body), 'CERT_REVOKED');
  }
  assert.is((await cp.store.getHost('host-0003')), null);
  for (const p of ['/readyz', '/metrics']) assert.is((await old.call('GET', p)).status, 401, p);
  assert.is((await old.call('GET', '/healthz')).status, 200, 'liveness stays open');
  const fresh = new Client(cp.url, env.ca.certPem, await env.hostCert('host-0003'));
  clients.push(fresh);
  assert.is((await fresh.call('POST', '/v1/agent/checkin', checkin('host-0003'))).status, 200);
  // whoami: the newer certificate, and the revocation that names it.
  const w = await fresh.call('GET', '/v1/whoami');
  assert.is(w.status, 200);
  const body = w.body as WhoamiResponse;
  const mine = new X509Certificate((await env.hostCert('host-0003')).certPem);
  assert.equal({ name: body.name, role: body.role, serial: body.serial, notAfter: body.notAfter, issuer: body.issuer.commonName }, { name: 'host-0003', role: 'host', serial: mine.serialNumber.toUpperCase(), notAfter: new Date(mine.validTo).toISOString(), issuer: 'test fleet CA' });
  assert.is(body.issuer.fingerprint256, new X509Certificate(env.ca.certPem).fingerprint256);
  assert.is(body.certState, 'valid');
  assert.ok(body.revokedBefore !== null && Date.parse(body.revokedBefore) > Date.now() - 60 * 60_000, 'the revocation notBefore');
});

t('whoami: an operator sees its own name, role and issuer; nobody else is named', async () => {
  const op = await client('alice', 'operator');
  const r = await op.call('GET', '/v1/whoami');
  assert.is(r.status, 200);
  const w = r.body as WhoamiResponse;
  assert.equal([w.name, w.role, w.revokedBefore, w.issuer.commonName], ['alice', 'operator', null, 'test fleet CA']);
  assert.is(w.serial, new X509Certificate((await env.operatorCert('alice')).certPem).serialNumber.toUpperCase());
  const h = await (await client(H1)).call('GET', '/v1/whoami');
  assert.equal([(h.body as WhoamiResponse).name, (h.body as WhoamiResponse).role], [H1, 'host']);
});

t('protocol header: missing or 1.x accepted, another major refused with a clear body', async () => {
  const c = await client(H0);
  assert.is((await c.call('GET', '/v1/artifact', undefined, { 'X-Nixfleet-Protocol': '1.3' })).status, 200);
  const r = await c.call('GET', '/v1/artifact', undefined, { 'X-Nixfleet-Protocol': '2' });
  assert.is(r.status, 400);
  assert.is(code(r.body), 'UNSUPPORTED_PROTOCOL');
  assert.match((r.body as ErrorBody).error.message, /speaks protocol 1/);
});

t('artifact and signature are the exact signed bytes with ETag; If-None-Match gives 304', async () => {
  const signed = env.publish(fleet);
  env.clock.advance(1000);
  await cp.cp.pollNow();
  const c = await client(H0);
  const a = await c.call('GET', '/v1/artifact');
  assert.is(a.status, 200);
  assert.equal(new Uint8Array(a.raw), signed.bytes);
  assert.is(a.headers['etag'], `"${signed.sha256}"`);
  const s = await c.call('GET', '/v1/artifact.sig');
  assert.equal(new Uint8Array(s.raw), signed.signature);
  const again = await c.call('GET', '/v1/artifact', undefined, { 'if-none-match': `"${signed.sha256}"` });
  assert.is(again.status, 304);
  // gzip only on request; the decoded bytes are the signed bytes.
  assert.is(a.headers['content-encoding'], undefined);
  const gz = await c.call('GET', '/v1/artifact', undefined, { 'accept-encoding': 'gzip' });
  assert.is(gz.status, 200);
  assert.is(gz.headers['content-encoding'], 'gzip');
  assert.ok(gz.raw.length < signed.bytes.length);
  assert.equal(new Uint8Array(gunzipSync(gz.raw)), signed.bytes);
  assert.is((await c.call('GET', '/v1/artifact', undefined, { 'accept-encoding': 'gzip', 'if-none-match': String(gz.headers['etag']) })).status, 304);
  const rev = await c.call('GET', '/v1/revocations');
  assert.is(rev.status, 200);
});

t.run();
