/**
 * Test helpers for the CLI: run `nixfleet` in-process with captured output, an injected clock and
 * a private HOME, so no test reads the real ~/.config.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { COMMANDS } from './commands.ts';
import type { ExitCode, Io } from './framework.ts';
import { run } from './run.ts';

export type Captured = { code: ExitCode; stdout: string; stderr: string };

export type FakeIo = Partial<Omit<Io, 'stdout' | 'stderr'>>;

export async function runCli(argv: string[], io: FakeIo = {}): Promise<Captured> {
  let stdout = '';
  let stderr = '';
  const code = await run(COMMANDS, argv, {
    stdout: (s) => void (stdout += s),
    stderr: (s) => void (stderr += s),
    env: io.env ?? {},
    cwd: io.cwd ?? process.cwd(),
    isTTY: io.isTTY ?? false,
    now: io.now ?? (() => Date.parse('2026-01-01T12:00:00Z')),
    sleep: io.sleep ?? (async () => {}),
  });
  return { code, stdout, stderr };
}

/** A fresh temporary directory; call the returned cleanup in `after`. */
export function tempDir(prefix = 'nixfleet-cli-'): { dir: string; cleanup: () => void } {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  return { dir, cleanup: () => rmSync(dir, { recursive: true, force: true }) };
}

/** stderr is exactly one line (the CLI's promise: no stack traces). */
export function isOneLine(s: string): boolean {
  return s.endsWith('\n') && !s.slice(0, -1).includes('\n') && !/\bat .+:\d+:\d+/.test(s);
}
