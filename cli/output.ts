/**
 * Human output of `nixfleet`: aligned tables, the status labels of SPEC §7, colour (only on a TTY
 * and never with NO_COLOR), relative times. Pure: `now` and whether to colour are parameters.
 *
 * Tables are aligned by hand rather than with a library (cli-table3 and friends): our tables are
 * plain columns separated by two spaces — greppable, `cut`-able and diff-able in a pinned test —
 * which is a dozen lines, while the libraries draw box borders by default and bring string-width
 * dependencies for East-Asian widths we do not print. Our labels' symbols (✓ → … ✗ ⟳ ⚠) are all
 * single-column characters, so width = code points once colour escapes are stripped.
 */

import { escapeControl } from '../io/text.ts';

export type Tone = 'ok' | 'progress' | 'wait' | 'bad' | 'warn' | 'plain';

export type Style = {
  enabled: boolean;
  tone: (tone: Tone, s: string) => string;
  bold: (s: string) => string;
  dim: (s: string) => string;
};

/** Colour only when stdout is a terminal, NO_COLOR is unset or empty (no-color.org), TERM is not dumb. */
export function colorEnabled(isTTY: boolean, env: Readonly<Record<string, string | undefined>>): boolean {
  if (!isTTY) return false;
  if (env['NO_COLOR'] !== undefined && env['NO_COLOR'] !== '') return false;
  return env['TERM'] !== 'dumb';
}

const SGR: Record<Tone, string> = { ok: '32', progress: '36', wait: '2', bad: '31', warn: '33', plain: '' };

export function makeStyle(enabled: boolean): Style {
  const wrap = (code: string, s: string): string => (enabled && code !== '' && s !== '' ? `\x1b[${code}m${s}\x1b[0m` : s);
  return { enabled, tone: (t, s) => wrap(SGR[t], s), bold: (s) => wrap('1', s), dim: (s) => wrap('2', s) };
}

const ANSI = /\x1b\[[0-9;]*m/g;
export const stripAnsi = (s: string): string => s.replace(ANSI, '');
/** Display width: code points without escapes (all our symbols are single-column). */
export const displayWidth = (s: string): number => [...stripAnsi(s)].length;

export type Cell = string | { text: string; tone: Tone };
export type Align = 'left' | 'right';

/**
 * Columns separated by two spaces, header first, no trailing spaces. Cells may carry a tone; the
 * padding is computed on the plain text so colour never shifts a column.
 */
export function renderTable(headers: readonly string[], rows: readonly (readonly Cell[])[], style: Style, align: readonly Align[] = []): string {
  // Cells hold text from the CP and from hosts (bootId, messages): control characters escaped (io/text.ts).
  const text = (c: Cell | undefined): string => escapeControl(c === undefined ? '' : typeof c === 'string' ? c : c.text);
  const widths = headers.map((h, i) => Math.max(displayWidth(h), ...rows.map((r) => displayWidth(text(r[i])))));
  const line = (cells: readonly Cell[], header: boolean): string =>
    headers
      .map((_, i) => {
        const c = cells[i];
        const t = text(c);
        const pad = ' '.repeat(Math.max(0, widths[i]! - displayWidth(t)));
        const styled = header ? style.bold(t) : typeof c === 'object' ? style.tone(c.tone, t) : t;
        return align[i] === 'right' ? pad + styled : styled + pad;
      })
      .join('  ')
      .trimEnd();
  return [line(headers, true), ...rows.map((r) => line(r, false))].join('\n') + '\n';
}

/**
 * Cut each line to `width` display columns (escapes kept, a final reset added when cut), so a
 * block redrawn in place occupies exactly one terminal row per line.
 */
export function fitLines(text: string, width: number): string {
  if (width < 2) return text;
  return text
    .split('\n')
    .map((line) => {
      if (displayWidth(line) <= width) return line;
      let out = '';
      let w = 0;
      for (const part of line.split(/(\x1b\[[0-9;]*m)/)) {
        if (part.startsWith('\x1b[')) {
          out += part;
          continue;
        }
        for (const ch of part) {
          if (w >= width - 1) break;
          out += ch;
          w++;
        }
      }
      return out + '…' + (line.includes('\x1b[') ? '\x1b[0m' : '');
    })
    .join('\n');
}

/** "just now", "42 s ago", "3 min ago", "5 h ago", "2 d ago"; the future reads "in 3 min". */
export function relativeTime(thenMs: number, nowMs: number): string {
  const delta = nowMs - thenMs;
  const abs = Math.abs(delta);
  const s = Math.floor(abs / 1000);
  let amount: string;
  if (s < 5) return 'just now';
  if (s < 60) amount = `${s} s`;
  else if (s < 3600) amount = `${Math.floor(s / 60)} min`;
  else if (s < 48 * 3600) amount = `${Math.floor(s / 3600)} h`;
  else amount = `${Math.floor(s / 86400)} d`;
  return delta >= 0 ? `${amount} ago` : `in ${amount}`;
}

/** Relative time of an optional instant, or "never". */
export function ago(thenMs: number | null | undefined, nowMs: number): string {
  return thenMs === null || thenMs === undefined ? 'never' : relativeTime(thenMs, nowMs);
}

/**
 * Host status as the operator reads it (SPEC §7). `--json` carries the `kind`; the table shows
 * `symbol text`.
 */
export type HostStatusKind =
  | 'converged'
  | 'soaked'
  | 'soaking'
  | 'confirming'
  | 'activating'
  | 'dispatched'
  | 'queued'
  | 'held'
  | 'failed'
  | 'rolled-back'
  | 'quarantined'
  | 'pending-reboot'
  | 'drifted'
  | 'pinned'
  | 'stale'
  | 'offline'
  | 'idle';

export const HOST_STATUS_LABELS: Readonly<Record<HostStatusKind, { symbol: string; text: string; tone: Tone }>> = Object.freeze({
  converged: { symbol: '✓', text: 'converged', tone: 'ok' },
  soaked: { symbol: '✓', text: 'soaked', tone: 'ok' },
  soaking: { symbol: '→', text: 'soaking', tone: 'progress' },
  confirming: { symbol: '→', text: 'confirming', tone: 'progress' },
  activating: { symbol: '→', text: 'activating', tone: 'progress' },
  dispatched: { symbol: '→', text: 'dispatched', tone: 'progress' },
  queued: { symbol: '…', text: 'queued', tone: 'wait' },
  held: { symbol: '‖', text: 'held', tone: 'warn' },
  failed: { symbol: '✗', text: 'failed', tone: 'bad' },
  'rolled-back': { symbol: '✗', text: 'rolled back', tone: 'bad' },
  quarantined: { symbol: '✗', text: 'quarantined', tone: 'bad' },
  'pending-reboot': { symbol: '⟳', text: 'pending reboot', tone: 'warn' },
  drifted: { symbol: '≠', text: 'drifted', tone: 'warn' },
  pinned: { symbol: '⚓', text: 'pinned', tone: 'plain' },
  stale: { symbol: '⚠', text: 'stale', tone: 'warn' },
  offline: { symbol: '⚠', text: 'offline', tone: 'warn' },
  idle: { symbol: '·', text: 'idle', tone: 'plain' },
});

/** The kinds that make `nixfleet status` exit 1 (so it can gate a CI job). */
export const UNHEALTHY_KINDS: ReadonlySet<HostStatusKind> = new Set(['failed', 'rolled-back', 'quarantined']);

export function hostStatusCell(kind: HostStatusKind): Cell {
  const l = HOST_STATUS_LABELS[kind];
  return { text: `${l.symbol} ${l.text}`, tone: l.tone };
}

/** Rollout states (reconciler `RolloutState`) as labels. */
export function rolloutStateCell(state: string): Cell {
  switch (state) {
    case 'Converged':
      return { text: '✓ converged', tone: 'ok' };
    case 'Executing':
      return { text: '→ executing', tone: 'progress' };
    case 'Pending':
      return { text: '… pending', tone: 'wait' };
    case 'Halted':
      return { text: '✗ halted', tone: 'bad' };
    case 'Paused':
      return { text: '‖ paused', tone: 'warn' };
    case 'Superseded':
      return { text: '↷ superseded', tone: 'plain' };
    default:
      return { text: state.toLowerCase(), tone: 'plain' };
  }
}

/** A store basename shortened for tables: `abcdefgh…-nixos-system-web1-25.05` → `abcdefgh-nixos-system-web1-25.05`. */
export function shortClosure(closure: string | null | undefined): string {
  if (closure === null || closure === undefined) return '-';
  const m = /^([0-9a-z]{32})-(.*)$/.exec(closure);
  return m ? `${m[1]!.slice(0, 8)}-${m[2]}` : closure;
}
