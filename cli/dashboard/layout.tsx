/**
 * The dashboard's page frame and small shared pieces (server-rendered Hono JSX). Everything a page
 * needs is served by the dashboard itself (/assets/*): no CDN, no font, no external request; the
 * live script only refreshes what the static page already shows (it works without JavaScript).
 */
import type { Child } from 'hono/jsx';
import type { HostStatusKind, Tone } from '../output.ts';
import { HOST_STATUS_LABELS, ago, rolloutStateCell, shortClosure } from '../output.ts';

export type PageCtx = { nowMs: number; cpUrl: string; refreshMs: number };

/** The whole document; `live` marks the region the live script refreshes in place. */
export function Layout(p: { ctx: PageCtx; title: string; children: Child }) {
  return (
    <html lang="en">
      <head>
        <meta charset="utf-8" />
        <meta name="viewport" content="width=device-width, initial-scale=1" />
        <title>{`${p.title} · nixfleet`}</title>
        <link rel="stylesheet" href="/assets/style.css" />
        <script src="/assets/live.js" defer></script>
      </head>
      <body data-refresh-ms={String(p.ctx.refreshMs)}>
        <a class="skip" href="#main">
          Skip to content
        </a>
        <header>
          <nav aria-label="Main">
            <a href="/" class="brand">
              nixfleet
            </a>
            <a href="/">Fleet</a>
            <a href="/rollouts">Rollouts</a>
            <a href="/release">Release &amp; audit</a>
          </nav>
        </header>
        <main id="main" tabindex={-1}>
          <div id="live">{p.children}</div>
        </main>
        <footer>
          <p>
            Read-only view of <span class="mono">{p.ctx.cpUrl}</span>, rendered <time datetime={new Date(p.ctx.nowMs).toISOString()}>{new Date(p.ctx.nowMs).toISOString()}</time>.{' '}
            <span id="live-status" role="status" aria-live="polite"></span>
          </p>
        </footer>
      </body>
    </html>
  );
}

export function Tag(p: { tone: Tone; children: Child }) {
  return <span class={`tag tone-${p.tone}`}>{p.children}</span>;
}

export function HostStatus(p: { kind: HostStatusKind }) {
  const l = HOST_STATUS_LABELS[p.kind];
  return (
    <Tag tone={l.tone}>
      <span aria-hidden="true">{l.symbol}</span> {l.text}
    </Tag>
  );
}

export function RolloutState(p: { state: string }) {
  const c = rolloutStateCell(p.state);
  return typeof c === 'string' ? <span>{c}</span> : <Tag tone={c.tone}>{c.text}</Tag>;
}

/** An instant: relative text for the eye, the exact time in `datetime` and the tooltip. */
export function When(p: { at: string | null; nowMs: number }) {
  if (p.at === null) return <span>never</span>;
  const ms = Date.parse(p.at);
  return (
    <time datetime={p.at} title={p.at}>
      {/* A time ahead of ours is clock skew between here and the CP: the exact time says more than "in 2 min". */}
      {Number.isFinite(ms) && ms <= p.nowMs + 5_000 ? ago(ms, p.nowMs) : p.at}
    </time>
  );
}

/** A store path basename, shortened, the full one in the tooltip. */
export function Closure(p: { value: string | null }) {
  if (p.value === null) return <span>-</span>;
  return (
    <span class="mono" title={p.value}>
      {shortClosure(p.value)}
    </span>
  );
}

export const hostHref = (name: string): string => `/hosts/${encodeURIComponent(name)}`;
export const rolloutHref = (id: string): string => `/rollouts/${encodeURIComponent(id)}`;

/** A caption-first table; `empty` shown as one row when there are no rows. */
export function Table(p: { caption: string; headers: readonly string[]; empty: string; children?: Child }) {
  // JSX hands one row over as itself, several as an array (possibly nested): count the real rows.
  const rows: unknown[] = [];
  const add = (c: unknown): void => {
    if (Array.isArray(c)) c.forEach(add);
    else if (c !== null && c !== undefined && c !== false && c !== '') rows.push(c);
  };
  add(p.children);
  return (
    <table>
      <caption>{p.caption}</caption>
      <thead>
        <tr>
          {p.headers.map((h) => (
            <th scope="col">{h}</th>
          ))}
        </tr>
      </thead>
      <tbody>
        {rows.length > 0 ? (
          (rows as Child[])
        ) : (
          <tr>
            <td colspan={p.headers.length}>{p.empty}</td>
          </tr>
        )}
      </tbody>
    </table>
  );
}

/** A labelled progress bar: the native element (announced by screen readers) and the numbers as text. */
export function Progress(p: { label: string; done: number; total: number; failed: number; active: number; hideLabel?: boolean }) {
  return (
    <div class="progress">
      <span class={p.hideLabel === true ? 'sr-only' : 'progress-label'}>{p.label}</span>
      <progress max={String(Math.max(p.total, 1))} value={String(p.done)} aria-label={p.label}>
        {`${p.done} of ${p.total}`}
      </progress>
      <span class="progress-text">
        {`${p.done}/${p.total} done`}
        {p.active > 0 ? `, ${p.active} in progress` : ''}
        {p.failed > 0 ? `, ${p.failed} failed` : ''}
      </span>
    </div>
  );
}

export function NotFoundPage(p: { ctx: PageCtx; what: string }) {
  return (
    <Layout ctx={p.ctx} title="Not found">
      <h1>Not found</h1>
      <p>{p.what}</p>
      <p>
        <a href="/">Back to the fleet overview</a>
      </p>
    </Layout>
  );
}

export function ErrorPage(p: { ctx: PageCtx; message: string }) {
  return (
    <Layout ctx={p.ctx} title="Control plane unavailable">
      <h1>Control plane unavailable</h1>
      <p role="alert">{p.message}</p>
      <p>The page retries by itself; reload to try again now.</p>
    </Layout>
  );
}
