/**
 * Validation of the HTTP bodies of protocol/api.ts, both ways, with the one kit (validate.ts):
 *
 * - request bodies, on the CP (SPEC §5: every body is validated): each `parseX(u: unknown)` runs
 *   AFTER the strict JSON parser (protocol/jcs.ts `parseJsonStrict`: duplicate keys, lone
 *   surrogates, size limit) and reports every bad field (`$.report.hostname`, …) with code
 *   `INVALID_BODY`. The value returned holds exactly the fields of the API type: unknown fields
 *   are dropped, so nothing unvalidated is stored (the report route verifies the host's signature
 *   over the raw report, extra fields included).
 * - the CP's answers, in the agent and the CLI (`parseCheckinResponse`, `responseParser(schema)`):
 *   no `as` cast on untrusted JSON; unknown fields (a newer CP) are kept and ignored.
 *
 * Every validator is compiled once, at module load: the check-in parser is on the CP's hot path.
 * Pure.
 */
import type { Static, TSchema } from '@sinclair/typebox';
import { err, ok, type Result } from './result.ts';
import {
  AuditResponseSchema,
  CheckinRequestSchema,
  HostsResponseSchema,
  PauseResponseSchema,
  QuarantineClearResponseSchema,
  QuarantinesResponseSchema,
  ReadyzResponseSchema,
  ReportResponseSchema,
  RolloutDetailSchema,
  RolloutsResponseSchema,
  SliceResponseSchema,
  TraceResponseSchema,
  CheckinResponseSchema,
  ConfirmRequestSchema,
  ErrorBodySchema,
  PauseRequestSchema,
  RolloutSkipRequestSchema,
  RolloutSkipResponseSchema,
  type RolloutSkipRequest,
  RolloutApproveRequestSchema,
  RolloutApproveResponseSchema,
  type RolloutApproveRequest,
  QuarantineClearRequestSchema,
  ReportRequestSchema,
  type CheckinRequest,
  type CheckinResponse,
  type ConfirmRequest,
  type ErrorBody,
  type PauseRequest,
  type QuarantineClearRequest,
  type ReportRequest,
} from './api.ts';
import { CertificateResponseSchema, EnrolRequestSchema, RenewRequestSchema, WhoamiResponseSchema, type EnrolRequest, type RenewRequest } from './enrol.ts';
import { compileDecoder, type Decoder } from './decode.ts';
import { compile, compileProjection, type Issue } from './validate.ts';

export type { Issue } from './validate.ts';
export { HOSTNAME, STORE_BASENAME } from './vocab.ts';
export { REPORT_EVENTS } from './api.ts';

export type ValidationError = { code: 'INVALID_BODY'; message: string; issues: Issue[] };

/** At most this many issues per body (a hostile body cannot make the answer large). */
const MAX_ISSUES = 50;

function issuesMessage(what: string, issues: Issue[]): string {
  const first = issues[0];
  return `${what}: ${first === undefined ? '$ is invalid' : `${first.path} ${first.message}`}${issues.length > 1 ? ` (+${issues.length - 1} more)` : ''}`;
}

/** A request-body parser: compiled check, then a projection onto the schema's fields. */
function requestParser<S extends TSchema>(schema: S): (u: unknown) => Result<Static<S>, ValidationError> {
  const v = compile(schema);
  const project = compileProjection(schema);
  return (u) => {
    if (v.check(u)) return ok(project(u));
    const issues = v.issues(u, MAX_ISSUES);
    return err({ code: 'INVALID_BODY', message: issuesMessage('invalid request body', issues), issues });
  };
}

export const parseCheckinRequest: (u: unknown) => Result<CheckinRequest, ValidationError> = requestParser(CheckinRequestSchema);
/**
 * Issue 19: a check-in body's text in one pass (decode.ts); `undefined` when it does not decide, and
 * then `parseJsonStrict` + `parseCheckinRequest` give the value or the refusal.
 */
export const decodeCheckinRequest: Decoder<CheckinRequest> = compileDecoder(CheckinRequestSchema);
export const parseConfirmRequest: (u: unknown) => Result<ConfirmRequest, ValidationError> = requestParser(ConfirmRequestSchema);
export const parseReportRequest: (u: unknown) => Result<ReportRequest, ValidationError> = requestParser(ReportRequestSchema);
export const parseQuarantineClearRequest: (u: unknown) => Result<QuarantineClearRequest, ValidationError> = requestParser(QuarantineClearRequestSchema);

/** Issue 16: `POST /v1/enroll` and `POST /v1/agent/renew` (the CSR itself is checked by pki/x509.ts). */
export const parseEnrolRequest: (u: unknown) => Result<EnrolRequest, ValidationError> = requestParser(EnrolRequestSchema);
export const parseRenewRequest: (u: unknown) => Result<RenewRequest, ValidationError> = requestParser(RenewRequestSchema);

export const parseRolloutSkipRequest: (u: unknown) => Result<RolloutSkipRequest, ValidationError> = requestParser(RolloutSkipRequestSchema);
export const parseRolloutApproveRequest: (u: unknown) => Result<RolloutApproveRequest, ValidationError> = requestParser(RolloutApproveRequestSchema);

const pauseRequest = requestParser(PauseRequestSchema);
/** Pause / resume: the body may be absent. */
export function parsePauseRequest(u: unknown): Result<PauseRequest, ValidationError> {
  return u === undefined ? ok({}) : pauseRequest(u);
}

// ---- the CP's answers ------------------------------------------------------------------------

export type ResponseError = { code: 'BAD_RESPONSE'; message: string; issues: Issue[] };

/** A parser for one CP answer (agent, CLI). Compile once per schema, at module load. */
export function responseParser<S extends TSchema>(schema: S, what: string): (u: unknown) => Result<Static<S>, ResponseError> {
  const v = compile(schema);
  return (u) => {
    if (v.check(u)) return ok(u);
    const issues = v.issues(u, 10);
    return err({ code: 'BAD_RESPONSE', message: issuesMessage(`${what} is not valid`, issues), issues });
  };
}

export const parseCheckinResponse: (u: unknown) => Result<CheckinResponse, ResponseError> = responseParser(CheckinResponseSchema, 'check-in answer');

const errorBody = compile(ErrorBodySchema);
/** The CP's error body, if `u` is one. */
export function parseErrorBody(u: unknown): ErrorBody['error'] | null {
  return errorBody.check(u) ? u.error : null;
}

export const parseCertificateResponse = responseParser(CertificateResponseSchema, 'certificate answer');
export const parseWhoamiResponse = responseParser(WhoamiResponseSchema, 'whoami answer');
export const parseHostsResponse = responseParser(HostsResponseSchema, 'hosts answer');
export const parseRolloutsResponse = responseParser(RolloutsResponseSchema, 'rollouts answer');
export const parseRolloutDetail = responseParser(RolloutDetailSchema, 'rollout answer');
export const parseTraceResponse = responseParser(TraceResponseSchema, 'trace answer');
export const parseAuditResponse = responseParser(AuditResponseSchema, 'audit answer');
export const parsePauseResponse = responseParser(PauseResponseSchema, 'pause answer');
export const parseRolloutSkipResponse = responseParser(RolloutSkipResponseSchema, 'rollout skip answer');
export const parseRolloutApproveResponse = responseParser(RolloutApproveResponseSchema, 'rollout approve answer');
export const parseQuarantinesResponse = responseParser(QuarantinesResponseSchema, 'quarantines answer');
export const parseQuarantineClearResponse = responseParser(QuarantineClearResponseSchema, 'quarantine clear answer');
export const parseReportResponse = responseParser(ReportResponseSchema, 'report answer');
export const parseReadyzResponse = responseParser(ReadyzResponseSchema, 'readyz answer');
/** `GET /v1/agent/slice` (issue 19); the agent then verifies the index and the slice itself. */
export const parseSliceResponse = responseParser(SliceResponseSchema, 'slice answer');
