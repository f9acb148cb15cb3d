/**
 * Byte positions of the members of one top-level object in canonical JSON (JCS, RFC 8785) bytes,
 * so that the CP can take each host entry of a verified artefact from the bytes the signature
 * covers instead of serialising it again (issue 19: 100,000 host entries per release).
 *
 * Canonical bytes have no whitespace, and a structural character (`{ } [ ] " , :`) never occurs
 * inside a string except as `\"` (a quote) or after a backslash; UTF-8 continuation and lead
 * bytes are ≥ 0x80, so the scan works on the bytes directly. Anything that is not shaped as
 * expected gives null (never a throw, never a loop without progress): the caller then serialises.
 *
 * Pure module: no I/O.
 */

/** The structural bytes of JSON (also used by jcs-spelling.ts's one-pass scan). */
export const QUOTE = 0x22;
export const BACKSLASH = 0x5c;
export const COLON = 0x3a;
export const COMMA = 0x2c;
export const OPEN_OBJECT = 0x7b;
export const CLOSE_OBJECT = 0x7d;
export const OPEN_ARRAY = 0x5b;
export const CLOSE_ARRAY = 0x5d;

/** End (exclusive) of the string starting at the quote `i`, or -1. */
function stringEnd(b: Uint8Array, i: number): number {
  for (let j = i + 1; j < b.length; j++) {
    const c = b[j]!;
    if (c === QUOTE) return j + 1;
    if (c === BACKSLASH) j++;
  }
  return -1;
}

/** End (exclusive) of the JSON value starting at `i`, or -1. */
function valueEnd(b: Uint8Array, i: number): number {
  const first = b[i];
  if (first === undefined) return -1;
  if (first === QUOTE) return stringEnd(b, i);
  if (first !== OPEN_OBJECT && first !== OPEN_ARRAY) {
    // A number or literal: up to the next delimiter.
    let j = i;
    while (j < b.length) {
      const c = b[j]!;
      if (c === COMMA || c === CLOSE_OBJECT || c === CLOSE_ARRAY) break;
      j++;
    }
    return j > i ? j : -1;
  }
  let depth = 0;
  for (let j = i; j < b.length; j++) {
    const c = b[j]!;
    if (c === QUOTE) {
      const e = stringEnd(b, j);
      if (e < 0) return -1;
      j = e - 1;
    } else if (c === OPEN_OBJECT || c === OPEN_ARRAY) depth++;
    else if (c === CLOSE_OBJECT || c === CLOSE_ARRAY) {
      depth--;
      if (depth === 0) return j + 1;
    }
  }
  return -1;
}

/**
 * Members of the object starting at `i`: for member k, `[nameStart, nameEnd, valueStart, valueEnd]`
 * at `4k … 4k + 3` (the name with its quotes), and the end of the object; or null.
 */
function objectMembers(b: Uint8Array, i: number): { spans: number[]; end: number } | null {
  if (b[i] !== OPEN_OBJECT) return null;
  const spans: number[] = [];
  let j = i + 1;
  if (b[j] === CLOSE_OBJECT) return { spans, end: j + 1 };
  for (;;) {
    if (b[j] !== QUOTE) return null;
    const ne = stringEnd(b, j);
    if (ne < 0 || b[ne] !== COLON) return null;
    const ve = valueEnd(b, ne + 1);
    if (ve < 0) return null;
    spans.push(j, ne, ne + 1, ve);
    const c = b[ve];
    if (c === CLOSE_OBJECT) return { spans, end: ve + 1 };
    if (c !== COMMA) return null;
    j = ve + 1;
  }
}

/**
 * The members of the object that is the value of the top-level member named `key` (given as its
 * canonical JSON text, e.g. `"hosts"`) of canonical JSON bytes: for member k,
 * `[nameStart, nameEnd, valueStart, valueEnd]` at `4k … 4k + 3`, in the order the bytes list them.
 * Null when the bytes are not a top-level object with such a member whose value is an object.
 */
export function topLevelMemberSpans(bytes: Uint8Array, key: Uint8Array): Uint32Array | null {
  if (bytes[0] !== OPEN_OBJECT) return null;
  let j = 1;
  // The members before `key` are skipped; the scan stops at the end of `key`'s object.
  while (bytes[j] === QUOTE) {
    const ne = stringEnd(bytes, j);
    if (ne < 0 || bytes[ne] !== COLON) return null;
    if (ne - j === key.length && sameBytes(bytes, j, key)) {
      const inner = objectMembers(bytes, ne + 1);
      const after = inner === null ? undefined : bytes[inner.end];
      return inner !== null && (after === COMMA || (after === CLOSE_OBJECT && inner.end + 1 === bytes.length)) ? Uint32Array.from(inner.spans) : null;
    }
    const ve = valueEnd(bytes, ne + 1);
    if (ve < 0 || bytes[ve] !== COMMA) return null;
    j = ve + 1;
  }
  return null;
}

function sameBytes(b: Uint8Array, at: number, want: Uint8Array): boolean {
  for (let k = 0; k < want.length; k++) if (b[at + k] !== want[k]) return false;
  return true;
}
