/**
 * Start-up time of the binaries (issue 18: `nixfleet --help` ≤ 200 ms from the bundle). Builds
 * dist/ (scripts/build.mjs) into a temporary directory, then times N runs each of: plain `node -e
 * 0` (the floor on this machine), `nixfleet --help` and `nixfleet-release --help` from the
 * bundle, and `nixfleet --help` through tsx. Wall-clock medians in ms; `withinGoal` compares the
 * bundle's median with 200 ms. Not a test: timings depend on the machine's load.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';

const RUNS = 15;
const GOAL_MS = 200;

function time(args: string[], env: NodeJS.ProcessEnv = process.env): { medianMs: number; minMs: number } {
  const ms: number[] = [];
  for (let i = 0; i < RUNS; i++) {
    const t0 = performance.now();
    const r = spawnSync(process.execPath, args, { stdio: 'ignore', env });
    ms.push(performance.now() - t0);
    if (r.status !== 0) throw new Error(`${args.join(' ')} exited ${r.status}`);
  }
  ms.sort((a, b) => a - b);
  return { medianMs: Math.round(ms[Math.floor(RUNS / 2)]!), minMs: Math.round(ms[0]!) };
}

export default async function startup(): Promise<object> {
  const dir = mkdtempSync(join(tmpdir(), 'nixfleet-bundle-'));
  try {
    const buildModule: string = new URL('../scripts/build.mjs', import.meta.url).href; // plain JS, no types
    const { buildAll } = (await import(buildModule)) as { buildAll: (out: string) => Promise<string> };
    await buildAll(dir);
    const node = time(['-e', '0']);
    const help = time([join(dir, 'nixfleet.mjs'), '--help']);
    const release = time([join(dir, 'nixfleet-release.mjs'), '--help']);
    const tsx = time(['bin/nixfleet.js', '--help'], { ...process.env, NIXFLEET_FROM_SOURCE: '1' });
    return { runs: RUNS, nodeBaseline: node, bundle: { nixfleetHelp: help, releaseHelp: release }, tsx: { nixfleetHelp: tsx }, goalMs: GOAL_MS, withinGoal: help.medianMs <= GOAL_MS };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
