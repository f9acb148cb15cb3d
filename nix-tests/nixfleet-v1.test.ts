/**
 * Acceptance (issue 21): `lib.nixfleetV1` takes NixFleet v1 fleet definitions as they are. Each
 * fixture under fixtures/fleets-v1/ (ours, of the shapes of v1's tests/lib/mk-fleet suite) runs the
 * way v1's own harness runs one: `import fixture { inherit lib mkFleet mergeFleets; }`, then
 * `.resolved` compared with the golden file (here after JCS), and for a negative fixture
 * `builtins.tryEval` of `.resolved` must fail. Real `nix-instantiate`, builtins only.
 */
import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { canonicalize } from '../protocol/jcs.ts';
import { nixEvalJson, nixInstantiate, nixString, ROOT } from './nix.ts';

const FIXTURES = join(ROOT, 'fixtures/fleets-v1');

const canon = (v: unknown): string => {
  const c = canonicalize(v);
  if (!c.ok) throw new Error(c.error.message);
  return c.value;
};

/** The fixture, imported as v1's harness imports it, with the flake's lib.nixfleetV1. */
const fixture = (dir: string): string =>
  `(let v1 = (import ${nixString(join(ROOT, 'lib'))} { }).nixfleetV1; in import ${nixString(join(dir, 'fleet.nix'))} { lib = { }; inherit (v1) mkFleet mergeFleets; })`;

/** The warnings, from `builtins.trace "warning: …"` on stderr (a warning may span lines). */
const tracedWarnings = (stderr: string): string[] =>
  stderr
    .split(/^trace: warning: /m)
    .slice(1)
    .map((s) => s.replace(/\n$/, ''));

// ---------------------------------------------------------------------------------------------

const golden = suite('nixfleetV1: golden fixtures');
const goldenNames = readdirSync(join(FIXTURES, 'golden')).sort();

golden('the golden fixtures are there (at least 7 cases)', () => {
  assert.ok(goldenNames.length >= 7, `only ${goldenNames.length}`);
});

for (const name of goldenNames) {
  golden(`${name}: .resolved has the JCS bytes of expected.resolved.json, with the same warnings`, () => {
    const dir = join(FIXTURES, 'golden', name);
    const r = nixInstantiate(['--eval', '--strict', '--json', '--expr', `${fixture(dir)}.resolved`]);
    assert.ok(r.ok, r.stderr);
    assert.is(canon(JSON.parse(r.stdout)), canon(JSON.parse(readFileSync(join(dir, 'expected.resolved.json'), 'utf8'))));
    assert.equal(tracedWarnings(r.stderr), JSON.parse(readFileSync(join(dir, 'expected-warnings.json'), 'utf8')));
  });
}

const negative = suite('nixfleetV1: negative fixtures');
const negativeNames = readdirSync(join(FIXTURES, 'negative')).sort();

negative('the negative fixtures are there (at least 9 cases)', () => {
  assert.ok(negativeNames.length >= 9, `only ${negativeNames.length}`);
});

for (const name of negativeNames) {
  negative(`${name}: builtins.tryEval of .resolved fails, and the error says why`, () => {
    const dir = join(FIXTURES, 'negative', name);
    const { message } = JSON.parse(readFileSync(join(dir, 'expected-error.json'), 'utf8')) as { message: string };
    // v1's harness: a failure must be a `throw` (catchable), not an evaluation crash.
    const caught = nixInstantiate(['--eval', '--json', '--expr', `if (builtins.tryEval ${fixture(dir)}.resolved).success then "evaluated" else "caught"`]);
    assert.ok(caught.ok, caught.stderr);
    assert.is(JSON.parse(caught.stdout), 'caught');
    const r = nixInstantiate(['--eval', '--strict', '--json', '--expr', `${fixture(dir)}.resolved`]);
    assert.not.ok(r.ok, r.stdout);
    // Nix indents the continuation lines of a multi-line error message.
    const error = r.stderr.replace(/\n {7}/g, '\n');
    assert.ok(error.includes(message), `${r.stderr}\n  does not contain\n${message}`);
  });
}

// ---------------------------------------------------------------------------------------------

const shape = suite('nixfleetV1: what mkFleet returns');

shape('the definition with its defaults, plus resolved, revocations and bootstrapNonces (as v1)', () => {
  const dir = join(FIXTURES, 'golden', 'v1-defaults');
  const names = nixEvalJson(`builtins.attrNames ${fixture(dir)}`);
  assert.equal(names, ['bootstrapNonces', 'channelEdges', 'channels', 'complianceFrameworks', 'disruptionBudgets', 'edges', 'hosts', 'resolved', 'revocations', 'rolloutPolicies', 'tags']);
  const r = nixEvalJson(`let f = ${fixture(dir)}; in { inherit (f) complianceFrameworks revocations; mode = f.channels.main.compliance.mode; hasConfiguration = f.hosts.solo ? configuration; }`);
  assert.equal(r, { complianceFrameworks: ['anssi-bp028', 'nis2', 'dora', 'iso27001'], revocations: [], mode: 'enforce', hasConfiguration: true });
});

shape('revocations are checked and defaulted like v1', () => {
  const expr = (rev: string): string =>
    `(let v1 = (import ./lib { }).nixfleetV1; in (v1.mkFleet { revocations = [ ${rev} ]; }).revocations)`;
  assert.equal(nixEvalJson(expr('{ hostname = "h"; notBefore = "2026-01-01T00:00:00Z"; }')), [{ hostname: 'h', notBefore: '2026-01-01T00:00:00Z', reason: null, revokedBy: null }]);
  const bad = nixInstantiate(['--eval', '--strict', '--json', '--expr', expr('{ hostname = "h"; }')]);
  assert.not.ok(bad.ok);
  assert.match(bad.stderr, /The option `revocations\.\[definition 1-entry 1\]\.notBefore' was accessed but has no value defined/);
});

shape('a module function is refused with a clear message, not a crash', () => {
  const r = nixInstantiate(['--eval', '--json', '--expr', '(builtins.tryEval ((import ./lib { }).nixfleetV1.mkFleet ({ ... }: { })).resolved).success']);
  assert.ok(r.ok, r.stderr);
  assert.is(JSON.parse(r.stdout), false);
});

golden.run();
negative.run();
shape.run();
