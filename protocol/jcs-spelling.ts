/**
 * Recognising canonical (JCS, RFC 8785) text of our artefacts without serialising it again
 * (issue 19: the CP's verify of a 27 MB artefact). protocol/jcs.ts `canonicalBytesOfText` parses
 * the text natively; when the value is sorted JSON with safe integers whose member count is the
 * text's, and every token of the text is spelt as `JSON.stringify` spells it, the serialiser would
 * give back the text — so it is not run. Anything these two cannot vouch for takes the round trip.
 *
 * Pure module: no I/O.
 */
import { BACKSLASH, CLOSE_ARRAY, CLOSE_OBJECT, COLON, COMMA, OPEN_ARRAY, OPEN_OBJECT, QUOTE } from './json-spans.ts';

// String.prototype.isWellFormed (ES2024, native in Node ≥ 20): no lone surrogate.
const nativeWellFormed = (String.prototype as { isWellFormed?: (this: string) => boolean }).isWellFormed;
const wellFormed = (s: string): boolean => (nativeWellFormed !== undefined ? nativeWellFormed.call(s) : !/[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/.test(s));

/**
 * The number of members (object entries, over all objects) of `v` when it is sorted JSON as
 * {@link isSortedJson} with `integersOnly`, and no member name starts with a digit (names that are
 * array indices are enumerated before the others, whatever order the text wrote them in); else -1.
 */
export function sortedIntegerJsonMembers(v: unknown, depth: number, maxDepth: number): number {
  switch (typeof v) {
    case 'string':
      return wellFormed(v) ? 0 : -1;
    case 'boolean':
      return 0;
    case 'number':
      return Number.isSafeInteger(v) ? 0 : -1;
    case 'object': {
      if (v === null) return 0;
      if (depth + 1 > maxDepth) return -1;
      let n = 0;
      if (Array.isArray(v)) {
        for (let i = 0; i < v.length; i++) {
          const m = sortedIntegerJsonMembers(v[i], depth + 1, maxDepth);
          if (m < 0) return -1;
          n += m;
        }
        return n;
      }
      const proto = Object.getPrototypeOf(v) as unknown;
      if (proto !== Object.prototype && proto !== null) return -1;
      const o = v as Record<string, unknown>;
      if (typeof o['toJSON'] === 'function') return -1;
      let prev: string | null = null;
      for (const k in o) {
        if (!Object.prototype.hasOwnProperty.call(o, k)) return -1;
        const first = k.charCodeAt(0);
        if (first >= 0x30 && first <= 0x39) return -1;
        if (prev !== null && !(prev < k)) return -1;
        prev = k;
        const m = sortedIntegerJsonMembers(o[k], depth + 1, maxDepth);
        if (m < 0) return -1;
        n += m + 1;
      }
      return n;
    }
    default:
      return -1;
  }
}

const SHORT_ESCAPES = new Set([0x22, 0x5c, 0x62, 0x66, 0x6e, 0x72, 0x74]); // " \ b f n r t
const SHORT_ESCAPED_CONTROLS = new Set([0x08, 0x09, 0x0a, 0x0c, 0x0d]);

/**
 * For text that `JSON.parse` accepted: the number of members its objects have (the `:` outside
 * strings) when every token is spelt as `JSON.stringify` spells it — no whitespace; integers only,
 * `-?(0|[1-9][0-9]*)` but not `-0`; strings whose only escapes are the serialiser's (`\"`, `\\`,
 * `\b`, `\f`, `\n`, `\r`, `\t`, and `\u00xx` in lowercase for the other control characters);
 * else -1 (which does not mean the text is not canonical: the caller then compares it with the
 * serialiser's output).
 */
export function canonicalIntegerSpellingMembers(s: string): number {
  let members = 0;
  const n = s.length;
  let i = 0;
  while (i < n) {
    const c = s.charCodeAt(i);
    if (c === 0x22) {
      i++;
      for (;;) {
        if (i >= n) return -1;
        const d = s.charCodeAt(i);
        if (d === 0x22) break;
        if (d === 0x5c) {
          const e = s.charCodeAt(i + 1);
          if (SHORT_ESCAPES.has(e)) {
            i += 2;
            continue;
          }
          // \u00xx: a control character without a short escape, lowercase hex.
          if (e !== 0x75 || s.charCodeAt(i + 2) !== 0x30 || s.charCodeAt(i + 3) !== 0x30) return -1;
          const hi = s.charCodeAt(i + 4);
          const lo = s.charCodeAt(i + 5);
          const low = lo >= 0x30 && lo <= 0x39 ? lo - 0x30 : lo >= 0x61 && lo <= 0x66 ? lo - 0x61 + 10 : -1;
          if ((hi !== 0x30 && hi !== 0x31) || low < 0 || SHORT_ESCAPED_CONTROLS.has((hi - 0x30) * 16 + low)) return -1;
          i += 6;
          continue;
        }
        i++;
      }
      i++;
    } else if (c === 0x3a) {
      members++;
      i++;
    } else if (c === 0x7b || c === 0x7d || c === 0x5b || c === 0x5d || c === 0x2c) i++;
    else if (c === 0x74 || c === 0x6e) i += 4; // true, null (JSON.parse checked the spelling)
    else if (c === 0x66) i += 5; // false
    else if (c === 0x2d || (c >= 0x30 && c <= 0x39)) {
      let j = c === 0x2d ? i + 1 : i;
      if (s.charCodeAt(j) === 0x30) {
        if (c === 0x2d) return -1; // -0
        j++;
      } else {
        while (j < n && s.charCodeAt(j) >= 0x30 && s.charCodeAt(j) <= 0x39) j++;
      }
      // No fraction, no exponent: the next character ends the number.
      const d = s.charCodeAt(j);
      if (j < n && d !== 0x2c && d !== 0x7d && d !== 0x5d) return -1;
      i = j;
    } else return -1; // whitespace
  }
  return members;
}

// ---- canonical bytes in one pass ---------------------------------------------------------------

// Digits of Number.MAX_SAFE_INTEGER: a 16-digit integer is safe when not above it.
const MAX_SAFE_DIGITS = [9, 0, 0, 7, 1, 9, 9, 2, 5, 4, 7, 4, 0, 9, 9, 1].map((d) => d + 0x30);
const nameDecoder = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

/** What {@link canonicalIntegerBytes} found. */
export type CanonicalBytesScan = {
  /**
   * With `memberSpansOf`: the members of the object that is the value of that top-level member, as
   * `[nameStart, nameEnd, valueStart, valueEnd]` (byte offsets; the name with its quotes) at
   * `4k … 4k + 3` in the order the bytes list them; null when there is no such member or its value
   * is not an object.
   */
  spans: Uint32Array | null;
};

/**
 * For bytes that `JSON.parse` (of their UTF-8 text) accepts: non-null when they are the JCS
 * (RFC 8785) bytes of that value with safe integers only — so `JSON.stringify(JSON.parse(text))`
 * would give them back, and the strict parser (protocol/jcs.ts) would give the same value —, in
 * one pass over the bytes, without the value: every token spelt as `JSON.stringify` spells it (as
 * {@link canonicalIntegerSpellingMembers}; no `\u` escape but the serialiser's `\u00xx`, so no
 * escaped surrogate), integers within ±(2^53−1), no container deeper than `maxDepth`, and in every
 * object member names in strictly ascending UTF-16 order (so no duplicate) none of which starts
 * with a digit (array-index names are enumerated first, whatever the text's order). Null does not
 * mean the bytes are not canonical: the caller then takes the slower checks. Never throws; every
 * step advances, so it ends on any input.
 */
export function canonicalIntegerBytes(b: Uint8Array, maxDepth: number, memberSpansOf?: Uint8Array): CanonicalBytesScan | null {
  const n = b.length;
  let depth = 0;
  // Per open container (index = its depth): 1 for an object, and its last member name's span.
  const isObject: number[] = [0];
  const prevStart: number[] = [-1];
  const prevEnd: number[] = [-1];
  let collectAt = -1; // offset of the `{` whose members are collected
  let collectDepth = -1; // depth inside that object while it is open
  let spans: Uint32Array | null = null;
  let count = 0;
  let i = 0;
  while (i < n) {
    const c = b[i]!;
    if (c === QUOTE) {
      const start = i;
      i++;
      for (;;) {
        if (i >= n) return null;
        const d = b[i]!;
        if (d === QUOTE) break;
        if (d === BACKSLASH) {
          const e = b[i + 1]!;
          if (SHORT_ESCAPES.has(e)) {
            i += 2;
            continue;
          }
          // \u00xx: a control character without a short escape, lowercase hex.
          if (e !== 0x75 || b[i + 2] !== 0x30 || b[i + 3] !== 0x30) return null;
          const hi = b[i + 4]!;
          const lo = b[i + 5]!;
          const low = lo >= 0x30 && lo <= 0x39 ? lo - 0x30 : lo >= 0x61 && lo <= 0x66 ? lo - 0x61 + 10 : -1;
          if ((hi !== 0x30 && hi !== 0x31) || low < 0 || SHORT_ESCAPED_CONTROLS.has((hi - 0x30) * 16 + low)) return null;
          i += 6;
          continue;
        }
        i++;
      }
      i++; // past the closing quote
      if (b[i] === COLON) {
        // A member name: in an object, not digit-first, after the previous name of this object.
        if (isObject[depth] !== 1) return null;
        const first = b[start + 1]!;
        if (first >= 0x30 && first <= 0x39) return null;
        const ps = prevStart[depth]!;
        if (ps >= 0 && !nameBefore(b, ps, prevEnd[depth]!, start, i)) return null;
        prevStart[depth] = start;
        prevEnd[depth] = i;
        if (depth === collectDepth && spans !== null) {
          if (4 * count + 4 > spans.length) {
            const grown: Uint32Array = new Uint32Array(2 * spans.length);
            grown.set(spans);
            spans = grown;
          }
          const s: Uint32Array = spans;
          s[4 * count] = start;
          s[4 * count + 1] = i;
          s[4 * count + 2] = i + 1;
          count++;
        } else if (depth === 1 && memberSpansOf !== undefined && i - start === memberSpansOf.length && sameBytes(b, start, memberSpansOf) && b[i + 1] === OPEN_OBJECT) {
          collectAt = i + 1;
        }
        i++;
      }
    } else if (c === OPEN_OBJECT || c === OPEN_ARRAY) {
      depth++;
      if (depth > maxDepth) return null;
      isObject[depth] = c === OPEN_OBJECT ? 1 : 0;
      prevStart[depth] = -1;
      if (i === collectAt) {
        collectDepth = depth;
        spans = new Uint32Array(1024);
      }
      i++;
    } else if (c === CLOSE_OBJECT || c === CLOSE_ARRAY) {
      if (depth === collectDepth && spans !== null) {
        if (count > 0) spans[4 * count - 1] = i;
        collectDepth = -1;
      }
      depth--;
      if (depth < 0) return null;
      i++;
    } else if (c === COMMA) {
      if (depth === collectDepth && spans !== null && count > 0) spans[4 * count - 1] = i;
      i++;
    } else if (c === 0x74 || c === 0x6e) i += 4; // true, null (JSON.parse checks the spelling)
    else if (c === 0x66) i += 5; // false
    else if (c === 0x2d || (c >= 0x30 && c <= 0x39)) {
      let j = c === 0x2d ? i + 1 : i;
      const d0 = j;
      if (b[j] === 0x30) {
        if (c === 0x2d) return null; // -0
        j++;
      } else {
        while (j < n && b[j]! >= 0x30 && b[j]! <= 0x39) j++;
        const digits = j - d0;
        if (digits === 0 || digits > 16 || (digits === 16 && !notAboveMaxSafe(b, d0))) return null;
      }
      // No fraction, no exponent: the next byte ends the number.
      const d = b[j];
      if (j < n && d !== COMMA && d !== CLOSE_OBJECT && d !== CLOSE_ARRAY) return null;
      i = j;
    } else return null; // whitespace, or not JSON
  }
  if (depth !== 0) return null;
  return { spans: spans === null ? null : spans.subarray(0, 4 * count) };
}

function sameBytes(b: Uint8Array, at: number, want: Uint8Array): boolean {
  for (let k = 0; k < want.length; k++) if (b[at + k] !== want[k]) return false;
  return true;
}

/** The 16 digits at `at` are ≤ 9007199254740991. */
function notAboveMaxSafe(b: Uint8Array, at: number): boolean {
  for (let k = 0; k < 16; k++) {
    const d = b[at + k]!;
    if (d !== MAX_SAFE_DIGITS[k]) return d < MAX_SAFE_DIGITS[k]!;
  }
  return true;
}

/**
 * Is the member name at [as, ae) strictly before the one at [bs, be) (quotes included), in UTF-16
 * code-unit order (RFC 8785 §3.2.3)? Byte order is that order while both are ASCII without
 * escapes; otherwise both names are decoded and compared as strings.
 */
function nameBefore(b: Uint8Array, as: number, ae: number, bs: number, be: number): boolean {
  const la = ae - as;
  const lb = be - bs;
  const m = la < lb ? la : lb;
  for (let k = 1; k < m; k++) {
    const x = b[as + k]!;
    const y = b[bs + k]!;
    if (x === BACKSLASH || y === BACKSLASH || x >= 0x80 || y >= 0x80) return decodedBefore(b, as, ae, bs, be);
    if (x !== y) {
      // One of them may be the closing quote (a prefix of the other): the shorter name comes first.
      if (x === QUOTE && k === la - 1) return true;
      if (y === QUOTE && k === lb - 1) return false;
      return x < y;
    }
  }
  return la < lb; // equal names are not in strictly ascending order
}

function decodedBefore(b: Uint8Array, as: number, ae: number, bs: number, be: number): boolean {
  try {
    const x = JSON.parse(nameDecoder.decode(b.subarray(as, ae))) as string;
    const y = JSON.parse(nameDecoder.decode(b.subarray(bs, be))) as string;
    return x < y;
  } catch {
    return false;
  }
}
