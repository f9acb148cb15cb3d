/**
 * The static compliance gate of `resolve` (issue 15, release/static-gate.ts): enforce refuses with
 * the host, the control and what was seen; permissive resolves, warns and records the failures in
 * the artefact; disabled checks nothing; a control the report lacks counts as failed; the report
 * and the fleet's own controls are checked with stable codes. The CLI exits 1 naming host and
 * control. (nix-tests/compliance.test.ts holds lib/compliance.nix to the same output.)
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { CATALOGUE, controlsForFrameworks, presetFor } from '../protocol/compliance.ts';
import { parseFleetResolved } from '../protocol/schema.ts';
import { cmdResolve } from './cmd-resolve.ts';
import { resolveFleetInput, type Resolved } from './resolve.ts';
import { gateFleet, passingReport } from '../fixtures/compliance.ts';
import { applyStaticGate, NOT_IN_REPORT } from './static-gate.ts';

const resolved = (d: unknown): Resolved => {
  const r = resolveFleetInput(d);
  if (!r.ok) throw new Error(r.error.message);
  return r.value;
};
const code = (r: ReturnType<typeof applyStaticGate>): string => (r.ok ? 'OK' : r.error.code);

const s = suite('static compliance gate');

s('all pass: the artefact records an empty failure list and no own controls; it is a valid artefact', () => {
  const r = applyStaticGate(resolved(gateFleet()), passingReport());
  assert.ok(r.ok);
  if (!r.ok) return;
  assert.equal(r.value.fleet.compliance, { controls: [], staticFailures: [] });
  assert.equal(r.value.warnings, []);
  const p = parseFleetResolved(r.value.fleet);
  assert.ok(p.ok, p.ok ? '' : p.error.message);
});

s('enforce: a failing static control refuses, naming host, channel, control and the value seen', () => {
  const nis2Static = controlsForFrameworks(['nis2']).find((c) => c.static !== null)!;
  const r = applyStaticGate(resolved(gateFleet()), passingReport({ a: [nis2Static.id] }));
  assert.is(code(r), 'COMPLIANCE_STATIC_FAILED');
  if (r.ok) return;
  assert.is(r.error.message, `host "a" (channel "strict", enforce): static control "${nis2Static.id}" failed: ${nis2Static.static!.option} = "bad"`);
});

s('enforce: several failures: the first (host, then catalogue order) and a count', () => {
  const ids = presetFor('nis2').filter((id) => CATALOGUE.find((c) => c.id === id)!.static !== null);
  const r = applyStaticGate(resolved(gateFleet()), passingReport({ a: [ids[1]!, ids[0]!] }));
  assert.ok(!r.ok && r.error.message.includes(`"${ids[0]}"`) && r.error.message.endsWith('(and 1 more in enforce channels)'), r.ok ? '' : r.error.message);
});

s('enforce: a host missing from the report fails every static control of its frameworks', () => {
  const r = applyStaticGate(resolved(gateFleet()), passingReport({}, ['b', 'c']));
  assert.ok(!r.ok && r.error.code === 'COMPLIANCE_STATIC_FAILED' && r.error.message.includes(NOT_IN_REPORT), r.ok ? '' : r.error.message);
});

s('permissive: resolves, one warning per failure, failures recorded in the artefact; disabled ignores failures', () => {
  const iso = controlsForFrameworks(['iso27001']).filter((c) => c.static !== null).map((c) => c.id);
  const cis = controlsForFrameworks(['cis']).filter((c) => c.static !== null).map((c) => c.id);
  const r = applyStaticGate(resolved(gateFleet()), passingReport({ b: [iso[0]!], c: cis }));
  assert.ok(r.ok);
  if (!r.ok) return;
  assert.equal(r.value.fleet.compliance!.staticFailures, [{ host: 'b', channel: 'soft', control: iso[0]!, observed: `${CATALOGUE.find((c) => c.id === iso[0])!.static!.option} = "bad"` }]);
  assert.equal(r.value.warnings.filter((w) => w.includes('static control')), [`host "b" (channel "soft", permissive): static control "${iso[0]}" failed: ${CATALOGUE.find((c) => c.id === iso[0])!.static!.option} = "bad"`]);
});

s('the same failure in a channel flipped to permissive resolves', () => {
  const nis2Static = controlsForFrameworks(['nis2']).find((c) => c.static !== null)!;
  assert.is(code(applyStaticGate(resolved(gateFleet('permissive')), passingReport({ a: [nis2Static.id] }))), 'OK');
});

s("the fleet's own controls: checked, gated, and carried in the artefact; bad ones refused with codes", () => {
  const own = { id: 'motd-banner', title: 'Login banner', severity: 'low', frameworks: ['nis2:21.2(g)'], static: { option: 'users.motd', equals: 'authorised use only' }, runtime: { kind: 'file', path: '/etc/motd', matches: 'authorised' } };
  const rep = passingReport();
  rep.controls = [own];
  assert.is(code(applyStaticGate(resolved(gateFleet()), rep)), 'COMPLIANCE_STATIC_FAILED'); // no result for it on a
  rep.hosts['a']!['motd-banner'] = { result: 'pass', observed: 'users.motd = "authorised use only"' };
  const r = applyStaticGate(resolved(gateFleet()), rep);
  assert.ok(r.ok && r.value.fleet.compliance!.controls.length === 1 && r.value.fleet.compliance!.controls[0]!.id === 'motd-banner');
  assert.is(code(applyStaticGate(resolved(gateFleet()), { ...rep, controls: [{ ...own, id: 'ssh-no-root-login' }] })), 'DUPLICATE_CONTROL');
  assert.is(code(applyStaticGate(resolved(gateFleet()), { ...rep, controls: [{ ...own, frameworks: ['gdpr:1'] }] })), 'UNKNOWN_FRAMEWORK');
  assert.is(code(applyStaticGate(resolved(gateFleet()), { ...rep, controls: [{ ...own, runtime: { kind: 'shell' } }] })), 'CONTROL_INVALID');
});

s('an invalid report is COMPLIANCE_REPORT_INVALID with the path', () => {
  const r = applyStaticGate(resolved(gateFleet()), { schemaVersion: 1, controls: [], hosts: { a: { x: { result: 'maybe', observed: '' } } } });
  assert.ok(!r.ok && r.error.code === 'COMPLIANCE_REPORT_INVALID' && r.error.message.includes('$.hosts.a.x.result'), r.ok ? '' : r.error.message);
});

s('nixfleet-release resolve --compliance-report: exit 1 naming host and control in enforce; output recorded in permissive', () => {
  const d = mkdtempSync(join(tmpdir(), 'nixfleet-gate-'));
  const nis2Static = controlsForFrameworks(['nis2']).find((c) => c.static !== null)!;
  writeFileSync(join(d, 'fleet.json'), JSON.stringify(gateFleet()));
  writeFileSync(join(d, 'report.json'), JSON.stringify(passingReport({ a: [nis2Static.id] })));
  const err: string[] = [];
  const io = { stdout: () => {}, stderr: (s: string) => void err.push(s), readStdin: async () => new Uint8Array(), nowMs: () => 0, env: {} };
  assert.throws(() => cmdResolve(['--fleet', join(d, 'fleet.json'), '--compliance-report', join(d, 'report.json')], io), (e: Error) => e.message.startsWith('COMPLIANCE_STATIC_FAILED: host "a"') && e.message.includes(nis2Static.id));
  writeFileSync(join(d, 'fleet.json'), JSON.stringify(gateFleet('permissive')));
  assert.is(cmdResolve(['--fleet', join(d, 'fleet.json'), '--compliance-report', join(d, 'report.json'), '--out', join(d, 'out.json')], io), 0);
  const out = JSON.parse(readFileSync(join(d, 'out.json'), 'utf8')) as { compliance: { staticFailures: { host: string; control: string }[] } };
  assert.equal(out.compliance.staticFailures.map((f) => [f.host, f.control]), [['a', nis2Static.id]]);
  assert.ok(err.some((l) => l.startsWith('warning: host "a" (channel "strict", permissive)')));
  rmSync(d, { recursive: true, force: true });
});

s.run();
