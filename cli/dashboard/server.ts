/**
 * `nixfleet dashboard`: the listen address rules and the local HTTP server. Loopback by default;
 * another address only with --allow-remote (the dashboard shows the fleet with the operator's own
 * rights and has no login of its own).
 */
import { createAdaptorServer } from '@hono/node-server';
import { once } from 'node:events';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { isIP } from 'node:net';
import type { Result } from '../../protocol/result.ts';
import { err, ok } from '../../protocol/result.ts';
import type { CliError } from '../framework.ts';
import { createDashboardApp } from './app.tsx';
import { DashboardSource, type ReadClient } from './source.ts';

export const DEFAULT_LISTEN = '127.0.0.1:8087';

export type Listen = { host: string; port: number };

/** `HOST:PORT` or `[IPv6]:PORT`; PORT 0 picks a free port. */
export function parseListen(s: string): Result<Listen, CliError> {
  const m = /^(?:\[([0-9a-fA-F:.]+)\]|([^\s:[\]]+)):(\d{1,5})$/.exec(s);
  const port = m ? Number(m[3]) : NaN;
  if (!m || port > 65535) return err({ code: 'USAGE', message: `--listen must be HOST:PORT (e.g. ${DEFAULT_LISTEN}), got ${JSON.stringify(s)}` });
  return ok({ host: m[1] ?? m[2]!, port });
}

/** 127.0.0.0/8, ::1 and `localhost`: reachable from this machine only. */
export function isLoopback(host: string): boolean {
  if (host === 'localhost' || host === '::1') return true;
  return isIP(host) === 4 && host.startsWith('127.');
}

export type RunningDashboard = { url: string; port: number; close(): Promise<void> };

export async function startDashboard(o: { client: ReadClient; listen: Listen; refreshMs: number; now: () => number }): Promise<RunningDashboard> {
  // On loopback, only requests naming the address itself (DNS rebinding); an address opened with
  // --allow-remote is reached by names we cannot know, so any Host is accepted there.
  const allowed = new Set<string>();
  const app = createDashboardApp({ source: new DashboardSource(o.client), now: o.now, refreshMs: o.refreshMs, allowedHosts: isLoopback(o.listen.host) ? allowed : null });
  const server = createAdaptorServer({ fetch: app.fetch, createServer, serverOptions: { headersTimeout: 30_000, requestTimeout: 60_000 } }) as Server;
  server.listen(o.listen.port, o.listen.host);
  await Promise.race([once(server, 'listening'), once(server, 'error').then(([e]) => Promise.reject(e as Error))]);
  const port = (server.address() as AddressInfo).port;
  const shown = o.listen.host.includes(':') ? `[${o.listen.host}]` : o.listen.host;
  allowed.add(`${shown}:${port}`);
  if (isLoopback(o.listen.host)) for (const h of ['localhost', '127.0.0.1', '[::1]']) allowed.add(`${h}:${port}`);
  return {
    url: `http://${shown}:${port}/`,
    port,
    async close() {
      const closed = once(server, 'close');
      server.close();
      server.closeAllConnections();
      await closed;
    },
  };
}
