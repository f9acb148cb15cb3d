/**
 * One pass from a request body's text to its checked and projected value (issue 19: the check-in,
 * which every host sends every minute). The general path is three passes and two copies: the
 * strict parser (jcs.ts `parseJsonStrict`) builds a tree, the compiled check (validate.ts) walks
 * it, the projection (validate.ts `compileProjection`) copies the fields the schema names. Here a
 * reader generated once from the same TypeBox schema reads the text and builds the projected value
 * directly: no member name becomes a string, no intermediate object is built.
 *
 * It decides only what it is sure of, and answers `undefined` for everything else; the caller then
 * takes the general path, which gives the answer or the refusal with its code and issues. So it
 * can only be wrong by accepting what the general path refuses, or by building another value; a
 * property (decode.props.test.ts) compares both on valid, mutated and arbitrary bodies. It accepts:
 * - JSON text of printable ASCII in strings, without escapes (`\"`, `\u…`: general path), with
 *   RFC 8259 whitespace and numbers, nothing after the value;
 * - objects whose every member is a property of the schema, each once (an unknown or duplicate
 *   member: general path), with every required property;
 * - values that pass TypeBox's compiled check (TypeCompiler, default `TypeSystemPolicy`), with the
 *   same rules restated for the keywords below. A schema node with any other keyword or kind
 *   (records, tuples, refs, `Unknown`, unions other than "X or null" and enums of strings) is
 *   never decided here.
 *
 * Pure module: no I/O.
 */
import { FormatRegistry, Kind, type Static, type TSchema } from '@sinclair/typebox';

/** The decoded value, or `undefined`: not decided here (take the general path). */
export type Decoder<T> = (text: string) => T | undefined;

/** Keywords that never change what a value may be. */
const ANNOTATIONS = ['$id', '$schema', '$comment', 'title', 'description', 'default', 'examples', 'errorMessage'];
/** The keywords each kind's reader restates (TypeCompiler FromString, FromInteger, …); others: general path. */
const KEYWORDS: Record<string, ReadonlySet<string>> = {
  String: new Set([...ANNOTATIONS, 'type', 'minLength', 'maxLength', 'pattern', 'format']),
  Integer: new Set([...ANNOTATIONS, 'type', 'minimum', 'maximum', 'exclusiveMinimum', 'exclusiveMaximum', 'multipleOf']),
  Number: new Set([...ANNOTATIONS, 'type', 'minimum', 'maximum', 'exclusiveMinimum', 'exclusiveMaximum', 'multipleOf']),
  Boolean: new Set([...ANNOTATIONS, 'type']),
  Null: new Set([...ANNOTATIONS, 'type']),
  Literal: new Set([...ANNOTATIONS, 'type', 'const']),
  Union: new Set([...ANNOTATIONS, 'anyOf']),
  Array: new Set([...ANNOTATIONS, 'type', 'items', 'minItems', 'maxItems']),
  // An unknown member sends the body to the general path, whatever `additionalProperties` says.
  Object: new Set([...ANNOTATIONS, 'type', 'properties', 'required', 'additionalProperties']),
};

/**
 * The reader's fixed part: the text `s`, the position `i`, and the token readers. Each returns the
 * value read (the position after it) or `undefined` (not decided).
 */
const PRELUDE = `
let s = '';
let i = 0;
function ws() {
  let j = i;
  for (;;) {
    const c = s.charCodeAt(j);
    if (c === 32 || c === 10 || c === 13 || c === 9) j++;
    else break;
  }
  i = j;
}
function colon() {
  ws();
  if (s.charCodeAt(i) !== 58) return false;
  i++;
  ws();
  return true;
}
function str() {
  const t = s;
  let j = i;
  if (t.charCodeAt(j) !== 34) return undefined;
  const a = ++j;
  for (;;) {
    const c = t.charCodeAt(j);
    if (c === 34) {
      i = j + 1;
      return t.slice(a, j);
    }
    if (!(c >= 32 && c <= 126) || c === 92) return undefined;
    j++;
  }
}
function num() {
  const t = s;
  const a = i;
  let j = a;
  if (t.charCodeAt(j) === 45) j++;
  let c = t.charCodeAt(j);
  if (c === 48) c = t.charCodeAt(++j);
  else if (c >= 49 && c <= 57) do c = t.charCodeAt(++j); while (c >= 48 && c <= 57);
  else return undefined;
  if (c === 46) {
    c = t.charCodeAt(++j);
    if (!(c >= 48 && c <= 57)) return undefined;
    do c = t.charCodeAt(++j); while (c >= 48 && c <= 57);
  }
  if (c === 101 || c === 69) {
    c = t.charCodeAt(++j);
    if (c === 43 || c === 45) c = t.charCodeAt(++j);
    if (!(c >= 48 && c <= 57)) return undefined;
    do c = t.charCodeAt(++j); while (c >= 48 && c <= 57);
  }
  i = j;
  const v = Number(t.slice(a, j));
  return Number.isFinite(v) ? v : undefined;
}
function word(w, v) {
  if (!s.startsWith(w, i)) return undefined;
  i += w.length;
  return v;
}
function format(name, v) {
  const f = formats.Get(name);
  return f !== undefined && f(v) === true;
}
`;

const IDENT = /^[A-Za-z_$][\w$]*$/;

class Generator {
  readonly fns: string[] = [];
  /** Values the generated code reads (patterns, enum maps) as `k[n]`. */
  readonly consts: unknown[] = [];
  private readonly names = new Map<TSchema, string>();

  private konst(v: unknown): string {
    this.consts.push(v);
    return `k[${this.consts.length - 1}]`;
  }

  /** The name of a generated function reading one value of `s` (at its first character). */
  node(s: TSchema): string {
    const known = this.names.get(s);
    if (known !== undefined) return known;
    const name = `n${this.names.size}`;
    this.names.set(s, name);
    this.fns.push(`function ${name}() { ${this.body(s)} }`);
    return name;
  }

  private body(s: TSchema): string {
    const kind = s[Kind] as string | undefined;
    const allowed = kind === undefined ? undefined : KEYWORDS[kind];
    if (allowed === undefined || !Object.keys(s).every((k) => allowed.has(k))) return 'return undefined;';
    switch (kind) {
      case 'String':
        return `const v = str(); return v !== undefined && ${this.stringChecks(s, 'v')} ? v : undefined;`;
      case 'Integer':
      case 'Number':
        return `const v = num(); return v !== undefined && ${this.numberChecks(s, 'v', kind === 'Integer')} ? v : undefined;`;
      case 'Boolean':
        return `return s.charCodeAt(i) === 116 ? word('true', true) : word('false', false);`;
      case 'Null':
        return `return word('null', null);`;
      case 'Literal':
        return this.literal(s['const']);
      case 'Union':
        return this.union(s['anyOf'] as TSchema[]);
      case 'Array':
        return this.array(s);
      case 'Object':
        return this.object(s);
      default:
        return 'return undefined;';
    }
  }

  private stringChecks(s: TSchema, v: string): string {
    const c: string[] = ['true'];
    if (typeof s['maxLength'] === 'number') c.push(`${v}.length <= ${s['maxLength']}`);
    if (typeof s['minLength'] === 'number') c.push(`${v}.length >= ${s['minLength']}`);
    if (s['pattern'] !== undefined) c.push(`${this.konst(new RegExp(s['pattern'] as string))}.test(${v})`);
    if (s['format'] !== undefined) c.push(`format(${JSON.stringify(s['format'])}, ${v})`);
    return c.join(' && ');
  }

  private numberChecks(s: TSchema, v: string, integer: boolean): string {
    const c: string[] = [integer ? `Number.isInteger(${v})` : `Number.isFinite(${v})`];
    const n = (k: string): number | undefined => (typeof s[k] === 'number' ? (s[k] as number) : undefined);
    if (n('exclusiveMaximum') !== undefined) c.push(`${v} < ${n('exclusiveMaximum')}`);
    if (n('exclusiveMinimum') !== undefined) c.push(`${v} > ${n('exclusiveMinimum')}`);
    if (n('maximum') !== undefined) c.push(`${v} <= ${n('maximum')}`);
    if (n('minimum') !== undefined) c.push(`${v} >= ${n('minimum')}`);
    if (n('multipleOf') !== undefined) c.push(`(${v} % ${n('multipleOf')}) === 0`);
    return c.join(' && ');
  }

  private literal(value: unknown): string {
    if (typeof value === 'string') return `const v = str(); return v === ${JSON.stringify(value)} ? v : undefined;`;
    if (typeof value === 'number' && Number.isFinite(value)) return `const v = num(); return v === ${this.konst(value)} ? v : undefined;`;
    if (typeof value === 'boolean') return `return word(${JSON.stringify(String(value))}, ${value});`;
    return 'return undefined;';
  }

  private union(variants: TSchema[]): string {
    // An enum of strings: the member's own constant is the value (nothing of the text is kept).
    if (variants.length > 0 && variants.every((v) => v[Kind] === 'Literal' && typeof v['const'] === 'string' && Object.keys(v).every((k) => KEYWORDS['Literal']!.has(k)))) {
      const map = this.konst(new Map(variants.map((v) => [v['const'] as string, v['const'] as string])));
      return `const v = str(); return v === undefined ? undefined : ${map}.get(v);`;
    }
    // X or null.
    const nonNull = variants.filter((v) => v[Kind] !== 'Null');
    if (variants.length === 2 && nonNull.length === 1 && variants.every((v) => v[Kind] !== 'Null' || Object.keys(v).every((k) => KEYWORDS['Null']!.has(k)))) {
      return `return s.charCodeAt(i) === 110 ? word('null', null) : ${this.node(nonNull[0]!)}();`;
    }
    return 'return undefined;';
  }

  private array(s: TSchema): string {
    const item = this.node(s['items'] as TSchema);
    const max = typeof s['maxItems'] === 'number' ? `if (o.length > ${s['maxItems']}) return undefined;` : '';
    const min = typeof s['minItems'] === 'number' ? `if (o.length < ${s['minItems']}) return undefined;` : '';
    return `if (s.charCodeAt(i) !== 91) return undefined;
      i++;
      ws();
      const o = [];
      if (s.charCodeAt(i) === 93) i++;
      else for (;;) {
        const v = ${item}();
        if (v === undefined) return undefined;
        o.push(v);
        ${max}
        ws();
        const c = s.charCodeAt(i);
        if (c === 44) { i++; ws(); continue; }
        if (c === 93) { i++; break; }
        return undefined;
      }
      ${min}
      return o;`;
  }

  private object(s: TSchema): string {
    const props = Object.entries(s['properties'] as Record<string, TSchema>);
    // Each member's presence is one bit of `seen`; a member name the schema cannot hold as a
    // plain quoted name (a quote, a backslash, non-printable) or `__proto__` is never decided here.
    if (props.length > 30 || props.some(([k]) => k === '__proto__' || !/^[\x20-\x7e]*$/.test(k) || k.includes('"') || k.includes('\\'))) return 'return undefined;';
    const required = new Set((s['required'] as string[] | undefined) ?? []);
    let mask = 0;
    props.forEach(([k], n) => {
      if (required.has(k)) mask |= 1 << n;
    });
    const vars = props.map((_, n) => `v${n}`);
    // Member names by first character, then compared in full with their closing quote (character
    // by character: this is most of a check-in's reading, and `startsWith` costs more here).
    const byFirst = new Map<number, number[]>();
    props.forEach(([k], n) => {
      const c = k.length === 0 ? 34 : k.charCodeAt(0);
      byFirst.set(c, [...(byFirst.get(c) ?? []), n]);
    });
    const cases = [...byFirst].map(([c, ns]) => {
      const tries = ns.map((n) => {
        const [k, p] = props[n]!;
        const name = k + '"';
        const same = [...name].map((ch, q) => `s.charCodeAt(i + ${q}) === ${ch.charCodeAt(0)}`).join(' && ');
        return `if (${same}) {
            i += ${k.length + 1};
            if ((seen & ${1 << n}) !== 0 || !colon()) return undefined;
            seen |= ${1 << n};
            v${n} = ${this.node(p)}();
            if (v${n} === undefined) return undefined;
          }`;
      });
      return `case ${c}: ${tries.join(' else ')} else return undefined; break;`;
    });
    const build = props.map(([k], n) => `if ((seen & ${1 << n}) !== 0) o${IDENT.test(k) ? `.${k}` : `[${JSON.stringify(k)}]`} = v${n};`);
    return `if (s.charCodeAt(i) !== 123) return undefined;
      i++;
      ws();
      let seen = 0;
      ${vars.length > 0 ? `let ${vars.join(', ')};` : ''}
      if (s.charCodeAt(i) === 125) i++;
      else for (;;) {
        if (s.charCodeAt(i) !== 34) return undefined;
        i++;
        switch (s.charCodeAt(i)) {
          ${cases.join('\n')}
          default: return undefined;
        }
        ws();
        const c = s.charCodeAt(i);
        if (c === 44) { i++; ws(); continue; }
        if (c === 125) { i++; break; }
        return undefined;
      }
      if ((seen & ${mask}) !== ${mask}) return undefined;
      const o = {};
      ${build.join('\n')}
      return o;`;
  }
}

/**
 * Compile the reader of `schema` once (at first use, like validate.ts `compile`). Its value equals
 * `compileProjection(schema)(parseJsonStrict(text))` whenever `compile(schema).check` accepts that
 * parse, and it is `undefined` whenever the strict parse or the check refuses.
 */
export function compileDecoder<T extends TSchema>(schema: T): Decoder<Static<T>> {
  let decode: Decoder<Static<T>> | null = null;
  const build = (): Decoder<Static<T>> => {
    const g = new Generator();
    const entry = g.node(schema);
    // Generated from our own schemas only (no input text reaches the source), as TypeCompiler does.
    const source = `${PRELUDE}
${g.fns.join('\n')}
return function decode(text) {
  s = text;
  i = 0;
  ws();
  let v = ${entry}();
  if (v !== undefined) {
    ws();
    if (i !== s.length) v = undefined;
  }
  s = '';
  return v;
};`;
    return new Function('k', 'formats', source)(g.consts, FormatRegistry) as Decoder<Static<T>>;
  };
  return (text) => (decode ??= build())(text);
}
