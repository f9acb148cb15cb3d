/**
 * The one test command (`npm test`): type-check, then every uvu / fast-check test file in its own
 * process, then one closing line `N passed, N failed` with the real counts summed from uvu's own
 * summaries. A file that crashes, times out or prints no uvu summary (a suite without `.run()`)
 * counts as a failure, so a silent file cannot pass.
 *
 * Flags: `--no-e2e` skips e2e/, `--only DIR` runs only files under DIR, `--filter TEXT` only files
 * whose path contains TEXT.
 *
 * Store backends: every unit test file that starts a real control plane (fixtures/cp-testing.ts
 * `startCp(`) runs twice, on SQLite and on PostgreSQL (NIXFLEET_TEST_STORE=postgres: a throwaway
 * cluster per file, fixtures/postgres.ts); NIXFLEET_TEST_BACKENDS=sqlite runs SQLite only.
 */
import { spawn, spawnSync } from 'node:child_process';
import { readFileSync, readdirSync, statSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';

const ROOT = process.cwd();
const SKIP_DIRS = new Set(['node_modules', '.git', 'tmp', '.bench-cache', '.cache']);
const UNIT_TIMEOUT_MS = 10 * 60_000;
const E2E_TIMEOUT_MS = 30 * 60_000;

/** A test file run a second time on the PostgreSQL store. */
const PG_TAG = ' [postgres]';

type FileResult = { file: string; passed: number; failed: number; skipped: number; output: string; ms: number };

function parseArgs(argv: string[]): { e2e: boolean; only: string | null; filter: string | null; typecheck: boolean } {
  let e2e = true;
  let only: string | null = null;
  let filter: string | null = null;
  let typecheck = true;
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === '--no-e2e') e2e = false;
    else if (a === '--no-typecheck') typecheck = false;
    else if (a === '--only') only = argv[++i] ?? null;
    else if (a === '--filter') filter = argv[++i] ?? null;
    else {
      process.stderr.write(`test: unknown argument ${a}\n`);
      process.exit(2);
    }
  }
  return { e2e, only, filter, typecheck };
}

function findTests(dir: string, out: string[]): string[] {
  for (const name of readdirSync(dir)) {
    if (SKIP_DIRS.has(name)) continue;
    const p = join(dir, name);
    const st = statSync(p);
    if (st.isDirectory()) findTests(p, out);
    else if (name.endsWith('.test.ts')) out.push(relative(ROOT, p));
  }
  return out;
}

// uvu colours through kleur; NO_COLOR keeps the summary plain, and we strip escapes anyway.
const ANSI = /\x1b\[[0-9;]*m/g;

function run(cmd: string, args: string[], timeoutMs: number, env: Record<string, string> = {}): Promise<{ code: number; output: string; ms: number }> {
  const started = performance.now();
  return new Promise((resolve) => {
    const child = spawn(cmd, args, {
      cwd: ROOT,
      // NIXFLEET_FROM_SOURCE: bin/*.js run the sources, never a (possibly stale) dist/ bundle.
      env: { ...process.env, NO_COLOR: '1', FORCE_COLOR: '0', NIXFLEET_FROM_SOURCE: '1', ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
      detached: true,
    });
    let output = '';
    child.stdout.on('data', (d: Buffer) => (output += d.toString()));
    child.stderr.on('data', (d: Buffer) => (output += d.toString()));
    const timer = setTimeout(() => {
      output += `\n[test runner] timed out after ${timeoutMs / 1000}s: killed\n`;
      try {
        process.kill(-child.pid!, 'SIGKILL');
      } catch {
        child.kill('SIGKILL');
      }
    }, timeoutMs);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code: code ?? 1, output: output.replace(ANSI, ''), ms: performance.now() - started });
    });
  });
}

function summarise(file: string, code: number, output: string, ms: number): FileResult {
  const num = (label: string): number | null => {
    const m = output.match(new RegExp(`^\\s*${label}:\\s+(\\d+)`, 'm'));
    return m ? Number(m[1]) : null;
  };
  const total = num('Total');
  const passed = num('Passed');
  const skipped = num('Skipped') ?? 0;
  if (total === null || passed === null) {
    // No uvu summary: the file crashed before finishing, or never called `.run()`.
    return { file, passed: 0, failed: 1, skipped: 0, output: output + '\n[test runner] no uvu summary in output\n', ms };
  }
  // uvu's Total counts the tests that ran; skipped ones are reported apart.
  let failed = Math.max(0, total - passed);
  if (code !== 0 && failed === 0) failed = 1;
  // A file that ran nothing and skipped nothing proves nothing.
  if (total === 0 && skipped === 0) failed = Math.max(failed, 1);
  return { file, passed, failed, skipped, output, ms };
}

async function pool<T, R>(items: T[], width: number, fn: (t: T) => Promise<R>): Promise<R[]> {
  const results: R[] = new Array(items.length);
  let next = 0;
  const workers = Array.from({ length: Math.min(width, items.length) }, async () => {
    while (next < items.length) {
      const i = next++;
      results[i] = await fn(items[i]!);
    }
  });
  await Promise.all(workers);
  return results;
}

/**
 * On a second runtime (scripts/run.mjs with NIXFLEET_NODE=24) the native SQLite addon, built for
 * the default node's ABI, may not load: the files that reach it are then skipped, by name.
 */
function sqliteLoads(): boolean {
  return spawnSync(UNIT.node, ['-e', "new (require('better-sqlite3'))(':memory:').close()"], { cwd: ROOT, stdio: 'ignore', env: { ...process.env, ...UNIT.env } }).status === 0;
}

/**
 * The runtime of the unit files: NIXFLEET_UNIT_NODE_BIN when scripts/run.mjs (`npm test`) set it
 * (Node 24, with better-sqlite3 built for it resolved through scripts/addon-hook.mjs and its bin/
 * first on PATH for the programs a test starts), else this node. e2e files always run on this node.
 */
const UNIT: { node: string; env: Record<string, string> } = (() => {
  const bin = process.env['NIXFLEET_UNIT_NODE_BIN'];
  const addon = process.env['NIXFLEET_ADDON_DIR'];
  if (bin === undefined || bin === '' || addon === undefined) return { node: process.execPath, env: {} };
  return {
    node: bin,
    env: {
      NIXFLEET_ADDON_DIR: addon,
      NODE_OPTIONS: `${process.env['NODE_OPTIONS'] ?? ''} --import=${join(ROOT, 'scripts', 'addon-hook.mjs')}`.trim(),
      PATH: `${dirname(bin)}:${process.env['PATH'] ?? ''}`,
    },
  };
})();

/** Does `file` reach better-sqlite3 through its relative imports, or start a control plane process? */
function needsSqlite(file: string, seen = new Set<string>()): boolean {
  if (seen.has(file)) return false;
  seen.add(file);
  let text: string;
  try {
    text = readFileSync(join(ROOT, file), 'utf8');
  } catch {
    return false;
  }
  if (/from ['"]better-sqlite3['"]|nixfleet-control-plane\.js|bin\/nixfleet-control-plane/.test(text)) return true;
  for (const m of text.matchAll(/(?:from|import)\s*\(?\s*['"](\.{1,2}\/[^'"]+\.ts)['"]/g)) {
    if (needsSqlite(relative(ROOT, join(ROOT, dirname(file), m[1]!)), seen)) return true;
  }
  return false;
}

/**
 * How many e2e files run at once (NIXFLEET_E2E_JOBS, default 2). An e2e file spends most of its
 * time waiting on its processes (poll intervals, soak, deadlines); each one builds its own network
 * (e2e/netns.ts picks a free subnet and unique names), state directories and ports, so two can
 * share the machine. 1 runs them one after the other.
 */
function e2eJobs(): number {
  const raw = process.env['NIXFLEET_E2E_JOBS'];
  const n = raw === undefined || raw === '' ? 2 : Number(raw);
  if (!Number.isInteger(n) || n < 1) {
    process.stderr.write(`test: NIXFLEET_E2E_JOBS must be a whole number ≥ 1, not ${JSON.stringify(raw)}\n`);
    process.exit(2);
  }
  return n;
}

async function main(): Promise<void> {
  const opts = parseArgs(process.argv.slice(2));
  let passed = 0;
  let failed = 0;
  let skipped = 0;

  if (opts.typecheck && opts.only === null && opts.filter === null) {
    const tsc = await run(process.execPath, [join(ROOT, 'node_modules/typescript/bin/tsc'), '--noEmit', '-p', '.'], UNIT_TIMEOUT_MS);
    if (tsc.code === 0) {
      passed += 1;
      console.log(`ok   typecheck (tsc --noEmit, strict) ${Math.round(tsc.ms)} ms`);
    } else {
      failed += 1;
      console.log(`FAIL typecheck\n${tsc.output}`);
    }
  }

  if (UNIT.node !== process.execPath) {
    const v = spawnSync(UNIT.node, ['--version'], { encoding: 'utf8' }).stdout.trim();
    console.log(`unit files on node ${v} (${UNIT.node}); e2e files and the type-check on node ${process.version}`);
  }
  let files = findTests(ROOT, []).sort();
  if (opts.only !== null) files = files.filter((f) => f.startsWith(opts.only!.replace(/\/$/, '') + '/'));
  if (opts.filter !== null) files = files.filter((f) => f.includes(opts.filter!));
  const isE2e = (f: string) => f.startsWith('e2e/');
  let unit = files.filter((f) => !isE2e(f));
  let skippedFiles: string[] = [];
  if (!sqliteLoads()) {
    skippedFiles = unit.filter((f) => needsSqlite(f));
    unit = unit.filter((f) => !skippedFiles.includes(f));
    if (skippedFiles.length > 0) console.log(`skip ${skippedFiles.length} files that need better-sqlite3, whose addon does not load on node ${process.version} (built for another ABI): ${skippedFiles.join(', ')}`);
  }
  const e2e = opts.e2e ? files.filter(isE2e) : [];

  const runFile = async (entry: string, timeoutMs: number): Promise<FileResult> => {
    const pg = entry.endsWith(PG_TAG);
    const file = pg ? entry.slice(0, -PG_TAG.length) : entry;
    // Unit files: the JSON logs (io/log.ts) of the programs they start at warn unless asked
    // otherwise. e2e files keep their configured levels: their processes log to files, for the report.
    const quiet = isE2e(file) ? {} : { NIXFLEET_LOG_LEVEL: process.env['NIXFLEET_LOG_LEVEL'] ?? 'warn' };
    const rt = isE2e(file) ? { node: process.execPath, env: {} } : UNIT;
    const r = await run(rt.node, ['--import', 'tsx', file], timeoutMs, { ...rt.env, ...quiet, ...(pg ? { NIXFLEET_TEST_STORE: 'postgres' } : {}) });
    const s = summarise(entry, r.code, r.output, r.ms);
    const tag = s.failed > 0 ? 'FAIL' : 'ok  ';
    console.log(`${tag} ${entry}  (${s.passed} passed, ${s.failed} failed, ${Math.round(s.ms)} ms)`);
    if (s.failed > 0 || process.env['TEST_VERBOSE']) console.log(s.output.replace(/^/gm, '     | '));
    return s;
  };

  const backends = (process.env['NIXFLEET_TEST_BACKENDS'] ?? 'sqlite,postgres').split(',');
  if (backends.includes('postgres')) unit.push(...unit.filter((f) => {
      const text = readFileSync(join(ROOT, f), 'utf8');
      return text.includes('startCp(') && !text.includes(`backend: 'postgres'`); // a file on PostgreSQL only runs once
    }).map((f) => f + PG_TAG));
  const results = [
    ...(await pool(unit, 2, (f) => runFile(f, UNIT_TIMEOUT_MS))),
    ...(await pool(e2e, e2eJobs(), (f) => runFile(f, E2E_TIMEOUT_MS))),
  ];
  for (const r of results) {
    passed += r.passed;
    failed += r.failed;
    skipped += r.skipped;
  }
  const failing = results.filter((r) => r.failed > 0).map((r) => r.file);
  if (failing.length > 0) console.log(`\nfailing files: ${failing.join(', ')}`);
  if (skippedFiles.length > 0) console.log(`${skippedFiles.length} files skipped on node ${process.version} (better-sqlite3)`);
  console.log(`${passed} passed, ${failed} failed${skipped > 0 ? `, ${skipped} skipped` : ''}`);
  process.exitCode = failed > 0 ? 1 : 0;
}

await main();
