/**
 * Issue 17: an agent configured with several control plane URLs fails over when the current one is
 * unreachable or cannot serve (502/503/504), stays with the one that answers, and does not retry a
 * failed one before its backoff ran out. First with scripted replicas (deterministic clock), then
 * against two REAL control planes (HTTPS + mTLS) of which one is stopped.
 */
import { join } from 'node:path';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import type { CheckinRequest, CheckinResponse } from '../protocol/api.ts';
import { err, ok, type Result } from '../protocol/result.ts';
import { fakeClosure } from '../fixtures/artifacts.ts';
import { makeEnv, startCp, testBackend } from '../fixtures/cp-testing.ts';
import { resolveFleet } from '../release/resolve.ts';
import { CpClient, type HttpError } from './client.ts';
import { resolveConfig } from './config.ts';
import { FailoverClient, type Replica } from './failover.ts';
import type { CpApi } from './loop.ts';

const test = suite('agent failover between control planes');

type Answer = 'ok' | 'down' | 503 | 409;
const ANSWER: CheckinResponse = { target: null, nextCheckinSecs: 60, serverTime: '2026-01-01T00:00:00.000Z' };

/** A scripted replica: answers what `state` says now, and counts its calls. */
function scripted(url: string): Replica & { state: Answer; calls: number } {
  const r = {
    url,
    state: 'ok' as Answer,
    calls: 0,
    client: {} as CpApi,
  };
  const answer = async <T>(value: T): Promise<Result<T, HttpError>> => {
    r.calls++;
    if (r.state === 'ok') return ok(value);
    if (r.state === 'down') return err({ code: 'NETWORK', message: `${url}: ECONNREFUSED` });
    return err({ code: 'HTTP_STATUS', message: `${url}: HTTP ${r.state}`, status: r.state });
  };
  r.client = {
    checkin: () => answer(ANSWER),
    fetchArtifact: () => answer({ bytes: new Uint8Array(), signature: new Uint8Array() }),
    report: () => answer(undefined),
    async confirm() {
      const a = await answer(undefined);
      if (a.ok) return { result: 'ok', message: 'HTTP 204' };
      return a.error.status === 409 ? { result: 'error', message: 'HTTP 409' } : { result: 'error', message: a.error.message };
    },
  };
  return r;
}

const body: CheckinRequest = { hostname: 'web-01', currentClosure: null, bootId: 'b', probes: [], failedUnits: [], lastOutcome: null };

function setup() {
  const clock = { ms: 1_000_000 };
  const a = scripted('https://a');
  const b = scripted('https://b');
  const c = scripted('https://c');
  const logs: string[] = [];
  const f = new FailoverClient([a, b, c], { now: () => clock.ms, log: (m) => logs.push(m), backoffMinMs: 1000, backoffMaxMs: 8000 });
  return { clock, a, b, c, f, logs };
}

test('the current replica down: the same call goes to the next, which becomes current (sticky)', async () => {
  const { a, b, c, f } = setup();
  assert.ok((await f.checkin(body)).ok);
  assert.equal([a.calls, b.calls, c.calls], [1, 0, 0], 'the first URL while it answers');
  a.state = 'down';
  assert.ok((await f.checkin(body)).ok, 'answered by b');
  assert.is(f.currentUrl, 'https://b');
  a.state = 'ok'; // a is back, but b answers: stay with b
  for (let i = 0; i < 3; i++) assert.ok((await f.checkin(body)).ok);
  assert.equal([a.calls, b.calls, c.calls], [2, 4, 0]);
});

test('503 (cannot serve) fails over; an answer (409) is never retried elsewhere', async () => {
  const { a, b, f } = setup();
  a.state = 503;
  assert.ok((await f.checkin(body)).ok);
  assert.is(f.currentUrl, 'https://b');
  b.state = 409;
  const r = await f.checkin(body);
  assert.ok(!r.ok && r.error.status === 409, 'the 409 is the answer');
  assert.equal([a.calls, b.calls], [1, 2], 'a not asked again for it');
  assert.is(f.currentUrl, 'https://b');
});

test('a failed replica is not tried again before its backoff ran out; the backoff doubles per failure', async () => {
  const { clock, a, b, c, f } = setup();
  a.state = 'down';
  await f.checkin(body); // a fails (backoff 1 s), b answers
  b.state = 'down';
  c.state = 'down';
  let r = await f.checkin(body); // b fails; a is in its backoff; c fails
  assert.ok(!r.ok && r.error.code === 'NETWORK', 'everything down: the current one\'s error');
  assert.equal([a.calls, b.calls, c.calls], [1, 2, 1]);
  clock.ms += 999;
  await f.checkin(body);
  assert.equal([a.calls, b.calls, c.calls], [1, 3, 1], 'only the current one within the others\' backoff');
  clock.ms += 1;
  await f.checkin(body); // a's 1 s ran out; c's (1 s after its 1st failure) too
  assert.equal([a.calls, b.calls, c.calls], [2, 4, 2]);
  clock.ms += 1999;
  await f.checkin(body);
  assert.equal([a.calls, b.calls, c.calls], [2, 5, 2], 'a and c now wait 2 s');
  a.state = 'ok';
  clock.ms += 1;
  assert.ok((await f.checkin(body)).ok);
  assert.is(f.currentUrl, 'https://a', 'back to the first that answers');
});

test('a confirm that fails on one replica goes to another (any replica may take it)', async () => {
  const { a, b, f } = setup();
  a.state = 'down';
  assert.is((await f.confirm({} as never)).result, 'ok');
  assert.equal([a.calls, b.calls], [1, 1]);
});

test('config: cpUrls are further replicas, each https:// (plain http only with allowPlainHttp)', () => {
  const base = { cpUrl: 'https://cp1.example:8443/', tls: { certFile: '/c', keyFile: '/k', caFile: '/ca' } };
  const host = { hostname: 'web-01', platform: 'nixos' as const };
  const good = resolveConfig({ ...base, cpUrls: ['https://cp2.example:8443/'] }, host);
  assert.ok(good.ok);
  if (good.ok) assert.equal([good.value.cpUrl, ...good.value.cpUrls], ['https://cp1.example:8443', 'https://cp2.example:8443']);
  const none = resolveConfig(base, host);
  assert.ok(none.ok && none.value.cpUrls.length === 0, 'default: none');
  const bad = resolveConfig({ ...base, cpUrls: ['http://cp2.example'] }, host);
  assert.ok(!bad.ok && bad.error.issues.some((i) => i.path === '$.cpUrls[0]'), 'plain http refused');
});

test('two REAL control planes, the first stopped: check-ins and the artefact come from the second, which stays current', async () => {
  const env = await makeEnv('nixfleet-agent-failover-');
  const r = resolveFleet({
    hosts: { 'web-01': { system: 'x86_64-linux', channel: 'stable', tags: [], closureHash: fakeClosure('web-01') } },
    channels: { stable: { rolloutPolicy: 'all' } },
    rolloutPolicies: { all: { strategy: 'all-at-once', waves: [{ selector: { all: true } }] } },
  });
  if (!r.ok) throw new Error(r.error.message);
  env.publish(r.value.fleet);
  const cp1 = await startCp(env);
  // On PostgreSQL two replicas of one database; on SQLite two control planes on their own files.
  const cp2 = await startCp(env, testBackend === 'postgres' ? {} : { dbPath: join(env.dir, 'cp2.sqlite') });
  const host = await env.hostCert('web-01');
  const tls = { ca: env.ca.certPem, cert: host.certPem, key: host.keyPem };
  const mk = (url: string): Replica & { calls: number } => {
    const real = new CpClient({ cpUrl: url, tls, requestTimeoutSecs: 10, maxArtifactBytes: 1 << 20 });
    const counted = { url, calls: 0, client: real as CpApi, real };
    counted.client = {
      checkin: (b) => (counted.calls++, real.checkin(b)),
      fetchArtifact: () => (counted.calls++, real.fetchArtifact()),
      report: (b) => (counted.calls++, real.report(b)),
      confirm: (b) => (counted.calls++, real.confirm(b)),
    };
    return counted;
  };
  const r1 = mk(cp1.url);
  const r2 = mk(cp2.url);
  const f = new FailoverClient([r1, r2], { now: Date.now, log: () => {} });
  let cp1Running = true;
  try {
    assert.ok((await f.checkin({ ...body, currentClosure: fakeClosure('web-01') })).ok);
    assert.equal([r1.calls, r2.calls], [1, 0]);
    await cp1.stop();
    cp1Running = false;
    const c = await f.checkin({ ...body, currentClosure: fakeClosure('web-01') });
    assert.ok(c.ok, 'answered by the second control plane');
    assert.is(f.currentUrl, cp2.url);
    assert.ok((await f.fetchArtifact()).ok, 'the signed artefact from the second');
    assert.ok((await f.checkin({ ...body, currentClosure: fakeClosure('web-01') })).ok);
    assert.equal([r1.calls, r2.calls], [2, 3], 'the stopped one was tried once, then left alone');
  } finally {
    for (const x of [r1, r2]) await (x as unknown as { real: CpClient }).real.close();
    if (cp1Running) await cp1.stop();
    await cp2.stop();
    env.cleanup();
  }
});

test.run();
