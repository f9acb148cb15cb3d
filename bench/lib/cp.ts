/**
 * The real control plane for the benchmarks: `control-plane/main.ts serve --config FILE` in its own
 * process (as production runs it: same binary entry, same config loading, same mTLS listener), plus
 * an operator client to read its state and metrics.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { Client } from 'undici';
import type { BenchPki } from './certs.ts';

export type RunningCp = {
  readonly pid: number;
  readonly port: number;
  readonly origin: string;
  /** GET as the bench operator; parsed JSON body (throws on non-2xx). */
  get<T>(path: string): Promise<T>;
  /** Prometheus text of /metrics. */
  metricsText(): Promise<string>;
  /** Wait until /readyz says ready (or throw after `timeoutMs`). */
  waitReady(timeoutMs: number, predicate?: (r: { ready: boolean; fleet: { sha256: string } | null }) => boolean): Promise<number>;
  /** SIGTERM and wait for a clean exit (a `--cpu-prof` profile is written then). */
  stop(): Promise<number | null>;
  /** The CP's stderr so far (warnings, errors), for the report when something fails. */
  stderr(): string;
};

/** A free TCP port on 127.0.0.1 (bound then released; the CP binds it right after). */
export async function freePort(): Promise<number> {
  const s = createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  const port = (s.address() as { port: number }).port;
  await new Promise<void>((r) => s.close(() => r()));
  return port;
}

export type StartCpOptions = {
  configFile: string;
  port: number;
  pki: BenchPki;
  /** Write a V8 CPU profile of the CP into this directory (node --cpu-prof). */
  cpuProfDir?: string;
  /** More Node flags for the CP process (experiments, e.g. `--import` of a module hook). */
  execArgv?: string[];
  /** More environment for the CP process (over this process's). */
  env?: Record<string, string>;
  /** Run the control plane of another checkout (A/B against an older commit); default this one. */
  cpRoot?: string;
  /** The program that runs Node (default Node itself): a wrapper that execs Node under a tool (bench/lib/callgrind.ts). */
  execPath?: string;
};

export async function startCp(opts: StartCpOptions): Promise<RunningCp> {
  const execArgv = ['--import', 'tsx'];
  if (opts.cpuProfDir !== undefined) execArgv.push('--cpu-prof', `--cpu-prof-dir=${opts.cpuProfDir}`);
  execArgv.push(...(opts.execArgv ?? []));
  const child: ChildProcess = spawn(opts.execPath ?? process.execPath, [...execArgv, join(opts.cpRoot ?? process.cwd(), 'control-plane', 'main.ts'), 'serve', '--config', opts.configFile], {
    stdio: ['ignore', 'ignore', 'pipe'],
    env: { ...process.env, ...(opts.env ?? {}) },
  });
  let stderr = '';
  child.stderr!.on('data', (c: Buffer) => {
    stderr += c.toString('utf8');
    if (stderr.length > 200_000) stderr = stderr.slice(-100_000);
  });
  const exited = new Promise<number | null>((r) => child.once('exit', (code) => r(code)));
  const origin = `https://127.0.0.1:${opts.port}`;
  const client = new Client(origin, {
    connect: { ca: opts.pki.ca.certPem, cert: opts.pki.operator.certPem, key: opts.pki.operator.keyPem, servername: 'localhost' },
    headersTimeout: 120_000,
    bodyTimeout: 120_000,
  });
  const raw = async (path: string): Promise<{ status: number; text: string }> => {
    const r = await client.request({ method: 'GET', path, headers: { 'x-nixfleet-protocol': '1' } });
    return { status: r.statusCode, text: await r.body.text() };
  };
  const cp: RunningCp = {
    pid: child.pid!,
    port: opts.port,
    origin,
    async get<T>(path: string): Promise<T> {
      const r = await raw(path);
      if (r.status < 200 || r.status >= 300) throw new Error(`GET ${path}: ${r.status} ${r.text.slice(0, 500)}`);
      return JSON.parse(r.text) as T;
    },
    async metricsText() {
      return (await raw('/metrics')).text;
    },
    async waitReady(timeoutMs, predicate = (r) => r.ready) {
      const t0 = performance.now();
      for (;;) {
        if (child.exitCode !== null) throw new Error(`control plane exited (${child.exitCode}): ${stderr.slice(-2000)}`);
        try {
          const r = await raw('/readyz');
          if (predicate(JSON.parse(r.text) as { ready: boolean; fleet: { sha256: string } | null })) return performance.now() - t0;
        } catch {
          // not listening yet
        }
        if (performance.now() - t0 > timeoutMs) throw new Error(`control plane not ready after ${timeoutMs} ms: ${stderr.slice(-2000)}`);
        await new Promise((r) => setTimeout(r, 50));
      }
    },
    async stop() {
      await client.close().catch(() => {});
      if (child.exitCode !== null) return child.exitCode;
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), 30_000);
      const code = await exited;
      clearTimeout(timer);
      return code;
    },
    stderr: () => stderr,
  };
  return cp;
}

/** One Prometheus histogram's `_sum` and `_count` (summed over label sets). */
export function histogramTotals(metricsText: string, name: string): { sum: number; count: number } {
  let sum = 0;
  let count = 0;
  for (const line of metricsText.split('\n')) {
    if (line.startsWith(`${name}_sum`)) sum += Number(line.slice(line.lastIndexOf(' ') + 1));
    else if (line.startsWith(`${name}_count`)) count += Number(line.slice(line.lastIndexOf(' ') + 1));
  }
  return { sum, count };
}

/** One Prometheus counter or gauge summed over its samples whose labels contain `label` (all samples when null). */
export function counterTotal(text: string, name: string, label: string | null = null): number {
  let sum = 0;
  for (const line of text.split('\n')) {
    if (!line.startsWith(name)) continue;
    const m = /^[a-z_]+(\{[^}]*\})? ([0-9.e+-]+)$/.exec(line);
    if (m === null || (label !== null && !(m[1] ?? '').includes(label))) continue;
    sum += Number(m[2]);
  }
  return sum;
}
