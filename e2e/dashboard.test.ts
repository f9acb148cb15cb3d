/**
 * Issue 20 acceptance: `nixfleet dashboard` (the real CLI process) against a real control plane
 * over mutual TLS (fixtures/cp-testing.ts: SQLite, HTTPS + mTLS on loopback, a controlled clock),
 * with agents checking in, confirming and sending signed reports over their own host
 * certificates (as cli/real-cp.test.ts), driven in Debian's Chromium by playwright-core:
 *
 * - the overview shows every host (also with JavaScript disabled);
 * - a running rollout's page updates by itself as hosts move (the DOM changes, the document is
 *   the same: no reload, no navigation);
 * - a halted rollout shows the failed host, its gate and the reason;
 * - unknown rollout / host ids are a 404 page;
 * - every request the pages make goes to the dashboard on localhost; the CP records no operator
 *   action (the dashboard never writes).
 *
 * NIXFLEET_DASHBOARD_SCREENSHOTS=1 also saves a screenshot of each page into docs/dashboard/
 * (`npm run dashboard:screenshots`); by default the test writes nothing into the repository.
 */
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Browser, Page } from 'playwright-core';
import { foreignRequests, openBrowser, startDashboardProcess, type DashboardProcess } from './dashboard-browser.ts';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import type { CheckinResponse, HostReport } from '../protocol/api.ts';
import { fakeClosure, sampleFleet } from '../fixtures/artifacts.ts';
import { Client, confirmedRecord, hostKeyOf, makeEnv, report, startCp, type RunningCp, operatorCliEnv } from '../fixtures/cp-testing.ts';
import type { FleetResolved } from '../protocol/schema.ts';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const SHOTS = process.env['NIXFLEET_DASHBOARD_SCREENSHOTS'] === '1' ? join(ROOT, 'docs', 'dashboard') : null;
const HOSTS = ['host-0000', 'host-0001', 'host-0002', 'host-0003'] as const;
const WAIT = { timeout: 60_000 };

type Agent = { name: string; current: string; checkin(): Promise<CheckinResponse>; report(event: HostReport['event'], t: NonNullable<CheckinResponse['target']>): Promise<void>; activate(t: NonNullable<CheckinResponse['target']>): Promise<void> };

const env = await makeEnv('nixfleet-dashboard-');
let cp: RunningCp;
let agents: Record<string, Agent> = {};
const clients: Client[] = [];
let dashboard: DashboardProcess | null = null;
let base = '';
let browser: Browser;
let page: Page;
let requests: string[] = [];

async function agentsFor(): Promise<Record<string, Agent>> {
  const out: Record<string, Agent> = {};
  const certs = await Promise.all(HOSTS.map((name) => env.hostCert(name)));
  HOSTS.forEach((name, index) => {
    const client = new Client(cp.url, env.ca.certPem, certs[index]!);
    clients.push(client);
    const key = hostKeyOf(index, name);
    const probes = () => [{ name: 'http', ok: true, observedAt: new Date(env.clock.ms).toISOString() }];
    const a: Agent = {
      name,
      current: fakeClosure(name, 0),
      async checkin() {
        const r = await client.call('POST', '/v1/agent/checkin', { hostname: name, currentClosure: a.current, bootId: 'boot-1', probes: probes(), failedUnits: [], lastOutcome: null });
        assert.is(r.status, 200, `${name} checkin: ${JSON.stringify(r.body)}`);
        return r.body as CheckinResponse;
      },
      async report(event, t) {
        const rep = report(name, event, t.rolloutId, t.closureHash, env.clock.ms, event);
        const r = await client.call('POST', '/v1/agent/report', { report: rep, signature: key.sign(rep) });
        assert.is(r.status, 202, `${name} report ${event}`);
      },
      async activate(t) {
        await a.report('activation-started', t);
        a.current = t.closureHash;
        await a.report('activation-switched', t);
        const rec = confirmedRecord(name, t.rolloutId, t.closureHash, env.clock.ms);
        const r = await client.call('POST', '/v1/agent/confirm', { hostname: name, rolloutId: t.rolloutId, closureHash: t.closureHash, bootId: 'boot-1', confirmed: { record: rec, signature: key.sign(rec) }, probes: probes(), failedUnits: [] });
        assert.is(r.status, 204, `${name} confirm: ${JSON.stringify(r.body)}`);
      },
    };
    out[name] = a;
  });
  return out;
}

function fleetGen(gen: number): FleetResolved {
  const f = sampleFleet({ hosts: 4, waves: 2, closures: true, withPubkeys: true });
  for (const h of HOSTS) f.hosts[h]!.closureHash = gen === 0 ? null : fakeClosure(h, gen);
  return f;
}

async function publish(gen: number): Promise<void> {
  env.clock.advance(60_000);
  env.publish(fleetGen(gen));
  await cp.cp.pollNow();
  await cp.cp.reconcileNow();
}

/** Every host checks in once and activates what it is given (healthy agents); then a reconcile. */
async function round(): Promise<void> {
  for (const h of HOSTS) {
    const r = await agents[h]!.checkin();
    if (r.target !== null) await agents[h]!.activate(r.target);
  }
  env.clock.advance(5_000);
  await cp.cp.reconcileNow();
}

async function rolloutOf(gen: number): Promise<string> {
  const want = fakeClosure('host-0000', gen);
  const r = Object.values((await cp.store.loadObserved()).rollouts).find((x) => x.hosts['host-0000']?.closure === want);
  assert.ok(r, `rollout of generation ${gen}`);
  return r!.id;
}

/** The real `nixfleet dashboard` process with an operator certificate. */
async function startDashboard(): Promise<string> {
  const opEnv = await operatorCliEnv(env, cp.url);
  dashboard = await startDashboardProcess(opEnv);
  assert.is(dashboard.controlPlane, cp.url);
  return dashboard.url;
}

async function shot(name: string): Promise<void> {
  if (SHOTS === null) return;
  mkdirSync(SHOTS, { recursive: true });
  await page.screenshot({ path: join(SHOTS, `${name}.png`), fullPage: true });
}

const t = suite('dashboard in a real browser against a real control plane');

t.before(async () => {
  cp = await startCp(env);
  agents = await agentsFor();
  // First contact under a fleet that deploys nothing, then generation 1: every host Queued.
  await publish(0);
  for (const h of HOSTS) await agents[h]!.checkin();
  await publish(1);
  base = await startDashboard();
  ({ browser, page, requests } = await openBrowser());
});

t.after(async () => {
  await browser?.close();
  await dashboard?.stop();
  for (const c of clients) await c.close();
  await cp?.stop();
  env.cleanup();
});

t('the overview shows every host', async () => {
  const res = await page.goto(base + '/');
  assert.is(res?.status(), 200);
  for (const h of HOSTS) await page.locator(`tr[data-host="${h}"]`).waitFor(WAIT);
  assert.is(await page.locator('[data-testid="count-hosts"]').textContent(), String(HOSTS.length));
  assert.is(await page.locator('main table caption').count(), await page.locator('main table').count(), 'every table has a caption');
  const certs = (await page.locator('#certs-h ~ table').textContent()) ?? '';
  for (const h of HOSTS) assert.ok(certs.includes(h), `${h}'s certificate expiry is listed`);
  assert.is(await page.locator('[data-testid="count-expiring"]').textContent(), '0');
  await shot('overview');
  // Static views work without JavaScript.
  const noJs = await browser.newContext({ javaScriptEnabled: false });
  const plain = await noJs.newPage();
  plain.on('request', (r) => void requests.push(r.url()));
  assert.is((await plain.goto(base + '/'))?.status(), 200);
  for (const h of HOSTS) assert.is(await plain.locator(`tr[data-host="${h}"]`).count(), 1, `${h} without JavaScript`);
  await noJs.close();
  // Keyboard: the first Tab reaches the skip link, which is then visible.
  await page.keyboard.press('Tab');
  assert.is(await page.evaluate('document.activeElement && document.activeElement.textContent'), 'Skip to content');
  assert.ok(await page.locator('a.skip').isVisible());
});

t('a running rollout page updates by itself as hosts move (no reload)', async () => {
  const id = await rolloutOf(1);
  await page.goto(base + '/');
  await page.locator(`tr[data-rollout="${id}"] a`).click();
  await page.locator('[data-testid="waves"]').waitFor(WAIT);
  assert.ok(page.url().endsWith(`/rollouts/${encodeURIComponent(id)}`));
  await page.evaluate('window.__sameDocument = "yes"');
  let navigations = 0;
  const onNav = (f: unknown) => void (f === page.mainFrame() && navigations++);
  page.on('framenavigated', onNav);
  assert.is(await page.locator('li[data-wave="0"]').getAttribute('data-done'), '0');
  await shot('rollout-running');
  // A keyboard user sits on a host link: the live swap must not lose their place.
  await page.locator('tr[data-host="host-0000"] a').focus();
  // Wave 0 activates and soaks while the page is open: its bar fills without a reload.
  await round();
  await page.locator('tr[data-host="host-0000"][data-state="Healthy"], tr[data-host="host-0000"][data-state="Soaked"], tr[data-host="host-0000"][data-state="Converged"]').waitFor(WAIT);
  for (let i = 0; i < 20 && (await cp.store.loadObserved()).rollouts[id]?.state !== 'Converged'; i++) await round();
  await page.locator('li[data-wave="1"][data-done="2"]').waitFor(WAIT);
  await page.locator('[data-testid="rollout-state"]', { hasText: 'converged' }).waitFor(WAIT);
  assert.is(await page.evaluate('window.__sameDocument'), 'yes', 'the same document: updated in place');
  assert.is(navigations, 0, 'no navigation happened');
  assert.is(await page.evaluate('document.activeElement && document.activeElement.getAttribute("href")'), '/hosts/host-0000', 'focus kept across updates');
  page.off('framenavigated', onNav);
});

t('a halted rollout shows the failed host with its gate and the reason', async () => {
  await publish(2);
  const id = await rolloutOf(2);
  const t0 = (await agents['host-0000']!.checkin()).target;
  assert.ok(t0 !== null && t0.closureHash === fakeClosure('host-0000', 2));
  await agents['host-0000']!.activate(t0!);
  await agents['host-0000']!.report('probe-failed', t0!);
  await cp.cp.reconcileNow();
  const res = await page.goto(`${base}/rollouts/${encodeURIComponent(id)}`);
  assert.is(res?.status(), 200);
  const row = page.locator('tr[data-blocked="host-0000"]');
  await row.waitFor(WAIT);
  const text = (await row.textContent()) ?? '';
  assert.match(text, /health/);
  assert.match(text, /probe|health gate/i, `the reason: ${text}`);
  const state = (await page.locator('[data-testid="rollout-state"]').textContent()) ?? '';
  const reason = (await page.locator('[data-testid="rollout-reason"]').textContent()) ?? '';
  assert.match(state, /halted/, `state ${state}`);
  assert.ok(reason.length > 1, 'the halt reason is shown');
  await shot('rollout-halted');
});

t('the host page shows running vs declared, history and signed reports; the release page the release and chain', async () => {
  await page.goto(`${base}/hosts/host-0000`);
  const closures = (await page.locator('[data-testid="closures"]').textContent()) ?? '';
  assert.ok(closures.includes(fakeClosure('host-0000', 2)), 'running / declared closures');
  assert.match((await page.locator('#history-h + table').textContent()) ?? '', /→ Failed/);
  assert.match((await page.locator('#reports-h + table').textContent()) ?? '', /report probe-failed[\s\S]*verified/);
  await shot('host');
  await page.goto(`${base}/release`);
  assert.match((await page.locator('[data-testid="release"]').textContent()) ?? '', /current/);
  assert.match((await page.locator('[data-testid="chain-state"]').textContent()) ?? '', /✓ verified/);
  await shot('release');
});

t('unknown rollout and host ids are a 404 page', async () => {
  for (const p of ['/rollouts/stable%400000', '/hosts/no-such-host']) {
    const res = await page.goto(base + p);
    assert.is(res?.status(), 404, p);
    assert.is(await page.locator('h1').textContent(), 'Not found');
  }
  await shot('not-found');
});

t('every request the pages made went to the dashboard on localhost; the CP saw no operator write', async () => {
  assert.ok(requests.length > 10, `${requests.length} requests recorded`);
  assert.equal(foreignRequests(requests, base), []);
  assert.ok(['127.0.0.1', 'localhost', '[::1]'].includes(new URL(base).hostname));
  const audit = await cp.store.auditAll();
  assert.equal(audit.filter((e) => e.actor.startsWith('operator:')).map((e) => e.kind), []);
});

t.run();
