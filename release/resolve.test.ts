import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { readCase } from '../fixtures/fleets/regenerate.ts';
import { canonicalize } from '../protocol/jcs.ts';
import { resolveFleet, resolveFleetInput } from './resolve.ts';
import { parseFleetResolved, type FleetDescription } from '../protocol/schema.ts';
import { pathToFileURL } from 'node:url';
import { interopDir, withInterop } from '../fixtures/interop.ts';

const FLEETS = fileURLToPath(new URL('../fixtures/fleets/', import.meta.url));
const INTEROP = (): URL => pathToFileURL(interopDir() + '/');
const canon = (v: unknown): string => {
  const c = canonicalize(v);
  if (!c.ok) throw new Error(c.error.message);
  return c.value;
};

const golden = suite('resolve: golden fixtures');
const goldenNames = readdirSync(join(FLEETS, 'golden')).sort();

golden('there are at least 7 golden cases', () => {
  assert.ok(goldenNames.length >= 7, String(goldenNames.length));
});

for (const name of goldenNames) {
  golden(`${name}: output equals expected.resolved.json after JCS, warnings match`, () => {
    const dir = join(FLEETS, 'golden', name);
    const r = resolveFleetInput(readCase(dir));
    assert.ok(r.ok, r.ok ? '' : `${r.error.code}: ${r.error.message}`);
    if (!r.ok) return;
    assert.is(canon(r.value.fleet), canon(JSON.parse(readFileSync(join(dir, 'expected.resolved.json'), 'utf8'))));
    assert.equal(r.value.warnings, JSON.parse(readFileSync(join(dir, 'expected-warnings.json'), 'utf8')));
    // The output is a valid artefact and a fixed point of parse → JCS.
    const p = parseFleetResolved(r.value.fleet);
    assert.ok(p.ok, p.ok ? '' : p.error.message);
    if (p.ok) assert.is(canon(p.value), canon(r.value.fleet));
    assert.is(r.value.fleet.meta.signedAt, null);
  });
}

withInterop(golden)('v1-every-nullable resolves to the NixFleet v1 every-nullable.canonical bytes', () => {
  const r = resolveFleetInput(readCase(join(FLEETS, 'golden', 'v1-every-nullable')));
  assert.ok(r.ok);
  if (r.ok) assert.is(canon(r.value.fleet), readFileSync(new URL('every-nullable.canonical', INTEROP()), 'utf8'));
});

const negative = suite('resolve: negative fixtures (SPEC §3.1)');
const negativeNames = readdirSync(join(FLEETS, 'negative')).sort();

for (const name of negativeNames) {
  negative(`${name}: refused with its code and message`, () => {
    const dir = join(FLEETS, 'negative', name);
    const want = JSON.parse(readFileSync(join(dir, 'expected-error.json'), 'utf8')) as { code: string; message: string };
    const r = resolveFleetInput(readCase(dir));
    assert.ok(!r.ok, 'resolved');
    if (r.ok) return;
    assert.is(r.error.code, want.code);
    assert.ok(r.error.message.includes(want.message), `${r.error.message} ∌ ${want.message}`);
  });
}

negative('every §3.1 error rule has its own negative fixture', () => {
  const codes = new Set(negativeNames.map((n) => (JSON.parse(readFileSync(join(FLEETS, 'negative', n, 'expected-error.json'), 'utf8')) as { code: string }).code));
  for (const c of ['UNKNOWN_CHANNEL', 'UNKNOWN_POLICY', 'CROSS_CHANNEL_EDGE', 'HOST_EDGE_CYCLE', 'CHANNEL_EDGE_CYCLE', 'FRESHNESS_WINDOW', 'HOST_WITHOUT_CHANNEL', 'DUPLICATE_HOST', 'DUPLICATE_CHANNEL', 'DUPLICATE_PIN', 'UNKNOWN_FRAMEWORK', 'BUDGET_NEVER_ADMITS']) {
    assert.ok(codes.has(c), c);
  }
});

const ex = suite('resolve: examples');

const base = (): FleetDescription => ({
  hosts: { b: { system: 'x86_64-linux', channel: 'c', tags: ['t'] }, a: { system: 'x86_64-linux', channel: 'c' } },
  channels: { c: { rolloutPolicy: 'p' } },
  rolloutPolicies: { p: { waves: [{ selector: { tags: ['t'] }, soakMinutes: 5 }, { selector: { hosts: ['zzz-none'] } }] } },
});

ex('unmatched hosts go to the last wave with a warning; empty waves are kept with a warning', () => {
  const d = base();
  d.rolloutPolicies['p']!.waves[1] = { selector: {} };
  const r = resolveFleet(d);
  assert.ok(r.ok);
  if (!r.ok) return;
  assert.equal(r.value.fleet.waves['c'], [{ hosts: ['b'], soakMinutes: 5 }, { hosts: ['a'], soakMinutes: 0 }]);
  assert.equal(r.value.warnings, ['channel "c": host "a" matches no wave of policy "p"; placed in the last wave']);
  const d2 = base();
  d2.rolloutPolicies['p']!.waves = [{ selector: { all: true } }, { selector: { tags: ['t'] } }];
  const r2 = resolveFleet(d2);
  assert.ok(r2.ok && r2.value.fleet.waves['c']![1]!.hosts.length === 0 && r2.value.warnings[0]!.includes('wave 1 of policy "p" matches no host'));
});

ex('a selector naming an unknown host is refused; a self-edge is a cycle', () => {
  const r = resolveFleet(base());
  assert.ok(!r.ok && r.error.code === 'UNKNOWN_HOST' && r.error.message.includes('zzz-none'));
  const d = base();
  d.rolloutPolicies['p']!.waves[1] = { selector: { all: true } };
  d.edges = [{ gates: 'a', gated: 'a' }];
  const c = resolveFleet(d);
  assert.ok(!c.ok && c.error.code === 'HOST_EDGE_CYCLE');
});

ex('a long edge chain (10,000 hosts) is checked without stack overflow', () => {
  const d: FleetDescription = { hosts: {}, channels: { c: { rolloutPolicy: 'p' } }, rolloutPolicies: { p: { waves: [{ selector: { all: true } }] } }, edges: [] };
  const n = (i: number) => `h${String(i).padStart(5, '0')}`;
  for (let i = 0; i < 10_000; i++) d.hosts[n(i)] = { system: 's', channel: 'c' };
  for (let i = 1; i < 10_000; i++) d.edges!.push({ gates: n(i - 1), gated: n(i) });
  assert.ok(resolveFleet(d).ok);
  d.edges!.push({ gates: n(9999), gated: n(0) });
  const r = resolveFleet(d);
  assert.ok(!r.ok && r.error.code === 'HOST_EDGE_CYCLE');
});

ex('resolveFleet does not mutate its input', () => {
  const d = base();
  d.rolloutPolicies['p']!.waves[1] = { selector: { all: true } };
  const before = JSON.stringify(d);
  const r = resolveFleet(d);
  assert.ok(r.ok);
  if (r.ok) r.value.fleet.hosts['a']!.tags.push('mutated');
  assert.is(JSON.stringify(d), before);
});

golden.run();
negative.run();
ex.run();
