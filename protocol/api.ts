/**
 * The control plane's HTTP API (SPEC §5): every request and response body of every route.
 *
 * Imported as TYPES by the agent, the CLI and tests (`import type … from
 * '../protocol/api.ts'`); the only values here are a few string constants (protocol header,
 * paths) with no imports and no I/O, so a value import is harmless too.
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
import type { FleetResolved } from './schema.ts';
import type { HostRolloutState, RolloutState as StatesRolloutState } from './states.ts';

export const PROTOCOL_HEADER = 'X-Nixfleet-Protocol';
export const PROTOCOL_VERSION = '1';

/** Route paths (Hono syntax for parameters). */
export const ROUTES = {
  checkin: '/v1/agent/checkin',
  confirm: '/v1/agent/confirm',
  report: '/v1/agent/report',
  artifact: '/v1/artifact',
  artifactSig: '/v1/artifact.sig',
  revocations: '/v1/revocations',
  revocationsSig: '/v1/revocations.sig',
  hosts: '/v1/hosts',
  rollouts: '/v1/rollouts',
  rollout: '/v1/rollouts/:id',
  rolloutTrace: '/v1/rollouts/:id/trace',
  audit: '/v1/audit',
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
 *   `UNSUPPORTED_PROTOCOL`, `INVALID_QUERY`, `REPORT_SIGNATURE_INVALID`
 * - 401 `UNAUTHENTICATED` (no verified client certificate), `CERT_REVOKED` (§2.3 revocations)
 * - 403 `FORBIDDEN_ROLE` (OU not allowed on this route), `IDENTITY_MISMATCH` (host acts as another)
 * - 404 `NOT_FOUND`, `UNKNOWN_HOST` (not in the signed fleet), `UNKNOWN_ROLLOUT`, `UNKNOWN_CHANNEL`
 * - 409 `NO_DISPATCH` (confirm for something that was never dispatched to this host)
 * - 410 `DEADLINE_PASSED` (confirm after the confirm deadline), `DISPATCH_CANCELLED`
 *   (rollout halted / superseded / paused before the confirm)
 * - 413 `BODY_TOO_LARGE`
 * - 415 `UNSUPPORTED_MEDIA_TYPE` (a body that is not `application/json`)
 * - 503 `NOT_READY` (with `Retry-After`; no verified fleet artefact yet)
 * - 500 `INTERNAL` (a bug; the message is generic, details go to the log)
 */
export type ErrorCode =
  | 'MALFORMED_JSON'
  | 'INVALID_BODY'
  | 'INVALID_QUERY'
  | 'UNSUPPORTED_PROTOCOL'
  | 'REPORT_SIGNATURE_INVALID'
  | 'UNAUTHENTICATED'
  | 'CERT_REVOKED'
  | 'FORBIDDEN_ROLE'
  | 'IDENTITY_MISMATCH'
  | 'NOT_FOUND'
  | 'UNKNOWN_HOST'
  | 'UNKNOWN_ROLLOUT'
  | 'UNKNOWN_CHANNEL'
  | 'NO_DISPATCH'
  | 'DEADLINE_PASSED'
  | 'DISPATCH_CANCELLED'
  | 'BODY_TOO_LARGE'
  | 'UNSUPPORTED_MEDIA_TYPE'
  | 'NOT_READY'
  | 'INTERNAL';

export type ErrorBody = {
  error: {
    code: ErrorCode;
    message: string;
    /** For INVALID_BODY / INVALID_QUERY: every bad field, JSON-pointer-like path. */
    issues?: { path: string; message: string }[];
  };
};

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

/** One probe's latest result as the agent observed it (§6 probes). */
export type ProbeResult = {
  name: string;
  ok: boolean;
  /** When the agent ran it. */
  observedAt: string;
  message?: string;
};

/** What happened to the last target the agent handled. */
export type LastOutcome = {
  rolloutId: string;
  closureHash: string;
  outcome: 'confirmed' | 'rolled-back' | 'activation-failed' | 'activation-deferred' | 'refused';
  at: string;
};

/**
 * The agent's own signed statement of the last target it confirmed (SPEC §5 rebuild from empty,
 * §6 state). `signature` is base64 of the raw 64-byte Ed25519 signature by the host key
 * (`hosts[h].pubkey` in the signed fleet) over the JCS bytes of `record`.
 */
export type ConfirmedRecord = {
  hostname: string;
  rolloutId: string;
  closureHash: string;
  confirmedAt: string;
};
export type SignedConfirmedRecord = { record: ConfirmedRecord; signature: string };

/** `POST /v1/agent/checkin` body. */
export type CheckinRequest = {
  hostname: string;
  /** Basename of the running system closure (`/run/current-system`), null if unknown. */
  currentClosure: string | null;
  /** `/proc/sys/kernel/random/boot_id` (or the darwin equivalent). */
  bootId: string;
  agentVersion?: string;
  probes: ProbeResult[];
  /** systemd failed units right now. */
  failedUnits: string[];
  lastOutcome: LastOutcome | null;
  /** Activated with `switch-to-configuration boot`, waiting for a reboot. */
  pendingReboot?: boolean;
  /**
   * Restores this host's rollout state after a CP wipe: verified against the host key, it makes
   * the host Healthy since `confirmedAt` in the named rollout (its wave's soak counts from then).
   * Send it on every check-in; the CP verifies each distinct record once.
   */
  lastConfirmed?: SignedConfirmedRecord | null;
};

/** What the CP asks the host to run (the host re-verifies all of it against the signed bytes). */
export type Target = {
  /** Equals `hosts[<me>].closureHash` in the signed artefact whose sha256 is `artifactSha256`. */
  closureHash: string;
  rolloutId: string;
  channel: string;
  /** 0-based wave index of this host in `waves[channel]`. */
  wave: number;
  /** `meta.signedAt` of the artefact. */
  signedAt: string;
  /** The channel's `freshnessWindow` in minutes. */
  freshnessWindowMinutes: number;
  /** Hex sha256 of the canonical artefact bytes served at `GET /v1/artifact`. */
  artifactSha256: string;
  /**
   * RFC 3339: confirm (POST /v1/agent/confirm) before this or roll back. The clock starts when the
   * target is first handed to the host (first check-in that returns it), so a host that polls
   * late still gets the full `confirmDeadlineSecs`; later check-ins repeat the same deadline.
   */
  confirmDeadline: string;
};

/**
 * A stopping instruction (rollback-and-halt, SPEC §4): roll back the activation of `closureHash`
 * for `rolloutId` to the generation the agent ran before it. Never names a closure to switch to.
 */
export type RollbackInstruction = { rolloutId: string; closureHash: string; reason: string };

/** `POST /v1/agent/checkin` 200 body. */
export type CheckinResponse = {
  target: Target | null;
  /** Present (non-null) only when the host must undo the activation it made for a halted rollout. */
  rollback?: RollbackInstruction | null;
  nextCheckinSecs: number;
  /** CP clock, for the agent's skew diagnostics only (it never trusts it for freshness). */
  serverTime: string;
};

/** `POST /v1/agent/confirm` body → 204 on success; 410 `DEADLINE_PASSED` / `DISPATCH_CANCELLED`. */
export type ConfirmRequest = {
  hostname: string;
  rolloutId: string;
  closureHash: string;
  bootId: string;
  /** Optional signed record the CP stores for a later rebuild (same as checkin `lastConfirmed`). */
  confirmed?: SignedConfirmedRecord;
  /** Probe results that justified the confirm (they start the soak observations). */
  probes?: ProbeResult[];
  failedUnits?: string[];
};

/** Events an agent reports (§5, §6). */
export type ReportEvent =
  | 'activation-started'
  /** switch-to-configuration ran; the confirm window is open (→ ConfirmWindow). */
  | 'activation-switched'
  | 'activation-failed'
  | 'activation-deferred'
  | 'rolled-back'
  | 'stale-target'
  | 'closure-quarantined'
  | 'verify-failed'
  | 'probe-failed';

/** The signed part of a report. */
export type HostReport = {
  hostname: string;
  event: ReportEvent;
  rolloutId: string | null;
  closureHash: string | null;
  /** When it happened on the host. */
  at: string;
  message: string;
  /** Free-form, JSON; e.g. the verify error code or failed units. */
  details?: Record<string, unknown>;
};

/**
 * `POST /v1/agent/report` body. `signature`: base64 of the raw 64-byte Ed25519 signature by the
 * host key over the JCS bytes of `report`. May be null only for hosts whose fleet entry has
 * `pubkey: null`.
 */
export type ReportRequest = { report: HostReport; signature: string | null };

/**
 * - `verified`: signature good under `hosts[h].pubkey`;
 * - `unsigned-no-pubkey`: host has no pubkey in the fleet, report taken as is;
 * - `invalid`: signature missing or wrong while a pubkey exists — stored and audited, answered
 *   400 `REPORT_SIGNATURE_INVALID`, and it changes no state.
 */
export type ReportVerdict = 'verified' | 'unsigned-no-pubkey' | 'invalid';

/** `POST /v1/agent/report` 202 body. */
export type ReportResponse = { id: number; verdict: ReportVerdict };

// `GET /v1/artifact` → the exact signed canonical bytes (`application/json`), `ETag: "<sha256>"`,
// honours `If-None-Match` (304). `GET /v1/artifact.sig` → the raw 64-byte signature
// (`application/octet-stream`). Same for `/v1/revocations{,.sig}` when revocations are configured.

// ---------------------------------------------------------------------------------------------
// Operator routes (client certificate OU `operator`)
// ---------------------------------------------------------------------------------------------

/** One host as the CP sees it. `GET /v1/hosts` → {@link HostsResponse}. */
export type HostView = {
  hostname: string;
  channel: string;
  /** `hosts[h].closureHash` in the fleet artefact in force. */
  declaredClosure: string | null;
  /** Reported by the agent at its last check-in. */
  currentClosure: string | null;
  lastCheckinAt: string | null;
  bootId: string | null;
  /** False when it has not checked in for `offlineAfterSecs`. */
  online: boolean;
  pendingReboot: boolean;
  failedUnits: string[];
  probes: ProbeResult[];
  lastOutcome: LastOutcome | null;
  /** This host's state in the newest rollout of its channel that includes it, if any. */
  rollout: { rolloutId: string; state: HostState; since: string; wave: number } | null;
  /** Whether a target is outstanding for it (dispatched, not yet confirmed). */
  dispatch: { rolloutId: string; closureHash: string; confirmDeadline: string } | null;
};
export type HostsResponse = { hosts: HostView[] };

/** `GET /v1/rollouts` → {@link RolloutsResponse}; `?channel=` and `?state=` filter. */
export type RolloutSummary = {
  /** `<channel>@<targetRef>` (reconciler/README.md). */
  id: string;
  channel: string;
  state: RolloutState;
  /** Index of the wave in progress (meaningful when Executing). */
  currentWave: number;
  /** `meta.signedAt` / sha256 of the artefact that opened it. */
  signedAt: string;
  artifactSha256: string;
  openedAt: string;
  updatedAt: string;
  /** Last state change reason (e.g. halt cause). */
  reason: string | null;
  hostCounts: Partial<Record<HostState, number>>;
};
export type RolloutsResponse = { rollouts: RolloutSummary[] };

/** `GET /v1/rollouts/:id` → {@link RolloutDetail}. */
export type RolloutHostView = {
  hostname: string;
  wave: number;
  state: HostState;
  since: string;
  closureHash: string | null;
  /** Why it is waiting (gate reason) or failed, when known. */
  reason: string | null;
};
export type RolloutDetail = RolloutSummary & { hosts: RolloutHostView[] };

/** `GET /v1/rollouts/:id/trace` → {@link TraceResponse}: every transition with reason and time. */
export type TraceEvent = {
  at: string;
  /** `rollout` for rollout-state changes, `host` for a host's state within the rollout. */
  subject: 'rollout' | 'host';
  hostname: string | null;
  from: string | null;
  to: string;
  reason: string;
};
export type TraceResponse = { rolloutId: string; events: TraceEvent[] };

/**
 * `GET /v1/audit?after=SEQ&limit=N` → {@link AuditResponse} (ascending `seq`, limit ≤ 1000,
 * default 100). The chain rule, which `nixfleet audit verify` checks offline:
 *
 *   hash = hex(sha256(JCS({seq, at, kind, actor, subject, data, prevHash})))
 *
 * with `prevHash` the previous entry's `hash` and 64 `"0"` for `seq = 1`. Host reports inside
 * `data` keep the host's signature, so the hosts' statements can be verified offline too.
 */
export type AuditEntry = {
  seq: number;
  at: string;
  /** e.g. `artifact.accepted`, `artifact.rejected`, `host.state`, `rollout.state`, `report`,
   * `channel.paused`, `channel.resumed`, `quarantine.cleared`, `dispatch.expired`. */
  kind: string;
  /** `cp`, `host:<name>` or `operator:<name>`. */
  actor: string;
  /** What it is about: a rollout id, a hostname, a channel, an artefact kind. */
  subject: string;
  data: unknown;
  prevHash: string;
  hash: string;
};
export type AuditResponse = { entries: AuditEntry[]; nextAfter: number | null };

/** `POST /v1/channels/:channel/pause` body (may be empty) → {@link PauseResponse}. */
export type PauseRequest = { reason?: string };
/** `POST /v1/channels/:channel/resume` body (may be empty) → {@link PauseResponse}. */
export type ResumeRequest = { reason?: string };
export type PauseResponse = {
  channel: string;
  paused: boolean;
  /** Who and when (null after resume). */
  by: string | null;
  since: string | null;
  reason: string | null;
};

/** `GET /v1/quarantines` → {@link QuarantinesResponse}. */
export type Quarantine = {
  channel: string;
  closureHash: string;
  rolloutId: string | null;
  reason: string;
  since: string;
};
export type QuarantinesResponse = { quarantines: Quarantine[] };

/** `POST /v1/quarantines/clear`: a channel's quarantines, optionally one closure. */
export type QuarantineClearRequest = { channel: string; closureHash?: string };
export type QuarantineClearResponse = { cleared: number };

// ---------------------------------------------------------------------------------------------
// Open routes
// ---------------------------------------------------------------------------------------------

/** `GET /healthz` → 200 always (process alive). */
export type HealthzResponse = { ok: true };

/** `GET /readyz` → 200 when ready, else 503 with the reasons. */
export type ReadyzResponse = {
  ready: boolean;
  reasons: string[];
  fleet: { signedAt: string; sha256: string; ciCommit: string | null } | null;
  revocations: { signedAt: string; sha256: string } | null;
};

/** Convenience re-export so API consumers need only this module for the artefact type. */
export type { FleetResolved };
