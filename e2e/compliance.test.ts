/**
 * Issue 15 acceptance with real processes (nixfleet-release, CP, agents, the operator CLI):
 *
 * - a channel in `enforce` whose new closure fails a runtime control (a fleet control carried in
 *   the signed release: a file check on the toy closure) → the canary ran the check before its
 *   confirm, the CP's health gate fails it → it rolls back, the rollout halts, the later wave is
 *   untouched, and `nixfleet compliance` names the control;
 * - the same in `permissive` → the rollout converges with the failure recorded;
 * - a static failure makes `nixfleet-release resolve` exit non-zero naming the host and control.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as assert from 'uvu/assert';
import type { Control } from '../protocol/compliance.ts';
import type { ComplianceMode } from '../protocol/schema.ts';
import { Fleet, holdFor } from './harness.ts';
import { run, tsxArgs } from './proc.ts';
import { nixfleetCli, scenarioSuite } from './scenario.ts';

const { s, register } = scenarioSuite('compliance', ['release-cli', 'push', 'control-plane', 'agent', 'cli']);
/** Every fleet started, stopped in `after` even when a scenario fails half-way. */
const fleets: Fleet[] = [];
const CANARY = 'canary-1';
const REST = ['rest-1', 'rest-2'];
const ALL = [CANARY, ...REST];

/**
 * The fleet's own control (soc2, which no built-in control maps to: the machine running the tests
 * is not a hardened NixOS host): the toy closure's nixos-version (`<host>-<label>`) must not say
 * "noncompliant". Read under each agent's complianceRoot (its host directory).
 */
const TOY_CONTROL: Control = {
  id: 'toy-release-compliant',
  title: 'The running toy release is not marked noncompliant',
  severity: 'high',
  frameworks: ['soc2:CC7.1'],
  static: null,
  runtime: { kind: 'file', path: '/current-system/nixos-version', notMatches: 'noncompliant' },
};

s.after(async () => {
  for (const f of fleets) await f.stop();
});

async function makeFleet(mode: ComplianceMode, complianceIntervalSecs: number): Promise<Fleet> {
  const f = await Fleet.create({
    name: `compliance-${mode}`,
    hosts: ALL.map((name) => ({ name, channel: 'prod', tags: name === CANARY ? ['canary'] : [] })),
    description: {
      channels: { prod: { rolloutPolicy: 'canary', freshnessWindow: 120, signingIntervalMinutes: 60, compliance: { frameworks: ['soc2'], mode } } },
      rolloutPolicies: {
        canary: { strategy: 'canary', waves: [{ selector: { tags: ['canary'] }, soakMinutes: 0 }, { selector: { all: true }, soakMinutes: 0 }], onHealthFailure: 'rollback-and-halt' },
      },
    },
    closures: { v1: 'ok', noncompliant: 'ok' },
    complianceReport: { schemaVersion: 1, controls: [TOY_CONTROL], hosts: {} },
    agent: { complianceIntervalSecs },
  });
  fleets.push(f);
  return f;
}

register('enforce: a closure failing a runtime control → canary rolls back, rollout halts, later wave untouched, `nixfleet compliance` names it', async () => {
  // Periodic checks far apart: the failing evidence stays the canary's newest until the CLI reads it.
  const f = await makeFleet('enforce', 3600);
  await f.release('v1');
  await f.startCp();
  await f.startAgents();
  await f.waitConverged('v1');

  await f.release('noncompliant', { message: 'fleet: a release that fails a compliance control' });
  await f.waitFor(`${CANARY} to activate the noncompliant closure and roll back to v1`, (observe) => {
    const log = f.switchLog(CANARY);
    observe(log);
    const i = log.indexOf(`${CANARY}-noncompliant switch`);
    return i >= 0 && log.slice(i + 1).includes(`${CANARY}-v1 switch`);
  });
  const halted = await f.waitFor('the prod rollout of the noncompliant closure to be Halted', async (observe) => {
    const r = await f.rolloutFor('prod', 'noncompliant');
    observe(r);
    return r?.state === 'Halted' ? r : undefined;
  });
  const canaryState = halted.hosts.find((h) => h.hostname === CANARY)?.state;
  assert.ok(canaryState === 'Failed' || canaryState === 'Reverted', `canary Failed, then Reverted once its rollback is reported (${canaryState})`);
  const trace = (await f.trace(halted.id)).events;
  assert.ok(trace.some((e) => e.hostname === CANARY && e.to === 'Failed' && e.reason.includes('compliance probes failing: toy-release-compliant')), JSON.stringify(trace.filter((e) => e.hostname === CANARY)));
  // Back on v1, and the CP knows it (the check-in after the rollback): the evidence about the closure
  // it rolled back from is then stale for `nixfleet compliance` below.
  await f.waitFor(`${CANARY} back on v1, on the host and on the CP`, async (observe) => {
    const cp = (await f.hostView(CANARY)).currentClosure;
    observe({ running: f.currentLabel(CANARY), cp });
    return f.currentLabel(CANARY) === 'v1' && cp === f.closure(CANARY, 'v1');
  });

  // The host-signed evidence is in the audit chain, verified under the host key.
  const audit = await f.audit();
  const ev = audit.find((e) => e.kind === 'host.evidence' && e.actor === `host:${CANARY}` && JSON.stringify(e.data).includes('toy-release-compliant'));
  assert.ok(ev !== undefined, 'evidence batch audited');
  assert.is((ev!.data as { verdict: string }).verdict, 'verified');

  // Offline: the audit export verifies, the host-signed evidence in it checked against the signed fleet's host keys.
  const exportFile = join(f.root, 'operator', 'audit.jsonl');
  assert.is((await nixfleetCli(f, ['audit', 'export', '--out', exportFile])).code, 0);
  const ver = await nixfleetCli(f, ['audit', 'verify', exportFile, '--fleet', join(f.forge.work, 'releases/fleet.resolved.json'), '--json']);
  assert.is(ver.code, 0, ver.stdout + ver.stderr);
  assert.ok((JSON.parse(ver.stdout) as { evidence: { verified: number } }).evidence.verified >= 1, ver.stdout);

  // The evidence packet of the run: exported, verified offline under the CI trust root, with the HTML page.
  const packet = join(f.root, 'operator', 'evidence.tar');
  const exp = await nixfleetCli(f, ['evidence', 'export', '--from', '2000-01-01T00:00:00Z', '--out', packet]);
  assert.is(exp.code, 0, exp.stdout + exp.stderr);
  const page = join(f.root, 'operator', 'evidence.html');
  const pv = await nixfleetCli(f, ['evidence', 'verify', packet, '--trust', join(f.cpDir, 'trust.json'), '--html', page, '--json']);
  assert.is(pv.code, 0, pv.stdout + pv.stderr);
  const summary = JSON.parse(pv.stdout) as { releases: unknown[]; activations: number; evidence: { verified: number }; cells: { host: string; control: string; status: string }[]; frameworks: { framework: string }[] };
  assert.ok(summary.releases.length >= 2, 'v1 and the noncompliant release were both in force');
  assert.ok(summary.activations >= 1 && summary.evidence.verified >= 1, pv.stdout);
  assert.ok(summary.frameworks.some((x) => x.framework === 'soc2'), pv.stdout);
  assert.match(readFileSync(page, 'utf8'), /toy-release-compliant/);

  // nixfleet compliance names the control (evidence about the closure it rolled back from: stale).
  const text = await nixfleetCli(f, ['compliance', '--by', 'control']);
  assert.match(text.stdout, /toy-release-compliant/, text.stdout + text.stderr);
  assert.match(text.stdout, new RegExp(`${CANARY}\\s+toy-release-compliant\\s+noncompliant \\(stale: about \\S+-nixos-system-${CANARY}-noncompliant\\)\\s+soc2:CC7.1`), text.stdout);
  const js = JSON.parse((await nixfleetCli(f, ['compliance', '--json'])).stdout) as { failures: { hostname: string; control: string; closure: string }[] };
  assert.ok(js.failures.some((x) => x.hostname === CANARY && x.control === 'toy-release-compliant' && x.closure === f.closure(CANARY, 'noncompliant')), JSON.stringify(js.failures));

  // Later wave: never dispatched, nothing activated.
  await holdFor('later-wave hosts untouched', 5000, async () => {
    for (const h of REST) {
      const log = f.switchLog(h);
      if (log.some((l) => !l.endsWith('-v1 switch'))) return `${h} ran ${JSON.stringify(log)}`;
      if (f.currentLabel(h) !== 'v1') return `${h} runs ${f.currentLabel(h)}`;
    }
    return null;
  });
  for (const h of REST) assert.not.ok(trace.some((e) => e.hostname === h && ['Dispatched', 'Activating', 'ConfirmWindow', 'Healthy'].includes(e.to)), `${h} never dispatched`);
  await f.stop();
});

register('permissive: the same closure converges, with the failure recorded and shown', async () => {
  const f = await makeFleet('permissive', 60);
  await f.release('v1');
  await f.startCp();
  await f.startAgents();
  await f.waitConverged('v1');
  await f.release('noncompliant');
  await f.waitConverged('noncompliant');
  const r = await f.rolloutFor('prod', 'noncompliant');
  await f.waitFor('the permissive rollout to converge', async () => (await f.rolloutFor('prod', 'noncompliant'))?.state === 'Converged');
  assert.ok(r !== undefined);
  const res = await nixfleetCli(f, ['compliance', '--json']);
  assert.is(res.code, 1, 'exit 1: controls fail (recorded, not enforced)');
  const js = JSON.parse(res.stdout) as { failures: { hostname: string; control: string; status: string }[] };
  assert.equal(js.failures.filter((x) => x.status === 'fail').map((x) => x.hostname).sort(), [...ALL].sort());
  await f.stop();
});

register('static gate: nixfleet-release resolve exits 1 naming the host and the control of an enforce channel', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'nixfleet-e2e-static-'));
  const desc = {
    hosts: { web1: { system: 'x86_64-linux', channel: 'prod' } },
    channels: { prod: { rolloutPolicy: 'p', compliance: { frameworks: ['soc2'], mode: 'enforce' } } },
    rolloutPolicies: { p: { waves: [{ selector: { all: true } }] } },
  };
  const own: Control = { ...TOY_CONTROL, id: 'toy-static', static: { option: 'services.toy.hardened', equals: true }, runtime: null };
  writeFileSync(join(dir, 'fleet.json'), JSON.stringify(desc));
  writeFileSync(join(dir, 'report.json'), JSON.stringify({ schemaVersion: 1, controls: [own], hosts: { web1: { 'toy-static': { result: 'fail', observed: 'services.toy.hardened = false; want true' } } } }));
  const r = await run(process.execPath, tsxArgs('release/main.ts', ['resolve', '--fleet', join(dir, 'fleet.json'), '--compliance-report', join(dir, 'report.json')]));
  rmSync(dir, { recursive: true, force: true });
  assert.is(r.code, 1, r.stderr);
  assert.match(r.stderr, /COMPLIANCE_STATIC_FAILED: host "web1" \(channel "prod", enforce\): static control "toy-static" failed: services.toy.hardened = false/);
});

s.run();
