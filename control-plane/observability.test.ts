/**
 * Issue 18, operations: the per-host report quota (429 REPORT_QUOTA with Retry-After, nothing
 * stored, counted, audited once per burst, open again after the window), the structured log of
 * a running CP (state changes and operator actions at info, requests at debug, security
 * refusals at warn with their code), and the operational metrics (hosts offline, artefact age).
 */
import { statSync } from 'node:fs';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { sampleFleet } from '../fixtures/artifacts.ts';
import { captureLogger } from '../fixtures/logs.ts';
import type { AuditResponse } from '../protocol/api.ts';
import { Client, makeEnv, report, startCp, testBackend } from '../fixtures/cp-testing.ts';

const t = suite('observability');

t('report quota: past reportQuotaPerHour a host gets 429 REPORT_QUOTA, nothing is stored, the burst is audited once and counted; the window refills', async () => {
  const env = await makeEnv();
  env.publish(sampleFleet({ hosts: 2, waves: 1, closures: true }));
  const cp = await startCp(env, { reportQuotaPerHour: 3 });
  const h = new Client(cp.url, env.ca.certPem, await env.hostCert('host-0000'));
  const other = new Client(cp.url, env.ca.certPem, await env.hostCert('host-0001'));
  const op = new Client(cp.url, env.ca.certPem, await env.operatorCert('alice'));
  const send = (c: Client, name: string, i: number) => c.call('POST', '/v1/agent/report', { report: report(name, 'activation-failed', null, null, env.clock.ms, `attempt ${i}`), signature: null });
  const quotaAudits = async () => ((await op.call('GET', '/v1/audit?limit=1000')).body as AuditResponse).entries.filter((e) => e.kind === 'report.quota-exceeded');
  try {
    for (let i = 0; i < 3; i++) assert.is((await send(h, "host-0000", i)).status, 202, `report ${i} within the quota`);
    const refused = await send(h, 'host-0000', 3);
    assert.is(refused.status, 429);
    assert.is((refused.body as { error: { code: string } }).error.code, 'REPORT_QUOTA');
    assert.ok(Number(refused.headers['retry-after']) >= 1, 'Retry-After tells the agent when to retry');
    assert.is((await send(h, 'host-0000', 4)).status, 429);
    assert.is((await send(other, "host-0001", 0)).status, 202, "the quota is per host");
    const audits = await quotaAudits();
    assert.is(audits.length, 1, 'audited once per burst, not per refusal');
    assert.is(audits[0]!.actor, 'host:host-0000');
    const metrics = (await cp.cp.metricsText()).body;
    assert.match(metrics, /nixfleet_report_refusals_total\{reason="quota"\} 2/);
    const stored = [...metrics.matchAll(/^nixfleet_agent_reports_total\{event="activation-failed",verdict="[a-z-]+"\} (\d+)$/gm)].reduce((n, m) => n + Number(m[1]), 0);
    assert.is(stored, 4, `refused reports were not stored or counted as reports:\n${metrics}`);
    // An hour later the bucket is full again; a new burst is audited again.
    env.clock.advance(3600_000);
    for (let i = 0; i < 3; i++) assert.is((await send(h, "host-0000", 10 + i)).status, 202);
    assert.is((await send(h, 'host-0000', 13)).status, 429);
    assert.is((await quotaAudits()).length, 2);
  } finally {
    await h.close();
    await other.close();
    await op.close();
    await cp.stop();
    env.cleanup();
  }
});

t('the CP log: one JSON object per line; operator actions and state changes at info, requests at debug, security refusals at warn with their code', async () => {
  const env = await makeEnv();
  env.publish(sampleFleet({ hosts: 2, waves: 1, closures: true }));
  const captured = captureLogger('nixfleet-control-plane', 'debug', () => env.clock.ms);
  const cp = await startCp(env, {}, { log: captured.log });
  const op = new Client(cp.url, env.ca.certPem, await env.operatorCert('alice'));
  const host = new Client(cp.url, env.ca.certPem, await env.hostCert('host-0000'));
  try {
    assert.is((await op.call('POST', '/v1/channels/stable/pause', { reason: 'freeze' })).status, 200);
    assert.is((await host.call('POST', '/v1/channels/stable/resume', {})).status, 403, 'a host certificate cannot act as an operator');
    const recs = captured.records();
    for (const r of recs) assert.ok(typeof r['event'] === 'string' && typeof r['level'] === 'string' && r['program'] === 'nixfleet-control-plane' && typeof r['time'] === 'string', JSON.stringify(r));
    const paused = recs.find((r) => r['event'] === 'audit' && r['kind'] === 'channel.paused');
    assert.ok(paused !== undefined, captured.lines.join('\n'));
    assert.is(paused['level'], 'info');
    assert.is(paused['actor'], 'operator:alice');
    assert.ok(recs.some((r) => r['event'] === 'audit' && r['kind'] === 'artifact.accepted'), 'the artefact accepted at start is a logged state change');
    const req = recs.find((r) => r['event'] === 'http.request' && r['route'] === '/v1/channels/:channel/pause');
    assert.ok(req !== undefined && req['level'] === 'debug' && req['status'] === 200 && req['peer'] === 'alice', JSON.stringify(req));
    const refusal = recs.find((r) => r['event'] === 'http.refused');
    assert.ok(refusal !== undefined, captured.lines.join('\n'));
    assert.equal([refusal['level'], refusal['code'], refusal['peer']], ['warn', 'FORBIDDEN_ROLE', 'host-0000']);
    assert.not.match(captured.lines.join('\n'), /\n\s+at /, 'no stack trace at these levels');
  } finally {
    await op.close();
    await host.close();
    await cp.stop();
    env.cleanup();
  }
});

t('metrics: hosts offline (never seen included), the artefact age from signedAt, build info; the SQLite database is created owner-only', async () => {
  const env = await makeEnv();
  env.publish(sampleFleet({ hosts: 3, waves: 1, closures: true }));
  const cp = await startCp(env, { offlineAfterSecs: 180 });
  const h = new Client(cp.url, env.ca.certPem, await env.hostCert('host-0000'));
  try {
    const checkin = await h.call('POST', '/v1/agent/checkin', { hostname: 'host-0000', currentClosure: null, bootId: 'b', probes: [], failedUnits: [], lastOutcome: null });
    assert.is(checkin.status, 200, JSON.stringify(checkin.body));
    let m = (await cp.cp.metricsText()).body;
    assert.match(m, /^nixfleet_hosts_offline 2$/m, 'two hosts never seen');
    assert.match(m, /^nixfleet_build_info\{version="\d+\.\d+\.\d+",node="v\d+[^"]*"\} 1$/m);
    const age = Number(/^nixfleet_artifact_age_seconds\{kind="fleet"\} (\S+)$/m.exec(m)?.[1]);
    const signed = Number(/^nixfleet_artifact_signed_timestamp_seconds\{kind="fleet"\} (\S+)$/m.exec(m)?.[1]);
    assert.ok(Number.isFinite(age) && Number.isFinite(signed), m);
    assert.ok(Math.abs(age - (env.clock.ms / 1000 - signed)) < 1, `age ${age} = now − signedAt ${signed}`);
    env.clock.advance(181_000);
    m = (await cp.cp.metricsText()).body;
    assert.match(m, /^nixfleet_hosts_offline 3$/m, 'host-0000 went quiet for offlineAfterSecs');
    if (testBackend === 'sqlite') assert.is(statSync(cp.config.dbPath).mode & 0o777, 0o600);
  } finally {
    await h.close();
    await cp.stop();
    env.cleanup();
  }
});

t.run();
