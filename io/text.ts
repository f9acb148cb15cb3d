/**
 * Text from outside (host-sent strings such as a bootId or a report message, file contents, CP
 * error messages) is shown to operators in terminals and log viewers. A raw ESC, CSI or other
 * control character there can move the cursor, rewrite earlier lines or set the window title
 * (ANSI escape injection). `escapeControl` makes every such character visible instead: C0
 * controls (U+0000–U+001F) except tab, DEL (U+007F), C1 controls (U+0080–U+009F) and the Unicode
 * bidi overrides/isolates (U+202A–U+202E, U+2066–U+2069) become `\xHH` / `\u{HHHH}`.
 * Newlines are escaped too: one value never spans two lines.
 */

// eslint-disable-next-line no-control-regex
const CONTROL = /[\u0000-\u0008\u000a-\u001f\u007f-\u009f\u202a-\u202e\u2066-\u2069]/gu;

/** `s` with control characters made visible (`\x1b`, `\x0a`, `\u{202e}`); other text unchanged. */
export function escapeControl(s: string): string {
  CONTROL.lastIndex = 0;
  if (!CONTROL.test(s)) return s;
  return s.replace(CONTROL, (c) => {
    const n = c.codePointAt(0)!;
    return n <= 0xff ? `\\x${n.toString(16).padStart(2, '0')}` : `\\u{${n.toString(16)}}`;
  });
}

/** True when `s` holds a character `escapeControl` would change. */
export function hasControl(s: string): boolean {
  CONTROL.lastIndex = 0;
  return CONTROL.test(s);
}
