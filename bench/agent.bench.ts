/**
 * Agent idle memory (SPEC §8: resident memory ≤ 80 MB while idle). Runs the real
 * `nixfleet-agent run` against the fake CP over mutual TLS with no target, lets it check in for a
 * while (1 s poll), then samples the agent process's VmRSS from /proc and reports the median and
 * the maximum, for two ways of launching it:
 *
 * - `tsx`: the TypeScript sources through the tsx loader, as bin/nixfleet-agent.js does today
 *   (the loader alone costs ~30 MB);
 * - `bundle`: one ESM file built with esbuild (agent/bundle.ts), plain `node`, which is how a
 *   package should ship the agent.
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { bundleAgent } from '../agent/bundle.ts';
import { makeEnv, type Env } from '../fixtures/agent-harness.ts';

function rssBytes(pid: number): number | null {
  try {
    const m = readFileSync(`/proc/${pid}/status`, 'utf8').match(/^VmRSS:\s+(\d+) kB/m);
    return m === null ? null : Number(m[1]) * 1024;
  } catch {
    return null;
  }
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const mb = (b: number) => Math.round((b / (1024 * 1024)) * 10) / 10;

async function measure(env: Env, argv: string[]): Promise<{ idleRssMedianMB: number; idleRssMaxMB: number; checkins: number }> {
  const cfgFile = join(env.root, 'agent.json');
  writeFileSync(cfgFile, JSON.stringify(env.configJson()));
  const before = env.cp.checkins.length;
  const child = spawn(process.execPath, [...argv, 'run', '--config', cfgFile], { cwd: process.cwd(), stdio: 'ignore' });
  try {
    const warmupUntil = Date.now() + 60_000;
    while (env.cp.checkins.length - before < 5 && Date.now() < warmupUntil) await sleep(200);
    const samples: number[] = [];
    for (let i = 0; i < 10; i++) {
      await sleep(500);
      const r = rssBytes(child.pid!);
      if (r !== null) samples.push(r);
    }
    samples.sort((a, b) => a - b);
    return {
      idleRssMedianMB: mb(samples[Math.floor(samples.length / 2)] ?? NaN),
      idleRssMaxMB: mb(samples[samples.length - 1] ?? NaN),
      checkins: env.cp.checkins.length - before,
    };
  } finally {
    child.kill('SIGKILL');
    await new Promise((r) => child.once('exit', r));
  }
}

export default async (): Promise<object> => {
  const env = await makeEnv([{ name: 'base' }]);
  const out = mkdtempSync(join(tmpdir(), 'nixfleet-agent-bundle-'));
  try {
    const bundle = await bundleAgent(join(out, 'nixfleet-agent.mjs'));
    const tsx = await measure(env, ['--import', 'tsx', 'agent/main.ts']);
    const bundled = await measure(env, [bundle]);
    const lean = await measure(env, ['--max-semi-space-size=1', '--max-old-space-size=64', bundle]);
    return {
      goalMB: 80,
      tsx: { ...tsx, withinGoal: tsx.idleRssMaxMB <= 80 },
      bundle: { ...bundled, withinGoal: bundled.idleRssMaxMB <= 80 },
      bundleSmallHeap: { ...lean, flags: '--max-semi-space-size=1 --max-old-space-size=64', withinGoal: lean.idleRssMaxMB <= 80 },
      note: 'idle = polling every 1 s over mTLS with no target; RSS of the agent process only',
    };
  } finally {
    rmSync(out, { recursive: true, force: true });
    await env.close();
  }
};
