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
import canonicalizeLib from 'canonicalize';
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

const WS = new Set([0x20, 0x09, 0x0a, 0x0d]);

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
    while (this.i < s.length && WS.has(s.charCodeAt(this.i))) this.i++;
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
  let out: string | undefined;
  try {
    out = canonicalizeLib(value);
  } catch (e) {
    return err({ code: 'NOT_CANONICALIZABLE', message: e instanceof Error ? e.message : String(e) });
  }
  if (typeof out !== 'string') return err({ code: 'NOT_CANONICALIZABLE', message: 'value has no JSON representation' });
  return ok(out);
}

/** UTF-8 bytes of `canonicalize(value)`: exactly what is signed and verified. */
export function canonicalBytes(value: unknown): Result<Uint8Array, JcsError> {
  const r = canonicalize(value);
  return r.ok ? ok(utf8Encoder.encode(r.value)) : r;
}

/** Parse strictly, then canonicalise: the bytes a signature covers for received text (SPEC §2.1). */
export function canonicalBytesOfText(input: Uint8Array | string, opts: ParseOptions = {}): Result<{ value: unknown; bytes: Uint8Array }, JcsError> {
  const parsed = parseJsonStrict(input, opts);
  if (!parsed.ok) return parsed;
  const bytes = canonicalBytes(parsed.value);
  return bytes.ok ? ok({ value: parsed.value, bytes: bytes.value }) : bytes;
}
