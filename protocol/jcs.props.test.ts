import fc from 'fast-check';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { canonicalize, parseJsonStrict } from './jcs.ts';

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

props.run();
