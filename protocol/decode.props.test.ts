/**
 * protocol/decode.ts against the general path it stands in for: `parseJsonStrict`, then the
 * compiled check and the projection (api-parse.ts `parseCheckinRequest`). On any text the decoder
 * either does not decide (`undefined`) or gives exactly the general path's value, member order
 * included; on valid bodies without escapes it decides. Bodies: valid check-ins (with every optional
 * field, in any member order, with white space), the same with one to three edits of the text, any
 * JSON, any text; and a schema with every keyword the decoder restates, on values near its bounds.
 */
import fc from 'fast-check';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { Type, type TSchema } from '@sinclair/typebox';
import { CheckinRequestSchema, LAST_OUTCOMES, type CheckinRequest } from './api.ts';
import { compileDecoder } from './decode.ts';
import { parseJsonStrict } from './jcs.ts';
import { compile, compileProjection } from './validate.ts';

const t = suite('one-pass decoder = strict parse + check + projection');

/** The general path: the projected value, or undefined when the parse or the check refuses. */
function generalPath(schema: TSchema): (text: string) => unknown {
  const v = compile(schema);
  const project = compileProjection(schema);
  return (text) => {
    const p = parseJsonStrict(text);
    return p.ok && v.check(p.value) ? project(p.value) : undefined;
  };
}

/** Same value, same member order everywhere, same signed zeros. */
function same(a: unknown, b: unknown): boolean {
  if (typeof a === 'number' || typeof b === 'number') return Object.is(a, b);
  if (a === null || b === null || typeof a !== 'object' || typeof b !== 'object') return a === b;
  if (Array.isArray(a) !== Array.isArray(b)) return false;
  const ka = Object.keys(a);
  const kb = Object.keys(b);
  return ka.length === kb.length && ka.every((k, n) => k === kb[n] && same((a as Record<string, unknown>)[k], (b as Record<string, unknown>)[k]));
}

const decode = compileDecoder(CheckinRequestSchema);
const general = generalPath(CheckinRequestSchema);

/** The decoder never disagrees with the general path: it does not decide, or it gives its value. */
function agrees(text: string): boolean {
  const mine = decode(text);
  if (mine === undefined) return true;
  const theirs = general(text);
  return theirs !== undefined && same(mine, theirs);
}

// ---- valid check-ins --------------------------------------------------------------------------

const B32 = '0123456789abcdfghijklmnpqrsvwxyz';
const hostname = fc.stringMatching(/^[a-z0-9][a-z0-9.-]{0,20}$/);
const closure = fc.tuple(fc.string({ unit: fc.constantFrom(...B32), minLength: 32, maxLength: 32 }), fc.stringMatching(/^[a-z][a-z0-9-]{0,12}$/)).map(([h, n]) => `${h}-${n}`);
const stamp = fc.integer({ min: 0, max: 4_000_000_000_000 }).map((ms) => new Date(ms).toISOString());
/** Printable ASCII, sometimes with a quote or a backslash (escaped in JSON: the decoder steps aside). */
const text = (max: number, plain: boolean) => fc.string({ unit: plain ? fc.constantFrom(...'abcXYZ019 ._-:/@') : fc.constantFrom(...'abc019 ."\\\n/é'), maxLength: max });
const signature = fc.string({ unit: fc.constantFrom(...'AZaz09+/'), minLength: 86, maxLength: 86 }).map((s) => `${s}==`);

const checkin = (plain: boolean): fc.Arbitrary<CheckinRequest> =>
  fc.record(
    {
      hostname,
      currentClosure: fc.option(closure, { nil: null }),
      bootId: text(40, plain).filter((s) => s.length > 0),
      agentVersion: text(20, plain).filter((s) => s.length > 0),
      probes: fc.array(fc.record({ name: text(20, plain).filter((s) => s.length > 0), ok: fc.boolean(), observedAt: stamp, message: text(30, plain) }, { requiredKeys: ['name', 'ok', 'observedAt'] }), { maxLength: 4 }),
      failedUnits: fc.array(text(30, plain).filter((s) => s.length > 0), { maxLength: 4 }),
      lastOutcome: fc.option(fc.record({ rolloutId: fc.stringMatching(/^[a-z0-9-]{1,20}$/), closureHash: closure, outcome: fc.constantFrom(...LAST_OUTCOMES), at: stamp }), { nil: null }),
      lastOutcomeSignature: fc.option(signature, { nil: null }),
      pendingReboot: fc.boolean(),
      lastConfirmed: fc.option(fc.record({ record: fc.record({ hostname, rolloutId: fc.stringMatching(/^[a-z0-9-]{1,20}$/), closureHash: closure, confirmedAt: stamp }), signature }), { nil: null }),
    },
    { requiredKeys: ['hostname', 'currentClosure', 'bootId', 'probes', 'failedUnits', 'lastOutcome'] },
  ) as fc.Arbitrary<CheckinRequest>;

/** A body's text: members in any order, with or without white space. */
const written = (body: fc.Arbitrary<CheckinRequest>) =>
  fc.tuple(body, fc.integer({ min: 0, max: 1000 }), fc.constantFrom(undefined, 1, 2, '\t')).map(([b, seed, indent]) => {
    const keys = Object.keys(b);
    const order = keys.map((k, n) => [k, (n * 7919 + seed) % 101] as const).sort((x, y) => x[1] - y[1]).map(([k]) => k);
    return JSON.stringify(Object.fromEntries(order.map((k) => [k, (b as Record<string, unknown>)[k]])), null, indent);
  });

t('a valid check-in without escapes is decided, with the general path’s value and member order', () => {
  fc.assert(
    fc.property(written(checkin(true)), (body) => {
      const g = general(body);
      assert.ok(g !== undefined, 'the general path accepts it');
      const d = decode(body);
      assert.ok(d !== undefined, `decided: ${body}`);
      assert.ok(same(d, g), `same value: ${JSON.stringify(d)} vs ${JSON.stringify(g)}`);
    }),
    { numRuns: 400 },
  );
});

t('a check-in with escaped strings: not decided, or the same value', () => {
  fc.assert(fc.property(written(checkin(false)), (body) => agrees(body)), { numRuns: 300 });
});

// ---- edits of a valid text ---------------------------------------------------------------------

/** Characters an edit inserts or writes: JSON's own, digits, letters of member names and values. */
const EDIT_CHARS = [...'{}[]:,"\\ \t\n0123456789-+.eEtrufalsn', 'é', '\u0000', '\u007f', '\ufeff', 'x', 'h', 'l', 'p'];
const edit = fc.tuple(fc.constantFrom('delete', 'insert', 'replace', 'duplicate', 'swap'), fc.nat(), fc.nat(), fc.constantFrom(...EDIT_CHARS));

function applyEdit(s: string, [kind, a, b, c]: [string, number, number, string]): string {
  if (s.length === 0) return c;
  const p = a % s.length;
  const q = b % s.length;
  switch (kind) {
    case 'delete':
      return s.slice(0, p) + s.slice(p + 1);
    case 'insert':
      return s.slice(0, p) + c + s.slice(p);
    case 'replace':
      return s.slice(0, p) + c + s.slice(p + 1);
    case 'duplicate': {
      // A run of the text again, after itself: duplicate members, elements, digits.
      const [x, y] = p < q ? [p, q] : [q, p];
      return s.slice(0, y) + s.slice(x, y) + s.slice(y);
    }
    default: {
      const [x, y] = p < q ? [p, q] : [q, p];
      return s.slice(0, x) + s[y] + s.slice(x + 1, y) + s[x] + s.slice(y + 1);
    }
  }
}

t('one to three edits of a valid text: not decided, or the same value', () => {
  let decided = 0;
  let runs = 0;
  fc.assert(
    fc.property(written(checkin(true)), fc.array(edit, { minLength: 1, maxLength: 3 }), (body, edits) => {
      const s = edits.reduce(applyEdit, body);
      runs++;
      if (decode(s) !== undefined) decided++;
      return agrees(s);
    }),
    { numRuns: 2000 },
  );
  // Some edits keep a valid body (white space, a digit in a string): the decider is exercised.
  assert.ok(decided > 0 && decided < runs, `${decided} of ${runs} edited texts decided`);
});

t('a member added, dropped or given another JSON type: not decided, or the same value', () => {
  const odd = [null, 0, -0, 1, 1.5, 1e21, '', 'x', true, [], {}, [null], { a: 1 }];
  const names = ['', 'x', '__proto__', 'hostname', 'probes', 'lastOutcome', 'constructor', 'toString'];
  fc.assert(
    fc.property(checkin(true), fc.nat(), fc.nat(), fc.boolean(), (b, k, v, drop) => {
      const o: Record<string, unknown> = { ...b };
      const keys = Object.keys(o);
      if (drop) delete o[keys[k % keys.length]!];
      else Object.defineProperty(o, names[k % names.length]!, { value: odd[v % odd.length], enumerable: true, writable: true, configurable: true });
      return agrees(JSON.stringify(o));
    }),
    { numRuns: 1000 },
  );
});

t('any JSON, any text: not decided, or the same value', () => {
  fc.assert(fc.property(fc.json(), (s) => agrees(s)), { numRuns: 1000 });
  fc.assert(fc.property(fc.string(), (s) => agrees(s)), { numRuns: 500 });
});

// ---- every keyword the decoder restates --------------------------------------------------------

const Every = Type.Object({
  int: Type.Integer({ minimum: 0, maximum: 10 }),
  num: Type.Number({ exclusiveMinimum: -1.5, exclusiveMaximum: 1e6 }),
  step: Type.Optional(Type.Integer({ multipleOf: 3 })),
  three: Type.Optional(Type.Literal(3)),
  yes: Type.Optional(Type.Literal(true)),
  word: Type.Optional(Type.Literal('x')),
  bits: Type.Array(Type.Boolean(), { minItems: 1, maxItems: 3 }),
  short: Type.Optional(Type.String({ minLength: 2, maxLength: 4, pattern: '^[a-c]*$' })),
  when: Type.Optional(Type.Union([Type.String({ format: 'date-time' }), Type.Null()])),
  pick: Type.Optional(Type.Union([Type.Literal('a'), Type.Literal('b')])),
  nested: Type.Optional(Type.Object({ n: Type.Null(), 'odd name': Type.Optional(Type.Boolean()) })),
  rec: Type.Optional(Type.Record(Type.String(), Type.Integer())),
});
const decodeEvery = compileDecoder(Every);
const generalEvery = generalPath(Every);

/** A number as JSON writes it, or in another spelling of the grammar (or out of it). */
const numberText = fc.oneof(
  fc.oneof(fc.integer({ min: -20, max: 20 }), fc.double({ noNaN: true, noDefaultInfinity: true }), fc.constantFrom(1e6, -1.5, 3, 9, 0.5)).map((n) => JSON.stringify(n)),
  fc.constantFrom('-0', '0.0', '1E2', '1e-2', '3e0', '01', '1.', '.5', '-', '1e400', '-1e400', '2.50', '10.000'),
);
const field = <T>(a: fc.Arbitrary<T>) => fc.option(a, { nil: undefined, freq: 3 });
/** Usually a valid spelling, sometimes anything (so that valid values are met often). */
const mostly = <T>(valid: fc.Arbitrary<T>, other: fc.Arbitrary<T>) => fc.oneof({ arbitrary: valid, weight: 15 }, { arbitrary: other, weight: 1 });

t('a schema with every restated keyword: decided when the general path accepts, with its value', () => {
  let accepted = 0;
  fc.assert(
    fc.property(
      fc.record({
        int: mostly(fc.integer({ min: 0, max: 10 }).map(String), numberText),
        num: mostly(fc.constantFrom('0', '-1', '-1.25', '999999.5', '2e5', '1E-3', '-0'), numberText),
        step: field(mostly(fc.integer({ min: -9, max: 9 }).map((n) => String(n * 3)), numberText)),
        three: field(mostly(fc.constantFrom('3', '3.0', '30e-1'), fc.oneof(numberText, fc.constant('"3"')))),
        yes: field(mostly(fc.constant('true'), fc.constantFrom('false', '1', 'null'))),
        word: field(mostly(fc.constant('"x"'), fc.constantFrom('"y"', '"X"', 'null'))),
        bits: mostly(fc.array(fc.constantFrom('true', 'false'), { minLength: 1, maxLength: 3 }), fc.array(fc.constantFrom('true', 'false', '0'), { maxLength: 4 })).map((xs) => `[${xs.join(' , ')}]`),
        short: field(mostly(fc.stringMatching(/^[a-c]{2,4}$/), fc.constantFrom('aaaaa', 'a', '', 'abd', 'd')).map((s) => JSON.stringify(s))),
        when: field(mostly(fc.oneof(stamp.map((s) => JSON.stringify(s)), fc.constant('null')), fc.constantFrom('"2026-13-01T00:00:00Z"', '"yesterday"', '1'))),
        pick: field(mostly(fc.constantFrom('"a"', '"b"'), fc.constantFrom('"c"', '"A"', 'null'))),
        nested: field(mostly(fc.constantFrom('{"n":null}', '{"n":null,"odd name":true}', '{"odd name":false,"n":null}', '{"n" : null }'), fc.constantFrom('{"n":0}', '{}', '{"n":null,"n":null}', '{"N":null}'))),
        rec: fc.option(fc.constantFrom('{}', '{"a":1}'), { nil: undefined, freq: 8 }),
      }),
      (r) => {
        const s = `{${Object.entries(r)
          .filter(([, v]) => v !== undefined)
          .map(([k, v]) => `${JSON.stringify(k)}:${v}`)
          .join(',')}}`;
        const g = generalEvery(s);
        const d = decodeEvery(s);
        if (d !== undefined) assert.ok(g !== undefined && same(d, g), `${s}: decoded ${JSON.stringify(d)}, general ${JSON.stringify(g)}`);
        // Everything but a record is restated: what the general path accepts is decided here.
        if (g !== undefined && r.rec === undefined) {
          accepted++;
          assert.ok(d !== undefined, `${s}: accepted by the general path, not decided`);
        }
        if (r.rec !== undefined) assert.is(d, undefined, 'a record is never decided');
      },
    ),
    { numRuns: 6000 },
  );
  assert.ok(accepted > 120, `${accepted} valid values met`);
});

// ---- examples ----------------------------------------------------------------------------------

const body = JSON.stringify({ hostname: 'web-1', currentClosure: null, bootId: 'b', probes: [{ name: 'http', ok: true, observedAt: '2026-12-03T09:00:00Z' }], failedUnits: [], lastOutcome: null });

t('examples: what the decoder leaves to the general path', () => {
  assert.ok(decode(body) !== undefined);
  for (const [why, s] of [
    ['an escape in a member name', body.replace('"bootId"', '"boot\\u0049d"')],
    ['an escape in a value', body.replace('"b"', '"\\u0062"')],
    ['a duplicate member', body.replace('"bootId":"b"', '"bootId":"b","bootId":"b"')],
    ['an unknown member', body.replace('{', '{"extra":1,')],
    ['a byte order mark (read as latin1)', `\u00ef\u00bb\u00bf${body}`],
    ['a non-ASCII character', body.replace('"b"', '"\u00e9"')],
    ['data after the value', `${body} {}`],
    ['a missing required member', body.replace('"bootId":"b",', '')],
    ['an empty text', ''],
  ]) {
    assert.is(decode(s!), undefined, why);
    assert.ok(agrees(s!), why);
  }
  // The general path gives the same value for what it accepts among these (an escape, extra member).
  assert.ok(general(body.replace('{', '{"extra":1,')) !== undefined, 'an unknown member is accepted and dropped by the general path');
});

t('examples: white space everywhere JSON allows it', () => {
  const spaced = ` \n{ "hostname" : "web-1" ,\t"currentClosure":null,"bootId":"b","probes":[ { "name":"http","ok":true,"observedAt":"2026-12-03T09:00:00Z" } ] ,"failedUnits":[ ],"lastOutcome":null }\r\n`;
  const d = decode(spaced);
  assert.ok(d !== undefined && same(d, general(spaced)));
});

t.run();
