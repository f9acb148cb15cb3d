/**
 * The dashboard's HTTP app (Hono, server-rendered JSX). GET and HEAD only; every page reads the CP
 * through `DashboardSource` (GET only). Unknown rollout / host ids and unknown paths are a 404
 * page; a CP that cannot be read is a 502 page naming why.
 *
 * It holds the operator's credentials, so it defends the loopback port it listens on: a request
 * whose Host header is not the address it listens on is refused (DNS rebinding: a web page
 * pointing its own name at 127.0.0.1), responses forbid framing and carry a strict
 * Content-Security-Policy (only its own script and style: no external request is even possible).
 */
import { Hono, type Context } from 'hono';
import type { JSX } from 'hono/jsx/jsx-runtime';
import type { CliError } from '../framework.ts';
import { LIVE_JS, STYLE_CSS } from './assets.ts';
import { ErrorPage, NotFoundPage, type PageCtx } from './layout.tsx';
import { HostPage, RolloutPage } from './pages-detail.tsx';
import { OverviewPage, ReleasePage, RolloutsPage } from './pages.tsx';
import type { DashboardSource } from './source.ts';

export type DashboardOptions = {
  source: DashboardSource;
  now: () => number;
  refreshMs: number;
  /** Host header values accepted (e.g. `127.0.0.1:8080`); null accepts any (app.request tests). */
  allowedHosts: ReadonlySet<string> | null;
};

const CSP = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

export function createDashboardApp(o: DashboardOptions): Hono {
  const app = new Hono();
  const ctxOf = (): PageCtx => ({ nowMs: o.now(), cpUrl: o.source.cpUrl, refreshMs: o.refreshMs });
  const page = async (c: Context, el: JSX.Element, status: 200 | 404 | 502 = 200) => c.html(`<!doctype html>${await el.toString()}`, status);
  const unavailable = (c: Context, e: CliError) => page(c, <ErrorPage ctx={ctxOf()} message={e.message} />, 502);

  app.use('*', async (c, next) => {
    if (o.allowedHosts !== null && !o.allowedHosts.has(c.req.header('host') ?? new URL(c.req.url).host)) return c.text('unexpected Host header: the dashboard answers only on the address it listens on\n', 421);
    if (c.req.method !== 'GET' && c.req.method !== 'HEAD') return c.text('the dashboard is read-only\n', 405, { allow: 'GET, HEAD' });
    await next();
    c.header('content-security-policy', CSP);
    c.header('x-content-type-options', 'nosniff');
    c.header('referrer-policy', 'no-referrer');
    c.header('x-frame-options', 'DENY');
    c.header('cache-control', 'no-store');
  });

  app.get('/assets/style.css', (c) => c.body(STYLE_CSS, 200, { 'content-type': 'text/css; charset=utf-8' }));
  app.get('/assets/live.js', (c) => c.body(LIVE_JS, 200, { 'content-type': 'text/javascript; charset=utf-8' }));
  app.get('/favicon.ico', (c) => c.body(null, 204));

  app.get('/', async (c) => {
    const r = await o.source.overview();
    return r.ok ? page(c, <OverviewPage ctx={ctxOf()} data={r.value} />) : unavailable(c, r.error);
  });
  app.get('/rollouts', async (c) => {
    const r = await o.source.overview();
    return r.ok ? page(c, <RolloutsPage ctx={ctxOf()} rollouts={r.value.rollouts} />) : unavailable(c, r.error);
  });
  app.get('/rollouts/:id', async (c) => {
    const id = c.req.param('id');
    const r = await o.source.rollout(id);
    if (!r.ok) return unavailable(c, r.error);
    if (r.value === null) return page(c, <NotFoundPage ctx={ctxOf()} what={`The control plane knows no rollout ${JSON.stringify(id)}.`} />, 404);
    return page(c, <RolloutPage ctx={ctxOf()} data={r.value} />);
  });
  app.get('/hosts/:name', async (c) => {
    const name = c.req.param('name');
    const r = await o.source.host(name);
    if (!r.ok) return unavailable(c, r.error);
    if (r.value === null) return page(c, <NotFoundPage ctx={ctxOf()} what={`The signed fleet has no host ${JSON.stringify(name)}.`} />, 404);
    return page(c, <HostPage ctx={ctxOf()} data={r.value} />);
  });
  app.get('/release', async (c) => {
    const r = await o.source.release();
    return r.ok ? page(c, <ReleasePage ctx={ctxOf()} feed={r.value} />) : unavailable(c, r.error);
  });
  app.notFound((c) => page(c, <NotFoundPage ctx={ctxOf()} what={`There is no page at ${c.req.path}.`} />, 404));
  return app;
}
