/**
 * Start-up time of the binaries (issue 18: `nixfleet --help` ≤ 200 ms from the bundle). Builds
 * dist/ (scripts/build.mjs) into a temporary directory, then times N runs each of: plain `node -e
 * 0` (the floor on this machine), `nixfleet --help` and `nixfleet-release --help` from the
 * bundle, `nixfleet status --json` from the bundle against a control plane started in this
 * process (fixtures/cp-testing.ts: 4 hosts over mTLS), and `nixfleet --help` through tsx.
 * Wall-clock medians in ms; `withinGoal` compares the bundle's `--help` median with 200 ms;
 * `loadAverage` says how busy the machine was. Not a test: timings depend on the machine's load.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { sampleFleet } from '../fixtures/artifacts.ts';
import { makeEnv, startCp } from '../fixtures/cp-testing.ts';
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
    const status = await timeStatus(join(dir, 'nixfleet.mjs'));
    return {
      runs: RUNS,
      loadAverage: loadavg().map((l) => Math.round(l * 10) / 10),
      nodeBaseline: node,
      bundle: { nixfleetHelp: help, releaseHelp: release, nixfleetStatusJson: status },
      tsx: { nixfleetHelp: tsx },
      goalMs: GOAL_MS,
      withinGoal: help.medianMs <= GOAL_MS,
    };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** `nixfleet status --json` from the bundle against a real CP (async spawns: the CP runs in this process). */
async function timeStatus(bundle: string): Promise<{ medianMs: number; minMs: number }> {
  const env = await makeEnv('nixfleet-bench-status-');
  env.publish(sampleFleet({ hosts: 4, waves: 1, closures: true }));
  const cp = await startCp(env);
  try {
    const op = await env.operatorCert('alice');
    const cert = join(env.dir, 'op.pem');
    const key = join(env.dir, 'op.key');
    writeFileSync(cert, op.certPem);
    writeFileSync(key, op.keyPem, { mode: 0o600 });
    const args = [bundle, 'status', '--json', '--url', cp.url, '--cert', cert, '--key', key, '--ca', env.files.caCert];
    const { spawn } = await import('node:child_process');
    const ms: number[] = [];
    for (let i = 0; i < RUNS; i++) {
      const t0 = performance.now();
      const code = await new Promise<number | null>((resolve) => spawn(process.execPath, args, { stdio: 'ignore' }).on('exit', resolve));
      ms.push(performance.now() - t0);
      if (code !== 0 && code !== 1) throw new Error(`nixfleet status --json exited ${code}`);
    }
    ms.sort((a, b) => a - b);
    return { medianMs: Math.round(ms[Math.floor(RUNS / 2)]!), minMs: Math.round(ms[0]!) };
  } finally {
    await cp.stop();
    env.cleanup();
  }
}
