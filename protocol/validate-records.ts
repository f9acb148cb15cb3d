/**
 * A faster structural check for schemas with large records (issue 19: the 100,000 entries of
 * fleet.resolved.json's `hosts`), built from the same TypeBox schema. TypeBox's compiled check
 * walks a record with `Object.entries(v).every(([key, value]) => …)`: one `[key, value]` array
 * per entry, 100,000 of them per verify. Here the objects on the way to a record and the records
 * themselves are walked by closures that read the keys in place (`for … in`), and every other
 * sub-schema (a host entry, a channel, an array, a union, a recursive selector) is checked by
 * TypeBox's own compiled check of that sub-schema — so the only semantics restated here are
 * TypeBox's object and record rules (TypeCompiler `FromObject` / `FromRecord`, default
 * `TypeSystemPolicy`):
 *
 * - object: a non-null, non-array object; each required property checked (and present: TypeBox
 *   asks `k in v` only for the properties that accept `undefined`, for which the check would
 *   pass; asking it always refuses nothing more); an optional one checked when not `undefined`;
 *   with `additionalProperties: false`, no own property name outside the known ones;
 * - record: also not a `Date` nor a `Uint8Array`; every own enumerable key (`for … in` also
 *   visits inherited enumerable keys: it can only refuse more) matches the key pattern and its
 *   value is checked, else `additionalProperties` (false: refused; absent or true: accepted).
 *
 * Any keyword these two do not handle (`minProperties`, a schema as `additionalProperties`,
 * `$id`, …) hands the whole sub-schema to TypeBox. The caller still asks TypeBox when this check
 * refuses (protocol/validate.ts `compile`), so it can only be wrong by accepting what TypeBox
 * refuses; a property compares both on mutated fleets.
 *
 * Pure module: no I/O.
 */
import { Kind, type TSchema } from '@sinclair/typebox';
import { TypeCompiler } from '@sinclair/typebox/compiler';

type Check = (u: unknown) => boolean;

/** Keywords of an object / record schema that the closures below implement (others: TypeBox). */
const OBJECT_KEYWORDS = new Set(['type', 'properties', 'required', 'additionalProperties', 'title', 'description', 'default', 'errorMessage', 'examples']);
const RECORD_KEYWORDS = new Set(['type', 'patternProperties', 'additionalProperties', 'title', 'description', 'default', 'errorMessage', 'examples']);

/** Does `s` hold a record below it (not looking inside `$id` schemas, which go to TypeBox whole)? */
function holdsRecord(s: TSchema): boolean {
  if (typeof s['$id'] === 'string') return false;
  if (s[Kind] === 'Record') return true;
  if (s[Kind] === 'Object') return Object.values(s['properties'] as Record<string, TSchema>).some(holdsRecord);
  return false;
}

const typebox = (s: TSchema): Check => {
  const c = TypeCompiler.Compile(s);
  return (u) => c.Check(u);
};

/** The check of `s`: closures along the way to records, TypeBox's compiled check elsewhere. */
export function compileRecordWalk(s: TSchema): Check {
  if (!holdsRecord(s)) return typebox(s);
  const keys = Object.keys(s);
  if (s[Kind] === 'Object' && keys.every((k) => OBJECT_KEYWORDS.has(k)) && (s['additionalProperties'] === undefined || typeof s['additionalProperties'] === 'boolean')) {
    const props = s['properties'] as Record<string, TSchema>;
    const required = new Set((s['required'] as string[] | undefined) ?? []);
    const known = Object.getOwnPropertyNames(props);
    const members = known.map((k) => ({ k, required: required.has(k), check: compileRecordWalk(props[k]!) }));
    const closed = s['additionalProperties'] === false;
    return (u) => {
      if (typeof u !== 'object' || u === null || Array.isArray(u)) return false;
      const o = u as Record<string, unknown>;
      for (const m of members) {
        const x = o[m.k];
        if (m.required ? !(m.k in o) || !m.check(x) : x !== undefined && !m.check(x)) return false;
      }
      if (closed) for (const k of Object.getOwnPropertyNames(o)) if (!known.includes(k)) return false;
      return true;
    };
  }
  if (s[Kind] === 'Record' && keys.every((k) => RECORD_KEYWORDS.has(k)) && (s['additionalProperties'] === undefined || typeof s['additionalProperties'] === 'boolean')) {
    const [pattern, item] = Object.entries(s['patternProperties'] as Record<string, TSchema>)[0]!;
    const re = new RegExp(pattern);
    const check = compileRecordWalk(item);
    const others = s['additionalProperties'] !== false;
    return (u) => {
      if (typeof u !== 'object' || u === null || Array.isArray(u) || u instanceof Date || u instanceof Uint8Array) return false;
      const o = u as Record<string, unknown>;
      for (const k in o) {
        if (re.test(k) ? !check(o[k]) : !others) return false;
      }
      return true;
    };
  }
  return typebox(s);
}
