/**
 * Scenario 9 — a revoked host certificate is refused at once after the next revocations poll:
 * CI signs `revocations.json` naming the host (notBefore = now); as soon as the CP has loaded it,
 * every request with a certificate issued before that gets 401 CERT_REVOKED, while other hosts
 * carry on. A certificate minted after the revocation works again (re-enrolment).
 */
import { createHash } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import * as assert from 'uvu/assert';
import type { CheckinRequest, ErrorBody, ReadyzResponse } from '../protocol/api.ts';
import { mintHostCert } from '../pki/pki.ts';
import { Fleet } from './harness.ts';
import { ApiClient } from './opclient.ts';
import { scenarioSuite } from './scenario.ts';

const { s, register } = scenarioSuite('revocation', ['release-cli', 'push', 'control-plane', 'agent']);
let fleet: Fleet | null = null;
const clients: ApiClient[] = [];

s.after(async () => {
  for (const c of clients) await c.close();
  await fleet?.stop();
});

function checkinBody(f: Fleet, host: string): CheckinRequest {
  return { hostname: host, currentClosure: f.closure(host, 'v1'), bootId: 'e2e-probe', probes: [], failedUnits: [], lastOutcome: null };
}

register('9. revoked host certificate → refused at once after the next revocations poll', async () => {
  fleet = await Fleet.create({
    name: 'revocation',
    hosts: [
      { name: 'good-1', channel: 'prod' },
      { name: 'stolen-1', channel: 'prod' },
    ],
    description: {
      channels: { prod: { rolloutPolicy: 'all', freshnessWindow: 120, signingIntervalMinutes: 60 } },
      rolloutPolicies: { all: { strategy: 'all-at-once', waves: [{ selector: { all: true }, soakMinutes: 0 }] } },
    },
    closures: { v1: 'ok' },
  });
  const f = fleet;
  await f.release('v1');
  await f.startCp();
  await f.startAgents();
  await f.waitConverged('v1');

  const client = (host: string, cert = f.host(host).cert) => {
    const c = new ApiClient(f.cpUrl, { caPem: f.ca.certPem, certPem: cert.certPem, keyPem: cert.keyPem });
    clients.push(c);
    return c;
  };
  const stolen = client('stolen-1');
  const good = client('good-1');
  assert.is((await stolen.call('POST', '/v1/agent/checkin', checkinBody(f, 'stolen-1'))).status, 200, 'works before the revocation');

  const notBefore = new Date().toISOString();
  const rel = await f.release('v1', { revocations: [{ hostname: 'stolen-1', notBefore, reason: 'laptop stolen', revokedBy: 'security@example.org' }], message: 'revoke stolen-1' });
  const revSha = createHash('sha256').update(rel.revocationsBytes).digest('hex');
  await f.waitFor('the CP to load the new revocations', async (observe) => {
    const r = (await f.op.call<ReadyzResponse>('GET', '/readyz')).body as ReadyzResponse;
    observe(r.revocations);
    return r.revocations?.sha256 === revSha;
  });
  // At once: the very next request with the old certificate is refused, on every route.
  const refused = await stolen.call('POST', '/v1/agent/checkin', checkinBody(f, 'stolen-1'));
  assert.is(refused.status, 401);
  assert.is((refused.body as ErrorBody).error.code, 'CERT_REVOKED');
  const art = await stolen.call('GET', '/v1/artifact');
  assert.is(art.status, 401, 'artefact route refused too');
  assert.is((await good.call('POST', '/v1/agent/checkin', checkinBody(f, 'good-1'))).status, 200, 'other hosts are not affected');

  // The revoked host's own agent is shut out: its last check-in stops moving while good-1's does.
  const seen = (await f.hostView('stolen-1')).lastCheckinAt;
  const goodSeen = (await f.hostView('good-1')).lastCheckinAt;
  await f.waitFor('good-1 to check in again', async () => (await f.hostView('good-1')).lastCheckinAt !== goodSeen);
  await f.waitFor('good-1 to check in once more', async () => {
    const v = await f.hostView('good-1');
    return v.lastCheckinAt !== goodSeen && Date.parse(v.lastCheckinAt ?? '0') > Date.parse(goodSeen ?? '0') + 2000;
  });
  assert.is((await f.hostView('stolen-1')).lastCheckinAt, seen, 'no check-in from the revoked certificate was accepted');
  const audit = await f.audit();
  assert.ok(audit.some((e) => e.kind === 'artifact.accepted' && JSON.stringify(e.data).includes(revSha)), 'revocations accepted in the audit log');

  // Re-enrolment: a certificate issued after the revocation's notBefore is accepted.
  await new Promise((r) => setTimeout(r, 1100)); // X.509 notBefore has 1 s resolution: be strictly after
  const fresh = await mintHostCert(f.ca, 'stolen-1');
  assert.ok(fresh.notBefore.getTime() >= Date.parse(notBefore));
  const h = f.host('stolen-1');
  writeFileSync(join(h.dir, 'host.pem'), fresh.certPem);
  writeFileSync(join(h.dir, 'host.key'), fresh.keyPem);
  await f.stopAgent('stolen-1');
  await f.startAgent('stolen-1');
  await f.waitFor('stolen-1 to check in again with its new certificate', async () => (await f.hostView('stolen-1')).lastCheckinAt !== seen);
  assert.is((await client('stolen-1', fresh).call('POST', '/v1/agent/checkin', checkinBody(f, 'stolen-1'))).status, 200);
});

s.run();
