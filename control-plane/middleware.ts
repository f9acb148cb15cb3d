/**
 * Hono middleware factories of the control plane (STYLE §9): each validates its options once, at
 * construction, and is mounted where it applies instead of being repeated in handlers. Failures
 * throw `ApiError`; `app.onError` maps them to statuses (errors.ts).
 */
import type { HttpBindings } from '@hono/node-server';
import type { Context, MiddlewareHandler } from 'hono';
import { bodyLimit } from 'hono/body-limit';
import { routePath } from 'hono/route';
import { PROTOCOL_HEADER, PROTOCOL_VERSION } from '../protocol/api.ts';
import { parseJsonStrict } from '../protocol/jcs.ts';
import type { ValidationError } from '../protocol/api-parse.ts';
import type { Result } from '../protocol/result.ts';
import { ApiError } from './errors.ts';
import type { Logger } from './log.ts';
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
    const proto = c.req.header(PROTOCOL_HEADER);
    if (proto !== undefined && proto.trim().split('.')[0] !== PROTOCOL_VERSION) {
      throw new ApiError('UNSUPPORTED_PROTOCOL', `${PROTOCOL_HEADER}: ${JSON.stringify(proto)} is not supported; this control plane speaks protocol ${PROTOCOL_VERSION}`);
    }
    await next();
    // Label by the matched route pattern (bounded cardinality), not the raw path ('*' when unmatched).
    observe?.(routePath(c, -1), c.res.status);
  };
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

/** A certificate issued before a signed revocation of its CN gets 401 (after `authenticate`). */
export function refuseRevoked(isRevoked: (peer: PeerIdentity) => boolean): Mw {
  if (typeof isRevoked !== 'function') throw new TypeError('refuseRevoked: isRevoked must be a function');
  return async (c, next) => {
    const peer = c.get('peer') as PeerIdentity | undefined;
    if (peer !== undefined && isRevoked(peer)) throw revokedError(peer);
    await next();
  };
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

// ---------------------------------------------------------------------------------------------
// Handler helpers

/** Read a JSON body (already under the byte limit) and parse it strictly (duplicate keys refused). */
export async function readJson(c: Context<AppEnv>, optional: boolean): Promise<unknown> {
  const buf = new Uint8Array(await c.req.arrayBuffer());
  if (buf.length === 0) {
    if (optional) return undefined;
    throw new ApiError('MALFORMED_JSON', 'request body is empty; a JSON object is required');
  }
  const ct = c.req.header('content-type') ?? '';
  if (!/^application\/json\s*(;|$)/i.test(ct)) throw new ApiError('UNSUPPORTED_MEDIA_TYPE', 'request body must be application/json');
  const parsed = parseJsonStrict(buf, { maxBytes: buf.length });
  if (!parsed.ok) throw new ApiError('MALFORMED_JSON', `request body is not valid JSON: ${parsed.error.message}`);
  return parsed.value;
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
