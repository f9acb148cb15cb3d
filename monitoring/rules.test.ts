/**
 * monitoring/ (issue 18): the alert rules pass `promtool check rules`, their unit tests pass
 * `promtool test rules`, the CP's and the agent's exposition passes `promtool check metrics`, and
 * every metric the rules and the Grafana dashboard use is one the control plane or the agent
 * exports (so a renamed metric cannot leave a silent panel or an alert that never fires).
 * promtool comes from Debian's prometheus package (scripts/run.mjs installs it).
 */
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { AgentMetrics } from '../agent/metrics.ts';
import { CpMetrics } from '../control-plane/metrics.ts';

const DIR = import.meta.dirname;
const RULES = join(DIR, 'alerts.yml');

function promtool(args: string[], input?: string): { status: number; out: string } {
  const r = spawnSync('promtool', args, { cwd: DIR, encoding: 'utf8', timeout: 120_000, ...(input === undefined ? {} : { input }) });
  if (r.error !== undefined) throw new Error(`promtool: ${r.error.message} (install Debian's prometheus package; npm test does)`);
  return { status: r.status ?? 1, out: `${r.stdout}${r.stderr}` };
}

/** Every metric exposition of a CP with something in each labelled series, and of an agent after a few cycles. */
async function expositions(): Promise<{ cp: string; agent: string }> {
  const nowMs = Date.UTC(2026, 0, 10);
  const m = new CpMetrics(() => ({ hosts: { Idle: 2, Healthy: 1 }, rollouts: { Executing: 1, Halted: 0, stalled: 0 }, ready: true, artifacts: { fleet: nowMs - 3600_000 }, offline: 1, certs: { valid: 1, expiring: 1, expired: 0 } }), { processMetrics: true, now: () => nowMs });
  m.setCertificateExpiry('server', nowMs + 30 * 86_400_000);
  m.setCertificateExpiry('ca', nowMs + 3650 * 86_400_000);
  m.clientCertificate({ cn: 'web1', role: 'host', notAfterMs: nowMs + 20 * 86_400_000 });
  m.tlsFailure('no_certificate');
  m.reportRefusals.inc({ reason: 'quota' });
  m.checkins.inc({ result: 'ok' });
  m.verifyFailures.inc({ kind: 'fleet', code: 'SIGNATURE_INVALID' });
  m.artifactsAccepted.inc({ kind: 'fleet' });
  m.reconcileRuns.inc({ trigger: 'timer' });
  m.reconcileDuration.observe(0.01);
  m.requests.inc({ route: '/v1/hosts', status: '200' });
  m.reports.inc({ event: 'confirmed', verdict: 'valid' });
  m.certificates.inc({ what: 'renew', outcome: 'issued' });
  const a = new AgentMetrics('web1');
  a.observe({ outcome: { kind: 'activated', phase: 'idle', outcome: 'confirmed' }, failures: 0, phase: 'idle', nowMs });
  a.observe({ outcome: { kind: 'refused', code: 'QUARANTINED', message: 'x' }, failures: 0, phase: 'idle', nowMs });
  a.observe({ outcome: { kind: 'checkin-failed', error: { code: 'NETWORK', message: 'x' } }, failures: 1, phase: 'idle', nowMs });
  return { cp: (await m.text()).body, agent: await a.text() };
}

/** Sample names an exposition defines (histograms and summaries with their suffixes). */
function exported(text: string): Set<string> {
  const names = new Set<string>();
  for (const m of text.matchAll(/^# TYPE (\S+) (\S+)$/gm)) {
    const [name, type] = [m[1]!, m[2]!];
    names.add(name);
    if (type === 'histogram') for (const s of ['_bucket', '_sum', '_count']) names.add(name + s);
    if (type === 'summary') for (const s of ['_sum', '_count']) names.add(name + s);
  }
  return names;
}

/** Metric names in PromQL expressions: identifiers not followed by `(` that are not keywords, labels or functions. */
function metricNames(exprs: readonly string[]): Set<string> {
  const out = new Set<string>();
  for (const e of exprs) {
    const noLabels = e.replace(/\{[^}]*\}/g, '').replace(/\[[^\]]*\]/g, '').replace(/"[^"]*"/g, '');
    const noGroups = noLabels.replace(/\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)/g, '');
    for (const m of noGroups.matchAll(/\b([a-zA-Z_:][a-zA-Z0-9_:]*)\b(?!\s*\()/g)) {
      const id = m[1]!;
      if (/^(and|or|unless|bool|offset|le)$/.test(id) || /^\d/.test(id)) continue;
      out.add(id);
    }
  }
  return out;
}

const rulesExprs = (): string[] => [...readFileSync(RULES, 'utf8').matchAll(/^\s+expr: (.+)$/gm)].map((m) => m[1]!);
const dashboardExprs = (): string[] => {
  const d = JSON.parse(readFileSync(join(DIR, 'grafana-dashboard.json'), 'utf8')) as { panels: { title: string; targets: { expr: string }[] }[] };
  return d.panels.flatMap((p) => p.targets.map((t) => t.expr));
};

test('promtool check rules: the alert rules are valid', () => {
  const r = promtool(['check', 'rules', RULES]);
  assert.is(r.status, 0, r.out);
  assert.match(r.out, /SUCCESS: \d+ rules found/);
});

test('promtool test rules: each alert fires when it should and not before', () => {
  const r = promtool(['test', 'rules', 'alerts.test.yml']);
  assert.is(r.status, 0, r.out);
  assert.match(r.out, /SUCCESS/);
});

test('the expositions of the CP and the agent pass promtool check metrics', async () => {
  const { cp, agent } = await expositions();
  for (const [what, text] of [['cp', cp], ['agent', agent]] as const) {
    const r = promtool(['check', 'metrics'], text);
    assert.is(r.status, 0, `${what}: ${r.out}`);
  }
});

test('every metric the alert rules and the dashboard use is exported by the CP, the agent or Prometheus itself', async () => {
  const { cp, agent } = await expositions();
  const known = new Set([...exported(cp), ...exported(agent), 'up', 'time']);
  const used = metricNames([...rulesExprs(), ...dashboardExprs()]);
  assert.ok(used.size > 20, `found ${used.size} metric names: ${[...used].join(', ')}`);
  const unknown = [...used].filter((n) => !known.has(n));
  assert.equal(unknown, [], `not exported: ${unknown.join(', ')}`);
  // The alert list: stalled or halted rollout, hosts offline, verification failures, certificate expiry, CP not ready.
  const alerts = readFileSync(RULES, 'utf8');
  for (const name of ['NixfleetRolloutHalted', 'NixfleetRolloutStalled', 'NixfleetHostsOffline', 'NixfleetArtifactVerificationFailing', 'NixfleetServerCertificateExpiring', 'NixfleetHostCertificateExpiring', 'NixfleetControlPlaneNotReady']) {
    assert.match(alerts, `alert: ${name}\n`);
  }
});

test('the metric-name extraction finds names and skips labels, functions and keywords (a check that cannot be vacuous)', () => {
  const names = metricNames(['sum by (state) (rate(nixfleet_x_total{a="b"}[5m])) > 0 and on (instance) nixfleet_y', 'histogram_quantile(0.95, sum by (le) (rate(h_bucket[5m])))']);
  assert.equal([...names].sort(), ['h_bucket', 'nixfleet_x_total', 'nixfleet_y']);
});

test.run();
