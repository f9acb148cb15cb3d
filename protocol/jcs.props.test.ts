import fc from 'fast-check';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import canonicalizeLib from 'canonicalize';
import { canonicalBytes, canonicalBytesOfText, canonicalize, hasLoneSurrogate, parseJsonStrict, type ParseOptions } from './jcs.ts';
import { canonicalIntegerBytes, canonicalIntegerSpellingMembers } from './jcs-spelling.ts';
import { topLevelMemberSpans } from './json-spans.ts';

const RUNS = { numRuns: 300 };
const canon = (v: unknown): string => {
  const r = canonicalize(v);
  if (!r.ok) throw new Error(r.error.message);
  return r.value;
};
const reparse = (s: string): unknown => {
  const r = parseJsonStrict(s);
  if (!r.ok) throw new Error(`${r.error.code}: ${r.error.message}`);
  return r.value;
};

/** The same JSON value with every object's keys in a shuffled order. */
function shuffleKeys(v: unknown, rnd: () => number): unknown {
  if (Array.isArray(v)) return v.map((x) => shuffleKeys(x, rnd));
  if (typeof v === 'object' && v !== null) {
    const keys = Object.keys(v).sort(() => rnd() - 0.5);
    const out: Record<string, unknown> = {};
    for (const k of keys) Object.defineProperty(out, k, { value: shuffleKeys((v as Record<string, unknown>)[k], rnd), enumerable: true, writable: true, configurable: true });
    return out;
  }
  return v;
}

const props = suite('JCS properties');

props('canonicalisation is idempotent: canon(parse(canon(v))) = canon(v)', () => {
  fc.assert(
    fc.property(fc.jsonValue(), (v) => {
      const once = canon(v);
      assert.is(canon(reparse(once)), once);
    }),
    RUNS,
  );
});

props('canonical form does not depend on the key order of the input', () => {
  fc.assert(
    fc.property(fc.jsonValue(), fc.integer(), (v, seed) => {
      let s = seed >>> 0;
      const rnd = () => ((s = (s * 1103515245 + 12345) >>> 0) / 2 ** 32);
      const shuffled = shuffleKeys(v, rnd);
      assert.is(canon(shuffled), canon(v));
      // …and through text with any whitespace / key order.
      assert.is(canon(reparse(JSON.stringify(shuffled, null, 3))), canon(v));
    }),
    RUNS,
  );
});

props('parseJsonStrict agrees with JSON.parse on duplicate-free JSON', () => {
  fc.assert(
    fc.property(fc.jsonValue(), (v) => {
      const text = JSON.stringify(v);
      assert.equal(reparse(text), JSON.parse(text));
    }),
    RUNS,
  );
});

props('parseJsonStrict never throws on arbitrary bytes or strings: a value or an error code', () => {
  const codes = new Set(['OK', 'TOO_LARGE', 'PARSE_ERROR', 'DUPLICATE_KEY', 'NOT_CANONICALIZABLE']);
  fc.assert(
    fc.property(fc.oneof(fc.uint8Array({ maxLength: 200 }), fc.string({ unit: 'binary', maxLength: 200 }), fc.json().map((j) => j.slice(0, Math.max(0, j.length - 1)))), (input) => {
      const r = parseJsonStrict(input, { maxBytes: 150 });
      assert.ok(codes.has(r.ok ? 'OK' : r.error.code));
    }),
    { numRuns: 2000 },
  );
});

props('an object with a repeated key is always refused as DUPLICATE_KEY', () => {
  fc.assert(
    fc.property(fc.dictionary(fc.string(), fc.jsonValue({ maxDepth: 1 }), { minKeys: 1 }), fc.nat(), fc.jsonValue({ maxDepth: 1 }), (obj, i, extra) => {
      const keys = Object.keys(obj);
      const dup = keys[i % keys.length]!;
      const body = keys.map((k) => `${JSON.stringify(k)}:${JSON.stringify(obj[k])}`);
      body.splice(i % (body.length + 1), 0, `${JSON.stringify(dup)}:${JSON.stringify(extra)}`);
      const r = parseJsonStrict(`{"wrap":{${body.join(',')}}}`);
      assert.ok(!r.ok && r.error.code === 'DUPLICATE_KEY');
    }),
    RUNS,
  );
});

props('canonicalize (native fast path for sorted data) gives the bytes of the canonicalize package on any JSON value', () => {
  fc.assert(
    fc.property(fc.jsonValue(), fc.boolean(), (v, sorted) => {
      // Half the cases are parsed canonical text (sorted members: the fast path), half as generated.
      const input = sorted ? JSON.parse(canonicalizeLib(v) as string) : v;
      assert.is(canon(input), canonicalizeLib(input) as string);
    }),
    RUNS,
  );
});

/** The strict path alone: strict parser, then the canonicalize package. */
function strictPath(text: string, opts: ParseOptions): string {
  const p = parseJsonStrict(text, opts);
  if (!p.ok) return `error ${p.error.code}`;
  try {
    return `ok ${canonicalizeLib(p.value) as string}`;
  } catch {
    return 'error NOT_CANONICALIZABLE';
  }
}

/** Canonical texts, and spellings near them: duplicates, whitespace, escapes, big or fractional numbers, deep nesting. */
const nearCanonical = fc.oneof(
  fc.jsonValue().map((v) => canonicalizeLib(v) as string),
  fc.tuple(fc.jsonValue(), fc.constantFrom('{"a":1,"a":1}', '{"a":1, "b":2}', '"\\ud800"', '"\\ud83d\\ude00"', '"\\u0041"', '1.5', '1e400', '9007199254740993', '-0', '"\\/"', '{"__proto__":1}', '[[[[[[1]]]]]]', '{"b":1,"a":2}', '{"10":1,"9":2}', '\ufeff{}'))
    .map(([v, bit]) => `[${canonicalizeLib(v) as string},${bit}]`),
  fc.jsonValue().map((v) => JSON.stringify(v, null, 1)),
);

props('canonicalBytesOfText: the fast path gives what the strict path gives (value bytes or error code), for bytes and strings', () => {
  fc.assert(
    fc.property(nearCanonical, fc.boolean(), fc.constantFrom<ParseOptions>({}, { integersOnly: true }, { maxDepth: 4 }), (text, asBytes, opts) => {
      const r = canonicalBytesOfText(asBytes ? new TextEncoder().encode(text) : text, opts);
      const got = r.ok ? `ok ${new TextDecoder().decode(r.value.bytes)}` : `error ${r.error.code}`;
      assert.is(got, strictPath(text, opts), text);
      if (r.ok) {
        const again = canonicalBytes(r.value.value);
        assert.ok(again.ok && new TextDecoder().decode(again.value) === got.slice(3), 'the value canonicalises to the bytes');
      }
    }),
    { numRuns: 1000 },
  );
});

/** JSON values whose numbers are safe integers (the artefacts' numbers), with strings of any code units. */
const intJson: fc.Arbitrary<unknown> = fc
  .oneof(fc.jsonValue(), fc.dictionary(fc.string({ unit: 'binary', maxLength: 6 }), fc.oneof(fc.string({ unit: 'binary', maxLength: 6 }), fc.integer(), fc.jsonValue({ maxDepth: 2 })), { maxKeys: 5 }))
  .map(function ints(v: unknown): unknown {
    if (typeof v === 'number') return Number.isSafeInteger(v) ? v : Math.trunc(v % 1e15) || 0;
    if (Array.isArray(v)) return v.map(ints);
    if (v !== null && typeof v === 'object') {
      const out: Record<string, unknown> = {};
      for (const [k, x] of Object.entries(v)) Object.defineProperty(out, k, { value: ints(x), enumerable: true, writable: true, configurable: true });
      return out;
    }
    return v;
  });

/** Respellings of a canonical text that the serialiser would not write (or, for some, would). */
const respell: ((t: string, at: number) => string)[] = [
  (t) => t,
  (t, at) => t.slice(0, at % (t.length + 1)) + ' ' + t.slice(at % (t.length + 1)),
  (t, at) => t.slice(0, at % (t.length + 1)) + '\n' + t.slice(at % (t.length + 1)),
  (t) => t.replace(/\\n/g, '\\u000a'),
  (t) => t.replace(/\\u00([0-9a-f]{2})/g, (_, h: string) => `\\u00${h.toUpperCase()}`),
  (t) => t.replace(/\//g, '\\/'),
  (t) => t.replace(/a/, '\\u0061'),
  (t) => t.replace(/:(-?[0-9]+)/, ':$1.0'),
  (t) => t.replace(/:(-?[0-9]+)/, ':$1e0'),
  (t) => t.replace(/:(-?[0-9]+)/, ':-0'),
  (t) => t.replace(/:(-?[0-9]+)/, ':0$1'),
  (t) => `[${t},{"a":1,"a":1}]`,
  (t) => `{"a":${t},"a":${t}}`,
  (t) => `[${t},{"b":1,"1":2}]`,
  (t) => `[${t},{"1":1,"b":2}]`,
  (t) => `[${t},{"a":{"c":1,"c":1}}]`,
  (t) => `[${t},"\u007f\u2028"]`,
  (t) => `[${t},9007199254740992,-9007199254740991]`,
  (t) => `[${t},-9007199254740992,1234567890123456,9007199254740991]`,
  (t) => `[${t},12345678901234567]`,
  // Member names whose byte order is not their UTF-16 order (RFC 8785 §3.2.3 sorts by code units):
  // U+FFFF sorts after U+1F600 in bytes (EF… < F0…) but before it in code units (FFFF > D83D).
  (t) => `[${t},{"\uffff":1,"😀":2}]`,
  (t) => `[${t},{"😀":1,"\uffff":2}]`,
  // An escaped quote (0x22) sorts before "#" (0x23), but its escape's backslash (0x5c) after it.
  (t) => `[${t},{"a\\"":1,"a#":2}]`,
  (t) => `[${t},{"a#":1,"a\\"":2}]`,
  (t) => `[${t},{"a\\u0001":1,"a\\n":2}]`,
  (t) => `[${t},{"a\\n":1,"a\\u0001":2}]`,
  (t) => `[${t},{"ab":1,"a":2},{"a":1,"ab":2}]`,
  (t) => `{"z":${t},"y":1}`,
  (t) => `[${t},{"a":[{"b":1,"c":{"d":[1,{"e":2,"e":3}]}}]}]`,
  (t) => `[${t},[[[[[[[[1]]]]]]]]]`,
];

props('canonicalBytesOfText with integersOnly (the artefacts): the fast path, spelling check included, gives what the strict path gives', () => {
  fc.assert(
    fc.property(intJson, fc.nat(), fc.nat(respell.length - 1), fc.boolean(), (v, at, m, asBytes) => {
      const respelt = respell[m]!(canonicalizeLib(v) as string, at);
      // As bytes, a lone surrogate a respelling made becomes U+FFFD: the strict path reads those bytes.
      const text = asBytes ? new TextDecoder().decode(new TextEncoder().encode(respelt)) : respelt;
      const opts: ParseOptions = { integersOnly: true };
      const r = canonicalBytesOfText(asBytes ? new TextEncoder().encode(text) : text, opts);
      const got = r.ok ? `ok ${new TextDecoder().decode(r.value.bytes)}` : `error ${r.error.code}`;
      assert.is(got, strictPath(text, opts), text);
    }),
    { numRuns: 2000 },
  );
});

props('canonicalBytesOfText with integersOnly and a depth limit: the fast paths give what the strict path gives', () => {
  fc.assert(
    fc.property(intJson, fc.nat(), fc.nat(respell.length - 1), fc.integer({ min: 1, max: 4 }), (v, at, m, maxDepth) => {
      // As bytes, a lone surrogate a respelling made becomes U+FFFD: the strict path reads those bytes.
      const text = new TextDecoder().decode(new TextEncoder().encode(respell[m]!(canonicalizeLib(v) as string, at)));
      const opts: ParseOptions = { integersOnly: true, maxDepth };
      const r = canonicalBytesOfText(new TextEncoder().encode(text), opts);
      const got = r.ok ? `ok ${new TextDecoder().decode(r.value.bytes)}` : `error ${r.error.code}`;
      assert.is(got, strictPath(text, opts), text);
    }),
    { numRuns: 1000 },
  );
});

/** Does `v` have, at any depth, a member name starting with a digit or a lone surrogate (which JCS escapes as `\udxxx`)? */
const unscannable = (v: unknown): boolean =>
  typeof v === 'string'
    ? hasLoneSurrogate(v)
    : Array.isArray(v)
      ? v.some(unscannable)
      : v !== null && typeof v === 'object'
        ? Object.entries(v).some(([k, x]) => /^[0-9]/.test(k) || hasLoneSurrogate(k) || unscannable(x))
        : false;

props('canonicalIntegerBytes vouches for the JCS bytes of any safe-integer JSON without digit-first names, and the fast path is taken', () => {
  fc.assert(
    fc.property(intJson, (v) => {
      const bytes = new TextEncoder().encode(canonicalizeLib(v) as string);
      const scan = canonicalIntegerBytes(bytes, 512);
      assert.is(scan !== null, !unscannable(v), canonicalizeLib(v) as string);
    }),
    { numRuns: 1000 },
  );
  // Only the one-pass path reports member spans: a canonical artefact takes it.
  const r = canonicalBytesOfText(new TextEncoder().encode('{"a":[1],"hosts":{"h1":{"x":1},"h2":{}},"z":null}'), { integersOnly: true, memberSpansOf: 'hosts' });
  assert.ok(r.ok && r.value.memberSpans !== undefined);
});

props('canonicalIntegerBytes refuses what the serialiser would not write; the names are compared in UTF-16 order', () => {
  const enc = (t: string) => new TextEncoder().encode(t);
  for (const bad of ['{ }', '[1.0]', '[1e2]', '[-0]', '[01]', '[-]', '["\\/"]', '["\\u0041"]', '["\\u000a"]', '["\\u001F"]', '["\\ud83d\\ude00"]', '[1 ]', '\n1', '[9007199254740992]', '[-9007199254740992]', '[12345678901234567]',
    '{"b":1,"a":2}', '{"a":1,"a":2}', '{"ab":1,"a":2}', '{"1":1}', '{"a":{"1b":1}}', '{"\uffff":1,"😀":2}', '{"a#":1,"a\\"":2}', '{"a\\n":1,"a\\u0001":2}', '[[[1]]]', '{"a":1', '"abc', '}{']) {
    assert.is(canonicalIntegerBytes(enc(bad), 2), null, bad);
  }
  for (const good of ['{}', '[]', '[[1]]', '{"a":1,"ab":2}', '{"😀":1,"\uffff":2}', '{"a\\"":1,"a#":2}', '{"a\\u0001":1,"a\\n":2}', '[9007199254740991,-9007199254740991,1234567890123456,0,-1]', '{"é":{"x":"\\u001f\\n"},"ü":true}']) {
    assert.ok(canonicalIntegerBytes(enc(good), 2) !== null, good);
  }
});

/** Names that stress a byte scanner: quotes, backslashes, control characters, digits, non-ASCII, JSON punctuation. */
const nasty = fc.oneof(fc.string({ unit: 'binary', maxLength: 8 }), fc.constantFrom('"hosts"', 'hosts', 'a"b', 'a\\b', '\\', '"', '{', '}', '[]', ',', ':', 'é', '\u2028', '😀', '\uffff', '\u0001', '\u007f', 'a,"b":{'));

props('canonicalIntegerBytes: the member spans it reports are the ones protocol/json-spans.ts finds', () => {
  fc.assert(
    fc.property(fc.dictionary(nasty, intJson, { maxKeys: 8 }), fc.dictionary(nasty, intJson, { maxKeys: 4 }), nasty, (inner, others, key) => {
      const top: Record<string, unknown> = {};
      for (const [k, x] of Object.entries(others)) Object.defineProperty(top, k, { value: x, enumerable: true, writable: true, configurable: true });
      Object.defineProperty(top, key, { value: inner, enumerable: true, writable: true, configurable: true });
      const bytes = new TextEncoder().encode(canonicalizeLib(top) as string);
      const name = new TextEncoder().encode(JSON.stringify(key));
      const scan = canonicalIntegerBytes(bytes, 512, name);
      assert.is(scan !== null, !unscannable(top));
      if (scan !== null) assert.equal(scan.spans === null ? null : [...scan.spans], [...topLevelMemberSpans(bytes, name)!]);
      // No such member, or not an object: no spans.
      if (scan !== null) assert.is(canonicalIntegerBytes(bytes, 512, new TextEncoder().encode(JSON.stringify(`${key}\u0000absent`)))!.spans, null);
    }),
    { numRuns: 500 },
  );
  assert.is(canonicalIntegerBytes(new TextEncoder().encode('{"hosts":[1]}'), 512, new TextEncoder().encode('"hosts"'))!.spans, null);
  assert.is(canonicalIntegerBytes(new TextEncoder().encode('{"a":{"hosts":{"b":1}}}'), 512, new TextEncoder().encode('"hosts"'))!.spans, null);
});

props('canonicalIntegerBytes never throws and always ends, on any bytes', () => {
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 64 }), fc.string({ maxLength: 40 }), (b, s) => {
      canonicalIntegerBytes(b, 4, new TextEncoder().encode('"hosts"'));
      canonicalIntegerBytes(new TextEncoder().encode(`{"hosts":${s}`), 4, new TextEncoder().encode('"hosts"'));
    }),
    { numRuns: 500 },
  );
});

props('canonicalIntegerSpellingMembers counts the members of text the serialiser wrote, and refuses other spellings', () => {
  fc.assert(
    fc.property(intJson, (v) => {
      const t = JSON.stringify(JSON.parse(canonicalizeLib(v) as string));
      const members = (x: unknown): number => (Array.isArray(x) ? x.reduce((n: number, y) => n + members(y), 0) : x !== null && typeof x === 'object' ? Object.values(x).reduce((n: number, y) => n + 1 + members(y), 0) : 0);
      assert.is(canonicalIntegerSpellingMembers(t), members(JSON.parse(t)), t);
    }),
    { numRuns: 500 },
  );
  for (const bad of ['{ }', '[1.0]', '[1e2]', '[-0]', '["\\/"]', '["\\u0041"]', '["\\u000a"]', '["\\u001F"]', '[1 ]', '\n1']) assert.is(canonicalIntegerSpellingMembers(bad), -1, bad);
});

props.run();
