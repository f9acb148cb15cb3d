/**
 * The JSON Schemas of every file a user (or CI) writes, rendered from the TypeBox schemas that
 * the programs validate with (protocol/validate.ts): one source, so the published schemas cannot
 * drift from the code. `npm run schemas` writes them to schemas/; scripts/json-schemas.test.ts
 * fails when schemas/ differs from what this renders. docs/schemas.md says which file is which.
 */
import type { TSchema } from '@sinclair/typebox';
import { AgentConfigSchema } from '../agent/config.ts';
import { CliConfigSchema } from '../cli/settings.ts';
import { ControlPlaneConfigSchema } from '../control-plane/config.ts';
import { CATALOGUE, EvidenceRecordSchema, StaticReportSchema } from '../protocol/compliance.ts';
import { FleetDescriptionSchema, FleetResolvedSchema, RevocationsSchema, TrustSchema } from '../protocol/schema.ts';

/** schemas/<name> → the TypeBox schema it renders. */
export const SCHEMA_FILES: Readonly<Record<string, TSchema>> = {
  'fleet.schema.json': FleetDescriptionSchema,
  'fleet.resolved.schema.json': FleetResolvedSchema,
  'revocations.schema.json': RevocationsSchema,
  'trust.schema.json': TrustSchema,
  'agent-config.schema.json': AgentConfigSchema,
  'control-plane-config.schema.json': ControlPlaneConfigSchema,
  'cli-config.schema.json': CliConfigSchema,
  'compliance-report.schema.json': StaticReportSchema,
  'evidence-record.schema.json': EvidenceRecordSchema,
};

/**
 * Generated data files outside schemas/ (path relative to the repository): the built-in compliance
 * catalogue as JSON, which lib/compliance.nix reads (Nix cannot import TypeScript).
 */
export function renderDataFiles(): Map<string, string> {
  return new Map([['lib/compliance-catalogue.json', `${JSON.stringify({ schemaVersion: 1, controls: CATALOGUE }, null, 2)}\n`]]);
}

type Json = null | boolean | number | string | Json[] | { [k: string]: Json };

/**
 * A TypeBox schema as a standalone draft-07 JSON Schema:
 * - TypeBox's symbol keys vanish (JSON), our `errorMessage` (messages of validate.ts) is dropped;
 * - a property with a `default` is not `required` of the writer (the reader fills it in);
 * - recursive schemas (`$id` + `$ref`, e.g. selectors) move to `definitions`, referenced once.
 */
export function toJsonSchema(schema: TSchema): Record<string, Json> {
  const definitions: Record<string, Json> = {};
  const walk = (v: unknown): Json => {
    if (Array.isArray(v)) return v.map(walk);
    if (v === null || typeof v !== 'object') return v as Json;
    const o = v as Record<string, unknown>;
    if (typeof o['$id'] === 'string') {
      const id = o['$id'];
      if (!(id in definitions)) {
        definitions[id] = null; // placeholder: recursion refers to it
        const { $id: _, ...rest } = o;
        definitions[id] = walk(rest);
      }
      return { $ref: `#/definitions/${id}` };
    }
    const out: Record<string, Json> = {};
    for (const [k, x] of Object.entries(o)) {
      if (k === 'errorMessage') continue;
      if (k === '$ref' && typeof x === 'string') out[k] = `#/definitions/${x}`;
      else out[k] = walk(x);
    }
    const props = o['properties'] as Record<string, Record<string, unknown>> | undefined;
    if (Array.isArray(o['required']) && props !== undefined) {
      const required = (o['required'] as string[]).filter((k) => props[k]?.['default'] === undefined);
      if (required.length > 0) out['required'] = required;
      else delete out['required'];
    }
    return out;
  };
  const body = walk(schema) as Record<string, Json>;
  return {
    $schema: 'http://json-schema.org/draft-07/schema#',
    ...body,
    ...(Object.keys(definitions).length > 0 ? { definitions: Object.fromEntries(Object.entries(definitions).sort(([a], [b]) => (a < b ? -1 : 1))) } : {}),
  };
}

/** Every schemas/ file's exact text. */
export function renderSchemas(): Map<string, string> {
  return new Map(Object.entries(SCHEMA_FILES).map(([name, s]) => [name, `${JSON.stringify(toJsonSchema(s), null, 2)}\n`]));
}
