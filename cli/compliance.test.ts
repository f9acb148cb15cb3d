/**
 * `nixfleet compliance` (issue 15): the per framework / control / host tallies of the CP's view
 * (pure, filters included), and the command against the real CP over mutual TLS: it names the
 * failing control, its host and what was observed, `--json` carries the same, exit 1 while a
 * control fails.
 */
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { fakeClosure, sampleFleet } from '../fixtures/artifacts.ts';
import { runCli } from '../fixtures/cli-testing.ts';
import { Client, hostKeyOf, makeEnv, startCp, operatorCliEnv } from '../fixtures/cp-testing.ts';
import type { ComplianceResponse } from '../protocol/compliance-api.ts';
import { complianceReport, renderCompliance, type ComplianceReport } from './compliance-view.ts';
import { makeStyle, stripAnsi } from './output.ts';

const t = suite('nixfleet compliance');

const VIEW: ComplianceResponse = {
  staleAfterSecs: 86400,
  controls: [
    { id: 'ssh-no-root-login', title: 'SSH refuses root login', severity: 'high', frameworks: ['nis2:21.2(i)', 'iso27001:A.8.2'] },
    { id: 'auditd-enabled', title: 'auditd', severity: 'high', frameworks: ['nis2:21.2(g)'] },
  ],
  hosts: [
    {
      hostname: 'web1',
      channel: 'prod',
      mode: 'enforce',
      frameworks: ['nis2', 'iso27001'],
      currentClosure: 'c1',
      controls: [
        { control: 'ssh-no-root-login', status: 'fail', result: 'fail', observed: 'PermitRootLogin yes', at: '2026-05-01T12:00:00Z', closure: 'c1', signed: true },
        { control: 'auditd-enabled', status: 'stale', result: 'pass', observed: 'auditd.service is active', at: '2026-04-01T12:00:00Z', closure: 'c0', signed: true },
      ],
    },
    {
      hostname: 'web2',
      channel: 'staging',
      mode: 'permissive',
      frameworks: ['nis2'],
      currentClosure: 'c2',
      controls: [
        { control: 'ssh-no-root-login', status: 'pass', result: 'pass', observed: 'PermitRootLogin no', at: '2026-05-01T12:00:00Z', closure: 'c2', signed: true },
        { control: 'auditd-enabled', status: 'missing', result: null, observed: null, at: null, closure: null, signed: false },
      ],
    },
    {
      hostname: 'web3',
      channel: 'staging',
      mode: 'permissive',
      frameworks: ['nis2'],
      currentClosure: 'c3',
      controls: [{ control: 'ssh-no-root-login', status: 'stale', result: 'fail', observed: 'PermitRootLogin yes', at: '2026-05-01T12:00:00Z', closure: 'c-rolled-back', signed: true }],
    },
  ],
  staticFailures: [{ host: 'web2', channel: 'staging', control: 'immutable-users', observed: 'users.mutableUsers = true' }],
};

t('tallies per framework (a control counts under each framework its host is held to), control and host; failures listed', () => {
  const r = complianceReport(VIEW);
  assert.equal(r.frameworks, [
    { framework: 'iso27001', pass: 0, fail: 1, error: 0, stale: 0, missing: 0 },
    { framework: 'nis2', pass: 1, fail: 1, error: 0, stale: 2, missing: 1 },
  ]);
  assert.equal(r.controls.map((c) => [c.control, c.fail, c.failing]), [['ssh-no-root-login', 1, ['web1']], ['auditd-enabled', 0, []]]);
  assert.equal(r.hosts.map((h) => [h.hostname, h.pass, h.fail, h.stale, h.missing]), [['web1', 0, 1, 1, 0], ['web2', 1, 0, 0, 1], ['web3', 0, 0, 1, 0]]);
  // The stale failure (evidence of a closure web3 rolled back from) is listed, flagged stale.
  assert.equal(r.failures.map((f) => [f.hostname, f.control, f.status, f.closure]), [['web1', 'ssh-no-root-login', 'fail', 'c1'], ['web3', 'ssh-no-root-login', 'stale', 'c-rolled-back']]);
  assert.ok(r.failing);
  assert.not.ok(complianceReport(VIEW, { host: 'web3' }).failing, 'a stale failure alone does not fail the command');
});

t('filters: --framework keeps the controls mapped to it, --channel / --host the hosts', () => {
  const iso = complianceReport(VIEW, { framework: 'iso27001' });
  assert.equal(iso.controls.map((c) => c.control), ['ssh-no-root-login']);
  const staging: ComplianceReport = complianceReport(VIEW, { channel: 'staging' });
  assert.equal(staging.hosts.map((h) => h.hostname), ['web2', 'web3']);
  assert.not.ok(staging.failing);
  assert.equal(complianceReport(VIEW, { host: 'web1' }).staticFailures, []);
});

t('render: the summary by framework / control / host, the failing controls with what was observed, the static failures', () => {
  const r = complianceReport(VIEW);
  const plain = makeStyle(false);
  const byFw = stripAnsi(renderCompliance(r, 'framework', plain));
  assert.match(byFw, /FRAMEWORK\s+PASS\s+FAIL\s+ERROR\s+STALE\s+MISSING/);
  assert.match(byFw, /nis2\s+1\s+1\s+0\s+2\s+1/);
  assert.match(byFw, /⚠\s+web3\s+ssh-no-root-login\s+PermitRootLogin yes \(stale: about c-rolled-back\)/);
  assert.match(byFw, /✗\s+web1\s+ssh-no-root-login\s+PermitRootLogin yes\s+nis2:21.2\(i\) iso27001:A.8.2/);
  assert.match(byFw, /web2\s+staging\s+immutable-users\s+users.mutableUsers = true/);
  assert.match(renderCompliance(r, 'control', plain), /ssh-no-root-login\s+high\s+1\s+1/);
  assert.match(renderCompliance(r, 'host', plain), /web1\s+prod\s+enforce/);
});

t('against the real CP: names the failing control and host, --json the same, exit 1; --by must be known', async () => {
  const env = await makeEnv();
  const fleet = sampleFleet({ hosts: 1, waves: 1, closures: true, withPubkeys: true });
  fleet.channels['stable']!.compliance = { frameworks: ['nis2'], mode: 'permissive' };
  env.publish(fleet);
  const cp = await startCp(env);
  const name = Object.keys(fleet.hosts)[0]!;
  const host = new Client(cp.url, env.ca.certPem, await env.hostCert(name));
  const opEnv = await operatorCliEnv(env, cp.url);
  const cli = (args: string[]) =>
    runCli(args, { cwd: env.dir, env: opEnv, now: env.clock.now });
  try {
    const closure = fakeClosure(name, 0);
    const rec = { schemaVersion: 1, hostname: name, control: 'ssh-no-root-login', result: 'fail', observed: 'no line of /etc/ssh/sshd_config matches', closure, bootId: 'b', rolloutId: null, at: new Date(env.clock.ms).toISOString() };
    const r = await host.call('POST', '/v1/agent/checkin', {
      hostname: name,
      currentClosure: closure,
      bootId: 'b',
      probes: [],
      failedUnits: [],
      lastOutcome: null,
      compliance: [{ record: rec, signature: hostKeyOf(0, name).sign(rec) }],
    });
    assert.is(r.status, 200, JSON.stringify(r.body));
    const text = await cli(['compliance']);
    assert.is(text.code, 1, text.stderr);
    assert.match(text.stdout, new RegExp(`${name}\\s+ssh-no-root-login\\s+no line of /etc/ssh/sshd_config matches`));
    const js = await cli(['compliance', '--json']);
    const report = JSON.parse(js.stdout) as ComplianceReport;
    assert.equal(report.failures.map((f) => [f.hostname, f.control]), [[name, 'ssh-no-root-login']]);
    assert.is((await cli(['compliance', '--by', 'nope'])).code, 2);
  } finally {
    await host.close();
    await cp.stop();
    env.cleanup();
  }
});

t.run();
