/**
 * The one mapping from API error codes to HTTP statuses (STYLE §7). Services return or throw
 * `ApiError`; `app.onError` turns it into `{error: {code, message}}`. Anything else is a bug: 500
 * `INTERNAL` with a generic message (details go to the log, never to the client).
 */
import type { ErrorBody, ErrorCode } from '../protocol/api.ts';
import type { Issue } from '../protocol/api-parse.ts';

export const STATUS: Readonly<Record<ErrorCode, 400 | 401 | 403 | 404 | 409 | 410 | 413 | 415 | 429 | 500 | 503>> = Object.freeze({
  MALFORMED_JSON: 400,
  INVALID_BODY: 400,
  INVALID_QUERY: 400,
  UNSUPPORTED_PROTOCOL: 400,
  REPORT_SIGNATURE_INVALID: 400,
  EVIDENCE_SIGNATURE_INVALID: 400,
  UNAUTHENTICATED: 401,
  CERT_REVOKED: 401,
  FORBIDDEN_ROLE: 403,
  IDENTITY_MISMATCH: 403,
  NOT_FOUND: 404,
  UNKNOWN_HOST: 404,
  UNKNOWN_ROLLOUT: 404,
  UNKNOWN_CHANNEL: 404,
  NO_SLICE: 404,
  NO_DISPATCH: 409,
  DEADLINE_PASSED: 410,
  DISPATCH_CANCELLED: 410,
  BODY_TOO_LARGE: 413,
  UNSUPPORTED_MEDIA_TYPE: 415,
  REPORT_QUOTA: 429,
  NOT_READY: 503,
  STORE_UNAVAILABLE: 503,
  CSR_UNREADABLE: 400,
  CSR_KEY_TYPE: 400,
  CSR_SIGNATURE_INVALID: 400,
  CSR_SUBJECT: 400,
  CSR_HOST_MISMATCH: 400,
  ISSUER_REFUSED: 401,
  ENROL_PROOF_INVALID: 403,
  NO_HOST_KEY: 403,
  TOKEN_INVALID: 403,
  TOKEN_EXPIRED: 403,
  TOKEN_WRONG_HOST: 403,
  HOST_REVOKED: 403,
  TOKEN_REPLAYED: 409,
  ENROLMENT_DISABLED: 404,
  TOKEN_LEDGER_UNUSABLE: 503,
  INTERNAL: 500,
});

export type { Issue };

/** An expected failure that ends the request with a JSON error body. */
export class ApiError extends Error {
  readonly code: ErrorCode;
  readonly issues: Issue[] | undefined;
  /** Seconds for a `Retry-After` header (429 / 503). */
  retryAfterSecs: number | undefined;
  constructor(code: ErrorCode, message: string, issues?: Issue[]) {
    super(message);
    this.name = 'ApiError';
    this.code = code;
    this.issues = issues;
  }
  get status(): number {
    return STATUS[this.code];
  }
  toBody(): ErrorBody {
    return { error: { code: this.code, message: this.message, ...(this.issues !== undefined ? { issues: this.issues } : {}) } };
  }
}

/** Result-style failure from a service, mapped by the same table. */
export type Failure = { code: ErrorCode; message: string };

export const toApiError = (f: Failure): ApiError => new ApiError(f.code, f.message);
