/**
 * What every signed artefact shares (SPEC §2.2–§2.3): the schema version, the signature
 * algorithms, `meta`, and the parser factory that turns a schema into `parseX(u: unknown)` with
 * the `SCHEMA_INVALID` error. Artefact parsers keep unknown fields (they are covered by the
 * signature) and fill the defaults a NixFleet v1 reader fills (the schemas' `default`s).
 *
 * Pure module: no I/O.
 */
import { Type, type Static, type TSchema } from '@sinclair/typebox';
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
};

/** `parseX(u: unknown)` for one artefact: compiled once, here, at module load of its module. */
export function schemaParser<S extends TSchema>(schema: S, what: string, opts: ParserOptions = {}): (u: unknown) => Result<Static<S>, SchemaError> {
  // Artefacts hold large records (100,000 hosts): walked in place (protocol/validate-records.ts).
  const validator = compile(schema, { walkRecords: true });
  const fill = opts.defaults === true ? compileDefaults(schema) : (u: unknown) => u;
  return (u) => {
    const filled = fill(u);
    const v = opts.normalise === undefined ? filled : opts.normalise(filled);
    const issues = validator.check(v) ? [] : validator.issues(v);
    if (opts.semantic !== undefined) {
      const seen = new Set(issues.map((i) => i.path));
      opts.semantic(v, (path, message) => {
        if (!seen.has(path)) issues.push({ path, message });
      });
    }
    return issues.length === 0 ? ok(v as Static<S>) : err(schemaError(what, issues));
  };
}

/** `u` as a plain object, or null: for semantic rules that must not trust the structure. */
export const asObject = (u: unknown): Record<string, unknown> | null => (u !== null && typeof u === 'object' && !Array.isArray(u) ? (u as Record<string, unknown>) : null);
export const own = (o: object, k: string): boolean => Object.prototype.hasOwnProperty.call(o, k);
