/**
 * What every signed artefact shares (SPEC §2.2–§2.3): the schema version, the signature
 * algorithms, `meta`, and the parser factory that turns a schema into `parseX(u: unknown)` with
 * the `SCHEMA_INVALID` error. Artefact parsers keep unknown fields (they are covered by the
 * signature) and fill the defaults a NixFleet v1 reader fills (the schemas' `default`s).
 *
 * Pure module: no I/O.
 */
import { Kind, Type, type Static, type TSchema } from '@sinclair/typebox';
import { err, ok, type Result } from './result.ts';
import { compile, compileDefaults, type Issue } from './validate.ts';
import { Enum, Nullable, TimestampUtc } from './vocab.ts';

export const SCHEMA_VERSION = 1 as const;

const SIGNATURE_ALGORITHM_NAMES = ['ed25519', 'ecdsa-p256'] as const;
export type SignatureAlgorithm = (typeof SIGNATURE_ALGORITHM_NAMES)[number];
export const SIGNATURE_ALGORITHMS: readonly SignatureAlgorithm[] = SIGNATURE_ALGORITHM_NAMES;
export const SignatureAlgorithmSchema = Enum(SIGNATURE_ALGORITHMS);

/** The artefact kinds the verifier knows; rollback state is kept per kind. */
export type ArtifactKind = 'fleet' | 'revocations';

export const SchemaVersionSchema = Type.Literal(SCHEMA_VERSION);

/** Non-negative (or ≥ `min`) integer, exact in a double (I-JSON). */
export const Count = (min: number, max = Number.MAX_SAFE_INTEGER) => Type.Integer({ minimum: min, maximum: max });
export const NonEmpty = () => Type.String({ minLength: 1 });
/** An object keyed by names (hosts, channels, policies): the empty name is refused. */
export const Named = <T extends TSchema>(t: T) => Type.Record(Type.String({ pattern: '^.+$' }), t, { additionalProperties: false });

/**
 * `meta` (SPEC §2.2): `signedAt` is RFC 3339 UTC, null before signing; `signatureAlgorithm` is
 * omitted when absent, and absent means ed25519.
 */
export const MetaSchema = Type.Object({
  schemaVersion: SchemaVersionSchema,
  signedAt: Nullable(TimestampUtc(), { default: null }),
  ciCommit: Nullable(Type.String(), { default: null }),
  signatureAlgorithm: Type.Optional(SignatureAlgorithmSchema),
});
export type Meta = Static<typeof MetaSchema>;

export type SchemaIssue = Issue;
export type SchemaError = { code: 'SCHEMA_INVALID'; message: string; issues: SchemaIssue[] };

/** `invalid <what>: <first five issues>; (and N more)` — lib/resolve.nix builds the same message. */
export function schemaError(what: string, issues: SchemaIssue[]): SchemaError {
  const first = issues
    .slice(0, 5)
    .map((i) => `${i.path}: ${i.message}`)
    .join('; ');
  const more = issues.length > 5 ? ` (and ${issues.length - 5} more)` : '';
  return { code: 'SCHEMA_INVALID', message: `invalid ${what}: ${first}${more}`, issues };
}

export type ParserOptions = {
  /** Fill the schema's defaults into a copy first (artefacts); descriptions are taken as written. */
  defaults?: boolean;
  /** Rewrites of the (defaulted) value before the check, e.g. an old spelling: returns the rewritten value and never modifies its input (the defaults pass may return the input itself). */
  normalise?: (u: unknown) => unknown;
  /**
   * Cross-field rules after the structural check. They also run when the structure is invalid
   * (so that every issue is reported at once) and must therefore test what they read.
   */
  semantic?: (u: unknown, add: (path: string, message: string) => void) => void;
  /** With `defaults`: check before filling when that is the same (see `schemaParser`); false only to test the other path. */
  checkFirst?: boolean;
};

/** `parseX(u: unknown)` for one artefact: compiled once, here, at module load of its module. */
export function schemaParser<S extends TSchema>(schema: S, what: string, opts: ParserOptions = {}): (u: unknown) => Result<Static<S>, SchemaError> {
  // Artefacts hold large records (100,000 hosts): walked in place (protocol/validate-records.ts).
  const validator = compile(schema, { walkRecords: true });
  const fill = opts.defaults === true ? compileDefaults(schema) : (u: unknown) => u;
  // When every default of the schema is on a required property that refuses `undefined`, a value
  // that passes the check has nothing to fill: the defaults pass would give it back as it is, so
  // it is not run (issue 19: a walk of 100,000 host entries). A property compares both paths.
  const checkFirst = opts.defaults === true && opts.checkFirst !== false && defaultsOnlyOnRequired(schema);
  const rules = (v: unknown, issues: SchemaIssue[]): Result<Static<S>, SchemaError> => {
    if (opts.semantic !== undefined) {
      const seen = new Set(issues.map((i) => i.path));
      opts.semantic(v, (path, message) => {
        if (!seen.has(path)) issues.push({ path, message });
      });
    }
    return issues.length === 0 ? ok(v as Static<S>) : err(schemaError(what, issues));
  };
  return (u) => {
    if (checkFirst && validator.check(u) && (opts.normalise === undefined || opts.normalise(u) === u)) return rules(u, []);
    const filled = fill(u);
    const v = opts.normalise === undefined ? filled : opts.normalise(filled);
    return rules(v, validator.check(v) ? [] : validator.issues(v));
  };
}

/**
 * Is every `default` of `schema` on a required object property whose schema refuses `undefined`
 * (so that the defaults pass of protocol/validate.ts has nothing to fill in a value the check
 * accepts)? A default anywhere else (optional property, record or array item, the root) says no.
 */
export function defaultsOnlyOnRequired(schema: TSchema): boolean {
  const seen = new Set<object>();
  const visit = (s: unknown, allowed: boolean): boolean => {
    if (s === null || typeof s !== 'object') return true;
    if (Array.isArray(s)) return s.every((x) => visit(x, false));
    if (seen.has(s)) return true;
    seen.add(s);
    const o = s as TSchema;
    if (o['default'] !== undefined && !allowed) return false;
    if (o[Kind] === 'Object' && typeof o['properties'] === 'object' && o['properties'] !== null) {
      const required = new Set((o['required'] as string[] | undefined) ?? []);
      for (const [k, p] of Object.entries(o['properties'] as Record<string, TSchema>)) if (!visit(p, required.has(k) && !acceptsUndefined(p))) return false;
    }
    for (const [k, v] of Object.entries(o)) if (k !== 'properties' && k !== 'default' && !visit(v, false)) return false;
    return true;
  };
  return visit(schema, false);
}

function acceptsUndefined(s: TSchema): boolean {
  const k = s[Kind];
  if (k === 'Unknown' || k === 'Any' || k === 'Undefined' || k === 'Void') return true;
  return k === 'Union' && (s['anyOf'] as TSchema[]).some(acceptsUndefined);
}

/** `u` as a plain object, or null: for semantic rules that must not trust the structure. */
export const asObject = (u: unknown): Record<string, unknown> | null => (u !== null && typeof u === 'object' && !Array.isArray(u) ? (u as Record<string, unknown>) : null);
export const own = (o: object, k: string): boolean => Object.prototype.hasOwnProperty.call(o, k);
