/**
 * Process and temp-directory bookkeeping for the end-to-end harness.
 *
 * Every long-running child (control plane, agents, servers in child processes) is spawned in its
 * own process group (`detached: true`) with stdout+stderr going straight to a log file, and is
 * registered here. `killAll()` terminates every registered group (SIGTERM, then SIGKILL after a
 * grace) and removes every registered temp root and network namespace. The same clean-up runs
 * synchronously on `exit`, SIGINT, SIGTERM and uncaught errors, so a failing or interrupted test
 * leaves nothing running.
 */
import { execFile, execFileSync, spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { closeSync, existsSync, openSync, readFileSync, rmSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

/** Repository root (the parent of e2e/). */
export const REPO = join(dirname(fileURLToPath(import.meta.url)), '..');

export type Proc = {
  readonly name: string;
  readonly child: ChildProcess;
  readonly pid: number;
  readonly logFile: string;
  /** Resolves with the exit code (or signal name) once the process has exited. */
  readonly exited: Promise<number | string>;
  hasExited(): boolean;
};

const procs = new Set<Proc>();
/** Short-lived children of `run` (CI steps, git, nix): killed too if we are interrupted. */
const shortLived = new Set<ChildProcess>();
const tempRoots = new Set<string>();
const namespaces = new Set<string>();
const links = new Set<string>();
let hooksInstalled = false;

function installHooks(): void {
  if (hooksInstalled) return;
  hooksInstalled = true;
  process.on('exit', () => killAllSync());
  for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
    process.on(sig, () => {
      process.stderr.write(`\n[e2e] ${sig}: stopping every fleet process and removing temp dirs\n`);
      killAllSync();
      process.exit(130);
    });
  }
}

export function registerTempRoot(dir: string): void {
  installHooks();
  tempRoots.add(dir);
}

export function registerNamespace(ns: string): void {
  installHooks();
  namespaces.add(ns);
}

export function registerLink(link: string): void {
  installHooks();
  links.add(link);
}

/** Delete namespaces and links we created (idempotent). */
export function removeNetwork(nss: readonly string[], ls: readonly string[]): void {
  for (const l of ls) {
    try {
      execFileSync('ip', ['link', 'del', l], { stdio: 'ignore' });
    } catch {
      // already gone
    }
    links.delete(l);
  }
  for (const ns of nss) {
    try {
      execFileSync('ip', ['netns', 'del', ns], { stdio: 'ignore' });
    } catch {
      // already gone
    }
    namespaces.delete(ns);
  }
}

/** Remove one registered temp root now (kept when NIXFLEET_E2E_KEEP=1). */
export function removeTempRoot(dir: string): void {
  if (process.env['NIXFLEET_E2E_KEEP'] === '1') process.stderr.write(`[e2e] kept ${dir}\n`);
  else rmSync(dir, { recursive: true, force: true });
  tempRoots.delete(dir);
}

export type SpawnOpts = {
  name: string;
  cmd: string;
  args: readonly string[];
  logFile: string;
  cwd?: string;
  env?: NodeJS.ProcessEnv;
};

/** Spawn a long-running child in its own process group, output appended to `logFile`. */
export function spawnProc(o: SpawnOpts): Proc {
  installHooks();
  const fd = openSync(o.logFile, 'a');
  const child = spawn(o.cmd, [...o.args], {
    cwd: o.cwd ?? REPO,
    env: { ...process.env, NO_COLOR: '1', FORCE_COLOR: '0', ...o.env },
    stdio: ['ignore', fd, fd],
    detached: true,
  });
  closeSync(fd);
  if (child.pid === undefined) throw new Error(`could not spawn ${o.name} (${o.cmd})`);
  let done = false;
  const exited = new Promise<number | string>((resolve) => {
    child.on('exit', (code, signal) => {
      done = true;
      resolve(code ?? signal ?? 'unknown');
    });
  });
  const p: Proc = { name: o.name, child, pid: child.pid, logFile: o.logFile, exited, hasExited: () => done };
  procs.add(p);
  void exited.then(() => procs.delete(p));
  return p;
}

function signalGroup(pid: number, sig: NodeJS.Signals): void {
  try {
    process.kill(-pid, sig);
  } catch {
    // group already gone
  }
}

/** Stop one process group: SIGTERM, then SIGKILL after `graceMs`. */
export async function stopProc(p: Proc, graceMs = 3000): Promise<void> {
  if (p.hasExited()) {
    signalGroup(p.pid, 'SIGKILL'); // stray grandchildren of an exited leader
    return;
  }
  signalGroup(p.pid, 'SIGTERM');
  const timer = setTimeout(() => signalGroup(p.pid, 'SIGKILL'), graceMs);
  await p.exited;
  clearTimeout(timer);
  signalGroup(p.pid, 'SIGKILL');
  procs.delete(p);
}

/** Kill a process group at once, as a crash would (no clean shutdown). */
export async function crashProc(p: Proc): Promise<void> {
  signalGroup(p.pid, 'SIGKILL');
  await p.exited;
  procs.delete(p);
}

function removeNamespacesSync(): void {
  for (const l of links) {
    try {
      execFileSync('ip', ['link', 'del', l], { stdio: 'ignore' });
    } catch {
      // gone with its namespace
    }
  }
  links.clear();
  for (const ns of namespaces) {
    try {
      execFileSync('ip', ['netns', 'del', ns], { stdio: 'ignore' });
    } catch {
      // already deleted
    }
  }
  namespaces.clear();
}

/** Synchronous last-resort clean-up (exit / signal handlers). */
export function killAllSync(): void {
  for (const p of procs) signalGroup(p.pid, 'SIGKILL');
  procs.clear();
  for (const c of shortLived) c.kill('SIGKILL');
  shortLived.clear();
  removeNamespacesSync();
  if (process.env['NIXFLEET_E2E_KEEP'] !== '1') {
    for (const d of tempRoots) rmSync(d, { recursive: true, force: true });
  }
  tempRoots.clear();
}

/** Orderly clean-up: stop every process group, delete namespaces, remove temp roots. */
export async function killAll(): Promise<void> {
  await Promise.all([...procs].map((p) => stopProc(p)));
  killAllSync();
}

export function tailLog(file: string, lines = 40): string {
  if (!existsSync(file)) return '(no log)';
  const all = readFileSync(file, 'utf8').split('\n');
  return all.slice(-lines).join('\n');
}

export type RunResult = { code: number; stdout: string; stderr: string };

/** Run a short command to completion (CI steps, git, nix, the CLI). Never throws on exit code. */
export function run(
  cmd: string,
  args: readonly string[],
  opts: { cwd?: string; env?: NodeJS.ProcessEnv; input?: string; timeoutMs?: number } = {},
): Promise<RunResult> {
  return new Promise((resolve) => {
    const child = execFile(
      cmd,
      [...args],
      {
        cwd: opts.cwd ?? REPO,
        env: { ...process.env, NO_COLOR: '1', FORCE_COLOR: '0', ...opts.env },
        maxBuffer: 64 * 1024 * 1024,
        timeout: opts.timeoutMs ?? 180_000,
        killSignal: 'SIGKILL',
      },
      (error, stdout, stderr) => {
        const code = error === null ? 0 : typeof (error as { code?: unknown }).code === 'number' ? ((error as { code: number }).code) : 1;
        resolve({ code, stdout: stdout.toString(), stderr: stderr.toString() + (error !== null && code === 1 && error.killed ? '\n[killed: timeout]' : '') });
      },
    );
    installHooks();
    shortLived.add(child);
    child.on('exit', () => shortLived.delete(child));
    if (opts.input !== undefined) child.stdin?.end(opts.input);
  });
}

/** Like `run` but throws a readable error on a non-zero exit. */
export async function runOk(cmd: string, args: readonly string[], opts: Parameters<typeof run>[2] = {}): Promise<RunResult> {
  const r = await run(cmd, args, opts);
  if (r.code !== 0) {
    throw new Error(`command failed (exit ${r.code}): ${cmd} ${args.join(' ')}\n--- stdout\n${r.stdout}\n--- stderr\n${r.stderr}`);
  }
  return r;
}

/** `node --import tsx <entry> ...args`: run one of the project's TypeScript programs. */
export function tsxArgs(entry: string, args: readonly string[]): string[] {
  return ['--import', 'tsx', join(REPO, entry), ...args];
}
