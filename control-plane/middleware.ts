/**
 * Hono middleware factories of the control plane (STYLE §9): each validates its options once, at
 * construction, and is mounted where it applies instead of being repeated in handlers. Failures
 * throw `ApiError`; `app.onError` maps them to statuses (errors.ts).
 */
import type { HttpBindings } from '@hono/node-server';
import type { Context, Hono, MiddlewareHandler } from 'hono';
import { bodyLimit } from 'hono/body-limit';
import { routePath } from 'hono/route';
import { PROTOCOL_HEADER, PROTOCOL_VERSION } from '../protocol/api.ts';
import { parseJsonStrict } from '../protocol/jcs.ts';
import type { ValidationError } from '../protocol/api-parse.ts';
import type { Decoder } from '../protocol/decode.ts';
import type { Result } from '../protocol/result.ts';
import { ApiError } from './errors.ts';
import type { Logger } from './log.ts';
import { StoreUnavailableError } from './store/types.ts';
import { peerIdentity, type PeerIdentity, type PeerRole, type PeerSocket } from './identity.ts';

/** Hono environment: Node bindings, and the peer identity once authenticated. */
export type AppEnv = { Bindings: HttpBindings; Variables: { peer: PeerIdentity } };

type Mw = MiddlewareHandler<AppEnv>;

function socketOf(c: Context<AppEnv>): PeerSocket | null {
  const env = c.env as Partial<HttpBindings> | undefined;
  const sock = env?.incoming?.socket as unknown;
  return sock !== undefined && sock !== null ? (sock as PeerSocket) : null;
}

const revokedError = (peer: PeerIdentity): ApiError =>
  new ApiError('CERT_REVOKED', `the certificate for ${JSON.stringify(peer.cn)} was issued before its revocation; get a new one`);

/**
 * Every response carries `X-Nixfleet-Protocol: 1`; a request with another major is refused (a
 * missing header is accepted). `observe` sees every request's route pattern and status.
 */
export function protocolHeader(opts: { observe?: ((route: string, status: number) => void) | undefined } = {}): Mw {
  const observe = opts.observe;
  return async (c, next) => {
    c.header(PROTOCOL_HEADER, PROTOCOL_VERSION);
    const refused = protocolRefusal(c.req.header(PROTOCOL_HEADER));
    if (refused !== null) throw refused;
    await next();
    // Label by the matched route pattern (bounded cardinality), not the raw path ('*' when unmatched).
    observe?.(routePath(c, -1), c.res.status);
  };
}

/** 400 UNSUPPORTED_PROTOCOL for another major in the `X-Nixfleet-Protocol` header (absent: accepted). */
export function protocolRefusal(proto: string | undefined): ApiError | null {
  // The exact version (what every agent sends) without the split's allocations.
  if (proto === undefined || proto === PROTOCOL_VERSION || proto.trim().split('.')[0] === PROTOCOL_VERSION) return null;
  return new ApiError('UNSUPPORTED_PROTOCOL', `${PROTOCOL_HEADER}: ${JSON.stringify(proto)} is not supported; this control plane speaks protocol ${PROTOCOL_VERSION}`);
}

/** One `http.request` line per request at debug: method, matched route, status, duration, peer. */
export function requestLog(log: Logger, now: () => number = () => performance.now()): Mw {
  return async (c, next) => {
    const start = now();
    await next();
    log.debug('http.request', {
      method: c.req.method,
      route: routePath(c, -1),
      status: c.res.status,
      ms: Math.round((now() - start) * 10) / 10,
      peer: (c.get('peer') as PeerIdentity | undefined)?.cn ?? null,
      remote: (socketOf(c) as { remoteAddress?: string } | null)?.remoteAddress ?? null,
    });
  };
}

/**
 * The peer identity from the TLS socket, set as the `peer` variable. `required: false` (open
 * routes): a request without one passes with no `peer`.
 */
export function authenticate(opts: { required: boolean }): Mw {
  const required = opts.required;
  return async (c, next) => {
    const peer = peerIdentity(socketOf(c));
    if (peer === null) {
      if (required) throw new ApiError('UNAUTHENTICATED', 'a client certificate issued by the fleet CA is required');
    } else c.set('peer', peer);
    await next();
  };
}

/**
 * A certificate issued before a signed revocation of its CN gets 401 (after `authenticate`).
 * `onRefused` (optional) sees each refusal with the request path (the renewal route audits it).
 */
export function refuseRevoked(isRevoked: (peer: PeerIdentity) => boolean, onRefused?: (peer: PeerIdentity, path: string) => unknown): Mw {
  if (typeof isRevoked !== 'function') throw new TypeError('refuseRevoked: isRevoked must be a function');
  return async (c, next) => {
    const peer = c.get('peer') as PeerIdentity | undefined;
    if (peer !== undefined && isRevoked(peer)) {
      await onRefused?.(peer, c.req.path);
      throw revokedError(peer);
    }
    await next();
  };
}

/** The issuers (SHA-256 fingerprints, OpenSSL `AA:BB:…` form) each role accepts (issue 16). */
export type IssuerPins = Readonly<Record<PeerRole, ReadonlySet<string>>>;

/**
 * 401 ISSUER_REFUSED for a certificate whose issuer is not one configured for its role (after
 * `authenticate`): the TLS layer accepts anything that chains to the fleet CA, including a
 * certificate from another intermediate the fleet CA once signed, or an operator certificate that
 * somehow came from the host-issuance intermediate.
 */
export function requireIssuer(pins: IssuerPins): Mw {
  for (const r of ROLES) if (!(pins[r] instanceof Set)) throw new TypeError(`requireIssuer: pins.${r} must be a Set`);
  return async (c, next) => {
    const peer = c.get('peer') as PeerIdentity | undefined;
    if (peer !== undefined && !issuerAccepted(pins, peer)) {
      throw new ApiError('ISSUER_REFUSED', `a certificate with OU ${peer.role} must be issued by one of the issuers configured for that role; ${JSON.stringify(peer.cn)}'s is not`);
    }
    await next();
  };
}

/** Whether `pins` accept the peer's issuer for its role (a peer without a known role: the role check refuses it). */
export function issuerAccepted(pins: IssuerPins, peer: PeerIdentity): boolean {
  return peer.role === null || (peer.issuerFingerprint256 !== null && pins[peer.role].has(peer.issuerFingerprint256));
}

/** 503 NOT_READY (with Retry-After, set by onError) until a verified fleet artefact is loaded. */
export function requireReady(readiness: () => { ready: boolean; reasons: string[] }): Mw {
  if (typeof readiness !== 'function') throw new TypeError('requireReady: readiness must be a function');
  return async (_c, next) => {
    const r = readiness();
    if (!r.ready) throw new ApiError('NOT_READY', `not ready: ${r.reasons.join('; ')}`);
    await next();
  };
}

const ROLES: readonly PeerRole[] = ['host', 'operator'];

/** 403 unless the peer's certificate has this role (`any`: one of the known roles). */
export function requireRole(role: PeerRole | 'any'): Mw {
  if (role !== 'any' && !ROLES.includes(role)) throw new TypeError(`requireRole: unknown role ${JSON.stringify(role)}`);
  return async (c, next) => {
    const peer = c.get('peer');
    if (role === 'any' && peer.role === null) throw new ApiError('FORBIDDEN_ROLE', 'this route needs a host or operator certificate');
    if (role !== 'any' && peer.role !== role) {
      throw new ApiError('FORBIDDEN_ROLE', `this route needs a certificate with OU ${role}; yours has ${peer.role === null ? 'no known role' : `OU ${peer.role}`}`);
    }
    await next();
  };
}

/**
 * 413 for a body over `maxBytes`. hono's bodyLimit reads `c.req.raw.body`, which makes
 * @hono/node-server build a full web Request with a ReadableStream for every request: ≈ 0.2 ms of
 * CPU, most of a check-in's HTTP cost (docs/performance.md). On Node, a declared Content-Length
 * is checked from the IncomingMessage and the body is then read by node-server's direct path;
 * Node's HTTP parser guarantees there is no body without Content-Length or Transfer-Encoding.
 * Bodies of unknown length (chunked), and requests that do not come from Node (app.request in
 * tests), go through bodyLimit, which counts while streaming.
 */
export function limitBody(maxBytes: number): Mw {
  if (!Number.isSafeInteger(maxBytes) || maxBytes < 0) throw new TypeError(`limitBody: maxBytes must be a non-negative integer, not ${maxBytes}`);
  const tooLarge = (): never => {
    throw new ApiError('BODY_TOO_LARGE', `request body exceeds ${maxBytes} bytes`);
  };
  const streamed = bodyLimit({ maxSize: maxBytes, onError: tooLarge });
  return async (c, next) => {
    const incoming = (c.env as Partial<HttpBindings> | undefined)?.incoming;
    if (incoming?.headers === undefined || incoming.headers['transfer-encoding'] !== undefined) return streamed(c, next);
    const length = incoming.headers['content-length'];
    if (length !== undefined && Number.parseInt(length, 10) > maxBytes) tooLarge();
    await next();
  };
}

/**
 * Refusals that say something about who is calling: logged at warn with their code; the others at
 * debug. Issue 16: issuer pinning and the enrolment proofs too.
 */
export const SECURITY_REFUSALS: ReadonlySet<string> = new Set([
  'UNAUTHENTICATED',
  'CERT_REVOKED',
  'FORBIDDEN_ROLE',
  'IDENTITY_MISMATCH',
  'REPORT_SIGNATURE_INVALID',
  'BODY_TOO_LARGE',
  'UNSUPPORTED_PROTOCOL',
  'REPORT_QUOTA',
  'ISSUER_REFUSED',
  'ENROL_PROOF_INVALID',
  'NO_HOST_KEY',
  'TOKEN_INVALID',
  'TOKEN_EXPIRED',
  'TOKEN_WRONG_HOST',
  'TOKEN_REPLAYED',
  'HOST_REVOKED',
]);

export type ErrorPolicy = { log: Logger; logError: (message: string, err: unknown) => void; retryAfterSecs: number };

/**
 * An error as the response every route gives (`handleErrors`; also the check-in route below Hono,
 * hot-checkin.ts), logged as `handleErrors` says.
 */
export function errorResponse(e: unknown, req: { method: string; path: string; peer: string | null }, o: ErrorPolicy): { status: number; headers: Record<string, string>; body: ReturnType<ApiError['toBody']> } {
  const apiErr = e instanceof ApiError ? e : e instanceof StoreUnavailableError ? new ApiError('STORE_UNAVAILABLE', e.message) : null;
  if (apiErr === null) o.logError(`internal error on ${req.method} ${req.path}`, e);
  else {
    const fields = { code: apiErr.code, status: apiErr.status, method: req.method, path: req.path, peer: req.peer, message: apiErr.message };
    if (SECURITY_REFUSALS.has(apiErr.code)) o.log.warn('http.refused', fields);
    else o.log.debug('http.refused', fields);
  }
  const error = apiErr ?? new ApiError('INTERNAL', 'internal error; see the control plane log');
  const headers: Record<string, string> = { [PROTOCOL_HEADER]: PROTOCOL_VERSION };
  if (error.code === 'NOT_READY' || error.code === 'STORE_UNAVAILABLE') headers['Retry-After'] = String(o.retryAfterSecs);
  if (error.retryAfterSecs !== undefined) headers['Retry-After'] = String(error.retryAfterSecs);
  return { status: error.status, headers, body: error.toBody() };
}

/**
 * The one place where errors become responses (every app of the CP: the mTLS one and the
 * enrolment listener): an ApiError by its code's status, the store unreachable (PostgreSQL
 * restarting) 503 STORE_UNAVAILABLE with nothing of the request stored, anything else is a bug —
 * 500 with a generic body, the details in the log only (STYLE §7).
 */
export function handleErrors(app: Hono<AppEnv>, o: ErrorPolicy): void {
  app.onError((e, c) => {
    const r = errorResponse(e, { method: c.req.method, path: c.req.path, peer: (c.get('peer') as PeerIdentity | undefined)?.cn ?? null }, o);
    for (const [k, v] of Object.entries(r.headers)) c.header(k, v);
    return c.json(r.body, r.status as 400);
  });
  app.notFound((c) => {
    c.header(PROTOCOL_HEADER, PROTOCOL_VERSION);
    return c.json(new ApiError('NOT_FOUND', `no route ${c.req.method} ${c.req.path}`).toBody(), 404);
  });
}

// ---------------------------------------------------------------------------------------------
// Handler helpers

/** Read a JSON body (already under the byte limit) and parse it strictly (duplicate keys refused). */
export async function readJson(c: Context<AppEnv>, optional: boolean): Promise<unknown> {
  return parseJsonBody(new Uint8Array(await c.req.arrayBuffer()), c.req.header('content-type'), optional);
}

/** A body's bytes (under the byte limit) parsed as `readJson` does (also hot-checkin.ts). */
export function parseJsonBody(buf: Uint8Array, contentType: string | undefined, optional: boolean): unknown {
  if (buf.length === 0) {
    if (optional) return undefined;
    throw new ApiError('MALFORMED_JSON', 'request body is empty; a JSON object is required');
  }
  if (!isJsonType(contentType)) throw new ApiError('UNSUPPORTED_MEDIA_TYPE', 'request body must be application/json');
  const parsed = parseJsonStrict(buf, { maxBytes: buf.length });
  if (!parsed.ok) throw new ApiError('MALFORMED_JSON', `request body is not valid JSON: ${parsed.error.message}`);
  return parsed.value;
}

const isJsonType = (contentType: string | undefined): boolean => /^application\/json\s*(;|$)/i.test(contentType ?? '');

/**
 * A body's value read in one pass (protocol/decode.ts), when the decoder decides: a non-empty JSON
 * body. `undefined`: `parseJsonBody` and the schema's parser give the value or the refusal. Bytes
 * are read as latin1: any byte past ASCII is outside what the decoder decides, so it steps aside.
 */
export function decodeJsonBody<T>(decode: Decoder<T>, buf: Buffer, contentType: string | undefined): T | undefined {
  return buf.length === 0 || !isJsonType(contentType) ? undefined : decode(buf.toString('latin1'));
}

/** The parsed body, or 400 INVALID_BODY with every bad field. */
export function validated<T>(r: Result<T, ValidationError>): T {
  if (!r.ok) throw new ApiError('INVALID_BODY', r.error.message, r.error.issues);
  return r.value;
}

/** A host may only act as itself: every hostname in the body equals the certificate CN. */
export function requireSelf(peer: PeerIdentity, hostname: string): void {
  if (hostname !== peer.cn) {
    throw new ApiError('IDENTITY_MISMATCH', `certificate is for ${JSON.stringify(peer.cn)}, request is for ${JSON.stringify(hostname)}: a host may only act as itself`);
  }
}
