/**
 * The agent's runtime compliance checks (issue 15): each control's `runtime` check from the
 * catalogue (protocol/compliance.ts) run against this host, bounded by its timeout, never
 * throwing, turned into evidence records for the host key to sign.
 *
 * I/O goes through {@link CheckIo} so that the interpretation of every check kind is tested on a
 * temporary directory; {@link hostCheckIo} is the real one (files under a root, /proc/sys,
 * /proc/net, `systemctl`, argv execution without a shell).
 */
import { execFile } from 'node:child_process';
import { lstat, readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { DEFAULT_CHECK_TIMEOUT_MS, type CheckResult, type Control, type EvidenceRecord, type RuntimeCheck } from '../protocol/compliance.ts';

/** What one check saw. `observed` is short: a value, not a dump. */
export type CheckOutcome = { result: CheckResult; observed: string };

export type ExecResult = { code: number | null; stdout: string; error: string | null };

/** The host as the checks see it. Every method resolves; a missing file is null, not an error. */
export type CheckIo = {
  readText(path: string): Promise<string | null>;
  /** Permission bits and type of a path (not following a final symlink), or null when absent. */
  stat(path: string): Promise<{ mode: number; kind: 'file' | 'dir' | 'other' } | null>;
  /** Regular files under `dir` (no symlinks followed), at most `limit`, with their mode bits. */
  walkFiles(dir: string, limit: number): Promise<{ path: string; mode: number }[]>;
  exec(argv: readonly string[], timeoutMs: number): Promise<ExecResult>;
};

const OBSERVED_MAX = 200;
const clip = (s: string): string => (s.length > OBSERVED_MAX ? `${s.slice(0, OBSERVED_MAX - 1)}…` : s);
/** Bound on files a world-writable scan looks at (a /etc has a few thousand). */
export const WALK_LIMIT = 200_000;

function regex(source: string): RegExp | string {
  try {
    return new RegExp(source, 'm');
  } catch (e) {
    return `invalid regular expression: ${(e as Error).message}`;
  }
}

/** Sockets in LISTEN (tcp) or bound (udp) on `port`, from /proc/net/{tcp,tcp6,udp,udp6} text. */
export function listeningOn(procNet: string, port: number, protocol: string): boolean {
  for (const line of procNet.split('\n').slice(1)) {
    const cols = line.trim().split(/\s+/);
    const local = cols[1];
    const state = cols[3];
    if (local === undefined || state === undefined) continue;
    const p = Number.parseInt(local.slice(local.lastIndexOf(':') + 1), 16);
    // tcp: 0A = LISTEN; udp: 07 = a bound (unconnected) socket.
    if (p === port && state === (protocol === 'tcp' ? '0A' : '07')) return true;
  }
  return false;
}

async function interpret(check: RuntimeCheck, io: CheckIo, timeoutMs: number): Promise<CheckOutcome> {
  switch (check.kind) {
    case 'file': {
      const st = await io.stat(check.path);
      const mustExist = check.exists ?? true;
      if (st === null) return mustExist ? { result: 'fail', observed: `${check.path} is missing` } : { result: 'pass', observed: `${check.path} is absent` };
      if (!mustExist) return { result: 'fail', observed: `${check.path} exists` };
      if (check.forbiddenMode !== undefined) {
        const bad = st.mode & Number.parseInt(check.forbiddenMode, 8);
        if (bad !== 0) return { result: 'fail', observed: `${check.path} has mode ${(st.mode & 0o7777).toString(8).padStart(4, '0')}` };
      }
      if (check.matches === undefined && check.notMatches === undefined) return { result: 'pass', observed: `${check.path} present` };
      if (st.kind !== 'file') return { result: 'fail', observed: `${check.path} is not a regular file` };
      const text = await io.readText(check.path);
      if (text === null) return { result: 'error', observed: `${check.path} could not be read` };
      if (check.matches !== undefined) {
        const re = regex(check.matches);
        if (typeof re === 'string') return { result: 'error', observed: re };
        const m = re.exec(text);
        if (m === null) return { result: 'fail', observed: `no line of ${check.path} matches /${check.matches}/` };
        if (check.notMatches === undefined) return { result: 'pass', observed: clip(m[0].trim()) };
      }
      const re = regex(check.notMatches!);
      if (typeof re === 'string') return { result: 'error', observed: re };
      const m = re.exec(text);
      return m === null ? { result: 'pass', observed: `no line of ${check.path} matches /${check.notMatches}/` } : { result: 'fail', observed: clip(m[0].trim()) };
    }
    case 'sysctl': {
      const text = await io.readText(join('/proc/sys', ...check.key.split('.')));
      if (text === null) return { result: 'fail', observed: `${check.key} is not available` };
      const value = text.trim().replace(/\s+/g, ' ');
      return { result: check.allowed.includes(value) ? 'pass' : 'fail', observed: `${check.key} = ${clip(value)}` };
    }
    case 'systemd': {
      const r = await io.exec(['systemctl', 'is-active', check.unit], timeoutMs);
      if (r.error !== null) return { result: 'error', observed: clip(r.error) };
      const state = r.stdout.trim() || 'unknown';
      const active = state === 'active';
      return { result: active === (check.activeState === 'active') ? 'pass' : 'fail', observed: `${check.unit} is ${clip(state)}` };
    }
    case 'listening': {
      const files = check.protocol === 'tcp' ? ['/proc/net/tcp', '/proc/net/tcp6'] : ['/proc/net/udp', '/proc/net/udp6'];
      const texts = await Promise.all(files.map((f) => io.readText(f)));
      if (texts.every((t) => t === null)) return { result: 'error', observed: `${files.join(', ')} unreadable` };
      const open = texts.some((t) => t !== null && listeningOn(t, check.port, check.protocol));
      const label = `${check.protocol}/${check.port} ${open ? 'open' : 'closed'}`;
      return { result: open === (check.expect === 'open') ? 'pass' : 'fail', observed: label };
    }
    case 'world-writable': {
      const files = await io.walkFiles(check.under, WALK_LIMIT);
      const bad = files.filter((f) => (f.mode & 0o002) !== 0).map((f) => f.path);
      if (bad.length === 0) return { result: 'pass', observed: `${files.length} files under ${check.under}, none world-writable` };
      return { result: 'fail', observed: clip(`${bad.length} world-writable: ${bad.slice(0, 5).join(', ')}`) };
    }
    case 'exec': {
      const r = await io.exec(check.argv, timeoutMs);
      if (r.error !== null) return { result: 'error', observed: clip(r.error) };
      const wantExit = check.expectExit ?? 0;
      if (r.code !== wantExit) return { result: 'fail', observed: `exit ${r.code ?? 'none'} (want ${wantExit})` };
      if (check.stdoutMatches !== undefined) {
        const re = regex(check.stdoutMatches);
        if (typeof re === 'string') return { result: 'error', observed: re };
        const m = re.exec(r.stdout);
        return m === null ? { result: 'fail', observed: clip(`stdout does not match /${check.stdoutMatches}/`) } : { result: 'pass', observed: clip(m[0].trim()) };
      }
      return { result: 'pass', observed: `exit ${wantExit}` };
    }
  }
}

/** Run one check within its time limit. Never throws: a bug or a hang is an `error` outcome. */
export async function runCheck(check: RuntimeCheck, io: CheckIo): Promise<CheckOutcome> {
  const timeoutMs = check.timeoutMs ?? DEFAULT_CHECK_TIMEOUT_MS;
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<CheckOutcome>((resolve) => {
    timer = setTimeout(() => resolve({ result: 'error', observed: `timed out after ${timeoutMs} ms` }), timeoutMs);
  });
  try {
    return await Promise.race([interpret(check, io, timeoutMs).catch((e: unknown) => ({ result: 'error' as const, observed: clip(String((e as Error)?.message ?? e)) })), timeout]);
  } finally {
    clearTimeout(timer);
  }
}

export type EvidenceContext = { hostname: string; closure: string | null; bootId: string; rolloutId: string | null; nowIso: () => string };

/** Run the runtime checks of `controls` (those that have one), one after another, as records. */
export async function collectEvidence(controls: readonly Control[], io: CheckIo, ctx: EvidenceContext): Promise<EvidenceRecord[]> {
  const out: EvidenceRecord[] = [];
  for (const control of controls) {
    if (control.runtime === null) continue;
    const o = await runCheck(control.runtime, io);
    out.push({ schemaVersion: 1, hostname: ctx.hostname, control: control.id, result: o.result, observed: o.observed, closure: ctx.closure, bootId: ctx.bootId, rolloutId: ctx.rolloutId, at: ctx.nowIso() });
  }
  return out;
}

/**
 * The real host: paths resolved under `root` (`/` in production, a directory in tests), commands
 * run with execFile (no shell) and a timeout, output capped.
 */
export function hostCheckIo(root = '/'): CheckIo {
  const at = (p: string): string => (root === '/' ? p : join(root, p));
  return {
    async readText(path) {
      try {
        return await readFile(at(path), 'utf8');
      } catch {
        return null;
      }
    },
    async stat(path) {
      try {
        const st = await lstat(at(path));
        return { mode: st.mode, kind: st.isFile() ? 'file' : st.isDirectory() ? 'dir' : 'other' };
      } catch {
        return null;
      }
    },
    async walkFiles(dir, limit) {
      const out: { path: string; mode: number }[] = [];
      const stack = [dir];
      while (stack.length > 0 && out.length < limit) {
        const d = stack.pop()!;
        let names: string[];
        try {
          names = await readdir(at(d));
        } catch {
          continue;
        }
        for (const name of names) {
          const p = join(d, name);
          try {
            const st = await lstat(at(p));
            if (st.isDirectory()) stack.push(p);
            else if (st.isFile()) out.push({ path: p, mode: st.mode });
          } catch {
            // vanished while walking
          }
        }
      }
      return out;
    },
    exec(argv, timeoutMs) {
      return new Promise((resolve) => {
        execFile(argv[0]!, argv.slice(1), { timeout: timeoutMs, maxBuffer: 64 * 1024, encoding: 'utf8' }, (error, stdout) => {
          if (error === null) return resolve({ code: 0, stdout, error: null });
          const e = error as NodeJS.ErrnoException & { code?: number | string; killed?: boolean };
          if (typeof e.code === 'number') return resolve({ code: e.code, stdout, error: null });
          resolve({ code: null, stdout, error: e.killed === true ? `killed after ${timeoutMs} ms` : `${argv[0]}: ${e.code ?? e.message}` });
        });
      });
    },
  };
}
