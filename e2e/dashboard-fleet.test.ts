/**
 * Issue 20 acceptance with the whole system: the real `nixfleet dashboard` process, in Debian's
 * Chromium (playwright-core), against a real control plane process over mutual TLS with real
 * agents realising and activating real Nix closures (e2e/harness.ts):
 *
 * - the overview shows every host;
 * - the page of a running rollout updates by itself as the agents move (same document, no
 *   navigation): the agents are frozen while the release opens the rollout, the page is opened,
 *   then they are thawed and the wave bars fill;
 * - a release whose switch fails on the canary halts the rollout, and its page shows the canary
 *   with its gate and reason;
 * - every request the pages made went to the dashboard on localhost.
 */
import * as assert from 'uvu/assert';
import { join } from 'node:path';
import type { Browser, Page } from 'playwright-core';
import { Fleet } from './harness.ts';
import { scenarioSuite } from './scenario.ts';
import { foreignRequests, openBrowser, startDashboardProcess, type DashboardProcess } from './dashboard-browser.ts';

const { s, register } = scenarioSuite('dashboard-fleet', ['release-cli', 'push', 'control-plane', 'agent', 'cli']);
const CANARY = 'canary-1';
const ALL = [CANARY, 'rest-1', 'rest-2'];
const WAIT = { timeout: 240_000 };
let fleet: Fleet | null = null;
let dashboard: DashboardProcess | null = null;
let browser: Browser | null = null;

s.after(async () => {
  await browser?.close();
  await dashboard?.stop();
  await fleet?.stop();
});

register('the dashboard shows real agents moving through a rollout, live, and the halt of a failing release', async () => {
  fleet = await Fleet.create({
    name: 'dashboard-fleet',
    hosts: ALL.map((name) => ({ name, channel: 'prod', tags: name === CANARY ? ['canary'] : [] })),
    description: {
      channels: { prod: { rolloutPolicy: 'canary', freshnessWindow: 120, signingIntervalMinutes: 60 } },
      rolloutPolicies: {
        canary: { strategy: 'canary', waves: [{ selector: { tags: ['canary'] }, soakMinutes: 0 }, { selector: { all: true }, soakMinutes: 0 }], onHealthFailure: 'rollback-and-halt' },
      },
    },
    closures: { v1: 'ok', v2: 'ok', bad: 'fail' },
  });
  const f = fleet;
  await f.release('v1');
  await f.startCp();
  await f.startAgents();
  await f.waitConverged('v1');

  const ops = join(f.root, 'operator');
  dashboard = await startDashboardProcess({
    NIXFLEET_URL: f.cpUrl,
    NIXFLEET_CERT: join(ops, 'operator.pem'),
    NIXFLEET_KEY: join(ops, 'operator.key'),
    NIXFLEET_CA: join(ops, 'ca.pem'),
    NIXFLEET_CONFIG: join(ops, 'cli-config.json'),
  });
  const base = dashboard.url;
  const opened = await openBrowser();
  browser = opened.browser;
  const page: Page = opened.page;

  // The overview shows every host.
  assert.is((await page.goto(base + '/'))?.status(), 200);
  for (const h of ALL) await page.locator(`tr[data-host="${h}"]`).waitFor(WAIT);
  assert.is(await page.locator('[data-testid="count-hosts"]').textContent(), String(ALL.length));

  // v2 opens a rollout while every agent is frozen: nothing moves until the page is open.
  for (const h of ALL) f.freezeAgent(h);
  await f.release('v2', { message: 'fleet: v2' });
  const rollout = await f.waitFor('the v2 rollout to open', async (observe) => {
    const r = await f.rolloutFor('prod', 'v2');
    observe(r?.state);
    return r;
  });
  assert.is((await page.goto(`${base}/rollouts/${encodeURIComponent(rollout.id)}`))?.status(), 200);
  assert.is(await page.locator('li[data-wave="1"]').getAttribute('data-done'), '0');
  await page.evaluate('window.__sameDocument = "yes"');
  let navigations = 0;
  page.on('framenavigated', (fr) => void (fr === page.mainFrame() && navigations++));
  for (const h of ALL) f.thawAgent(h);
  await page.locator('li[data-wave="0"][data-done="1"]').waitFor(WAIT);
  await page.locator('li[data-wave="1"][data-done="2"]').waitFor(WAIT);
  await page.locator('[data-testid="rollout-state"]', { hasText: 'converged' }).waitFor(WAIT);
  assert.is(await page.evaluate('window.__sameDocument'), 'yes', 'updated in place');
  assert.is(navigations, 0, 'no reload, no navigation');

  // A release whose switch fails on the canary: the rollout halts; its page names the canary.
  await f.release('bad', { message: 'fleet: a release whose activation fails' });
  const halted = await f.waitFor('the bad rollout to halt', async (observe) => {
    const r = await f.rolloutFor('prod', 'bad');
    observe(r?.state);
    return r?.state === 'Halted' ? r : undefined;
  });
  assert.is((await page.goto(`${base}/rollouts/${encodeURIComponent(halted.id)}`))?.status(), 200);
  const row = (await page.locator(`tr[data-blocked="${CANARY}"]`).textContent()) ?? '';
  assert.match(row, /health/, row);
  assert.ok(row.length > CANARY.length + 10, `a reason is shown: ${row}`);
  assert.match((await page.locator('[data-testid="rollout-state"]').textContent()) ?? '', /halted/);
  for (const h of ['rest-1', 'rest-2']) assert.match((await page.locator(`tr[data-blocked="${h}"]`).textContent()) ?? '', /halted/);

  // Unknown ids; and the pages requested nothing outside the dashboard on localhost.
  assert.is((await page.goto(`${base}/hosts/nope`))?.status(), 404);
  assert.ok(opened.requests.length > 10);
  assert.equal(foreignRequests(opened.requests, base), []);
});

s.run();
