/**
 * Helpers for the Nix packaging tests: run `nix-instantiate` over the repository's Nix files with
 * builtins only (CI has Nix 2.8 from Debian, no nixpkgs, no network to a cache).
 */
import { spawnSync } from 'node:child_process';
import { readdirSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';

export const ROOT = join(import.meta.dirname, '..');

export type NixRun = { ok: boolean; stdout: string; stderr: string };

/** `nix-instantiate ARGS` in the repository root, with no NIX_PATH (nothing but builtins). */
export function nixInstantiate(args: string[]): NixRun {
  const r = spawnSync('nix-instantiate', args, {
    cwd: ROOT,
    encoding: 'utf8',
    maxBuffer: 256 * 1024 * 1024,
    env: { ...process.env, NIX_PATH: '' },
  });
  if (r.error) throw r.error;
  return { ok: r.status === 0, stdout: r.stdout, stderr: r.stderr };
}

/** Evaluate a Nix expression strictly and parse its JSON value; throws with Nix's stderr on failure. */
export function nixEvalJson(expr: string): unknown {
  const r = nixInstantiate(['--eval', '--strict', '--json', '--expr', expr]);
  if (!r.ok) throw new Error(`nix-instantiate failed:\n${r.stderr}`);
  return JSON.parse(r.stdout);
}

/** A Nix string literal holding `s` (for absolute paths and file names inside `--expr`). */
export function nixString(s: string): string {
  return JSON.stringify(s).replace(/\$\{/g, '\\${');
}

/** Every `.nix` file of the repository (outside node_modules, .git, tmp), relative to ROOT. */
export function allNixFiles(dir = ROOT, out: string[] = []): string[] {
  for (const name of readdirSync(dir)) {
    if (name === 'node_modules' || name === '.git' || name === 'tmp' || name === '.bench-cache') continue;
    const p = join(dir, name);
    if (statSync(p).isDirectory()) allNixFiles(p, out);
    else if (name.endsWith('.nix')) out.push(relative(ROOT, p));
  }
  return out.sort();
}
