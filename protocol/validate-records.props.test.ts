/**
 * protocol/validate-records.ts against TypeBox's compiled check, on the schemas it speeds up
 * (fleet.resolved.json, the fleet description, trust.json, revocations.json): on valid values
 * both accept, and on values with one mutation anywhere (a field set to another JSON type, a
 * `Date` or a `Uint8Array`, removed, or added under an odd name — the empty name, `__proto__`,
 * a line break — with an odd value or a sibling's) the walk answers as TypeBox does.
 */
import fc from 'fast-check';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { Type, type TSchema } from '@sinclair/typebox';
import { TypeCompiler } from '@sinclair/typebox/compiler';
import { sampleDescription, sampleFleet } from '../fixtures/artifacts.ts';
import { defaultsOnlyOnRequired, schemaParser } from './artifact.ts';
import type { Result } from './result.ts';
import { FleetDescriptionSchema, FleetResolvedSchema, parseFleetResolved, parseFleetResolvedFillingFirst, RevocationsSchema, TrustSchema, type SchemaError } from './schema.ts';
import { compileRecordWalk } from './validate-records.ts';

const props = suite('record walk = TypeBox check');

const odd = [null, 0, -1, 1.5, 2 ** 53, '', 'x', 'a\nb', true, [], {}, [1, 'x'], { x: 1 }, new Date(0), new Uint8Array(1)];
const names = ['', 'x', '__proto__', 'a\nb', 'system', 'channel', 'hosts', 'web-1'];

/** Copy of `v` with one mutation at the path chosen by `picks` (each pick chooses a child, the last one the change). */
function mutate(v: unknown, picks: number[], change: number): unknown {
  if (v === null || typeof v !== 'object' || v instanceof Date || v instanceof Uint8Array) return odd[change % odd.length];
  const keys = Object.keys(v);
  const [p, ...rest] = picks;
  const copy: Record<string, unknown> | unknown[] = Array.isArray(v) ? [...v] : Object.defineProperties({}, Object.getOwnPropertyDescriptors(v));
  const set = (k: string, x: unknown) => Object.defineProperty(copy, k, { value: x, enumerable: true, writable: true, configurable: true });
  if (p === undefined || keys.length === 0) {
    // Here: add a member (or an element), or drop one.
    if (change % 3 === 0 && keys.length > 0) {
      if (Array.isArray(copy)) copy.pop();
      else delete copy[keys[change % keys.length]!];
    } else if (Array.isArray(copy)) copy.push(odd[change % odd.length]);
    // A new member: an odd value, or a copy of a sibling's (so that only its name can be wrong).
    else set(names[change % names.length]!, change % 2 === 0 && keys.length > 0 ? (v as Record<string, unknown>)[keys[0]!] : odd[change % odd.length]);
    return copy;
  }
  const k = keys[p % keys.length]!;
  set(k, rest.length === 0 && change % 2 === 0 ? odd[change % odd.length] : mutate((v as Record<string, unknown>)[k], rest, change));
  return copy;
}

const cases: [string, TSchema, unknown][] = [
  ['fleet.resolved.json', FleetResolvedSchema, JSON.parse(JSON.stringify({ ...sampleFleet({ hosts: 6, channels: ['a', 'b'], waves: 2, closures: true, withPubkeys: true }), compliance: undefined }))],
  ['fleet description', FleetDescriptionSchema, JSON.parse(JSON.stringify(sampleDescription({ hosts: 4, channels: ['a', 'b'], waves: 2 })))],
  ['trust.json', TrustSchema, { schemaVersion: 1, ciReleaseKey: { current: { algorithm: 'ed25519', public: 'AAAA' } }, cacheKeys: [] }],
  ['revocations.json', RevocationsSchema, { schemaVersion: 1, revocations: [{ hostname: 'web-1', notBefore: '2026-01-01T00:00:00Z', reason: 'x', revokedBy: null }], meta: { schemaVersion: 1, signedAt: null, ciCommit: null } }],
];

for (const [what, schema, valid] of cases) {
  props(`${what}: the record walk accepts a valid value and never accepts what TypeBox refuses`, () => {
    const walk = compileRecordWalk(schema);
    const typebox = TypeCompiler.Compile(schema);
    assert.ok(typebox.Check(valid), `the ${what} sample is valid`);
    assert.ok(walk(valid), 'the walk accepts it');
    let refused = 0;
    fc.assert(
      fc.property(fc.array(fc.nat(), { minLength: 0, maxLength: 6 }), fc.nat(), (picks, change) => {
        const u = mutate(valid, picks, change);
        const want = typebox.Check(u);
        if (!want) refused++;
        assert.is(walk(u), want, JSON.stringify(u, (_k, x: unknown) => (x instanceof Uint8Array ? 'Uint8Array' : x)).slice(0, 400));
      }),
      { numRuns: 1500 },
    );
    assert.ok(refused > 100, `mutations refused: ${refused}`);
    // And every object of the value, each given a member under each odd name, with a sibling's value or each odd value.
    let objects = 0;
    const visit = (x: unknown, rebuild: (y: unknown) => unknown): void => {
      if (x === null || typeof x !== 'object') return;
      const keys = Object.keys(x);
      if (!Array.isArray(x)) {
        objects++;
        for (const name of names) {
          for (const value of keys.length > 0 ? [(x as Record<string, unknown>)[keys[0]!], ...odd] : odd) {
            const copy = Object.defineProperties({}, Object.getOwnPropertyDescriptors(x));
            Object.defineProperty(copy, name, { value, enumerable: true, writable: true, configurable: true });
            const u = rebuild(copy);
            assert.is(walk(u), typebox.Check(u), `${name} in ${JSON.stringify(x).slice(0, 200)}`);
          }
        }
      }
      for (const k of keys) {
        visit((x as Record<string, unknown>)[k], (y) => {
          const copy = Array.isArray(x) ? [...x] : Object.defineProperties({}, Object.getOwnPropertyDescriptors(x));
          Object.defineProperty(copy, k, { value: y, enumerable: true, writable: true, configurable: true });
          return rebuild(copy);
        });
      }
    };
    visit(valid, (y) => y);
    assert.ok(objects >= 2);
  });
}

props('schemaParser: checking before filling defaults gives what filling first gives (fleet.resolved.json, revocations.json)', () => {
  assert.ok(defaultsOnlyOnRequired(FleetResolvedSchema), 'the fleet takes the check-first path');
  assert.ok(defaultsOnlyOnRequired(RevocationsSchema));
  assert.not.ok(defaultsOnlyOnRequired({ ...FleetResolvedSchema, default: {} }), 'a default on the root');
  assert.not.ok(defaultsOnlyOnRequired(Type.Object({ a: Type.Optional(Type.Array(Type.String(), { default: [] })) })), 'a default on an optional property');
  assert.not.ok(defaultsOnlyOnRequired(Type.Object({ a: Type.Unknown({ default: 1 }) })), 'a default on a property that takes undefined');
  assert.not.ok(defaultsOnlyOnRequired(Type.Array(Type.Object({ a: Type.Array(Type.String()) }), { default: [] })), 'a default on an array');
  const pairs: [unknown, (u: unknown) => Result<unknown, SchemaError>, (u: unknown) => Result<unknown, SchemaError>][] = [
    [cases[0]![2], parseFleetResolved, parseFleetResolvedFillingFirst],
    [cases[3]![2], schemaParser(RevocationsSchema, 'revocations.json', { defaults: true }), schemaParser(RevocationsSchema, 'revocations.json', { defaults: true, checkFirst: false })],
  ];
  for (const [valid, fast, slow] of pairs) {
    fc.assert(
      fc.property(fc.array(fc.nat(), { minLength: 0, maxLength: 6 }), fc.nat(), (picks, change) => {
        const u = mutate(valid, picks, change);
        const a = fast(u);
        const b = slow(u);
        assert.is(a.ok && a.value === u, b.ok && b.value === u, 'the model is the input exactly when nothing was filled');
        assert.equal(a.ok ? a.value : a.error, b.ok ? b.value : b.error);
      }),
      { numRuns: 1500 },
    );
  }
});

props.run();
