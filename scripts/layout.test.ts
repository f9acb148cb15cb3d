/**
 * The repository's layout rules (README "Layout", docs/architecture.md), checked on every
 * `npm test` so that a boundary cannot erode silently:
 *
 * - the programs `agent/`, `cli/`, `control-plane/` do not import each other or `fixtures/`
 *   (test files excepted: they may drive a real peer);
 * - `agent/` reaches nothing of `control-plane/`, not even through another folder (non-test files);
 * - `protocol/` and `reconciler/` are pure: no I/O module, no clock, no randomness, no process;
 *   `protocol/` imports nothing outside itself, `reconciler/` nothing but `protocol/`;
 * - test support lives in `fixtures/`, not in product folders;
 * - one PKI library (issue 16): nothing imports node-forge, and only `pki/` imports @peculiar/x509,
 *   through `pki/x509-lib.ts` (which loads reflect-metadata and sets the crypto provider first);
 * - no product source file is over 500 lines.
 */
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join, relative, resolve, dirname } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';

const ROOT = resolve(import.meta.dirname, '..');
const PROGRAMS = ['agent', 'cli', 'control-plane'] as const;
const PRODUCT = ['protocol', 'io', 'pki', 'release', 'reconciler', ...PROGRAMS] as const;
const isTest = (f: string): boolean => f.endsWith('.test.ts');

function tsFiles(dir: string): string[] {
  const out: string[] = [];
  for (const name of readdirSync(join(ROOT, dir))) {
    const rel = join(dir, name);
    if (statSync(join(ROOT, rel)).isDirectory()) out.push(...tsFiles(rel));
    else if (name.endsWith('.ts') || name.endsWith('.tsx')) out.push(rel);
  }
  return out;
}

/** Every module specifier a file imports or re-exports (static and dynamic). */
function specifiers(file: string): string[] {
  const src = readFileSync(join(ROOT, file), 'utf8');
  const out: string[] = [];
  for (const m of src.matchAll(/(?:^|\n)\s*(?:import|export)\b[^'";]*?from\s*['"]([^'"]+)['"]/g)) out.push(m[1]!);
  for (const m of src.matchAll(/(?:^|\n)\s*import\s*['"]([^'"]+)['"]/g)) out.push(m[1]!);
  for (const m of src.matchAll(/\bimport\(\s*['"]([^'"]+)['"]\s*\)/g)) out.push(m[1]!);
  return out;
}

/** The top-level folder a relative specifier lands in, or null for a package / node: module. */
function folderOf(file: string, spec: string): string | null {
  if (!spec.startsWith('.')) return null;
  return relative(ROOT, resolve(ROOT, dirname(file), spec)).split('/')[0] ?? null;
}

const product = (dir: string): string[] => tsFiles(dir).filter((f) => !isTest(f));

test('programs do not import each other or fixtures/ (non-test files)', () => {
  const bad: string[] = [];
  for (const p of PROGRAMS) {
    for (const f of product(p)) {
      for (const s of specifiers(f)) {
        const to = folderOf(f, s);
        if (to !== null && to !== p && ([...PROGRAMS, 'fixtures', 'e2e', 'bench'] as string[]).includes(to)) bad.push(`${f} -> ${s}`);
      }
    }
  }
  assert.equal(bad, []);
});

const IO_MODULES = /^(node:)?(fs|fs\/promises|net|tls|http|https|http2|child_process|dgram|dns|os|process|worker_threads|cluster|readline|v8|vm)$|^(undici|better-sqlite3|pg|hono|@hono\/node-server|@peculiar\/[^/]+|reflect-metadata)(\/|$)/;
const IMPURE = [/\bDate\.now\(/, /\bnew Date\(\)/, /\bMath\.random\(/, /\bprocess\./, /\bperformance\.now\(/];

for (const [dir, allowed] of [
  ['protocol', ['protocol']],
  ['reconciler', ['reconciler', 'protocol']],
] as const) {
  test(`${dir}/ is pure: no I/O module, no clock, no randomness, imports only ${allowed.join(' + ')}`, () => {
    const bad: string[] = [];
    for (const f of product(dir)) {
      for (const s of specifiers(f)) {
        if (IO_MODULES.test(s)) bad.push(`${f} imports ${s}`);
        const to = folderOf(f, s);
        if (to !== null && !(allowed as readonly string[]).includes(to)) bad.push(`${f} imports ${s}`);
      }
      const src = readFileSync(join(ROOT, f), 'utf8').replace(/\/\*[\s\S]*?\*\/|\/\/.*$/gm, '');
      for (const re of IMPURE) if (re.test(src)) bad.push(`${f} uses ${re.source}`);
    }
    assert.equal(bad, []);
  });
}

test('the agent reaches nothing of control-plane/, not even indirectly (non-test files)', () => {
  // The agent trusts only its own verification (SPEC §6): no CP code may end up in the shipped
  // agent, also not through protocol/, io/, pki/ or release/. Follows relative imports
  // transitively from every non-test agent/ file. (Test files may drive a real CP, as
  // agent/client.test.ts does through fixtures/cp-testing.ts.)
  const bad: string[] = [];
  const seen = new Set<string>();
  const visit = (file: string, from: string): void => {
    if (seen.has(file)) return;
    seen.add(file);
    for (const s of specifiers(file)) {
      if (!s.startsWith('.')) continue;
      const target = relative(ROOT, resolve(ROOT, dirname(file), s));
      if (target.split('/')[0] === 'control-plane') bad.push(`${from}: ${file} -> ${s}`);
      else if (/\.tsx?$/.test(target)) visit(target, from);
    }
  };
  for (const f of product('agent')) visit(f, f);
  assert.equal(bad, []);
});

test('test support lives in fixtures/, not in product folders', () => {
  const bad = PRODUCT.flatMap((d) => product(d)).filter((f) => /(^|\/)(testing|testkit|harness|fake-[^/]*)\.ts$/.test(f));
  assert.equal(bad, []);
});

test('one PKI library: no node-forge anywhere, @peculiar/x509 only through pki/x509-lib.ts', () => {
  const bad: string[] = [];
  const all = [...PRODUCT, 'fixtures', 'e2e', 'bench', 'scripts', 'nix-tests'].flatMap((d) => tsFiles(d));
  for (const f of all) {
    for (const s of specifiers(f)) {
      if (/^node-forge(\/|$)/.test(s)) bad.push(`${f} -> ${s}`);
      if (s === '@peculiar/x509' && f !== 'pki/x509-lib.ts') bad.push(`${f} -> ${s} (import { x509 } from pki/x509-lib.ts)`);
    }
  }
  assert.equal(bad, []);
  const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as Record<string, Record<string, string> | undefined>;
  const deps = [...Object.keys(pkg['dependencies'] ?? {}), ...Object.keys(pkg['devDependencies'] ?? {})];
  assert.equal(deps.filter((d) => /node-forge/.test(d)), []);
});

test('no product source file over 500 lines', () => {
  const big = PRODUCT.flatMap((d) => product(d))
    .map((f) => ({ f, lines: readFileSync(join(ROOT, f), 'utf8').split('\n').length }))
    .filter((x) => x.lines > 500)
    .map((x) => `${x.f} (${x.lines} lines)`);
  assert.equal(big, []);
});

test.run();
