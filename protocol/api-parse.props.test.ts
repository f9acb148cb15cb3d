/**
 * Property: whatever body arrives on an agent or operator route (arbitrary JSON, JSON-shaped near
 * misses, arbitrary bytes), the real control plane answers with a JSON error code below 500 or a
 * success — never a 500 — and a refused request changes nothing in the store.
 */
import fc from 'fast-check';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { fakeClosure, sampleFleet } from '../fixtures/artifacts.ts';
import type { ErrorBody } from './api.ts';
import { createApp } from '../control-plane/app.ts';
import { makeEnv, startCp, type Env, type RunningCp } from '../fixtures/cp-testing.ts';

const env: Env = await makeEnv();
let cp: RunningCp;
let app: ReturnType<typeof createApp>;
const t = suite('validation.props');

const peer = (cn: string, ou: string) => ({
  incoming: { socket: { authorized: true, getPeerCertificate: () => ({ subject: { CN: cn, OU: ou }, serialNumber: '01', valid_from: 'Jan  1 00:00:00 2026 GMT', valid_to: 'Jan  1 00:00:00 2036 GMT' }) } },
});

t.before(async () => {
  env.publish(sampleFleet({ hosts: 2, waves: 1, closures: true }));
  cp = await startCp(env, { maxBodyBytes: 4096 });
  app = createApp({ service: cp.cp.api, maxBodyBytes: 4096, retryAfterSecs: 1, logError: (m, e) => console.error(m, e) });
});
t.after(async () => {
  await cp.stop();
  env.cleanup();
});

async function snapshot(): Promise<string> {
  return JSON.stringify({ hosts: (await cp.store.allHosts()), reports: (await cp.store.reportCount()), audit: (await cp.store.auditAll()).length, pause: (await cp.store.getPause('stable')), q: (await cp.store.quarantines()) });
}

const ROUTES: [string, string, string][] = [
  ['/v1/agent/checkin', 'host-0000', 'host'],
  ['/v1/agent/confirm', 'host-0000', 'host'],
  ['/v1/agent/report', 'host-0000', 'host'],
  ['/v1/channels/stable/pause', 'alice', 'operator'],
  ['/v1/quarantines/clear', 'alice', 'operator'],
];

// Near misses: valid-looking check-in bodies with one field replaced by anything.
const nearMiss = fc
  .record({
    key: fc.constantFrom('hostname', 'currentClosure', 'bootId', 'probes', 'failedUnits', 'lastOutcome', 'lastConfirmed', 'report', 'signature', 'rolloutId', 'closureHash', 'channel', 'reason'),
    value: fc.jsonValue({ maxDepth: 3 }),
  })
  .map(({ key, value }) => JSON.stringify({ hostname: 'host-0000', currentClosure: fakeClosure('host-0000'), bootId: 'b', probes: [], failedUnits: [], lastOutcome: null, [key]: value }));

const bodies = fc.oneof(
  fc.jsonValue({ maxDepth: 4 }).map((v) => JSON.stringify(v)),
  nearMiss,
  fc.string({ maxLength: 200 }),
  fc.uint8Array({ maxLength: 300 }).map((b) => Buffer.from(b).toString('latin1')),
);

t('no body makes the control plane answer 500; refused bodies change nothing', async () => {
  await fc.assert(
    fc.asyncProperty(fc.constantFrom(...ROUTES), bodies, async ([path, cn, ou], body) => {
      const before = (await snapshot());
      const res = await app.request(path, { method: 'POST', headers: { 'content-type': 'application/json' }, body }, peer(cn, ou));
      assert.ok(res.status < 500, `${path} ${body} → ${res.status}`);
      if (res.status >= 400) {
        const b = (await res.json()) as ErrorBody;
        assert.type(b.error.code, 'string');
        assert.is((await snapshot()), before, `${path} ${body} changed state`);
      }
    }),
    { numRuns: 300 },
  );
});

t.run();
