/**
 * Acceptance (issue 8, SPEC §9): `nix eval --json` of `lib.mkFleet` over each golden fleet
 * fixture gives JSON whose JCS bytes equal `nixfleet-release resolve`'s (expected.resolved.json,
 * which release/resolve.test.ts holds to resolve.ts), with the same warnings; each negative
 * fixture fails evaluation with its expected code and message. Plus: the example fleet, and the
 * flake's `lib` output evaluated with nixpkgs replaced by an empty flake (so `lib` provably never
 * touches nixpkgs).
 */
import { spawnSync } from 'node:child_process';
import { cpSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { caseFiles } from '../fixtures/fleets/regenerate.ts';
import { canonicalize } from '../protocol/jcs.ts';
import { resolveFleetInput } from '../release/resolve.ts';
import { nixEvalJson, nixString, ROOT } from './nix.ts';

const FLEETS = join(ROOT, 'fixtures/fleets');

const canon = (v: unknown): string => {
  const c = canonicalize(v);
  if (!c.ok) throw new Error(c.error.message);
  return c.value;
};

type NixResult = { ok: boolean; stdout: string; stderr: string };

/** `nix eval --json --expr EXPR` (Nix 2.8: the new CLI needs the nix-command feature). */
function nixEval(expr: string, extra: string[] = []): NixResult {
  const r = spawnSync('nix', ['--extra-experimental-features', 'nix-command', 'eval', '--json', '--impure', ...extra, '--expr', expr], {
    cwd: ROOT,
    encoding: 'utf8',
    maxBuffer: 64 * 1024 * 1024,
    env: { ...process.env, NIX_PATH: '' },
  });
  if (r.error) throw r.error;
  return { ok: r.status === 0, stdout: r.stdout, stderr: r.stderr };
}

/** The Nix expression for a case: one file is one description, several are merged in order. */
function caseExpr(dir: string): string {
  const files = caseFiles(dir).map((f) => `(builtins.fromJSON (builtins.readFile ${nixString(join(dir, f))}))`);
  const arg = files.length === 1 ? files[0]! : `[ ${files.join(' ')} ]`;
  return `import ${nixString(join(ROOT, 'lib/mkFleet.nix'))} ${arg}`;
}

/** mkFleet's warnings, from its `builtins.trace` lines on stderr. */
function tracedWarnings(stderr: string): string[] {
  const prefix = 'trace: warning: nixfleet.mkFleet: ';
  return stderr.split('\n').filter((l) => l.startsWith(prefix)).map((l) => l.slice(prefix.length));
}

// ---------------------------------------------------------------------------------------------

const golden = suite('mkFleet: golden fixtures');
const goldenNames = readdirSync(join(FLEETS, 'golden')).sort();

golden('the golden fixtures are there (at least 7 cases)', () => {
  assert.ok(goldenNames.length >= 7, `only ${goldenNames.length}`);
});

for (const name of goldenNames) {
  golden(`${name}: nix eval JCS bytes equal expected.resolved.json and resolve.ts; same warnings`, () => {
    const dir = join(FLEETS, 'golden', name);
    const r = nixEval(caseExpr(dir));
    assert.ok(r.ok, r.stderr);
    const nixBytes = canon(JSON.parse(r.stdout));
    assert.is(nixBytes, canon(JSON.parse(readFileSync(join(dir, 'expected.resolved.json'), 'utf8'))));
    const files = caseFiles(dir).map((f) => JSON.parse(readFileSync(join(dir, f), 'utf8')) as unknown);
    const ts = resolveFleetInput(files);
    assert.ok(ts.ok);
    if (ts.ok) assert.is(nixBytes, canon(ts.value.fleet));
    assert.equal(tracedWarnings(r.stderr), JSON.parse(readFileSync(join(dir, 'expected-warnings.json'), 'utf8')));
  });
}

const negative = suite('mkFleet: negative fixtures (SPEC §3.1)');
const negativeNames = readdirSync(join(FLEETS, 'negative')).sort();

negative('the negative fixtures are there (at least 13 cases)', () => {
  assert.ok(negativeNames.length >= 13, `only ${negativeNames.length}`);
});

for (const name of negativeNames) {
  negative(`${name}: evaluation fails with its code and message`, () => {
    const dir = join(FLEETS, 'negative', name);
    const expected = JSON.parse(readFileSync(join(dir, 'expected-error.json'), 'utf8')) as { code: string; message: string };
    const r = nixEval(caseExpr(dir));
    assert.not.ok(r.ok, `evaluation succeeded:\n${r.stdout}`);
    const line = r.stderr.split('\n').find((l) => l.startsWith('error: nixfleet.mkFleet: '));
    assert.ok(line !== undefined, `no mkFleet error in:\n${r.stderr}`);
    assert.ok(line!.startsWith(`error: nixfleet.mkFleet: ${expected.code}: `), line);
    assert.ok(line!.includes(expected.message), `${line}\n  does not contain\n${expected.message}`);
  });
}

// ---------------------------------------------------------------------------------------------

const example = suite('examples/fleet.nix');

example('resolves in Nix to the bytes resolve.ts gives for the same description', () => {
  const desc = nixEvalJson('import ./examples/fleet.nix');
  const viaNix = nixEvalJson('import ./lib/mkFleet.nix (import ./examples/fleet.nix)');
  const ts = resolveFleetInput(desc);
  assert.ok(ts.ok, ts.ok ? '' : ts.error.message);
  if (!ts.ok) return;
  assert.is(canon(viaNix), canon(ts.value.fleet));
  assert.equal(ts.value.warnings, []);
  // 4 hosts, 2 channels, canary then the rest.
  assert.is(Object.keys(ts.value.fleet.hosts).length, 4);
  assert.equal(Object.keys(ts.value.fleet.channels).sort(), ['edge', 'stable']);
  assert.equal(ts.value.fleet.waves['stable'], [
    { hosts: ['web1'], soakMinutes: 30 },
    { hosts: ['db1', 'web2'], soakMinutes: 10 },
  ]);
});

// ---------------------------------------------------------------------------------------------

const flake = suite('flake.nix outputs without nixpkgs');

/** `nix eval` of the flake (copied to a temp dir) with its nixpkgs input replaced by an empty flake. */
function evalFlake(attr: string, apply: string): NixResult {
  const dir = mkdtempSync(join(tmpdir(), 'nixfleet-flake-'));
  try {
    const src = join(dir, 'src');
    const stub = join(dir, 'stub');
    for (const p of ['flake.nix', 'lib', 'modules', 'nix']) cpSync(join(ROOT, p), join(src, p), { recursive: true });
    cpSync(join(ROOT, 'package.json'), join(src, 'package.json'));
    mkdirSync(stub);
    writeFileSync(join(stub, 'flake.nix'), '{ outputs = _: { }; }\n');
    const r = spawnSync(
      'nix',
      ['--extra-experimental-features', 'nix-command flakes', 'eval', '--json', '--no-write-lock-file', '--override-input', 'nixpkgs', `path:${stub}`, `path:${src}#${attr}`, '--apply', apply],
      { cwd: dir, encoding: 'utf8', env: { ...process.env, NIX_PATH: '' } },
    );
    if (r.error) throw r.error;
    return { ok: r.status === 0, stdout: r.stdout, stderr: r.stderr };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

flake('lib.mkFleet evaluates through the flake with an empty nixpkgs, same bytes as lib/mkFleet.nix', () => {
  const desc = nixEvalJson('import ./examples/fleet.nix');
  const r = evalFlake('lib', `lib: lib.mkFleet (builtins.fromJSON ${nixString(JSON.stringify(desc))})`);
  assert.ok(r.ok, r.stderr);
  assert.is(canon(JSON.parse(r.stdout)), canon(nixEvalJson('import ./lib/mkFleet.nix (import ./examples/fleet.nix)')));
});

flake('the flake exposes the modules as module functions, packages for four systems, and lib', () => {
  const isFn = 'builtins.mapAttrs (_: builtins.isFunction)';
  const get = (attr: string, apply: string): unknown => {
    const r = evalFlake(attr, apply);
    assert.ok(r.ok, r.stderr);
    return JSON.parse(r.stdout);
  };
  assert.equal(get('nixosModules', isFn), { agent: true, 'control-plane': true });
  assert.equal(get('darwinModules', isFn), { agent: true });
  assert.equal(get('packages', 'builtins.attrNames'), ['aarch64-darwin', 'aarch64-linux', 'x86_64-darwin', 'x86_64-linux']);
  assert.equal(get('packages.x86_64-linux', 'builtins.attrNames'), ['default', 'nixfleet', 'nixfleet-agent', 'nixfleet-control-plane', 'nixfleet-release']);
  assert.equal(get('lib', 'builtins.attrNames'), ['compliance', 'mkFleet', 'mkFleetJSON', 'nixfleetV1', 'resolveFleet']);
});

flake('building a package does need nixpkgs (so the tests above really ran without it)', () => {
  const r = evalFlake('packages.x86_64-linux', 'p: p.nixfleet-agent.name');
  assert.not.ok(r.ok, r.stdout);
  assert.match(r.stderr, /legacyPackages/);
});

golden.run();
negative.run();
example.run();
flake.run();
