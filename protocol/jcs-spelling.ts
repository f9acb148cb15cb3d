/**
 * Recognising canonical (JCS, RFC 8785) text of our artefacts without serialising it again
 * (issue 19: the CP's verify of a 27 MB artefact). protocol/jcs.ts `canonicalBytesOfText` parses
 * the text natively; when the value is sorted JSON with safe integers whose member count is the
 * text's, and every token of the text is spelt as `JSON.stringify` spells it, the serialiser would
 * give back the text — so it is not run. Anything these two cannot vouch for takes the round trip.
 *
 * Pure module: no I/O.
 */

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
