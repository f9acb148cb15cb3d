/**
 * Hot-path counters (issue 19): counted in plain numbers and handed to prom-client at each scrape.
 * Every read — the exposition text, prom-client's own `get` — sees every count, once.
 */
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { CpMetrics } from './metrics.ts';

const t = suite('metrics');

const metrics = (): CpMetrics => new CpMetrics(() => ({ hosts: {}, rollouts: {}, ready: true }));

function sample(text: string, name: string, labels = ''): number | null {
  const line = text.split('\n').find((l) => l.startsWith(`${name}${labels} `));
  return line === undefined ? null : Number(line.slice(line.lastIndexOf(' ') + 1));
}

t('request, check-in and quiet counts reach the scrape, add up across scrapes, and are never counted twice', async () => {
  const m = metrics();
  for (let i = 0; i < 3; i++) m.request('/v1/agent/checkin', 200);
  m.request('/v1/agent/checkin', 400);
  m.checkin('none').inc();
  m.checkin('none').inc();
  m.checkin('target').inc();
  m.quietCheckin().inc();
  let text = (await m.text()).body;
  assert.is(sample(text, 'nixfleet_http_requests_total', '{route="/v1/agent/checkin",status="200"}'), 3);
  assert.is(sample(text, 'nixfleet_http_requests_total', '{route="/v1/agent/checkin",status="400"}'), 1);
  assert.is(sample(text, 'nixfleet_checkins_total', '{result="none"}'), 2);
  assert.is(sample(text, 'nixfleet_checkins_total', '{result="target"}'), 1);
  assert.is(sample(text, 'nixfleet_checkins_quiet_total'), 1);
  // A second scrape with nothing new: the same figures.
  text = (await m.text()).body;
  assert.is(sample(text, 'nixfleet_http_requests_total', '{route="/v1/agent/checkin",status="200"}'), 3);
  assert.is(sample(text, 'nixfleet_checkins_quiet_total'), 1);
  // More, then read through prom-client directly.
  m.request('/v1/agent/checkin', 200);
  m.quietCheckin().inc();
  m.checkin('none').inc();
  const requests = await m.requests.get();
  assert.is(requests.values.find((v) => v.labels['status'] === '200')?.value, 4);
  assert.is((await m.quietCheckins.get()).values[0]?.value, 2);
  assert.is((await m.checkins.get()).values.find((v) => v.labels['result'] === 'none')?.value, 3);
  text = (await m.text()).body;
  assert.is(sample(text, 'nixfleet_checkins_total', '{result="none"}'), 3);
});

t('a quiet counter that never counted is still exposed at 0', async () => {
  const text = (await metrics().text()).body;
  assert.is(sample(text, 'nixfleet_checkins_quiet_total'), 0);
});

t.run();
