/**
 * Every body is validated (SPEC §5): malformed JSON, wrong types, oversize bodies, unknown hosts —
 * each answers 4xx with a JSON error code, never 500, and changes nothing. Run over the real mTLS
 * server, plus `app.request()` tests of the Hono app with a fake TLS socket.
 */
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { sampleFleet } from '../fixtures/artifacts.ts';
import type { ErrorBody, ErrorCode } from './api.ts';
import { createApp, type CpService } from '../control-plane/app.ts';
import { STATUS } from '../control-plane/errors.ts';
import { Client, makeEnv, startCp, type Env, type RunningCp } from '../fixtures/cp-testing.ts';

const env: Env = await makeEnv();
const fleet = sampleFleet({ hosts: 2, waves: 1, closures: true });
let cp: RunningCp;
let host: Client;
let operator: Client;

const t = suite('validation');

t.before(async () => {
  env.publish(fleet);
  cp = await startCp(env, { maxBodyBytes: 2048 });
  host = new Client(cp.url, env.ca.certPem, await env.hostCert('host-0000'));
  operator = new Client(cp.url, env.ca.certPem, await env.operatorCert('alice'));
});

t.after(async () => {
  await host.close();
  await operator.close();
  await cp.stop();
  env.cleanup();
});

/** What a bad request may not change: hosts, reports, pauses, quarantines, audit. */
async function snapshot(): Promise<string> {
  return JSON.stringify({
    hosts: (await cp.store.allHosts()),
    reports: (await cp.store.reportCount()),
    pauses: (await cp.store.getPause('stable')),
    quarantines: (await cp.store.quarantines()),
    audit: (await cp.store.auditAll()).length,
  });
}

const good = { hostname: 'host-0000', currentClosure: null, bootId: 'b', probes: [], failedUnits: [], lastOutcome: null };

const cases: [string, 'host' | 'op', string, string, unknown, Record<string, string>, ErrorCode][] = [
  ['malformed JSON', 'host', 'POST', '/v1/agent/checkin', '{"hostname": "host-0000",', {}, 'MALFORMED_JSON'],
  ['duplicate keys', 'host', 'POST', '/v1/agent/checkin', '{"hostname": "host-0000", "hostname": "host-0000"}', {}, 'MALFORMED_JSON'],
  ['empty body', 'host', 'POST', '/v1/agent/checkin', '', {}, 'MALFORMED_JSON'],
  ['not JSON content type', 'host', 'POST', '/v1/agent/checkin', JSON.stringify(good), { 'content-type': 'text/plain' }, 'UNSUPPORTED_MEDIA_TYPE'],
  ['array body', 'host', 'POST', '/v1/agent/checkin', [], {}, 'INVALID_BODY'],
  ['wrong types', 'host', 'POST', '/v1/agent/checkin', { ...good, probes: 'all fine', failedUnits: [1], bootId: 7 }, {}, 'INVALID_BODY'],
  ['bad closure', 'host', 'POST', '/v1/agent/checkin', { ...good, currentClosure: '../../etc/passwd' }, {}, 'INVALID_BODY'],
  ['missing fields', 'host', 'POST', '/v1/agent/confirm', { hostname: 'host-0000' }, {}, 'INVALID_BODY'],
  ['bad report event', 'host', 'POST', '/v1/agent/report', { report: { ...good, event: 'took-over', rolloutId: null, closureHash: null, at: 'x', message: '' }, signature: null }, {}, 'INVALID_BODY'],
  ['oversize body', 'host', 'POST', '/v1/agent/checkin', { ...good, bootId: 'x'.repeat(4096) }, {}, 'BODY_TOO_LARGE'],
  ['oversize chunked body (no Content-Length)', 'host', 'POST', '/v1/agent/checkin', 'CHUNKED', {}, 'BODY_TOO_LARGE'],
  ['unknown host', 'host', 'POST', '/v1/agent/checkin', { ...good, hostname: 'host-0000' }, {}, 'UNKNOWN_HOST'],
  ['pause with wrong body', 'op', 'POST', '/v1/channels/stable/pause', { reason: 42 }, {}, 'INVALID_BODY'],
  ['pause unknown channel', 'op', 'POST', '/v1/channels/nope/pause', {}, {}, 'UNKNOWN_CHANNEL'],
  ['clear quarantine without channel', 'op', 'POST', '/v1/quarantines/clear', {}, {}, 'INVALID_BODY'],
  ['audit with bad query', 'op', 'GET', '/v1/audit?limit=-1', undefined, {}, 'INVALID_QUERY'],
  ['rollouts with bad state', 'op', 'GET', '/v1/rollouts?state=Exploded', undefined, {}, 'INVALID_QUERY'],
  ['unknown rollout', 'op', 'GET', '/v1/rollouts/stable%40nope', undefined, {}, 'UNKNOWN_ROLLOUT'],
  ['unknown route', 'op', 'GET', '/v1/nothing-here', undefined, {}, 'NOT_FOUND'],
];

for (const [name, who, method, path, body, headers, want] of cases) {
  t(`${name} → ${STATUS[want]} ${want}, nothing changes`, async () => {
    let client = who === 'op' ? operator : host;
    let stray: Client | null = null;
    if (name === 'unknown host') {
      // A certificate from the fleet CA for a host the signed fleet does not list.
      stray = new Client(cp.url, env.ca.certPem, await env.hostCert('intruder'));
      client = stray;
      (body as { hostname: string }).hostname = 'intruder';
    }
    const before = (await snapshot());
    const payload =
      body === 'CHUNKED'
        ? (async function* () {
            for (let i = 0; i < 8; i++) yield new TextEncoder().encode(i === 0 ? '{"hostname": "host-0000", "x": "' : 'y'.repeat(1024));
          })()
        : body;
    const r = await client.call(method, path, payload, headers);
    assert.is(r.status, STATUS[want], JSON.stringify(r.body));
    assert.is((r.body as ErrorBody).error.code, want);
    assert.type((r.body as ErrorBody).error.message, 'string');
    assert.is((await snapshot()), before);
    if (stray !== null) await stray.close();
  });
}

t('INVALID_BODY lists every bad field path', async () => {
  const r = await host.call('POST', '/v1/agent/checkin', { hostname: 'host-0000', currentClosure: 5, bootId: '', probes: [{ name: 'x' }], failedUnits: 'no', lastOutcome: {} });
  const issues = (r.body as ErrorBody).error.issues!.map((i) => i.path);
  for (const p of ['$.currentClosure', '$.bootId', '$.probes[0].ok', '$.probes[0].observedAt', '$.failedUnits', '$.lastOutcome.rolloutId', '$.lastOutcome.outcome']) {
    assert.ok(issues.includes(p), `${p} in ${issues.join(', ')}`);
  }
});

// ---------------------------------------------------------------------------------------------
// app.request(): the Hono app alone, with a fake TLS socket carrying the peer certificate.

function fakeSocket(cn: string, ou: string, notBefore = 'Jan  1 00:00:00 2026 GMT', authorized = true) {
  return { incoming: { socket: { authorized, getPeerCertificate: () => ({ subject: { CN: cn, OU: ou }, serialNumber: 'ab', valid_from: notBefore, valid_to: 'Jan  1 00:00:00 2036 GMT' }) } } };
}

function stubService(over: Partial<CpService> = {}): CpService {
  const fail = () => {
    throw new Error('not expected in this test');
  };
  return {
    readiness: () => ({ ready: true, reasons: [], fleet: null, revocations: null }),
    isRevoked: () => false,
    artifact: () => null,
    slice: () => null,
    checkin: fail,
    confirm: fail,
    report: fail,
    hosts: () => ({ hosts: [] }),
    whoami: fail,
    compliance: fail,
    certificates: fail,
    evidence: fail,
    witnesses: fail,
    checkpoint: fail,
    rollouts: fail,
    rollout: fail,
    trace: fail,
    audit: fail,
    pause: fail,
    resume: fail,
    skip: fail,
    approve: fail,
    quarantines: fail,
    clearQuarantines: fail,
    metricsText: async () => ({ contentType: 'text/plain', body: '' }),
    ...over,
  };
}

t('app.request: no peer certificate → 401; OU other than host/operator → 403; a bug → 500 INTERNAL without details', async () => {
  const app = createApp({ service: stubService({ hosts: () => { throw new TypeError('secret detail'); } }), maxBodyBytes: 1024, retryAfterSecs: 3, logError: () => {} });
  const none = await app.request('/v1/hosts', {}, {});
  assert.is(none.status, 401);
  assert.is(((await none.json()) as ErrorBody).error.code, 'UNAUTHENTICATED');
  const unauth = await app.request('/v1/hosts', {}, fakeSocket('alice', 'operator', 'Jan  1 00:00:00 2026 GMT', false));
  assert.is(unauth.status, 401);
  const weird = await app.request('/v1/hosts', {}, fakeSocket('alice', 'admin'));
  assert.is(weird.status, 403);
  const bug = await app.request('/v1/hosts', {}, fakeSocket('alice', 'operator'));
  assert.is(bug.status, 500);
  const text = await bug.text();
  assert.not.match(text, /secret detail/);
  assert.is((JSON.parse(text) as ErrorBody).error.code, 'INTERNAL');
});

t('app.request: the service sees the validated body and the peer from the certificate', async () => {
  let seen: unknown = null;
  const app = createApp({
    service: stubService({
      checkin: async (peer, req) => {
        seen = { peer: peer.cn, role: peer.role, hostname: req.hostname, extra: (req as Record<string, unknown>)['extra'] };
        return { target: null, nextCheckinSecs: 60, serverTime: 'x' };
      },
    }),
    maxBodyBytes: 1024,
    retryAfterSecs: 3,
  });
  const r = await app.request('/v1/agent/checkin', { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ ...good, extra: 'dropped' }) }, fakeSocket('host-0000', 'host'));
  assert.is(r.status, 200);
  assert.equal(seen, { peer: 'host-0000', role: 'host', hostname: 'host-0000', extra: undefined });
});

t('app.request: readiness gate answers 503 with Retry-After from the config', async () => {
  const app = createApp({ service: stubService({ readiness: () => ({ ready: false, reasons: ['no fleet'], fleet: null, revocations: null }) }), maxBodyBytes: 1024, retryAfterSecs: 7 });
  const r = await app.request('/v1/hosts', {}, fakeSocket('alice', 'operator'));
  assert.is(r.status, 503);
  assert.is(r.headers.get('retry-after'), '7');
  assert.is((await app.request('/healthz')).status, 200);
});

t.run();
