/**
 * The schemas of nixfleet's signed artefacts (SPEC §2.2–§2.3) and of the fleet description, one
 * module per artefact, re-exported here so that importers have one stable place:
 *
 * - artifact.ts     schema version, signature algorithms, `meta`, `SCHEMA_INVALID` errors
 * - fleet.ts        `fleet.resolved.json`           (`parseFleetResolved`)
 * - revocations.ts  `revocations.json`              (`parseRevocations`)
 * - trust.ts        `trust.json`                    (`parseTrust`)
 * - description.ts  the fleet description           (`parseFleetDescription`)
 * - selector.ts     host selectors and `matchesSelector`
 * - vocab.ts        RFC 3339 timestamps, store basenames, host names (`parseTimestamp`, …)
 *
 * Every type is derived from its TypeBox schema (`Static`); never restate them (STYLE §4).
 */
export * from './artifact.ts';
export * from './description.ts';
export * from './fleet.ts';
export * from './revocations.ts';
export * from './selector.ts';
export * from './trust.ts';
export { isTimestamp, parseTimestamp } from './vocab.ts';
