import fc from 'fast-check';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { HOST_STATUS_LABELS, colorEnabled, displayWidth, fitLines, makeStyle, relativeTime, renderTable, shortClosure, stripAnsi } from './output.ts';

const plain = makeStyle(false);
const colour = makeStyle(true);

test('colour only on a TTY, never with NO_COLOR (non-empty) or TERM=dumb', () => {
  assert.is(colorEnabled(true, {}), true);
  assert.is(colorEnabled(false, {}), false);
  assert.is(colorEnabled(true, { NO_COLOR: '1' }), false);
  assert.is(colorEnabled(true, { NO_COLOR: '' }), true, 'no-color.org: empty means unset');
  assert.is(colorEnabled(true, { TERM: 'dumb' }), false);
  assert.is(makeStyle(false).tone('bad', 'x'), 'x');
  assert.is(makeStyle(true).tone('bad', 'x'), '\x1b[31mx\x1b[0m');
});

test('table: two-space columns, no trailing spaces, right alignment', () => {
  const out = renderTable(['A', 'LONGER', 'N'], [['xx', 'y', '1'], ['x', '', '100']], plain, ['left', 'left', 'right']);
  assert.is(out, ['A   LONGER    N', 'xx  y         1', 'x           100', ''].join('\n'));
});

test('table: colour does not shift columns (stripped coloured = plain)', () => {
  const rows = [[{ text: '✓ converged', tone: 'ok' as const }, 'a'], [{ text: '✗ failed', tone: 'bad' as const }, 'bb']];
  const c = renderTable(['STATUS', 'X'], rows, colour);
  assert.ok(c.includes('\x1b['));
  assert.is(stripAnsi(c), renderTable(['STATUS', 'X'], rows, plain));
});

test('table: control characters in cell text (a host-sent bootId, a message) are shown escaped, never sent to the terminal', () => {
  const out = renderTable(['HOST', 'BOOT'], [['web1', 'b\x1b[2J\x1b]0;pwned\x07\u009b1m'], ['web2', 'line\nbreak']], colour);
  assert.not.ok(/\x1b\[2J|\x1b\]|\x07|\u009b/.test(out), JSON.stringify(out));
  assert.match(stripAnsi(out), 'b\\x1b[2J\\x1b]0;pwned\\x07\\x9b1m');
  assert.is(stripAnsi(out).split('\n').length, 4, 'a newline in a cell does not add a line');
});

test('property: every column starts at the same offset on every line', () => {
  const cell = fc.string({ maxLength: 12 }).map((s) => s.replace(/[\n\r\x1b\s]/g, '_'));
  fc.assert(
    fc.property(fc.integer({ min: 1, max: 5 }).chain((n) => fc.tuple(fc.array(cell, { minLength: n, maxLength: n }), fc.array(fc.array(cell, { minLength: n, maxLength: n }), { maxLength: 6 }))), ([headers, rows]) => {
      const headersNonEmpty = headers.map((h, i) => h || `H${i}`);
      const lines = renderTable(headersNonEmpty, rows, plain).slice(0, -1).split('\n');
      const starts = (cells: string[]) => {
        const out: number[] = [];
        let pos = 0;
        const widths = headersNonEmpty.map((h, i) => Math.max(displayWidth(h), ...rows.map((r) => displayWidth(r[i] ?? ''))));
        for (let i = 0; i < cells.length; i++) {
          out.push(pos);
          pos += widths[i]! + 2;
        }
        return out;
      };
      const all = [headersNonEmpty, ...rows];
      lines.forEach((line, li) => {
        const cells = all[li]!;
        const cps = [...line];
        starts(cells).forEach((s, ci) => {
          const got = cps.slice(s, s + [...cells[ci]!].length).join('');
          assert.is(got, cells[ci]!);
        });
        assert.is(line, line.trimEnd());
      });
    }),
  );
});

test('relative times', () => {
  const now = Date.parse('2026-01-01T12:00:00Z');
  const cases: [number, string][] = [
    [0, 'just now'],
    [4_999, 'just now'],
    [42_000, '42 s ago'],
    [3 * 60_000 + 5_000, '3 min ago'],
    [59 * 60_000, '59 min ago'],
    [5 * 3600_000, '5 h ago'],
    [47 * 3600_000, '47 h ago'],
    [3 * 86400_000, '3 d ago'],
    [-3 * 60_000, 'in 3 min'],
  ];
  for (const [delta, want] of cases) assert.is(relativeTime(now - delta, now), want, String(delta));
});

test('labels of SPEC §7 are present with their symbols', () => {
  const want: Record<string, string> = {
    converged: '✓ converged',
    soaking: '→ soaking',
    queued: '… queued',
    failed: '✗ failed',
    quarantined: '✗ quarantined',
    'pending-reboot': '⟳ pending reboot',
    stale: '⚠ stale',
  };
  for (const [k, v] of Object.entries(want)) {
    const l = HOST_STATUS_LABELS[k as keyof typeof HOST_STATUS_LABELS];
    assert.is(`${l.symbol} ${l.text}`, v);
    assert.is(displayWidth(l.symbol), 1);
  }
});

test('shortClosure keeps the name and 8 hash characters', () => {
  assert.is(shortClosure('0123456789abcdfghijklmnpqrsvwxyz-nixos-system-web1-25.05'), '01234567-nixos-system-web1-25.05');
  assert.is(shortClosure(null), '-');
  assert.is(shortClosure('odd'), 'odd');
});

test('fitLines cuts lines to the terminal width, keeping colour escapes intact', () => {
  assert.is(fitLines('short\nthis line is too long', 10), 'short\nthis line…');
  const c = colour.tone('ok', 'green text that is long') + ' tail';
  const fitted = fitLines(c, 8);
  assert.is(stripAnsi(fitted), 'green t…');
  assert.ok(fitted.endsWith('\x1b[0m'));
  fc.assert(
    fc.property(fc.string({ maxLength: 60 }).map((s) => s.replace(/[\n\x1b]/g, '_')), fc.integer({ min: 2, max: 40 }), (line, width) => {
      assert.ok(displayWidth(fitLines(line, width)) <= width);
    }),
  );
});

test.run();
