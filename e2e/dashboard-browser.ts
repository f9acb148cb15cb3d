/**
 * Shared by the dashboard's browser tests (e2e/dashboard*.test.ts): the real `nixfleet dashboard`
 * process, and Debian's Chromium driven by playwright-core (no browser download:
 * scripts/run.mjs installs the `chromium` package).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { chromium, type Browser, type Page } from 'playwright-core';

const ROOT = fileURLToPath(new URL('..', import.meta.url));

export type DashboardProcess = { url: string; controlPlane: string; stop(): Promise<void> };

/** `nixfleet dashboard --listen 127.0.0.1:0 --json` with the given connection env; resolves once it listens. */
export async function startDashboardProcess(connectionEnv: Record<string, string>, refreshSecs = 1): Promise<DashboardProcess> {
  const child: ChildProcess = spawn(process.execPath, [join(ROOT, 'bin', 'nixfleet.js'), 'dashboard', '--listen', '127.0.0.1:0', '--refresh-secs', String(refreshSecs), '--json'], {
    env: { ...process.env, NIXFLEET_FROM_SOURCE: '1', ...connectionEnv },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const lines = createInterface({ input: child.stdout! });
  const first = await Promise.race([once(lines, 'line').then(([l]) => String(l)), once(child, 'exit').then(([code]) => Promise.reject(new Error(`nixfleet dashboard exited ${String(code)} before listening`)))]);
  const info = JSON.parse(first) as { url: string; readOnly: boolean; controlPlane: string };
  if (info.readOnly !== true) throw new Error('the dashboard must say it is read-only');
  return {
    url: info.url.replace(/\/$/, ''),
    controlPlane: info.controlPlane,
    async stop() {
      if (child.exitCode !== null || child.signalCode !== null) return;
      child.kill('SIGTERM');
      await once(child, 'exit');
    },
  };
}

/** Chromium with a page that records the URL of every request it makes. */
export async function openBrowser(): Promise<{ browser: Browser; page: Page; requests: string[] }> {
  const browser = await chromium.launch({ executablePath: '/usr/bin/chromium', args: ['--no-sandbox'] });
  const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
  const requests: string[] = [];
  page.on('request', (r) => void requests.push(r.url()));
  return { browser, page, requests };
}

/** The requests that did not go to `base`'s origin (expected: none). */
export function foreignRequests(requests: readonly string[], base: string): string[] {
  const origin = new URL(base).origin;
  return requests.filter((u) => new URL(u).origin !== origin);
}
