/**
 * Local health probes (SPEC §6): systemd failed units, HTTP, TCP, exec — each with a timeout.
 * They gate every confirm (all must pass) and their latest results go into each check-in.
 * A probe never throws: any error is a failed result with a message.
 */
import { execFile } from 'node:child_process';
import { connect } from 'node:net';
import { request } from 'undici';
import type { ProbeResult } from '../protocol/api.ts';
import type { ProbeConfig } from './config.ts';

function execText(cmd: string, args: string[], timeoutMs: number): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(cmd, args, { timeout: timeoutMs, killSignal: 'SIGKILL', maxBuffer: 4 * 1024 * 1024 }, (error, stdout, stderr) => {
      const code = error === null ? 0 : typeof error.code === 'number' ? error.code : 127;
      resolve({ code, stdout: String(stdout), stderr: error !== null && typeof error.code !== 'number' ? error.message : String(stderr) });
    });
  });
}

/** `systemctl --failed` unit names; null when systemd is not available (darwin, containers). */
export async function systemdFailedUnits(timeoutMs = 10_000): Promise<string[] | null> {
  const r = await execText('systemctl', ['list-units', '--failed', '--plain', '--no-legend', '--no-pager'], timeoutMs);
  if (r.code !== 0) return null;
  return r.stdout
    .split('\n')
    .map((l) => l.trim().split(/\s+/)[0] ?? '')
    .filter((u) => u.length > 0);
}

async function runOne(p: ProbeConfig): Promise<{ ok: boolean; message: string }> {
  const timeoutMs = p.timeoutSecs * 1000;
  switch (p.kind) {
    case 'systemd-failed-units': {
      const units = await systemdFailedUnits(timeoutMs);
      if (units === null) return { ok: false, message: 'systemctl is not available' };
      const failed = units.filter((u) => !p.ignore.includes(u));
      return failed.length === 0 ? { ok: true, message: 'no failed units' } : { ok: false, message: `failed units: ${failed.join(', ')}` };
    }
    case 'http': {
      try {
        const res = await request(p.url, { method: 'GET', headersTimeout: timeoutMs, bodyTimeout: timeoutMs, signal: AbortSignal.timeout(timeoutMs) });
        await res.body.dump();
        const good = p.expectStatus === null ? res.statusCode >= 200 && res.statusCode < 400 : res.statusCode === p.expectStatus;
        return { ok: good, message: `HTTP ${res.statusCode}` };
      } catch (e) {
        return { ok: false, message: `HTTP probe failed: ${(e as Error).message}` };
      }
    }
    case 'tcp':
      return new Promise((resolve) => {
        const s = connect({ host: p.host, port: p.port });
        const done = (ok: boolean, message: string) => {
          clearTimeout(timer);
          s.destroy();
          resolve({ ok, message });
        };
        const timer = setTimeout(() => done(false, `no connection to ${p.host}:${p.port} within ${p.timeoutSecs}s`), timeoutMs);
        s.once('connect', () => done(true, `connected to ${p.host}:${p.port}`));
        s.once('error', (e) => done(false, `tcp ${p.host}:${p.port}: ${e.message}`));
      });
    case 'exec': {
      const [cmd, ...args] = p.command;
      if (cmd === undefined) return { ok: false, message: 'empty command' };
      const r = await execText(cmd, args, timeoutMs);
      return r.code === 0 ? { ok: true, message: 'exit 0' } : { ok: false, message: `exit ${r.code}: ${r.stderr.trim().slice(-500)}` };
    }
  }
}

/** Runs every probe (concurrently); `ok` when all pass (no probes: ok). */
export async function runProbes(probes: readonly ProbeConfig[], now: () => number): Promise<{ ok: boolean; failures: string[]; results: ProbeResult[] }> {
  const results = await Promise.all(
    probes.map(async (p): Promise<ProbeResult> => {
      const r = await runOne(p);
      return { name: p.name, ok: r.ok, observedAt: new Date(now()).toISOString(), message: r.message };
    }),
  );
  const failures = results.filter((r) => !r.ok).map((r) => `${r.name}: ${r.message ?? ''}`);
  return { ok: failures.length === 0, failures, results };
}

/** How the loop runs probes and reads failed units; `HOST_PROBES` in production, a stub in fast tests. */
export type ProbeRunner = {
  run: (probes: readonly ProbeConfig[], now: () => number) => Promise<{ ok: boolean; failures: string[]; results: ProbeResult[] }>;
  /** Failed systemd units for the confirm body; null when systemd is not available. */
  failedUnits: () => Promise<string[] | null>;
};

/** The real probes of this host. */
export const HOST_PROBES: ProbeRunner = { run: runProbes, failedUnits: () => systemdFailedUnits() };
