/**
 * `revocations.json` (SPEC §2.3): any client certificate for `hostname` issued before
 * `notBefore` is refused. Signed by the release key; published (and signed) even when empty.
 *
 * Pure module: no I/O.
 */
import { Type, type Static } from '@sinclair/typebox';
import { MetaSchema, NonEmpty, schemaParser, SchemaVersionSchema, type SchemaError } from './artifact.ts';
import type { Result } from './result.ts';
import { Nullable, Timestamp } from './vocab.ts';

export const RevocationSchema = Type.Object({
  hostname: NonEmpty(),
  notBefore: Timestamp(),
  reason: Nullable(Type.String(), { default: null }),
  revokedBy: Nullable(Type.String(), { default: null }),
});
export type Revocation = Static<typeof RevocationSchema>;

export const RevocationsSchema = Type.Object(
  { schemaVersion: SchemaVersionSchema, revocations: Type.Array(RevocationSchema), meta: MetaSchema },
  { title: 'revocations.json (SPEC §2.3)' },
);
export type Revocations = Static<typeof RevocationsSchema>;

/** `revocations.json` (SPEC §2.3). */
export const parseRevocations: (u: unknown) => Result<Revocations, SchemaError> = schemaParser(RevocationsSchema, 'revocations.json', { defaults: true });
