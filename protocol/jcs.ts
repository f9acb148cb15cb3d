/**
 * Strict JSON input and JCS (RFC 8785) output for signed artefacts (SPEC §2.1).
 *
 * `JSON.parse` silently keeps the last of two duplicate keys, accepts lone surrogates in escapes
 * and turns `1e400` into Infinity; none of that may reach a signature check. So `parseJsonStrict`
 * is a small recursive-descent parser over the RFC 8259 grammar that refuses, with a stable code:
 * - `TOO_LARGE`: more than `maxBytes` UTF-8 bytes (checked before any parsing, tuf-js style);
 * - `PARSE_ERROR`: not UTF-8, not JSON (including a BOM, trailing data, nesting deeper than
 *   `maxDepth`);
 * - `DUPLICATE_KEY`: two equal member names in one object (I-JSON, RFC 7493 §2.3);
 * - `NOT_CANONICALIZABLE`: a lone surrogate (RFC 7493 §2.1), a number that overflows to ±Infinity,
 *   and — with `integersOnly` (our artefacts, SPEC §2.1) — a non-integer or unsafe integer.
 *
 * Serialisation is delegated to the `canonicalize` package (RFC 8785 reference behaviour: keys
 * sorted by UTF-16 code units, ECMAScript number form, no `/` escaping).
 *
 * Pure module: no I/O.
 */
import { isAscii } from 'node:buffer';
import canonicalizeLib from 'canonicalize';
import { canonicalIntegerBytes, canonicalIntegerSpellingMembers, sortedIntegerJsonMembers } from './jcs-spelling.ts';
import { err, ok, type Result } from './result.ts';

export type JcsErrorCode = 'TOO_LARGE' | 'PARSE_ERROR' | 'DUPLICATE_KEY' | 'NOT_CANONICALIZABLE';
export type JcsError = { code: JcsErrorCode; message: string };

/** Default size limit of a signed artefact (SPEC §2.1). */
export const DEFAULT_MAX_BYTES = 16 * 1024 * 1024;
/** Default nesting limit: deep enough for any artefact, shallow enough to never blow the stack. */
export const DEFAULT_MAX_DEPTH = 512;

export type ParseOptions = {
  maxBytes?: number;
  maxDepth?: number;
  /** Refuse non-integer numbers and integers outside ±(2^53−1) (our artefacts, SPEC §2.1). */
  integersOnly?: boolean;
};

const utf8Decoder = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });
const utf8Encoder = new TextEncoder();

/** Thrown inside the parser only; converted to a `JcsError` value at the boundary. */
class Refusal {
  constructor(readonly error: JcsError) {}
}

function utf8Length(s: string): number {
  // Exact UTF-8 length without allocating; lone surrogates count as 3 (they are refused later).
  let n = 0;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c < 0x80) n += 1;
    else if (c < 0x800) n += 2;
    else if (c >= 0xd800 && c <= 0xdbff && i + 1 < s.length) {
      const d = s.charCodeAt(i + 1);
      if (d >= 0xdc00 && d <= 0xdfff) {
        n += 4;
        i++;
      } else n += 3;
    } else n += 3;
  }
  return n;
}

/**
 * Parse JSON text strictly. Returns the value (plain objects and arrays; a member named
 * `__proto__` is an ordinary own property) or the first refusal.
 */
export function parseJsonStrict(input: Uint8Array | string, opts: ParseOptions = {}): Result<unknown, JcsError> {
  const maxBytes = opts.maxBytes ?? DEFAULT_MAX_BYTES;
  const size = typeof input === 'string' ? utf8Length(input) : input.byteLength;
  if (size > maxBytes) return err({ code: 'TOO_LARGE', message: `input is ${size} bytes, limit is ${maxBytes}` });
  let text: string;
  if (typeof input === 'string') text = input;
  else {
    try {
      text = utf8Decoder.decode(input);
    } catch {
      return err({ code: 'PARSE_ERROR', message: 'input is not valid UTF-8' });
    }
  }
  try {
    const p = new Parser(text, opts.maxDepth ?? DEFAULT_MAX_DEPTH, opts.integersOnly ?? false, typeof input === 'string');
    return ok(p.parseDocument());
  } catch (e) {
    if (e instanceof Refusal) return err(e.error);
    throw e;
  }
}

/** JSON whitespace (RFC 8259 §2): space, tab, line feed, carriage return. */
const isWs = (c: number): boolean => c === 0x20 || c === 0x0a || c === 0x0d || c === 0x09;

class Parser {
  private i = 0;
  /** Member names / indices from the root to the current value; joined into a path only on error. */
  private readonly trail: (string | number)[] = [];
  constructor(
    private readonly s: string,
    private readonly maxDepth: number,
    private readonly integersOnly: boolean,
    /** Raw lone surrogates can only come from string input; fatal UTF-8 decoding excludes them. */
    private readonly rawMayHaveSurrogates: boolean,
  ) {}

  private path(): string {
    return '$' + this.trail.map((k) => (typeof k === 'number' ? `[${k}]` : /^[A-Za-z_$][\w$-]*$/.test(k) ? `.${k}` : `[${JSON.stringify(k)}]`)).join('');
  }

  private fail(code: JcsErrorCode, message: string): never {
    throw new Refusal({ code, message: code === 'PARSE_ERROR' ? `${message} at offset ${this.i}` : message });
  }

  private ws(): void {
    const s = this.s;
    while (this.i < s.length && isWs(s.charCodeAt(this.i))) this.i++;
  }

  parseDocument(): unknown {
    this.ws();
    const v = this.value(0);
    this.ws();
    if (this.i !== this.s.length) this.fail('PARSE_ERROR', 'unexpected data after the JSON value');
    return v;
  }

  private value(depth: number): unknown {
    if (this.i >= this.s.length) this.fail('PARSE_ERROR', 'unexpected end of input');
    const c = this.s.charCodeAt(this.i);
    switch (c) {
      case 0x7b /* { */:
        return this.object(depth + 1);
      case 0x5b /* [ */:
        return this.array(depth + 1);
      case 0x22 /* " */:
        return this.string();
      case 0x74 /* t */:
        return this.literal('true', true);
      case 0x66 /* f */:
        return this.literal('false', false);
      case 0x6e /* n */:
        return this.literal('null', null);
      default:
        if (c === 0x2d || (c >= 0x30 && c <= 0x39)) return this.number();
        return this.fail('PARSE_ERROR', `unexpected character ${JSON.stringify(this.s[this.i])}`);
    }
  }

  private literal<T>(word: string, v: T): T {
    if (this.s.startsWith(word, this.i)) {
      this.i += word.length;
      return v;
    }
    return this.fail('PARSE_ERROR', 'invalid literal');
  }

  private object(depth: number): Record<string, unknown> {
    if (depth > this.maxDepth) this.fail('PARSE_ERROR', `nesting deeper than ${this.maxDepth}`);
    this.i++; // {
    const out: Record<string, unknown> = {};
    this.ws();
    if (this.s.charCodeAt(this.i) === 0x7d) {
      this.i++;
      return out;
    }
    for (;;) {
      this.ws();
      if (this.s.charCodeAt(this.i) !== 0x22) this.fail('PARSE_ERROR', 'expected a member name');
      const key = this.string();
      if (Object.prototype.hasOwnProperty.call(out, key)) this.fail('DUPLICATE_KEY', `duplicate key ${JSON.stringify(key)} in ${this.path()}`);
      this.ws();
      if (this.s.charCodeAt(this.i) !== 0x3a) this.fail('PARSE_ERROR', "expected ':'");
      this.i++;
      this.ws();
      this.trail.push(key);
      const v = this.value(depth);
      this.trail.pop();
      if (key === '__proto__') Object.defineProperty(out, key, { value: v, enumerable: true, writable: true, configurable: true });
      else out[key] = v;
      this.ws();
      const c = this.s.charCodeAt(this.i);
      if (c === 0x2c) {
        this.i++;
        continue;
      }
      if (c === 0x7d) {
        this.i++;
        return out;
      }
      this.fail('PARSE_ERROR', "expected ',' or '}'");
    }
  }

  private array(depth: number): unknown[] {
    if (depth > this.maxDepth) this.fail('PARSE_ERROR', `nesting deeper than ${this.maxDepth}`);
    this.i++; // [
    const out: unknown[] = [];
    this.ws();
    if (this.s.charCodeAt(this.i) === 0x5d) {
      this.i++;
      return out;
    }
    for (;;) {
      this.ws();
      this.trail.push(out.length);
      out.push(this.value(depth));
      this.trail.pop();
      this.ws();
      const c = this.s.charCodeAt(this.i);
      if (c === 0x2c) {
        this.i++;
        continue;
      }
      if (c === 0x5d) {
        this.i++;
        return out;
      }
      this.fail('PARSE_ERROR', "expected ',' or ']'");
    }
  }

  private string(): string {
    const s = this.s;
    this.i++; // opening quote
    let start = this.i;
    let out = '';
    let escapedUnit = false;
    for (;;) {
      if (this.i >= s.length) this.fail('PARSE_ERROR', 'unterminated string');
      const c = s.charCodeAt(this.i);
      if (c === 0x22) {
        out += s.slice(start, this.i);
        this.i++;
        break;
      }
      if (c < 0x20) this.fail('PARSE_ERROR', 'control character in string');
      if (c === 0x5c) {
        out += s.slice(start, this.i);
        this.i++;
        const e = s.charCodeAt(this.i);
        switch (e) {
          case 0x22: out += '"'; break;
          case 0x5c: out += '\\'; break;
          case 0x2f: out += '/'; break;
          case 0x62: out += '\b'; break;
          case 0x66: out += '\f'; break;
          case 0x6e: out += '\n'; break;
          case 0x72: out += '\r'; break;
          case 0x74: out += '\t'; break;
          case 0x75 /* u */: {
            const hex = s.slice(this.i + 1, this.i + 5);
            if (!/^[0-9a-fA-F]{4}$/.test(hex)) this.fail('PARSE_ERROR', 'invalid \\u escape');
            out += String.fromCharCode(parseInt(hex, 16));
            escapedUnit = true;
            this.i += 4;
            break;
          }
          default:
            this.fail('PARSE_ERROR', 'invalid escape');
        }
        this.i++;
        start = this.i;
        continue;
      }
      this.i++;
    }
    if ((escapedUnit || this.rawMayHaveSurrogates) && hasLoneSurrogate(out)) this.fail('NOT_CANONICALIZABLE', `lone surrogate in a string in ${this.path()}`);
    return out;
  }

  private number(): number {
    const s = this.s;
    const start = this.i;
    if (s.charCodeAt(this.i) === 0x2d) this.i++;
    const digits = (): number => {
      const d0 = this.i;
      while (this.i < s.length && s.charCodeAt(this.i) >= 0x30 && s.charCodeAt(this.i) <= 0x39) this.i++;
      return this.i - d0;
    };
    if (s.charCodeAt(this.i) === 0x30) this.i++;
    else if (digits() === 0) this.fail('PARSE_ERROR', 'invalid number');
    if (s.charCodeAt(this.i) === 0x2e) {
      this.i++;
      if (digits() === 0) this.fail('PARSE_ERROR', 'invalid number');
    }
    const e = s.charCodeAt(this.i);
    if (e === 0x65 || e === 0x45) {
      this.i++;
      const sign = s.charCodeAt(this.i);
      if (sign === 0x2b || sign === 0x2d) this.i++;
      if (digits() === 0) this.fail('PARSE_ERROR', 'invalid number');
    }
    const v = Number(s.slice(start, this.i));
    if (!Number.isFinite(v)) this.fail('NOT_CANONICALIZABLE', `number out of range in ${this.path()}`);
    if (this.integersOnly && !Number.isSafeInteger(v)) {
      this.fail('NOT_CANONICALIZABLE', `${this.path()}: only integers up to 2^53-1 are allowed in artefacts, got ${s.slice(start, this.i)}`);
    }
    return v;
  }
}

/** True when `s` holds a UTF-16 surrogate that is not part of a pair (RFC 7493 §2.1). */
export function hasLoneSurrogate(s: string): boolean {
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c >= 0xd800 && c <= 0xdbff) {
      const d = i + 1 < s.length ? s.charCodeAt(i + 1) : 0;
      if (d < 0xdc00 || d > 0xdfff) return true;
      i++;
    } else if (c >= 0xdc00 && c <= 0xdfff) return true;
  }
  return false;
}

/**
 * RFC 8785 serialisation of a JSON value. Refuses (NOT_CANONICALIZABLE) what JCS cannot represent:
 * NaN, ±Infinity, lone surrogates, cycles, and values with no JSON form (undefined, functions,
 * bigint at the top level).
 */
export function canonicalize(value: unknown): Result<string, JcsError> {
  // RFC 8785 §3.2 is ECMAScript's JSON.stringify with members sorted by UTF-16 code units. When
  // every object of `value` already lists its members in that order (parsed canonical text, the
  // slice leaves we build), the native serialiser gives the same bytes, ≈ 10× faster on a 27 MB
  // artefact; anything else goes to the `canonicalize` package. A property checks the two agree.
  // (Deeper than FAST_PATH_MAX_DEPTH, or cyclic: the package decides.)
  if (isSortedJson(value, 0, FAST_PATH_MAX_DEPTH, false)) return ok(JSON.stringify(value));
  let out: string | undefined;
  try {
    out = canonicalizeLib(value);
  } catch (e) {
    return err({ code: 'NOT_CANONICALIZABLE', message: e instanceof Error ? e.message : String(e) });
  }
  if (typeof out !== 'string') return err({ code: 'NOT_CANONICALIZABLE', message: 'value has no JSON representation' });
  return ok(out);
}

const FAST_PATH_MAX_DEPTH = 1000;

// String.prototype.isWellFormed (ES2024, native in Node ≥ 20): no lone surrogate.
const nativeWellFormed = (String.prototype as { isWellFormed?: (this: string) => boolean }).isWellFormed;
const wellFormed = (s: string): boolean => (nativeWellFormed !== undefined ? nativeWellFormed.call(s) : !hasLoneSurrogate(s));

/**
 * Is `v` plain JSON data (null, booleans, finite numbers — safe integers with `integersOnly` —,
 * strings without lone surrogates, arrays, plain objects without `toJSON`, no `undefined`),
 * nested at most `maxDepth` containers deep, each object's own keys in strictly ascending UTF-16 order (JCS order)?
 */
function isSortedJson(v: unknown, depth: number, maxDepth: number, integersOnly: boolean): boolean {
  switch (typeof v) {
    case 'string':
      return wellFormed(v);
    case 'boolean':
      return true;
    case 'number':
      return integersOnly ? Number.isSafeInteger(v) : Number.isFinite(v);
    case 'object': {
      if (v === null) return true;
      if (depth + 1 > maxDepth) return false;
      if (Array.isArray(v)) {
        for (let i = 0; i < v.length; i++) if (!isSortedJson(v[i], depth + 1, maxDepth, integersOnly)) return false;
        return true;
      }
      const proto = Object.getPrototypeOf(v) as unknown;
      if (proto !== Object.prototype && proto !== null) return false;
      const o = v as Record<string, unknown>;
      if (typeof o['toJSON'] === 'function') return false;
      let prev: string | null = null;
      for (const k in o) {
        if (!Object.prototype.hasOwnProperty.call(o, k)) return false;
        if (prev !== null && !(prev < k)) return false;
        prev = k;
        if (!isSortedJson(o[k], depth + 1, maxDepth, integersOnly)) return false;
      }
      return true;
    }
    default:
      return false;
  }
}

/** UTF-8 bytes of `canonicalize(value)`: exactly what is signed and verified. */
export function canonicalBytes(value: unknown): Result<Uint8Array, JcsError> {
  const r = canonicalize(value);
  return r.ok ? ok(utf8Encoder.encode(r.value)) : r;
}

// An escaped UTF-16 surrogate as JSON.stringify writes one (lone surrogates are refused by the
// strict parser; canonical text never escapes a paired one).
const ESCAPED_SURROGATE = /\\ud[89a-f]/;

/** {@link canonicalBytesOfText}'s options: the parser's, and which member spans to report. */
export type CanonicalTextOptions = ParseOptions & {
  /**
   * The name of a top-level member whose value is an object (`hosts` of fleet.resolved.json): when
   * the bytes are found canonical in one pass, the result carries that object's member spans.
   */
  memberSpansOf?: string;
};

/** The value of received text and the canonical bytes a signature covers. */
export type CanonicalText = {
  value: unknown;
  bytes: Uint8Array;
  /**
   * Only when asked (`memberSpansOf`), the input was bytes found canonical in one pass (so `bytes`
   * is the input) and the member exists as an object: `[nameStart, nameEnd, valueStart, valueEnd]`
   * of each of its members, in `bytes`, in order (protocol/jcs-spelling.ts `canonicalIntegerBytes`).
   */
  memberSpans?: Uint32Array;
};

/**
 * Parse strictly, then canonicalise: the bytes a signature covers for received text (SPEC §2.1).
 *
 * Fast paths for text that is already canonical (every artefact our release tool publishes), whose
 * result is what the strict path gives, and `bytes` is the input:
 * - bytes with `integersOnly` (the artefacts): one pass over the bytes proves them canonical
 *   (spelling, safe integers, depth, member names strictly ascending: no duplicate) and the native
 *   `JSON.parse` gives the value (and proves the grammar);
 * - otherwise the native `JSON.parse`, a walk (plain data, key order, depth, numbers) and the
 *   native serialiser giving back exactly the input — a duplicate member, a number the strict
 *   parser would refuse, whitespace or any other spelling would not survive the round trip.
 * Anything else (including every refusal) takes the strict parser and `canonicalize`, with their
 * codes. Properties check that the paths agree.
 */
export function canonicalBytesOfText(input: Uint8Array | string, opts: CanonicalTextOptions = {}): Result<CanonicalText, JcsError> {
  const fast = canonicalTextFastPath(input, opts);
  if (fast !== null) return ok(fast);
  const parsed = parseJsonStrict(input, opts);
  if (!parsed.ok) return parsed;
  const bytes = canonicalBytes(parsed.value);
  return bytes.ok ? ok({ value: parsed.value, bytes: bytes.value }) : bytes;
}

function canonicalTextFastPath(input: Uint8Array | string, opts: CanonicalTextOptions): CanonicalText | null {
  const maxBytes = opts.maxBytes ?? DEFAULT_MAX_BYTES;
  const maxDepth = opts.maxDepth ?? DEFAULT_MAX_DEPTH;
  const isBytes = typeof input !== 'string';
  const size = isBytes ? input.byteLength : utf8Length(input);
  if (size > maxBytes) return null;
  if (isBytes && opts.integersOnly === true) {
    const scan = canonicalIntegerBytes(input, maxDepth, opts.memberSpansOf === undefined ? undefined : utf8Encoder.encode(JSON.stringify(opts.memberSpansOf)));
    if (scan !== null) {
      let value: unknown;
      try {
        // ASCII bytes are their own latin1 text: no UTF-8 decoding (nor validation) needed.
        value = JSON.parse(isAscii(input) ? latin1(input) : utf8Decoder.decode(input));
      } catch {
        return null;
      }
      return scan.spans === null ? { value, bytes: input } : { value, bytes: input, memberSpans: scan.spans };
    }
  }
  let text: string;
  if (isBytes) {
    try {
      text = utf8Decoder.decode(input);
    } catch {
      return null;
    }
  } else {
    if (hasLoneSurrogate(input)) return null;
    text = input;
  }
  if (ESCAPED_SURROGATE.test(text)) return null;
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    return null;
  }
  if (opts.integersOnly === true) {
    // Sorted, spelt token by token as the serialiser spells it, and with as many members as the
    // text has (a duplicate name would leave the value one member short): the serialiser would
    // give back the text, so it is not run (≈ ⅓ of the fast path on a 27 MB artefact). A property
    // checks this against the round trip; anything else takes the round trip below.
    const members = sortedIntegerJsonMembers(value, 0, maxDepth);
    if (members >= 0 && canonicalIntegerSpellingMembers(text) === members) return { value, bytes: isBytes ? input : utf8Encoder.encode(text) };
  }
  if (!isSortedJson(value, 0, maxDepth, opts.integersOnly ?? false)) return null;
  if (JSON.stringify(value) !== text) return null;
  return { value, bytes: isBytes ? input : utf8Encoder.encode(text) };
}

/** ASCII bytes as a string (each byte one code unit). */
function latin1(b: Uint8Array): string {
  return Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString('latin1');
}
