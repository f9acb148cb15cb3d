/**
 * The dashboard without a browser (app.request): pages from CP answers, 404 pages for unknown ids,
 * read-only (every CP call a page tour makes is a GET; a POST to the dashboard is 405), the Host
 * check, the listen rules, and the audit chain check (an edited entry is caught). The browser test
 * against a real CP is e2e/dashboard.test.ts.
 */
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import type { AuditEntry, HostView, RolloutDetail } from '../../protocol/api.ts';
import { auditEntryHash, GENESIS_HASH } from '../../protocol/audit-chain.ts';
import type { ComplianceResponse } from '../../protocol/compliance-api.ts';
import { err, ok } from '../../protocol/result.ts';
import { runCli } from '../../fixtures/cli-testing.ts';
import type { AnswerParser } from '../client.ts';
import { createDashboardApp } from './app.tsx';
import { applyEntries, emptyFeed } from './feed.ts';
import { blockedHosts } from './pages-detail.tsx';
import { isLoopback, parseListen } from './server.ts';
import { DashboardSource, type ReadClient } from './source.ts';

const NOW = Date.parse('2026-05-01T12:00:00Z');
const C = (n: string) => `${'a'.repeat(32)}-nixos-system-${n}`;

function host(name: string, over: Partial<HostView> = {}): HostView {
  return {
    hostname: name, channel: 'stable', declaredClosure: C(name), currentClosure: C(name), lastCheckinAt: '2026-05-01T11:59:50Z', bootId: 'b', online: true,
    pendingReboot: false, failedUnits: [], probes: [], lastOutcome: null, rollout: null, dispatch: null, ...over,
  };
}

function chain(specs: { kind: string; subject: string; data: unknown }[]): AuditEntry[] {
  const out: AuditEntry[] = [];
  let prev = GENESIS_HASH;
  specs.forEach((s, i) => {
    const e = { seq: i + 1, at: '2026-05-01T11:00:00Z', kind: s.kind, actor: 'cp', subject: s.subject, data: s.data, prevHash: prev };
    const hash = auditEntryHash(e);
    out.push({ ...e, hash });
    prev = hash;
  });
  return out;
}

const RID = 'stable@abc123';
const detail: RolloutDetail = {
  id: RID, channel: 'stable', state: 'Halted', currentWave: 0, signedAt: '2026-05-01T10:00:00Z', artifactSha256: 'f'.repeat(64), openedAt: '2026-05-01T10:01:00Z',
  updatedAt: '2026-05-01T10:05:00Z', reason: 'wave 0 failed: web1', hostCounts: { Failed: 1, Queued: 1 },
  hosts: [
    { hostname: 'web1', wave: 0, state: 'Failed', since: '2026-05-01T10:04:00Z', closureHash: C('web1'), reason: null },
    { hostname: 'web2', wave: 1, state: 'Queued', since: '2026-05-01T10:01:00Z', closureHash: C('web2'), reason: null },
  ],
};
const compliance: ComplianceResponse = { staleAfterSecs: 3600, controls: [], hosts: [], staticFailures: [] };
const audit = chain([
  { kind: 'artifact.accepted', subject: 'fleet', data: { sha256: 'e'.repeat(64), signedAt: '2026-05-01T10:00:00Z', keyRole: 'current', ciCommit: 'deadbeef' } },
  { kind: 'host.state', subject: RID, data: { host: 'web1', from: 'Queued', to: 'Failed', wave: 0, reason: 'probe http failed' } },
]);

/** A fake CLI client answering GETs from canned CP answers, recording every call. */
function fakeClient(calls: string[], entries: AuditEntry[] = audit): ReadClient {
  const answers: Record<string, unknown> = {
    '/v1/hosts': { hosts: [host('web1', { rollout: { rolloutId: RID, state: 'Failed', since: detail.hosts[0]!.since, wave: 0 } }), host('web2', { online: false })] },
    '/v1/rollouts': { rollouts: [detail] },
    '/v1/quarantines': { quarantines: [] },
    '/v1/compliance': compliance,
    '/v1/certificates': { server: null, ca: null, clients: [{ cn: 'web1', role: 'host', notAfter: '2026-05-10T00:00:00Z' }, { cn: 'web2', role: 'host', notAfter: '2027-05-10T00:00:00Z' }] },
    [`/v1/rollouts/${encodeURIComponent(RID)}`]: detail,
    [`/v1/rollouts/${encodeURIComponent(RID)}/trace`]: { rolloutId: RID, events: [{ at: '2026-05-01T10:04:00Z', subject: 'host', hostname: 'web1', from: 'ConfirmWindow', to: 'Failed', reason: 'probe http failed' }] },
  };
  const client = {
    baseUrl: 'https://cp.test:8443',
    async get<T>(path: string, parse: AnswerParser<T>, query?: Record<string, string | number | undefined>) {
      calls.push(`GET ${path}`);
      const body = path === '/v1/audit' ? { entries: entries.filter((e) => e.seq > Number(query?.['after'] ?? 0)), nextAfter: null } : answers[path];
      if (body === undefined) return err({ code: 'NOT_FOUND' as const, message: 'not found' });
      const r = parse(body);
      return r.ok ? ok(r.value) : err({ code: 'REFUSED' as const, message: r.error.message });
    },
  };
  // Anything but a GET is a defect of the dashboard: the proxy records it so the test fails.
  return new Proxy(client, { get: (t, k) => (k in t ? t[k as keyof typeof t] : (calls.push(`NON-GET ${String(k)}`), undefined)) }) as ReadClient;
}

const appWith = (calls: string[]) => createDashboardApp({ source: new DashboardSource(fakeClient(calls)), now: () => NOW, refreshMs: 2000, allowedHosts: null });

const t = suite('dashboard');

t('the overview lists every host with its status, and the open rollout', async () => {
  const res = await appWith([]).request('/');
  assert.is(res.status, 200);
  const html = await res.text();
  assert.ok(html.startsWith('<!doctype html>'));
  for (const h of ['web1', 'web2']) assert.ok(html.includes(`href="/hosts/${h}"`), h);
  assert.ok(html.includes('data-testid="count-offline">1<'), 'web2 is offline');
  assert.ok(html.includes(RID));
  assert.ok(html.includes('data-testid="count-expiring">1<'), 'web1 certificate ends within 30 days');
});

t('a halted rollout shows waves and each blocked host with gate and reason', async () => {
  const res = await appWith([]).request(`/rollouts/${encodeURIComponent(RID)}`);
  assert.is(res.status, 200);
  const html = await res.text();
  assert.match(html, /data-blocked="web1"[\s\S]*?health[\s\S]*?probe http failed/);
  assert.match(html, /data-blocked="web2"[\s\S]*?halted[\s\S]*?wave 0 failed: web1/);
  assert.match(html, /<progress max="1" value="0"/);
});

t('blockedHosts: a gate block recorded on a queued host names its gate', () => {
  const d: RolloutDetail = { ...detail, state: 'Executing', reason: null, hosts: [{ ...detail.hosts[1]!, reason: "closure x is quarantined on channel 'stable'", gate: 'quarantined' }] };
  assert.equal(blockedHosts(d, []).map((b) => [b.hostname, b.gate, b.reason]), [['web2', 'quarantined', "closure x is quarantined on channel 'stable'"]]);
});

t('the host page shows running vs declared, history from the audit chain; the release page its key slot', async () => {
  const app = appWith([]);
  const html = await (await app.request('/hosts/web1')).text();
  assert.ok(html.includes(C('web1')));
  assert.match(html, /Queued → Failed[\s\S]*probe http failed/);
  const rel = await (await app.request('/release')).text();
  assert.ok(rel.includes('deadbeef') && rel.includes('current') && rel.includes('e'.repeat(64)));
  assert.match(rel, /✓ verified/);
});

t('unknown rollout and host ids, and unknown paths, are a 404 page', async () => {
  const app = appWith([]);
  for (const p of ['/rollouts/nope@1', '/hosts/nope', '/nothing/here']) {
    const res = await app.request(p);
    assert.is(res.status, 404, p);
    assert.match(await res.text(), /<h1>Not found<\/h1>/);
  }
});

t('read-only: a tour of every page makes only GETs to the CP; a POST to the dashboard is 405', async () => {
  const calls: string[] = [];
  const app = appWith(calls);
  for (const p of ['/', '/rollouts', `/rollouts/${encodeURIComponent(RID)}`, '/hosts/web1', '/release', '/hosts/nope']) await app.request(p);
  assert.ok(calls.length > 5);
  assert.equal(calls.filter((c) => !c.startsWith('GET ')), []);
  const post = await app.request('/', { method: 'POST' });
  assert.is(post.status, 405);
});

t('only its own script and style: a strict CSP on every page', async () => {
  const res = await appWith([]).request('/');
  const csp = res.headers.get('content-security-policy') ?? '';
  assert.match(csp, /default-src 'none'/);
  assert.match(csp, /script-src 'self'/);
  assert.not.match(await res.text(), /https?:\/\/(?!cp\.test)/, 'no absolute URL but the CP name in the footer');
});

t('on loopback, a request naming another host (DNS rebinding) is refused', async () => {
  const app = createDashboardApp({ source: new DashboardSource(fakeClient([])), now: () => NOW, refreshMs: 2000, allowedHosts: new Set(['127.0.0.1:8087']) });
  assert.is((await app.request('http://evil.example:8087/')).status, 421);
  assert.is((await app.request('http://127.0.0.1:8087/')).status, 200);
});

t('listen: HOST:PORT, loopback detection', () => {
  assert.equal(parseListen('127.0.0.1:0'), { ok: true, value: { host: '127.0.0.1', port: 0 } });
  assert.equal(parseListen('[::1]:8087'), { ok: true, value: { host: '::1', port: 8087 } });
  for (const bad of ['127.0.0.1', ':80', 'a b:1', '127.0.0.1:99999']) assert.is(parseListen(bad).ok, false, bad);
  for (const h of ['127.0.0.1', '127.1.2.3', '::1', 'localhost']) assert.ok(isLoopback(h), h);
  for (const h of ['0.0.0.0', '10.0.0.1', '::', 'example.org']) assert.not.ok(isLoopback(h), h);
});

t('nixfleet dashboard: a non-loopback --listen is refused without --allow-remote; a bad one is a usage error (exit 2)', async () => {
  const env = { NIXFLEET_URL: 'https://cp.test:8443', NIXFLEET_CERT: '/nonexistent/op.pem', NIXFLEET_KEY: '/nonexistent/op.key', NIXFLEET_CA: '/nonexistent/ca.pem', HOME: '/nonexistent' };
  const remote = await runCli(['dashboard', '--listen', '0.0.0.0:8087'], { env });
  assert.is(remote.code, 2);
  assert.match(remote.stderr, /refusing to listen on 0\.0\.0\.0: not a loopback address.*--allow-remote/);
  const bad = await runCli(['dashboard', '--listen', 'localhost'], { env });
  assert.is(bad.code, 2);
  assert.match(bad.stderr, /--listen must be HOST:PORT/);
  // With --allow-remote it goes on to the connection settings (here: unreadable files, exit 2 naming them).
  const allowed = await runCli(['dashboard', '--listen', '0.0.0.0:0', '--allow-remote'], { env });
  assert.is(allowed.code, 2);
  assert.match(allowed.stderr, /cannot read --cert/);
});

t('the audit chain check stops at an edited entry and says which', () => {
  const f = emptyFeed();
  const edited = audit.map((e) => (e.seq === 2 ? { ...e, data: { ...(e.data as object), reason: 'edited' } } : e));
  applyEntries(f, edited);
  assert.is(f.chain.entries, 1);
  assert.is(f.chain.broken?.seq, 2);
  const good = emptyFeed();
  applyEntries(good, audit.slice(0, 1));
  applyEntries(good, audit.slice(1));
  assert.is(good.chain.broken, null);
  assert.is(good.chain.lastSeq, 2);
  assert.is(good.hosts.get('web1')?.transitions.length, 1);
});

t.run();
