/**
 * The compliance parts of the HTTP API (issue 15), beside protocol/api.ts: the host-signed
 * evidence an agent sends with its check-ins and confirms, and the operator view
 * `GET /v1/compliance`.
 *
 * Pure module: no I/O.
 */
import { Type, type Static } from '@sinclair/typebox';
import { CHECK_RESULTS, EvidenceRecordSchema, StaticFailureSchema } from './compliance.ts';
import { COMPLIANCE_MODES } from './fleet.ts';
import { Enum, Nullable } from './vocab.ts';

/** At most this many evidence records per request (a catalogue has a few dozen controls). */
export const MAX_EVIDENCE_PER_REQUEST = 256;

/**
 * An evidence record with the host's signature: base64 of the raw 64-byte Ed25519 signature by the
 * host key (`hosts[h].pubkey`) over the JCS bytes of `record`; null only for a host whose fleet
 * entry has no pubkey. The CP refuses the whole request (400 `EVIDENCE_SIGNATURE_INVALID`) when a
 * record is not signed by the calling host's key or names another host.
 */
export const SignedEvidenceSchema = Type.Object({
  record: EvidenceRecordSchema,
  signature: Nullable(Type.String({ pattern: '^[A-Za-z0-9+/]{86}==$', errorMessage: 'must be base64 of a 64-byte signature' })),
});
export type SignedEvidence = Static<typeof SignedEvidenceSchema>;
export const EvidenceListSchema = Type.Array(SignedEvidenceSchema, { maxItems: MAX_EVIDENCE_PER_REQUEST });

/**
 * A control's status on a host in the operator view: the result of its newest evidence, or
 * `stale` (that evidence is older than `staleAfterSecs`, or about another closure than the host
 * runs now), or `missing` (no evidence yet).
 */
export const CONTROL_STATUSES = [...CHECK_RESULTS, 'stale', 'missing'] as const;
export type ControlStatus = (typeof CONTROL_STATUSES)[number];

export const HostControlViewSchema = Type.Object({
  control: Type.String(),
  status: Enum(CONTROL_STATUSES),
  /** The newest evidence's own result and what it saw (null when missing). */
  result: Nullable(Enum(CHECK_RESULTS)),
  observed: Nullable(Type.String()),
  at: Nullable(Type.String()),
  closure: Nullable(Type.String()),
  /** The signature was verified against the host key in the fleet (false: host without pubkey). */
  signed: Type.Boolean(),
});
export type HostControlView = Static<typeof HostControlViewSchema>;

export const HostComplianceViewSchema = Type.Object({
  hostname: Type.String(),
  channel: Type.String(),
  mode: Enum(COMPLIANCE_MODES),
  frameworks: Type.Array(Type.String()),
  currentClosure: Nullable(Type.String()),
  controls: Type.Array(HostControlViewSchema),
});
export type HostComplianceView = Static<typeof HostComplianceViewSchema>;

/**
 * `GET /v1/compliance` → per host (channels not `disabled`), every runtime control of its channel's
 * frameworks with its status; the controls' framework clauses (built-ins and the fleet's own);
 * the static failures the signed artefact records (permissive channels).
 */
export const ComplianceResponseSchema = Type.Object({
  staleAfterSecs: Type.Integer({ minimum: 0 }),
  controls: Type.Array(Type.Object({ id: Type.String(), title: Type.String(), severity: Type.String(), frameworks: Type.Array(Type.String()) })),
  hosts: Type.Array(HostComplianceViewSchema),
  staticFailures: Type.Array(StaticFailureSchema),
});
export type ComplianceResponse = Static<typeof ComplianceResponseSchema>;
