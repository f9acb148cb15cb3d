/**
 * The compliance catalogue (protocol/compliance.ts, issue 15): at least 20 valid controls with
 * unique ids, known frameworks only, a preset per framework, fleet controls merged with their
 * refusals, and the evidence record's schema.
 */
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { CATALOGUE, ControlSchema, controlsForFrameworks, evidenceRecordValidator, mergeCatalogue, presetFor } from './compliance.ts';
import { KNOWN_FRAMEWORKS } from './description.ts';
import { compile } from './validate.ts';

const s = suite('compliance catalogue');
const control = compile(ControlSchema);

s('at least 20 built-in controls, each valid, ids unique, frameworks known, with a static or runtime half', () => {
  assert.ok(CATALOGUE.length >= 20, `${CATALOGUE.length} controls`);
  const ids = new Set<string>();
  for (const c of CATALOGUE) {
    assert.ok(control.check(c), `${c.id}: ${JSON.stringify(control.issues(c))}`);
    assert.not.ok(ids.has(c.id), `duplicate ${c.id}`);
    ids.add(c.id);
    for (const f of c.frameworks) assert.ok(KNOWN_FRAMEWORKS.includes(f.slice(0, f.indexOf(':'))), `${c.id}: ${f}`);
    assert.ok(c.static !== null || c.runtime !== null, `${c.id} checks nothing`);
    for (const re of [c.runtime?.kind === 'file' ? c.runtime.matches : undefined, c.runtime?.kind === 'file' ? c.runtime.notMatches : undefined]) {
      if (re !== undefined) new RegExp(re, 'm');
    }
  }
});

s('the settings the issue names are covered', () => {
  for (const id of ['ssh-no-root-login', 'ssh-no-password-auth', 'firewall-enabled', 'auditd-enabled', 'journald-persistent', 'time-sync', 'kernel-kptr-restrict', 'etc-no-world-writable', 'automatic-rollback']) {
    assert.ok(CATALOGUE.some((c) => c.id === id), id);
  }
});

s('a preset per framework the regulated operators name; the union for a channel', () => {
  for (const f of ['nis2', 'dora', 'iso27001', 'anssi-bp028', 'cis']) assert.ok(presetFor(f).length >= 3, f);
  const both = controlsForFrameworks(['nis2', 'dora']).map((c) => c.id);
  assert.ok(presetFor('nis2').every((id) => both.includes(id)));
  assert.ok(presetFor('dora').every((id) => both.includes(id)));
  assert.equal(controlsForFrameworks([]), []);
});

s('fleet controls merge in; invalid, duplicate or unknown-framework controls are refused with a code', () => {
  const own = { id: 'motd-banner', title: 'Login banner', severity: 'low', frameworks: ['iso27001:A.5.10'], static: null, runtime: { kind: 'file', path: '/etc/motd', matches: 'authorised' } };
  const r = mergeCatalogue([own]);
  assert.ok(r.ok && r.value.length === CATALOGUE.length + 1);
  const code = (x: ReturnType<typeof mergeCatalogue>) => (x.ok ? 'OK' : x.error.code);
  assert.is(code(mergeCatalogue([{ ...own, id: 'ssh-no-root-login' }])), 'DUPLICATE_CONTROL');
  assert.is(code(mergeCatalogue([{ ...own, frameworks: ['made-up:1'] }])), 'UNKNOWN_FRAMEWORK');
  assert.is(code(mergeCatalogue([{ ...own, runtime: { kind: 'exec', argv: [] } }])), 'CONTROL_INVALID');
  assert.is(code(mergeCatalogue([{ ...own, runtime: { kind: 'shell', cmd: 'true' } }])), 'CONTROL_INVALID');
  assert.is(code(mergeCatalogue([own, own])), 'DUPLICATE_CONTROL');
});

s('evidence records: the schema accepts a record and refuses extra or missing fields', () => {
  const rec = { schemaVersion: 1, hostname: 'web1', control: 'ssh-no-root-login', result: 'pass', observed: 'PermitRootLogin no', closure: null, bootId: 'b1', rolloutId: null, at: '2026-05-01T12:00:00Z' };
  assert.ok(evidenceRecordValidator.check(rec));
  assert.not.ok(evidenceRecordValidator.check({ ...rec, extra: 1 }));
  assert.not.ok(evidenceRecordValidator.check({ ...rec, result: 'maybe' }));
  const { at: _at, ...noAt } = rec;
  assert.not.ok(evidenceRecordValidator.check(noAt));
});

s.run();
