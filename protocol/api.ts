/**
 * The control plane's HTTP API (SPEC §5): every request and response body of every route.
 *
 * Every body is a TypeBox schema (`…Schema`); its TypeScript type is derived from it (`Static`),
 * never restated. The CP validates request bodies with them (protocol/api-parse.ts); the agent
 * and the CLI validate the CP's answers with them (`parseCheckinResponse`, …, in api-parse.ts).
 * No I/O here.
 *
 * Conventions:
 * - JSON bodies, UTF-8; times are RFC 3339 UTC strings (`2026-01-01T00:00:00.000Z`).
 * - Closures are full store basenames (`abc…-nixos-system-web1-25.05`), as in the signed fleet.
 * - Every non-2xx answer carries an {@link ErrorBody} with a stable {@link ErrorCode}.
 * - Requests may carry `X-Nixfleet-Protocol: 1`; a missing header is accepted, another major
 *   version gets 400 `UNSUPPORTED_PROTOCOL`. Every response carries the header.
 * - Identity comes from the client certificate (CN, OU), never from the body; a host's body
 *   `hostname` must equal its CN (403 `IDENTITY_MISMATCH` otherwise).
 */
import { Type, type Static } from '@sinclair/typebox';
import type { FleetResolved } from './schema.ts';
import { EvidenceListSchema } from './compliance-api.ts';
import { AuditHeadSchema, SignedHeadWitnessSchema } from './audit-witness.ts';
import { HOST_ROLLOUT_STATES, ROLLOUT_STATES, type HostRolloutState, type RolloutState as StatesRolloutState } from './states.ts';
import { Enum, Hostname, Nullable, StoreBasename, Timestamp } from './vocab.ts';
import { OUTCOME_REFUSALS } from './outcome.ts';
import type { EnrolErrorCode } from './enrol.ts';

// Issue 14 pieces, in files of their own (re-exported: import them from here).
export * from './outcome.ts';
export * from './api-rollout-ops.ts';
export * from './api-channel-ops.ts';

export const PROTOCOL_HEADER = 'X-Nixfleet-Protocol';
export const PROTOCOL_VERSION = '1';

/** Route paths (Hono syntax for parameters). */
export const ROUTES = {
  checkin: '/v1/agent/checkin',
  confirm: '/v1/agent/confirm',
  report: '/v1/agent/report',
  slice: '/v1/agent/slice',
  artifact: '/v1/artifact',
  artifactSig: '/v1/artifact.sig',
  revocations: '/v1/revocations',
  revocationsSig: '/v1/revocations.sig',
  hosts: '/v1/hosts',
  rollouts: '/v1/rollouts',
  rollout: '/v1/rollouts/:id',
  rolloutTrace: '/v1/rollouts/:id/trace',
  rolloutSkip: '/v1/rollouts/:id/skip',
  rolloutApprove: '/v1/rollouts/:id/approve',
  audit: '/v1/audit',
  compliance: '/v1/compliance',
  certificates: '/v1/certificates',
  evidence: '/v1/evidence',
  auditWitnesses: '/v1/audit/witnesses',
  auditCheckpoint: '/v1/audit/checkpoint',
  pause: '/v1/channels/:channel/pause',
  resume: '/v1/channels/:channel/resume',
  quarantines: '/v1/quarantines',
  quarantinesClear: '/v1/quarantines/clear',
  healthz: '/healthz',
  readyz: '/readyz',
  metrics: '/metrics',
} as const;

// ---------------------------------------------------------------------------------------------
// Errors
// ---------------------------------------------------------------------------------------------

/**
 * Stable error codes and their HTTP status:
 * - 400 `MALFORMED_JSON`, `INVALID_BODY` (wrong types / missing fields, see `issues`),
 *   `UNSUPPORTED_PROTOCOL`, `INVALID_QUERY`, `REPORT_SIGNATURE_INVALID`, `EVIDENCE_SIGNATURE_INVALID`
 * - 401 `UNAUTHENTICATED` (no verified client certificate), `CERT_REVOKED` (§2.3 revocations)
 * - 403 `FORBIDDEN_ROLE` (OU not allowed on this route), `IDENTITY_MISMATCH` (host acts as another)
 * - 404 `NOT_FOUND`, `UNKNOWN_HOST` (not in the signed fleet), `UNKNOWN_ROLLOUT`, `UNKNOWN_CHANNEL`,
 *   `NO_SLICE` (no verified slice index matches the fleet in force: use the full artefact)
 * - 409 `NO_DISPATCH` (confirm for something that was never dispatched to this host)
 * - 410 `DEADLINE_PASSED` (confirm after the confirm deadline), `DISPATCH_CANCELLED`
 *   (rollout halted / superseded / paused before the confirm)
 * - 413 `BODY_TOO_LARGE`
 * - 415 `UNSUPPORTED_MEDIA_TYPE` (a body that is not `application/json`)
 * - 429 `REPORT_QUOTA` (with `Retry-After`; the host sent more reports than its quota)
 * - 503 `NOT_READY` (with `Retry-After`; no verified fleet artefact yet)
 * - 503 `STORE_UNAVAILABLE` (with `Retry-After`; the database is unreachable — PostgreSQL restarting;
 *   the request is not acknowledged: retry, on another replica if there is one)
 * - enrolment and renewal (issue 16): the codes of {@link EnrolErrorCode} (protocol/enrol.ts)
 * - 500 `INTERNAL` (a bug; the message is generic, details go to the log)
 */
export type ErrorCode =
  | 'MALFORMED_JSON'
  | 'INVALID_BODY'
  | 'INVALID_QUERY'
  | 'UNSUPPORTED_PROTOCOL'
  | 'REPORT_SIGNATURE_INVALID'
  | 'EVIDENCE_SIGNATURE_INVALID'
  | 'UNAUTHENTICATED'
  | 'CERT_REVOKED'
  | 'FORBIDDEN_ROLE'
  | 'IDENTITY_MISMATCH'
  | 'NOT_FOUND'
  | 'UNKNOWN_HOST'
  | 'UNKNOWN_ROLLOUT'
  | 'UNKNOWN_CHANNEL'
  | 'NO_SLICE'
  | 'NO_DISPATCH'
  | 'DEADLINE_PASSED'
  | 'DISPATCH_CANCELLED'
  | 'BODY_TOO_LARGE'
  | 'UNSUPPORTED_MEDIA_TYPE'
  | 'REPORT_QUOTA'
  | 'NOT_READY'
  | 'STORE_UNAVAILABLE'
  | EnrolErrorCode
  | 'INTERNAL';

/**
 * Every non-2xx answer. `code` is an {@link ErrorCode}; a client accepts codes it does not know
 * (a newer CP), so the schema says string.
 */
export const ErrorBodySchema = Type.Object({
  error: Type.Object({
    code: Type.String(),
    message: Type.String(),
    /** For INVALID_BODY / INVALID_QUERY: every bad field, path in the `$.a.b[0]` style. */
    issues: Type.Optional(Type.Array(Type.Object({ path: Type.String(), message: Type.String() }))),
  }),
});
export type ErrorBody = Static<typeof ErrorBodySchema>;

// ---------------------------------------------------------------------------------------------
// States (SPEC §4). Spelled as the reconciler spells them.
// ---------------------------------------------------------------------------------------------

/** `Queued → Dispatched → Activating → ConfirmWindow → Healthy → Soaked → Converged`, `Failed`, `Reverted`. */
export type HostState = HostRolloutState;

/** `Pending → Executing → Converged`, `Halted`, `Superseded`, `Paused`. */
export type RolloutState = StatesRolloutState;

// ---------------------------------------------------------------------------------------------
// Agent routes (client certificate OU `host`, CN = hostname)
// ---------------------------------------------------------------------------------------------

const MAX_STRING = 4096;
const MAX_LIST = 256;
const Text = (max = MAX_STRING) => Type.String({ maxLength: max });
const Name = (max: number) => Type.String({ minLength: 1, maxLength: max });
const List = <T extends Parameters<typeof Type.Array>[0]>(t: T) => Type.Array(t, { maxItems: MAX_LIST });
/** `<channel>@<targetRef>`: no white space. */
const RolloutId = () => Type.String({ pattern: '^[^\\s]{1,512}$', maxLength: 512, errorMessage: 'must be a rollout id (no white space, at most 512)' });
/** base64 of a raw 64-byte Ed25519 signature. */
const Signature64 = () => Type.String({ pattern: '^[A-Za-z0-9+/]{86}==$', errorMessage: 'must be base64 of a 64-byte signature' });

/** One probe's latest result as the agent observed it (§6 probes); `observedAt`: when it ran. */
export const ProbeResultSchema = Type.Object({ name: Name(256), ok: Type.Boolean(), observedAt: Timestamp({ maxLength: 64 }), message: Type.Optional(Text()) });
export type ProbeResult = Static<typeof ProbeResultSchema>;

export const LAST_OUTCOMES = ['confirmed', 'rolled-back', 'activation-failed', 'activation-deferred', 'refused'] as const;
/** What happened to the last target the agent handled. */
export const LastOutcomeSchema = Type.Object({ rolloutId: RolloutId(), closureHash: StoreBasename(), outcome: Enum(LAST_OUTCOMES), at: Timestamp({ maxLength: 64 }) });
export type LastOutcome = Static<typeof LastOutcomeSchema>;


/**
 * The agent's own signed statement of the last target it confirmed (SPEC §5 rebuild from empty,
 * §6 state). `signature` is base64 of the raw 64-byte Ed25519 signature by the host key
 * (`hosts[h].pubkey` in the signed fleet) over the JCS bytes of `record`.
 */
export const ConfirmedRecordSchema = Type.Object({ hostname: Hostname(), rolloutId: RolloutId(), closureHash: StoreBasename(), confirmedAt: Timestamp({ maxLength: 64 }) });
export type ConfirmedRecord = Static<typeof ConfirmedRecordSchema>;
export const SignedConfirmedRecordSchema = Type.Object({ record: ConfirmedRecordSchema, signature: Signature64() });
export type SignedConfirmedRecord = Static<typeof SignedConfirmedRecordSchema>;

/**
 * `POST /v1/agent/checkin` body.
 * - `currentClosure`: basename of the running system closure (`/run/current-system`), null if unknown;
 * - `bootId`: `/proc/sys/kernel/random/boot_id` (or the darwin equivalent);
 * - `failedUnits`: systemd failed units right now;
 * - `lastOutcome` + `lastOutcomeSignature` (issue 14): what happened to the last target, signed by
 *   the host key (see `outcomeStatement`). A `rolled-back` / `activation-failed` outcome moves the
 *   host only when the signature verifies (or the host has no pubkey in the fleet) and the outcome
 *   is not older than the host's dispatch in that rollout: the recovery path for a lost report;
 * - `pendingReboot`: activated with `switch-to-configuration boot`, waiting for a reboot;
 * - `lastConfirmed`: restores this host's rollout state after a CP wipe: verified against the host
 *   key, it makes the host Healthy since `confirmedAt` in the named rollout (its wave's soak counts
 *   from then). Send it on every check-in; the CP verifies each distinct record once.
 */
export const CheckinRequestSchema = Type.Object({
  hostname: Hostname(),
  currentClosure: Nullable(StoreBasename()),
  bootId: Name(128),
  agentVersion: Type.Optional(Name(64)),
  probes: List(ProbeResultSchema),
  failedUnits: List(Name(256)),
  lastOutcome: Nullable(LastOutcomeSchema),
  lastOutcomeSignature: Type.Optional(Nullable(Signature64())),
  pendingReboot: Type.Optional(Type.Boolean()),
  lastConfirmed: Type.Optional(Nullable(SignedConfirmedRecordSchema)),
  /** Issue 15 (protocol/compliance-api.ts): evidence collected since the last accepted request. */
  compliance: Type.Optional(EvidenceListSchema),
  /** Issue 15 (protocol/audit-witness.ts): the host-signed audit head it was shown last. */
  auditWitness: Type.Optional(SignedHeadWitnessSchema),
});
export type CheckinRequest = Static<typeof CheckinRequestSchema>;

/**
 * What the CP asks the host to run (the host re-verifies all of it against the signed bytes;
 * agent/target.ts checks the closure and the times itself, with its own error codes).
 * - `closureHash` equals `hosts[<me>].closureHash` in the signed artefact whose sha256 is `artifactSha256`;
 * - `wave`: 0-based wave index of this host in `waves[channel]`;
 * - `signedAt`: `meta.signedAt` of the artefact; `freshnessWindowMinutes`: the channel's window;
 * - `artifactSha256`: hex sha256 of the canonical artefact bytes served at `GET /v1/artifact`;
 * - `confirmDeadline`: RFC 3339: confirm (POST /v1/agent/confirm) before this or roll back. The
 *   clock starts when the target is first handed to the host (first check-in that returns it), so a
 *   host that polls late still gets the full `confirmDeadlineSecs`; later check-ins repeat it.
 * - `slice` (optional, issue 19; absent = false, so v1 agents and CPs ignore it): the CP serves this
 *   host a signed slice of this artefact at `GET /v1/agent/slice`; the agent may verify that
 *   instead of downloading the whole artefact.
 */
export const TargetSchema = Type.Object({
  closureHash: Type.String(),
  rolloutId: Type.String(),
  channel: Type.String(),
  wave: Type.Integer({ minimum: 0 }),
  signedAt: Type.String(),
  freshnessWindowMinutes: Type.Number(),
  artifactSha256: Type.String(),
  confirmDeadline: Type.String(),
  slice: Type.Optional(Type.Boolean()),
});
export type Target = Static<typeof TargetSchema>;

/**
 * `GET /v1/agent/slice` 200 body (issue 19, protocol/slice.ts): the calling host's own slice.
 * - `leaf`: the canonical JSON text of its leaf, exactly as hashed; `leafIndex`, `proof` (audit
 *   path, leaf to root, lowercase hex): its inclusion proof;
 * - `index`: the signed index (`fleet.index.json`) exactly as published, `indexSignature`: base64
 *   of its raw signature. The agent verifies the index like an artefact, then the slice against it.
 */
export const SliceResponseSchema = Type.Object({
  leaf: Type.String({ maxLength: 1_048_576 }),
  leafIndex: Type.Integer({ minimum: 0 }),
  proof: Type.Array(Type.String({ pattern: '^[0-9a-f]{64}$' }), { maxItems: 64 }),
  index: Type.String({ maxLength: 65_536 }),
  indexSignature: Type.String({ maxLength: 1_024 }),
});
export type SliceResponse = Static<typeof SliceResponseSchema>;

/**
 * A stopping instruction (rollback-and-halt, SPEC §4): roll back the activation of `closureHash`
 * for `rolloutId` to the generation the agent ran before it. Never names a closure to switch to.
 */
export const RollbackInstructionSchema = Type.Object({ rolloutId: Type.String(), closureHash: Type.String(), reason: Type.String() });
export type RollbackInstruction = Static<typeof RollbackInstructionSchema>;

/**
 * `POST /v1/agent/checkin` 200 body. `rollback`: present (non-null) only when the host must undo
 * the activation it made for a halted rollout. `serverTime`: CP clock, for the agent's skew
 * diagnostics only (it never trusts it for freshness).
 */
export const CheckinResponseSchema = Type.Object({
  target: Nullable(TargetSchema),
  rollback: Type.Optional(Nullable(RollbackInstructionSchema)),
  nextCheckinSecs: Type.Number({ minimum: 0 }),
  serverTime: Type.String(),
  /** Issue 14 (absent = none): the check-in's `lastOutcome` was not acted on, and why. */
  outcomeRefused: Type.Optional(Type.Object({ code: Enum(OUTCOME_REFUSALS), message: Type.String() })),
  /** Issue 15: the audit chain head now; the agent signs it into its next check-in (`auditWitness`). */
  auditHead: Type.Optional(AuditHeadSchema),
});
export type CheckinResponse = Static<typeof CheckinResponseSchema>;

/**
 * `POST /v1/agent/confirm` body → 204 on success; 410 `DEADLINE_PASSED` / `DISPATCH_CANCELLED`.
 * `confirmed`: optional signed record the CP stores for a later rebuild (same as checkin
 * `lastConfirmed`); `probes`: results that justified the confirm (they start the soak observations).
 */
export const ConfirmRequestSchema = Type.Object({
  hostname: Hostname(),
  rolloutId: RolloutId(),
  closureHash: StoreBasename(),
  bootId: Name(128),
  confirmed: Type.Optional(SignedConfirmedRecordSchema),
  probes: Type.Optional(List(ProbeResultSchema)),
  failedUnits: Type.Optional(List(Name(256))),
  /** Issue 15: the evidence of the checks run after this activation, before the confirm. */
  compliance: Type.Optional(EvidenceListSchema),
});
export type ConfirmRequest = Static<typeof ConfirmRequestSchema>;

/**
 * Events an agent reports (§5, §6). `activation-switched`: switch-to-configuration ran; the
 * confirm window is open (→ ConfirmWindow).
 */
export const REPORT_EVENTS = [
  'activation-started',
  'activation-switched',
  'activation-failed',
  'activation-deferred',
  'rolled-back',
  'stale-target',
  'closure-quarantined',
  'verify-failed',
  'probe-failed',
] as const;
export type ReportEvent = (typeof REPORT_EVENTS)[number];

/** The signed part of a report. `at`: when it happened on the host; `details`: free-form JSON. */
export const HostReportSchema = Type.Object({
  hostname: Hostname(),
  event: Enum(REPORT_EVENTS),
  rolloutId: Nullable(RolloutId()),
  closureHash: Nullable(StoreBasename()),
  at: Timestamp({ maxLength: 64 }),
  message: Text(),
  details: Type.Optional(Type.Record(Type.String(), Type.Unknown())),
});
export type HostReport = Static<typeof HostReportSchema>;

/**
 * `POST /v1/agent/report` body. `signature`: base64 of the raw 64-byte Ed25519 signature by the
 * host key over the JCS bytes of `report`. May be null only for hosts whose fleet entry has
 * `pubkey: null`.
 */
export const ReportRequestSchema = Type.Object({ report: HostReportSchema, signature: Nullable(Signature64()) });
export type ReportRequest = Static<typeof ReportRequestSchema>;

/**
 * - `verified`: signature good under `hosts[h].pubkey`;
 * - `unsigned-no-pubkey`: host has no pubkey in the fleet, report taken as is;
 * - `invalid`: signature missing or wrong while a pubkey exists — stored and audited, answered
 *   400 `REPORT_SIGNATURE_INVALID`, and it changes no state.
 */
export const REPORT_VERDICTS = ['verified', 'unsigned-no-pubkey', 'invalid'] as const;
export type ReportVerdict = (typeof REPORT_VERDICTS)[number];

/** `POST /v1/agent/report` 202 body. */
export const ReportResponseSchema = Type.Object({ id: Type.Integer(), verdict: Enum(REPORT_VERDICTS) });
export type ReportResponse = Static<typeof ReportResponseSchema>;

// `GET /v1/artifact` → the exact signed canonical bytes (`application/json`), `ETag: "<sha256>"`,
// honours `If-None-Match` (304). `GET /v1/artifact.sig` → the raw 64-byte signature
// (`application/octet-stream`). Same for `/v1/revocations{,.sig}` when revocations are configured.

// ---------------------------------------------------------------------------------------------
// Operator routes (client certificate OU `operator`)
// ---------------------------------------------------------------------------------------------

const HostStateSchema = Enum(HOST_ROLLOUT_STATES);
const RolloutStateSchema = Enum(ROLLOUT_STATES);

/**
 * One host as the CP sees it. `GET /v1/hosts` → {@link HostsResponse}.
 * - `declaredClosure`: `hosts[h].closureHash` in the fleet artefact in force;
 * - `currentClosure`: reported by the agent at its last check-in;
 * - `online`: false when it has not checked in for `offlineAfterSecs`;
 * - `rollout`: this host's state in the newest rollout of its channel that includes it, if any;
 * - `dispatch`: whether a target is outstanding for it (dispatched, not yet confirmed).
 */
export const HostViewSchema = Type.Object({
  hostname: Type.String(),
  channel: Type.String(),
  declaredClosure: Nullable(Type.String()),
  currentClosure: Nullable(Type.String()),
  lastCheckinAt: Nullable(Type.String()),
  bootId: Nullable(Type.String()),
  online: Type.Boolean(),
  pendingReboot: Type.Boolean(),
  failedUnits: Type.Array(Type.String()),
  probes: Type.Array(Type.Object({ name: Type.String(), ok: Type.Boolean(), observedAt: Type.String(), message: Type.Optional(Type.String()) })),
  /** `refused` (issue 14, absent = acted on or not needed): the CP did not act on it, with the code. */
  lastOutcome: Nullable(Type.Object({ rolloutId: Type.String(), closureHash: Type.String(), outcome: Enum(LAST_OUTCOMES), at: Type.String(), refused: Type.Optional(Enum(OUTCOME_REFUSALS)) })),
  rollout: Nullable(Type.Object({ rolloutId: Type.String(), state: HostStateSchema, since: Type.String(), wave: Type.Integer() })),
  dispatch: Nullable(Type.Object({ rolloutId: Type.String(), closureHash: Type.String(), confirmDeadline: Type.String() })),
  /** Issue 14 (absent = none): runs something other than what its converged rollout gave it. */
  drift: Type.Optional(Type.Object({ expected: Type.String(), actual: Type.String(), since: Type.String(), rolloutId: Type.String() })),
  /** Issue 14 (absent = none): a signed pin in force; `until` null = no expiry. */
  pin: Type.Optional(Type.Object({ commit: Type.String(), reason: Type.String(), until: Nullable(Type.String()) })),
  /** Issue 16 (absent = unknown): notAfter of the client certificate it presented at its last check-in. */
  certNotAfter: Type.Optional(Type.String()),
});
export type HostView = Static<typeof HostViewSchema>;
export const HostsResponseSchema = Type.Object({ hosts: Type.Array(HostViewSchema) });
export type HostsResponse = Static<typeof HostsResponseSchema>;

/**
 * `GET /v1/rollouts` → {@link RolloutsResponse}; `?channel=` and `?state=` filter.
 * - `id`: `<channel>@<targetRef>` (reconciler/README.md);
 * - `currentWave`: index of the wave in progress (meaningful when Executing);
 * - `signedAt` / `artifactSha256`: of the artefact that opened it;
 * - `reason`: last state change reason (e.g. halt cause).
 */
const RolloutSummaryFields = {
  id: Type.String(),
  channel: Type.String(),
  state: RolloutStateSchema,
  currentWave: Type.Integer(),
  signedAt: Type.String(),
  artifactSha256: Type.String(),
  openedAt: Type.String(),
  updatedAt: Type.String(),
  reason: Nullable(Type.String()),
  hostCounts: Type.Unsafe<Partial<Record<HostState, number>>>(Type.Object(Object.fromEntries(HOST_ROLLOUT_STATES.map((k) => [k, Type.Optional(Type.Integer())])))),
  /** Issue 14 (absent = not stalled): no progress past the channel's progress deadline; the blocking hosts and their gate. */
  stall: Type.Optional(Type.Object({ since: Type.String(), gate: Type.String(), hosts: Type.Array(Type.String()), reason: Type.String() })),
  /** Issue 14 (absent = not held): why the channel's change window holds it. */
  windowHold: Type.Optional(Type.String()),
};
export const RolloutSummarySchema = Type.Object(RolloutSummaryFields);
export type RolloutSummary = Static<typeof RolloutSummarySchema>;
export const RolloutsResponseSchema = Type.Object({ rollouts: Type.Array(RolloutSummarySchema) });
export type RolloutsResponse = Static<typeof RolloutsResponseSchema>;

/** One host of a rollout; `reason`: why it is waiting (gate reason) or was released, when known. */
export const RolloutHostViewSchema = Type.Object({
  hostname: Type.String(),
  wave: Type.Integer(),
  state: HostStateSchema,
  since: Type.String(),
  closureHash: Nullable(Type.String()),
  reason: Nullable(Type.String()),
  /** Issue 20 (absent = not held by a gate): the gate code of the block in `reason` (quarantined, offline, host-edge, compliance, pinned, …). */
  gate: Type.Optional(Type.String()),
});
export type RolloutHostView = Static<typeof RolloutHostViewSchema>;
/** `GET /v1/rollouts/:id` → {@link RolloutDetail}. */
export const RolloutDetailSchema = Type.Object({ ...RolloutSummaryFields, hosts: Type.Array(RolloutHostViewSchema) });
export type RolloutDetail = Static<typeof RolloutDetailSchema>;

/**
 * `GET /v1/rollouts/:id/trace` → {@link TraceResponse}: every transition with reason and time.
 * `subject`: `rollout` for rollout-state changes, `host` for a host's state within the rollout.
 */
export const TraceEventSchema = Type.Object({
  at: Type.String(),
  subject: Enum(['rollout', 'host'] as const),
  hostname: Nullable(Type.String()),
  from: Nullable(Type.String()),
  to: Type.String(),
  reason: Type.String(),
});
export type TraceEvent = Static<typeof TraceEventSchema>;
export const TraceResponseSchema = Type.Object({ rolloutId: Type.String(), events: Type.Array(TraceEventSchema) });
export type TraceResponse = Static<typeof TraceResponseSchema>;

/**
 * `GET /v1/audit?after=SEQ&limit=N` → {@link AuditResponse} (ascending `seq`, limit ≤ 1000,
 * default 100). The chain rule, which `nixfleet audit verify` checks offline:
 *
 *   hash = hex(sha256(JCS({seq, at, kind, actor, subject, data, prevHash})))
 *
 * with `prevHash` the previous entry's `hash` and 64 `"0"` for `seq = 1`. Host reports inside
 * `data` keep the host's signature, so the hosts' statements can be verified offline too.
 * - `kind`: e.g. `artifact.accepted`, `artifact.rejected`, `host.state`, `rollout.state`,
 *   `report`, `channel.paused`, `channel.resumed`, `quarantine.cleared`, `dispatch.expired`;
 * - `actor`: `cp`, `host:<name>` or `operator:<name>`;
 * - `subject`: what it is about: a rollout id, a hostname, a channel, an artefact kind.
 */
export const AuditEntrySchema = Type.Object({
  seq: Type.Integer(),
  at: Type.String(),
  kind: Type.String(),
  actor: Type.String(),
  subject: Type.String(),
  data: Type.Unknown(),
  prevHash: Type.String(),
  hash: Type.String(),
});
export type AuditEntry = Static<typeof AuditEntrySchema>;
export const AuditResponseSchema = Type.Object({ entries: Type.Array(AuditEntrySchema), nextAfter: Nullable(Type.Integer()) });
export type AuditResponse = Static<typeof AuditResponseSchema>;


// ---------------------------------------------------------------------------------------------
// Open routes
// ---------------------------------------------------------------------------------------------

/** `GET /healthz` → 200 always (process alive). */
export type HealthzResponse = { ok: true };

/** `GET /readyz` → 200 when ready, else 503 with the reasons. */
export const ReadyzResponseSchema = Type.Object({
  ready: Type.Boolean(),
  reasons: Type.Array(Type.String()),
  fleet: Nullable(Type.Object({ signedAt: Type.String(), sha256: Type.String(), ciCommit: Nullable(Type.String()) })),
  revocations: Nullable(Type.Object({ signedAt: Type.String(), sha256: Type.String() })),
  /** Several replicas on one store: this one's role, lease epoch and store health. */
  replica: Type.Optional(Type.Object({ role: Type.Union([Type.Literal('leader'), Type.Literal('follower')]), holder: Type.String(), epoch: Nullable(Type.Integer()), storeOk: Type.Boolean() })),
});
export type ReadyzResponse = Static<typeof ReadyzResponseSchema>;

/** Convenience re-export so API consumers need only this module for the artefact type. */
export type { FleetResolved };
