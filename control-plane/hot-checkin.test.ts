/**
 * The check-in route below Hono (hot-checkin.ts) answers as Hono's route does. One control plane,
 * two mTLS listeners on the same app: one tries the route below Hono first (as production does),
 * the other is Hono alone. Each case goes to both; status, body, the headers that matter, the log
 * lines and the request metric must be the same — refusals, bad bodies and good check-ins alike.
 */
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { sampleFleet, sampleRevocations } from '../fixtures/artifacts.ts';
import { Client, makeEnv, stamp, startCp, type Env, type Reply, type RunningCp } from '../fixtures/cp-testing.ts';
import { lineLogger } from '../fixtures/logs.ts';
import type { CheckinRequest } from '../protocol/api.ts';
import { createApp, type CpService } from './app.ts';
import { loadStartupMaterial } from './config.ts';
import { listenHttps, type ListeningServer } from './server.ts';

const t = suite('check-in below Hono');
const H0 = 'host-0000';
const checkin = (hostname: string, over: Partial<CheckinRequest> = {}): CheckinRequest => ({ hostname, currentClosure: null, bootId: 'boot-1', probes: [{ name: 'http', ok: true, observedAt: '2026-01-01T00:00:00Z' }], failedUnits: [], lastOutcome: null, ...over });

let env: Env;
let cp: RunningCp;
const servers: ListeningServer[] = [];
const clients: Client[] = [];
/** What each listener's requests logged and counted, in order. */
const seen: string[] = [];
let hot = '';
/** Requests the route below Hono took. */
let taken = 0;
let hono = '';

const client = async (url: string, who: { host?: string; operator?: string; revokedHost?: string }): Promise<Client> => {
  const cert =
    who.operator !== undefined
      ? await env.operatorCert(who.operator)
      : who.revokedHost !== undefined
        ? await env.hostCert(who.revokedHost, { notBefore: new Date(Date.now() - 60 * 60_000) })
        : await env.hostCert(who.host!);
  const c = new Client(url, env.ca.certPem, cert);
  clients.push(c);
  return c;
};

t.before(async () => {
  env = await makeEnv();
  const fleet = sampleFleet({ hosts: 4, closures: true });
  env.publish(fleet);
  env.publish(sampleRevocations([{ hostname: 'host-0003', notBefore: stamp(Date.now() - 30 * 60_000), reason: 'key leaked', revokedBy: 'ops' }]));
  cp = await startCp(env, { revocations: true, maxBodyBytes: 4096 });
  const material = loadStartupMaterial(cp.config);
  if (!material.ok) throw new Error(material.error.message);
  const observeRequest = (route: string, status: number): void => void seen.push(`metric ${route} ${status}`);
  // The route counts its 200s through the kept tally: recorded alike, so both servers' counts compare.
  const service: CpService = { ...cp.cp.api, observeRequest, requestTally: (route, status) => ({ inc: () => observeRequest(route, status) }) };
  const log = lineLogger((l) => seen.push(l.replace(/"ms":[0-9.]+/, '"ms":0').replace(/"remote":"[^"]*"/, '"remote":"-"')));
  const app = createApp({ service, maxBodyBytes: 4096, retryAfterSecs: 3, pins: material.value.pins, log });
  const a = await listenHttps({ fetch: app.fetch, nodeRoute: (q, r) => app.nodeRoute(q, r) && ++taken > 0 }, material.value.tls, '127.0.0.1', 0);
  const b = await listenHttps({ fetch: app.fetch }, material.value.tls, '127.0.0.1', 0);
  servers.push(a, b);
  hot = `https://localhost:${a.port}`;
  hono = `https://localhost:${b.port}`;
});

t.after(async () => {
  for (const c of clients) await c.close();
  for (const s of servers) await s.close();
  await cp.stop();
  env.cleanup();
});

/** The parts of a reply both routes must agree on (`serverTime` is the clock's, the same). */
const shape = (r: Reply): unknown => ({
  status: r.status,
  body: r.body ?? r.raw.toString('utf8'),
  contentType: r.headers['content-type'],
  protocol: r.headers['x-nixfleet-protocol'],
  retryAfter: r.headers['retry-after'],
});

async function same(label: string, who: Parameters<typeof client>[1], call: (c: Client) => Promise<Reply>, below: boolean): Promise<Reply> {
  const [ch, cb] = [await client(hot, who), await client(hono, who)];
  seen.length = 0;
  const before = taken;
  const rh = await call(ch);
  assert.is(taken - before, below ? 1 : 0, `${label}: ${below ? 'served below Hono' : 'handed to Hono'}`);
  const logHot = seen.splice(0);
  const rb = await call(cb);
  const logHono = seen.splice(0);
  assert.equal(shape(rh), shape(rb), `${label}: the same answer`);
  assert.equal(logHot, logHono, `${label}: the same log lines and metric`);
  return rh;
}

/** A body of unknown length (sent chunked): a new one per request. */
async function* chunked(text: string): AsyncGenerator<Buffer> {
  yield Buffer.from(text);
}

const post = (body: unknown, headers: Record<string, string> = {}, path = '/v1/agent/checkin') => (c: Client) => c.call('POST', path, body, headers);

t('good check-ins: first contact, then steady ones, answered the same', async () => {
  const first = await same('first contact', { host: H0 }, post(checkin(H0)), true);
  assert.is(first.status, 200, JSON.stringify(first.body));
  for (let i = 0; i < 3; i++) assert.is((await same(`steady ${i}`, { host: H0 }, post(checkin(H0)), true)).status, 200);
  // A body the one-pass decoder leaves to the strict parser (protocol/decode.ts): an escape and a member it does not know.
  const escaped = JSON.stringify({ ...checkin(H0), newerAgentField: [1] }).replace('"bootId"', '"boot\\u0049d"');
  assert.is((await same('an escaped member name and an unknown member', { host: H0 }, post(escaped), true)).status, 200);
  // Header names in any case are the same headers (Node lower-cases them in req.headers).
  assert.is((await same('header names in upper and mixed case', { host: H0 }, post(checkin(H0), { 'CONTENT-TYPE': 'application/json', 'X-NixFleet-Protocol': '1' }), true)).status, 200);
});

t('refusals before the body (handed to Hono by the route below it) and after it: the same answers, logs and metrics', async () => {
  const cases: [string, Parameters<typeof client>[1], (c: Client) => Promise<Reply>, string, boolean][] = [
    ['another protocol major', { host: H0 }, post(checkin(H0), { 'x-nixfleet-protocol': '2' }), 'UNSUPPORTED_PROTOCOL', false],
    // Given twice, a header the route reads goes to Hono, which sees them joined ("1, 1").
    ['the protocol header twice', { host: H0 }, post(checkin(H0), { 'x-nixfleet-protocol': ['1', '1'] } as unknown as Record<string, string>), 'UNSUPPORTED_PROTOCOL', false],
    ['an operator certificate', { operator: 'alice' }, post(checkin(H0)), 'FORBIDDEN_ROLE', false],
    ['a revoked certificate', { revokedHost: 'host-0003' }, post(checkin('host-0003')), 'CERT_REVOKED', false],
    ['a body over the limit', { host: H0 }, post(JSON.stringify({ ...checkin(H0), bootId: 'x'.repeat(5000) })), 'BODY_TOO_LARGE', false],
    ['no JSON content type', { host: H0 }, post(JSON.stringify(checkin(H0)), { 'content-type': 'text/plain' }), 'UNSUPPORTED_MEDIA_TYPE', true],
    ['an empty body', { host: H0 }, post(''), 'MALFORMED_JSON', true],
    ['not JSON', { host: H0 }, post('{"hostname":'), 'MALFORMED_JSON', true],
    ['a duplicate key', { host: H0 }, post('{"hostname":"host-0000","hostname":"host-0000"}'), 'MALFORMED_JSON', true],
    ['missing and wrong fields', { host: H0 }, post({ hostname: H0, bootId: 7 }), 'INVALID_BODY', true],
    ['another host in the body', { host: H0 }, post(checkin('host-0001')), 'IDENTITY_MISMATCH', true],
    ['a host not in the signed fleet', { host: 'host-9999' }, post(checkin('host-9999')), 'UNKNOWN_HOST', true],
    ['a query string', { host: H0 }, post({ hostname: 1 }, {}, '/v1/agent/checkin?x=1'), 'INVALID_BODY', false],
    ['a chunked body', { host: H0 }, (c) => c.call('POST', '/v1/agent/checkin', chunked(JSON.stringify({ hostname: 1 }))), 'INVALID_BODY', false],
  ];
  for (const [label, who, call, code, below] of cases) {
    const r = await same(label, who, call, below);
    assert.is((r.body as { error?: { code?: string } } | null)?.error?.code, code, `${label}: ${r.status} ${r.raw.toString('utf8')}`);
  }
});

t.run();
