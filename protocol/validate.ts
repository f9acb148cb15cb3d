/**
 * The one validation kit: every schema in nixfleet is a TypeBox schema, compiled ONCE at module
 * load with `TypeCompiler`. A {@link Validator} answers `check(u)` on the fast path (compiled
 * code, no allocation) and, only when that fails, lists every bad field as an {@link Issue}:
 *
 * - paths in our one style, `$`, `$.a.b[0]`, `$.hosts["web1.example.com"]` (the style
 *   lib/resolve.nix and fixtures/fleets/negative/*\/expected-error.json mirror), converted from
 *   TypeBox's JSON Pointers;
 * - messages in our words ("is required", "must be a string", "unknown field", …), never TypeBox's,
 *   with a schema's own `errorMessage` for pattern / format failures;
 * - one issue per path (the first: a missing field is "is required", not also "must be a string");
 * - in a fixed order: at each object its unknown fields first, then its known fields in the
 *   schema's declaration order; record entries and unknown fields by sorted key, arrays by index
 *   (lib/resolve.nix walks a fleet description the same way — `attrNames` is sorted — so the
 *   first five issues, i.e. the message, agree whatever the input's key order).
 *
 * Pure module: no I/O.
 */
import { Kind, type Static, type TSchema } from '@sinclair/typebox';
import { TypeCompiler, type TypeCheck } from '@sinclair/typebox/compiler';
import { ValueErrorType, type ValueError, type ValueErrorIterator } from '@sinclair/typebox/errors';
import { compileRecordWalk } from './validate-records.ts';

/** One bad field: where (`$.a.b[0]`) and what is wrong. */
export type Issue = { path: string; message: string };

export type Validator<T extends TSchema> = {
  readonly schema: T;
  /** Compiled structural check. */
  check(u: unknown): u is Static<T>;
  /** Every structural issue of `u` (empty iff `check(u)`), ordered, at most `limit`. */
  issues(u: unknown, limit?: number): Issue[];
};

export type CompileOptions = {
  /** Message for a field the schema does not know (default "unknown field"). */
  unknownField?: string;
  /**
   * Check first with protocol/validate-records.ts (large records walked in place, not through
   * `Object.entries`), and with TypeBox's compiled check only when that refuses: for artefacts
   * with 100,000 hosts. The answer is TypeBox's either way.
   */
  walkRecords?: boolean;
};

/** Compile `schema` once (call at module load, never per request). */
export function compile<T extends TSchema>(schema: T, opts: CompileOptions = {}): Validator<T> {
  // Compiled on first use: a program start-up (`nixfleet --help`) must not compile every schema
  // of every module it imports.
  let compiled: TypeCheck<T> | null = null;
  let walk: ((u: unknown) => boolean) | null = null;
  let ids: Map<string, TSchema> | null = null;
  const get = (): TypeCheck<T> => (compiled ??= TypeCompiler.Compile(schema));
  const unknownField = opts.unknownField ?? 'unknown field';
  const check = opts.walkRecords === true ? (u: unknown): boolean => (walk ??= compileRecordWalk(schema))(u) || get().Check(u) : (u: unknown): boolean => get().Check(u);
  return {
    schema,
    check: (u): u is Static<T> => check(u),
    issues: (u, limit = Infinity) => {
      if (ids === null) {
        ids = new Map<string, TSchema>();
        collectIds(schema, ids);
      }
      return collect(get().Errors(u), u, schema, ids, unknownField, limit);
    },
  };
}

// ---- paths -----------------------------------------------------------------------------------

/** `$.a` for identifier-like keys, `$["a b"]` otherwise (the same rule as lib/resolve.nix). */
export const fieldPath = (path: string, k: string): string => (/^[A-Za-z_$][\w$-]*$/.test(k) ? `${path}.${k}` : `${path}[${JSON.stringify(k)}]`);

const unescape = (s: string): string => s.replace(/~1/g, '/').replace(/~0/g, '~');

function pointerSegments(pointer: string): string[] {
  return pointer === '' ? [] : pointer.slice(1).split('/').map(unescape);
}

type Located = { path: string; rank: number[] };

/** Our path for a JSON Pointer into `root`, and its sort rank (see the module comment). */
function locate(segments: readonly string[], root: unknown, schema: TSchema, ids: Map<string, TSchema>): Located {
  let path = '$';
  const rank: number[] = [];
  let cur: unknown = root;
  let s: TSchema | undefined = schema;
  for (const seg of segments) {
    if (Array.isArray(cur)) {
      path += `[${seg}]`;
      rank.push(Number(seg));
    } else {
      path = fieldPath(path, seg);
      const props = s === undefined ? undefined : objectProps(s, ids);
      if (props !== undefined) {
        const i = Object.keys(props).indexOf(seg);
        rank.push(i >= 0 ? i : -1_000_000 + keyIndex(cur, seg));
      } else rank.push(keyIndex(cur, seg));
    }
    s = s === undefined ? undefined : childSchema(s, seg, cur, ids);
    cur = cur !== null && typeof cur === 'object' && Object.prototype.hasOwnProperty.call(cur, seg) ? (cur as Record<string, unknown>)[seg] : undefined;
  }
  return { path, rank };
}

const sortedKeys = new WeakMap<object, string[]>();

/**
 * Position of `k` among the SORTED keys of `o`: records and unknown fields are reported in key
 * order, whatever order the input wrote them in (Nix's `attrNames` is sorted too).
 */
function keyIndex(o: unknown, k: string): number {
  if (o === null || typeof o !== 'object') return 0;
  let keys = sortedKeys.get(o);
  if (keys === undefined) sortedKeys.set(o, (keys = Object.keys(o).sort()));
  const i = keys.indexOf(k);
  return i >= 0 ? i : 0;
}

function deref(s: TSchema, ids: Map<string, TSchema>): TSchema {
  return typeof s['$ref'] === 'string' && ids.has(s['$ref']) ? ids.get(s['$ref'])! : s;
}

/** The fixed properties of an object schema (through refs and nullable unions), if it is one. */
function objectProps(s: TSchema, ids: Map<string, TSchema>): Record<string, TSchema> | undefined {
  const d = deref(s, ids);
  if (d[Kind] === 'Object') return d['properties'] as Record<string, TSchema>;
  if (d[Kind] === 'Union') {
    for (const v of d['anyOf'] as TSchema[]) {
      const p = objectProps(v, ids);
      if (p !== undefined) return p;
    }
  }
  return undefined;
}

function childSchema(s: TSchema, seg: string, value: unknown, ids: Map<string, TSchema>): TSchema | undefined {
  const d = deref(s, ids);
  switch (d[Kind]) {
    case 'Object':
      return (d['properties'] as Record<string, TSchema>)[seg];
    case 'Record':
      return Object.values(d['patternProperties'] as Record<string, TSchema>)[0];
    case 'Array':
      return d['items'] as TSchema;
    case 'Union': {
      const variant = pickVariant(d['anyOf'] as TSchema[], value, ids);
      return variant === undefined ? undefined : childSchema(variant, seg, value, ids);
    }
    default:
      return undefined;
  }
}

/** The union variant `value` is meant to be: by discriminator literal, else by JSON type. */
function pickVariant(variants: TSchema[], value: unknown, ids: Map<string, TSchema>): TSchema | undefined {
  const disc = discriminator(variants, ids);
  if (disc !== undefined && value !== null && typeof value === 'object' && !Array.isArray(value)) {
    // A tagged union: the tag decides; an unknown tag is reported on the tag itself.
    const tag = (value as Record<string, unknown>)[disc];
    return variants.find((v) => (deref(v, ids)['properties'] as Record<string, TSchema>)[disc]!['const'] === tag);
  }
  return variants.find((v) => sameJsonType(deref(v, ids), value));
}

function sameJsonType(s: TSchema, v: unknown): boolean {
  switch (s[Kind]) {
    case 'Object':
    case 'Record':
      return v !== null && typeof v === 'object' && !Array.isArray(v);
    case 'Array':
      return Array.isArray(v);
    case 'String':
      return typeof v === 'string';
    case 'Integer':
    case 'Number':
      return typeof v === 'number';
    case 'Boolean':
      return typeof v === 'boolean';
    case 'Null':
      return v === null;
    case 'Literal':
      return v === s['const'];
    default:
      return false;
  }
}

/** A property that is a literal in every variant (`kind`, `type`), if any. */
function discriminator(variants: TSchema[], ids: Map<string, TSchema>): string | undefined {
  const objs = variants.map((v) => deref(v, ids));
  if (objs.length < 2 || !objs.every((o) => o[Kind] === 'Object')) return undefined;
  const first = objs[0]!['properties'] as Record<string, TSchema>;
  return Object.keys(first).find((k) => objs.every((o) => (o['properties'] as Record<string, TSchema>)[k]?.[Kind] === 'Literal'));
}

function collectIds(s: unknown, ids: Map<string, TSchema>): void {
  if (s === null || typeof s !== 'object') return;
  if (Array.isArray(s)) {
    for (const x of s) collectIds(x, ids);
    return;
  }
  const o = s as TSchema;
  if (typeof o['$id'] === 'string') ids.set(o['$id'], o);
  for (const v of Object.values(o)) collectIds(v, ids);
}

// ---- messages --------------------------------------------------------------------------------

const range = (s: TSchema): string => {
  const min = s['minimum'] as number | undefined;
  // `maximum: MAX_SAFE_INTEGER` only keeps integers exact (I-JSON); it is no range to mention.
  const max = s['maximum'] === Number.MAX_SAFE_INTEGER ? undefined : (s['maximum'] as number | undefined);
  if (min !== undefined && max !== undefined) return `must be between ${min} and ${max}`;
  return min !== undefined ? `must be ≥ ${min}` : `must be ≤ ${max}`;
};

const literals = (variants: TSchema[]): unknown[] | null => (variants.every((v) => v[Kind] === 'Literal') ? variants.map((v) => v['const']) : null);

type Raw = { pointer: string; message: string };

/** Our message(s) for one TypeBox error; unions are resolved to the variant that was meant. */
function* explain(e: ValueError, ids: Map<string, TSchema>, unknownField: string): Generator<Raw> {
  const s = e.schema;
  const at = (message: string): Raw => ({ pointer: e.path, message });
  switch (e.type) {
    case ValueErrorType.ObjectRequiredProperty:
      return yield at('is required');
    case ValueErrorType.ObjectAdditionalProperties: {
      // A record whose key pattern refuses the empty key: report it on the record itself.
      const key = unescape(e.path.slice(e.path.lastIndexOf('/') + 1));
      if (key === '' && s[Kind] === 'Record') return yield { pointer: e.path.slice(0, e.path.lastIndexOf('/')), message: 'keys must not be empty' };
      return yield at(unknownField);
    }
    case ValueErrorType.Object:
      return yield at('must be an object');
    case ValueErrorType.Array: {
      const items = s['items'] as TSchema | undefined;
      return yield at(items?.[Kind] === 'String' ? 'must be an array of strings' : 'must be an array');
    }
    case ValueErrorType.ArrayMinItems:
      return yield at((s['errorMessage'] as string | undefined) ?? `must have at least ${s['minItems']} entries`);
    case ValueErrorType.ArrayMaxItems:
      return yield at(`must have at most ${s['maxItems']} entries`);
    case ValueErrorType.String:
      return yield at('must be a string');
    case ValueErrorType.StringMinLength:
      return yield at(s['minLength'] === 1 ? 'must not be empty' : `must be at least ${s['minLength']} characters`);
    case ValueErrorType.StringMaxLength:
      return yield at(`must be at most ${s['maxLength']} characters`);
    case ValueErrorType.StringPattern:
    case ValueErrorType.StringFormat:
      return yield at((s['errorMessage'] as string | undefined) ?? 'has an invalid format');
    case ValueErrorType.Integer:
      return yield at('must be an integer');
    case ValueErrorType.Number:
      return yield at('must be a number');
    case ValueErrorType.IntegerMaximum:
      return yield at(s['maximum'] === Number.MAX_SAFE_INTEGER ? 'must be an integer' : range(s));
    case ValueErrorType.IntegerMinimum:
    case ValueErrorType.NumberMinimum:
    case ValueErrorType.NumberMaximum:
      return yield at(range(s));
    case ValueErrorType.Boolean:
      return yield at('must be a boolean');
    case ValueErrorType.Literal:
      return yield at(`must be ${JSON.stringify(s['const'])}`);
    case ValueErrorType.Null:
      return yield at('must be null');
    case ValueErrorType.Union: {
      const variants = s['anyOf'] as TSchema[];
      const lits = literals(variants);
      if (lits !== null) return yield at(`must be one of ${lits.join(', ')}`);
      const nonNull = variants.filter((v) => v[Kind] !== 'Null');
      const nullable = nonNull.length < variants.length;
      const meant = pickVariant(nonNull, e.value, ids);
      if (meant === undefined) {
        const only = nonNull.length === 1 ? deref(nonNull[0]!, ids) : undefined;
        if (only !== undefined && only[Kind] === 'String') return yield at(nullable ? 'must be a string or null' : 'must be a string');
        if (only !== undefined) {
          // Wrong JSON type for the one non-null variant: that variant's own type message.
          for (const inner of e.errors[variants.indexOf(nonNull[0]!)] ?? []) return yield* explain(inner, ids, unknownField);
        }
        const disc = discriminator(nonNull, ids);
        if (disc !== undefined && e.value !== null && typeof e.value === 'object' && !Array.isArray(e.value)) {
          const tags = nonNull.map((v) => (deref(v, ids)['properties'] as Record<string, TSchema>)[disc]!['const']);
          return yield { pointer: `${e.path}/${disc}`, message: `must be one of ${tags.join(', ')}` };
        }
        return yield at(nonNull.every((v) => deref(v, ids)[Kind] === 'Object') ? 'must be an object' : 'has an invalid value');
      }
      for (const inner of e.errors[variants.indexOf(meant)] ?? []) yield* explain(inner, ids, unknownField);
      return;
    }
    default:
      return yield at('has an invalid value');
  }
}

function collect(errors: ValueErrorIterator, root: unknown, schema: TSchema, ids: Map<string, TSchema>, unknownField: string, limit: number): Issue[] {
  const seen = new Map<string, Located & { message: string; n: number }>();
  let n = 0;
  for (const e of errors) {
    for (const r of explain(e, ids, unknownField)) {
      const loc = locate(pointerSegments(r.pointer), root, schema, ids);
      if (!seen.has(loc.path)) seen.set(loc.path, { ...loc, message: r.message, n: n++ });
    }
    if (seen.size >= limit) break;
  }
  const out = [...seen.values()].sort((a, b) => compareRank(a.rank, b.rank) || a.n - b.n);
  return out.slice(0, limit).map(({ path, message }) => ({ path, message }));
}

function compareRank(a: number[], b: number[]): number {
  for (let i = 0; i < Math.min(a.length, b.length); i++) if (a[i] !== b[i]) return a[i]! - b[i]!;
  return a.length - b.length;
}

// ---- projection ------------------------------------------------------------------------------

/**
 * A copier for values that passed `check`: keeps only the fields the schema names (records and
 * `Unknown` are copied as they are), so nothing unvalidated travels further (request bodies).
 * Generated once from the schema as straight-line code (like TypeCompiler's checks): it is on the
 * CP's check-in hot path, where a generic walker costs more than the check itself.
 */
export function compileProjection<T extends TSchema>(schema: T): (v: Static<T>) => Static<T> {
  const ids = new Map<string, TSchema>();
  collectIds(schema, ids);
  const fns: string[] = [];
  const names = new Map<TSchema, string>();
  const entry = projectFn(schema, ids, fns, names);
  // Generated from our own schemas only (no input text reaches the source), as TypeCompiler does.
  return new Function(`${fns.join('\n')}\nreturn ${entry};`)() as (v: Static<T>) => Static<T>;
}

/** Name of a generated function projecting values of `s` (identity for leaves). */
function projectFn(s: TSchema, ids: Map<string, TSchema>, fns: string[], names: Map<TSchema, string>): string {
  const d = deref(s, ids);
  const known = names.get(d);
  if (known !== undefined) return known;
  const name = `p${names.size}`;
  names.set(d, name);
  const expr = (c: TSchema, v: string): string => {
    const k = deref(c, ids)[Kind];
    return k === 'Object' || k === 'Array' || k === 'Union' ? `${projectFn(c, ids, fns, names)}(${v})` : v;
  };
  switch (d[Kind]) {
    case 'Object': {
      const lines = Object.entries(d['properties'] as Record<string, TSchema>).map(([k, p]) => {
        const at = `v[${JSON.stringify(k)}]`;
        return `if (${at} !== undefined) o[${JSON.stringify(k)}] = ${expr(p, at)};`;
      });
      fns.push(`function ${name}(v) { const o = {}; ${lines.join(' ')} return o; }`);
      break;
    }
    case 'Array': {
      const item = d['items'] as TSchema;
      fns.push(`function ${name}(v) { const o = new Array(v.length); for (let i = 0; i < v.length; i++) o[i] = ${expr(item, 'v[i]')}; return o; }`);
      break;
    }
    case 'Union': {
      const variants = d['anyOf'] as TSchema[];
      const nonNull = variants.filter((x) => x[Kind] !== 'Null');
      if (nonNull.length === 1) fns.push(`function ${name}(v) { return v === null ? null : ${expr(nonNull[0]!, 'v')}; }`);
      else fns.push(`function ${name}(v) { return v; }`); // not needed by any request body yet
      break;
    }
    default:
      fns.push(`function ${name}(v) { return v; }`);
  }
  return name;
}

// ---- defaults --------------------------------------------------------------------------------

/**
 * A copier that fills the schema's `default`s into missing fields, for artefacts whose readers
 * fill defaults (NixFleet v1: a missing `edges` is `[]`, a missing nullable is `null`). Runs
 * BEFORE the check, so it accepts anything: what is not the expected JSON type is returned as is
 * (the check reports it). Fields the schema does not name are kept (they are signed), `__proto__`
 * as plain data. The input is never modified: an object or array is copied only when one of its
 * fields is filled (or a field's own value was), so a value with nothing missing — a verified
 * artefact our release tool wrote — comes back as itself, at the cost of a walk and no copy
 * (issue 19: the copy of a 100,000-host fleet was a fifth of the CP's verify). Generated once,
 * straight-line, like the projection.
 */
export function compileDefaults<T extends TSchema>(schema: T): (u: unknown) => unknown {
  const ids = new Map<string, TSchema>();
  collectIds(schema, ids);
  const fns: string[] = [];
  const names = new Map<TSchema, string>();
  const entry = defaultsFn(schema, ids, fns, names);
  // Generated from our own schemas only (no input text reaches the source).
  return new Function('copyObject', `${fns.join('\n')}\nreturn ${entry};`)(copyObject) as (u: unknown) => unknown;
}

/** Own enumerable fields of `v`, `__proto__` kept as a data field (never as the prototype). */
function copyObject(v: Record<string, unknown>): Record<string, unknown> {
  const o: Record<string, unknown> = {};
  for (const k of Object.keys(v)) {
    if (k === '__proto__') Object.defineProperty(o, k, { value: v[k], enumerable: true, writable: true, configurable: true });
    else o[k] = v[k];
  }
  return o;
}

/** Does copying a value of `s` need more than taking it as it is (an object, array or union)? */
function isLeaf(s: TSchema, ids: Map<string, TSchema>): boolean {
  const k = deref(s, ids)[Kind];
  return k !== 'Object' && k !== 'Record' && k !== 'Array' && k !== 'Union';
}

function defaultsFn(s: TSchema, ids: Map<string, TSchema>, fns: string[], names: Map<TSchema, string>): string {
  const d = deref(s, ids);
  const known = names.get(d);
  if (known !== undefined) return known;
  const name = `d${names.size}`;
  names.set(d, name);
  const isObj = `v !== null && typeof v === 'object' && !Array.isArray(v)`;
  const value = (c: TSchema, at: string): string => (isLeaf(c, ids) ? at : `${defaultsFn(c, ids, fns, names)}(${at})`);
  // Copy on write: `x` is the field as read, `y` what it becomes; the container is copied (once)
  // only when some field changes, so a value with nothing missing comes back as itself.
  // Absent stays absent (no `undefined` field, no `delete`: objects keep their fast shape).
  const fill = (c: TSchema, read: string, copy: string, write: string): string => {
    const y =
      c['default'] === undefined
        ? isLeaf(c, ids)
          ? null
          : `x === undefined ? x : ${value(c, 'x')}`
        : `x === undefined ? ${JSON.stringify(c['default'])} : ${value(c, 'x')}`;
    return y === null ? '' : `{ const x = ${read}; const y = ${y}; if (y !== x) { if (o === v) o = ${copy}; ${write} = y; } }`;
  };
  switch (d[Kind]) {
    case 'Object': {
      const lines = Object.entries(d['properties'] as Record<string, TSchema>).map(([k, p]) => fill(p, `v[${JSON.stringify(k)}]`, 'copyObject(v)', `o[${JSON.stringify(k)}]`));
      fns.push(`function ${name}(v) { if (!(${isObj})) return v; let o = v; ${lines.join(' ')} return o; }`);
      break;
    }
    case 'Record': {
      const item = Object.values(d['patternProperties'] as Record<string, TSchema>)[0]!;
      const body = fill(item, 'v[k]', 'copyObject(v)', 'o[k]');
      fns.push(`function ${name}(v) { if (!(${isObj})) return v; let o = v; ${body === '' ? '' : `for (const k of Object.keys(v)) { ${body} }`} return o; }`);
      break;
    }
    case 'Array': {
      const item = d['items'] as TSchema;
      const body = fill(item, 'v[i]', 'v.slice()', 'o[i]');
      fns.push(`function ${name}(v) { if (!Array.isArray(v)) return v; let o = v; ${body === '' ? '' : `for (let i = 0; i < v.length; i++) { ${body} }`} return o; }`);
      break;
    }
    case 'Union': {
      const variants = (d['anyOf'] as TSchema[]).filter((x) => x[Kind] !== 'Null');
      const objs = variants.filter((x) => ['Object', 'Record'].includes(deref(x, ids)[Kind] as string));
      const arrs = variants.filter((x) => deref(x, ids)[Kind] === 'Array');
      const parts: string[] = [];
      const disc = discriminator(objs, ids);
      if (objs.length === 1) parts.push(`if (${isObj}) return ${defaultsFn(objs[0]!, ids, fns, names)}(v);`);
      else if (disc !== undefined) {
        // A tagged union: the tag picks the variant whose defaults apply.
        for (const o of objs) {
          const tag = JSON.stringify((deref(o, ids)['properties'] as Record<string, TSchema>)[disc]!['const']);
          parts.push(`if (${isObj} && v[${JSON.stringify(disc)}] === ${tag}) return ${defaultsFn(o, ids, fns, names)}(v);`);
        }
      }
      if (arrs.length === 1) parts.push(`if (Array.isArray(v)) return ${defaultsFn(arrs[0]!, ids, fns, names)}(v);`);
      fns.push(`function ${name}(v) { ${parts.join(' ')} return v; }`);
      break;
    }
    default:
      fns.push(`function ${name}(v) { return v; }`);
  }
  return name;
}
