/**
 * The HTTP surface of the control plane (SPEC §5): thin Hono handlers that read raw bytes, call
 * the service, and map the result (STYLE §9). All policy lives in the service; all status codes in
 * `errors.ts`.
 *
 * Middleware order on `/v1/*`: protocol header → peer identity (from the TLS socket) → revocation
 * → readiness (503 + Retry-After) → role → body (415 / 413 / 400).
 */
import type { HttpBindings } from '@hono/node-server';
import { Hono, type Context } from 'hono';
import { bodyLimit } from 'hono/body-limit';
import { routePath } from 'hono/route';
import { parseJsonStrict } from '../protocol/jcs.ts';
import type {
  AuditResponse,
  CheckinRequest,
  CheckinResponse,
  ConfirmRequest,
  HostsResponse,
  PauseRequest,
  PauseResponse,
  QuarantineClearRequest,
  QuarantineClearResponse,
  QuarantinesResponse,
  ReadyzResponse,
  ReportRequest,
  ReportResponse,
  RolloutDetail,
  RolloutsResponse,
  RolloutState,
  TraceResponse,
} from '../protocol/api.ts';
import { PROTOCOL_HEADER, PROTOCOL_VERSION, ROUTES } from '../protocol/api.ts';
import { ApiError } from './errors.ts';
import { peerIdentity, type PeerIdentity, type PeerRole, type PeerSocket } from './identity.ts';
import {
  parseCheckinRequest,
  parseConfirmRequest,
  parsePauseRequest,
  parseQuarantineClearRequest,
  parseReportRequest,
  type ValidationError,
} from '../protocol/api-parse.ts';
import type { Result } from '../protocol/result.ts';

/** A signed artefact as served: the exact bytes and signature that were verified. */
export type ServedArtifact = {
  bytes: Uint8Array;
  signature: Uint8Array;
  sha256: string;
  /** gzip of `bytes`, computed once at acceptance (served on `Accept-Encoding: gzip`). */
  gzip?: Uint8Array;
};

/**
 * What the HTTP layer needs from the control plane. Methods throw `ApiError` for expected failures.
 * Agent methods are called only after the HTTP layer checked the role (OU `host`) and that every
 * hostname in the body equals the certificate CN.
 */
export interface CpService {
  readiness(): ReadyzResponse;
  isRevoked(peer: PeerIdentity): boolean;
  artifact(kind: 'fleet' | 'revocations'): ServedArtifact | null;
  checkin(peer: PeerIdentity, req: CheckinRequest): Promise<CheckinResponse>;
  confirm(peer: PeerIdentity, req: ConfirmRequest): void;
  /** `rawReport` is the `report` value exactly as received (the signature covers its JCS bytes). */
  report(peer: PeerIdentity, req: ReportRequest, rawReport: unknown): ReportResponse;
  hosts(): HostsResponse;
  rollouts(filter: { channel?: string; state?: RolloutState }): RolloutsResponse;
  rollout(id: string): RolloutDetail;
  trace(id: string): TraceResponse;
  audit(after: number, limit: number): AuditResponse;
  pause(peer: PeerIdentity, channel: string, req: PauseRequest): PauseResponse;
  resume(peer: PeerIdentity, channel: string, req: PauseRequest): PauseResponse;
  quarantines(): QuarantinesResponse;
  clearQuarantines(peer: PeerIdentity, req: QuarantineClearRequest): QuarantineClearResponse;
  metricsText(): Promise<{ contentType: string; body: string }>;
  /** Called for every request that reached a handler or failed, for the metrics. */
  observeRequest?(route: string, status: number): void;
}

export type AppOptions = {
  service: CpService;
  maxBodyBytes: number;
  retryAfterSecs: number;
  /** Log sink for 500s (bugs); default console.error. */
  logError?: (message: string, err: unknown) => void;
};

type AppEnv = { Bindings: HttpBindings; Variables: { peer: PeerIdentity } };

const ROLLOUT_STATES: readonly RolloutState[] = ['Pending', 'Executing', 'Converged', 'Halted', 'Superseded', 'Paused'];

function socketOf(c: Context<AppEnv>): PeerSocket | null {
  const env = c.env as Partial<HttpBindings> | undefined;
  const sock = env?.incoming?.socket as unknown;
  return sock !== undefined && sock !== null ? (sock as PeerSocket) : null;
}

/** Read a JSON body under the byte limit and parse it strictly (duplicate keys refused). */
async function readJson(c: Context<AppEnv>, optional: boolean): Promise<unknown> {
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

function validated<T>(r: Result<T, ValidationError>): T {
  if (!r.ok) throw new ApiError('INVALID_BODY', r.error.message, r.error.issues);
  return r.value;
}

function requireRole(c: Context<AppEnv>, role: PeerRole): PeerIdentity {
  const peer = c.get('peer');
  if (peer.role !== role) {
    throw new ApiError('FORBIDDEN_ROLE', `this route needs a certificate with OU ${role}; yours has ${peer.role === null ? 'no known role' : `OU ${peer.role}`}`);
  }
  return peer;
}

function requireSelf(peer: PeerIdentity, hostname: string): void {
  if (hostname !== peer.cn) {
    throw new ApiError('IDENTITY_MISMATCH', `certificate is for ${JSON.stringify(peer.cn)}, request is for ${JSON.stringify(hostname)}: a host may only act as itself`);
  }
}

function intParam(raw: string | undefined, name: string, dflt: number, min: number, max: number): number {
  if (raw === undefined) return dflt;
  if (!/^\d{1,15}$/.test(raw)) throw new ApiError('INVALID_QUERY', `${name} must be a non-negative integer`);
  const n = Number(raw);
  if (n < min || n > max) throw new ApiError('INVALID_QUERY', `${name} must be between ${min} and ${max}`);
  return n;
}

/** Build the Hono app. Pure wiring: no listening socket here (see server.ts). */
export function createApp(opts: AppOptions): Hono<AppEnv> {
  const { service } = opts;
  const logError = opts.logError ?? ((m, e) => console.error(m, e));
  const app = new Hono<AppEnv>();

  app.onError((e, c) => {
    const apiErr = e instanceof ApiError ? e : null;
    if (apiErr === null) logError(`internal error on ${c.req.method} ${c.req.path}`, e);
    const error = apiErr ?? new ApiError('INTERNAL', 'internal error; see the control plane log');
    c.header(PROTOCOL_HEADER, PROTOCOL_VERSION);
    if (error.code === 'NOT_READY') c.header('Retry-After', String(opts.retryAfterSecs));
    return c.json(error.toBody(), error.status as 400);
  });
  app.notFound((c) => {
    c.header(PROTOCOL_HEADER, PROTOCOL_VERSION);
    return c.json(new ApiError('NOT_FOUND', `no route ${c.req.method} ${c.req.path}`).toBody(), 404);
  });

  app.use('*', async (c, next) => {
    c.header(PROTOCOL_HEADER, PROTOCOL_VERSION);
    const proto = c.req.header(PROTOCOL_HEADER);
    if (proto !== undefined && proto.trim().split('.')[0] !== PROTOCOL_VERSION) {
      throw new ApiError('UNSUPPORTED_PROTOCOL', `${PROTOCOL_HEADER}: ${JSON.stringify(proto)} is not supported; this control plane speaks protocol ${PROTOCOL_VERSION}`);
    }
    await next();
    // Label by the matched route pattern (bounded cardinality), not the raw path.
    // ('*' for unmatched paths).
    service.observeRequest?.(routePath(c, -1), c.res.status);
  });

  // Open routes (no role needed). A revoked certificate is refused here too, except on /healthz
  // (liveness must not depend on the revocation list).
  app.use(ROUTES.readyz, async (c, next) => {
    const peer = peerIdentity(socketOf(c));
    if (peer !== null && service.isRevoked(peer)) throw new ApiError('CERT_REVOKED', `the certificate for ${JSON.stringify(peer.cn)} was issued before its revocation; get a new one`);
    await next();
  });
  app.use(ROUTES.metrics, async (c, next) => {
    const peer = peerIdentity(socketOf(c));
    if (peer !== null && service.isRevoked(peer)) throw new ApiError('CERT_REVOKED', `the certificate for ${JSON.stringify(peer.cn)} was issued before its revocation; get a new one`);
    await next();
  });
  app.get(ROUTES.healthz, (c) => c.json({ ok: true as const }));
  app.get(ROUTES.readyz, (c) => {
    const r = service.readiness();
    return c.json(r, r.ready ? 200 : 503);
  });
  app.get(ROUTES.metrics, async (c) => {
    const m = await service.metricsText();
    return c.body(m.body, 200, { 'content-type': m.contentType });
  });

  // Every /v1/* route: identity, revocation, readiness, body limit.
  app.use('/v1/*', async (c, next) => {
    const peer = peerIdentity(socketOf(c));
    if (peer === null) throw new ApiError('UNAUTHENTICATED', 'a client certificate issued by the fleet CA is required');
    if (service.isRevoked(peer)) throw new ApiError('CERT_REVOKED', `the certificate for ${JSON.stringify(peer.cn)} was issued before its revocation; get a new one`);
    const r = service.readiness();
    if (!r.ready) throw new ApiError('NOT_READY', `not ready: ${r.reasons.join('; ')}`);
    c.set('peer', peer);
    await next();
  });
  // hono's bodyLimit reads `c.req.raw.body`, which makes @hono/node-server build a full web
  // Request with a ReadableStream for every /v1/* request: ≈ 0.2 ms of CPU, most of a check-in's
  // HTTP cost (docs/performance.md). On Node, a declared Content-Length is checked from the
  // IncomingMessage and the body is then read by node-server's direct path; Node's HTTP parser
  // guarantees there is no body without Content-Length or Transfer-Encoding. Bodies of unknown
  // length (chunked), and requests that do not come from Node (app.request in tests), go through
  // bodyLimit, which counts while streaming.
  const limitStreamed = bodyLimit({
    maxSize: opts.maxBodyBytes,
    onError: () => {
      throw new ApiError('BODY_TOO_LARGE', `request body exceeds ${opts.maxBodyBytes} bytes`);
    },
  });
  app.use('/v1/*', async (c, next) => {
    const incoming = (c.env as Partial<HttpBindings> | undefined)?.incoming;
    if (incoming?.headers === undefined || incoming.headers['transfer-encoding'] !== undefined) return limitStreamed(c, next);
    const length = incoming.headers['content-length'];
    if (length !== undefined && Number.parseInt(length, 10) > opts.maxBodyBytes) {
      throw new ApiError('BODY_TOO_LARGE', `request body exceeds ${opts.maxBodyBytes} bytes`);
    }
    await next();
  });

  // Agent routes.
  app.post(ROUTES.checkin, async (c) => {
    const peer = requireRole(c, 'host');
    const req = validated(parseCheckinRequest(await readJson(c, false)));
    requireSelf(peer, req.hostname);
    return c.json(await service.checkin(peer, req));
  });
  app.post(ROUTES.confirm, async (c) => {
    const peer = requireRole(c, 'host');
    const req = validated(parseConfirmRequest(await readJson(c, false)));
    requireSelf(peer, req.hostname);
    if (req.confirmed !== undefined) requireSelf(peer, req.confirmed.record.hostname);
    service.confirm(peer, req);
    return c.body(null, 204);
  });
  app.post(ROUTES.report, async (c) => {
    const peer = requireRole(c, 'host');
    const raw = await readJson(c, false);
    const req = validated(parseReportRequest(raw));
    requireSelf(peer, req.report.hostname);
    return c.json(service.report(peer, req, (raw as { report: unknown }).report), 202);
  });

  const serveArtifact = (kind: 'fleet' | 'revocations', part: 'bytes' | 'signature') => (c: Context<AppEnv>) => {
    const peer = c.get('peer');
    if (peer.role === null) throw new ApiError('FORBIDDEN_ROLE', 'this route needs a host or operator certificate');
    const a = service.artifact(kind);
    if (a === null) throw new ApiError('NOT_FOUND', `no ${kind} artefact is configured`);
    // gzip only when asked for (a 10,000-host fleet is ~2.6 MB, ~0.7 MB gzipped): the client
    // then gunzips — under its own size limit — and verifies the decoded bytes as usual.
    const gzip = part === 'bytes' && a.gzip !== undefined && /\bgzip\b/i.test(c.req.header('accept-encoding') ?? '');
    const tag = `${a.sha256}${part === 'signature' ? '.sig' : ''}`;
    const etag = `"${tag}${gzip ? '-gzip' : ''}"`;
    c.header('ETag', etag);
    c.header('Cache-Control', 'no-cache');
    if (part === 'bytes') c.header('Vary', 'Accept-Encoding');
    const inm = c.req.header('if-none-match');
    if (inm !== undefined && inm.split(',').some((t) => t.trim() === `"${tag}"` || t.trim() === `"${tag}-gzip"`)) return c.body(null, 304);
    const bytes = gzip ? a.gzip! : part === 'bytes' ? a.bytes : a.signature;
    return c.body(bytes as Uint8Array<ArrayBuffer>, 200, {
      'content-type': part === 'bytes' ? 'application/json' : 'application/octet-stream',
      ...(gzip ? { 'content-encoding': 'gzip' } : {}),
    });
  };
  app.get(ROUTES.artifact, serveArtifact('fleet', 'bytes'));
  app.get(ROUTES.artifactSig, serveArtifact('fleet', 'signature'));
  app.get(ROUTES.revocations, serveArtifact('revocations', 'bytes'));
  app.get(ROUTES.revocationsSig, serveArtifact('revocations', 'signature'));

  // Operator routes.
  app.get(ROUTES.hosts, (c) => {
    requireRole(c, 'operator');
    return c.json(service.hosts());
  });
  app.get(ROUTES.rollouts, (c) => {
    requireRole(c, 'operator');
    const filter: { channel?: string; state?: RolloutState } = {};
    const channel = c.req.query('channel');
    const state = c.req.query('state');
    if (channel !== undefined) filter.channel = channel;
    if (state !== undefined) {
      if (!(ROLLOUT_STATES as readonly string[]).includes(state)) throw new ApiError('INVALID_QUERY', `state must be one of ${ROLLOUT_STATES.join(', ')}`);
      filter.state = state as RolloutState;
    }
    return c.json(service.rollouts(filter));
  });
  app.get(ROUTES.rollout, (c) => {
    requireRole(c, 'operator');
    return c.json(service.rollout(c.req.param('id')));
  });
  app.get(ROUTES.rolloutTrace, (c) => {
    requireRole(c, 'operator');
    return c.json(service.trace(c.req.param('id')));
  });
  app.get(ROUTES.audit, (c) => {
    requireRole(c, 'operator');
    const after = intParam(c.req.query('after'), 'after', 0, 0, Number.MAX_SAFE_INTEGER);
    const limit = intParam(c.req.query('limit'), 'limit', 100, 1, 1000);
    return c.json(service.audit(after, limit));
  });
  app.post(ROUTES.pause, async (c) => {
    const peer = requireRole(c, 'operator');
    const req = validated(parsePauseRequest(await readJson(c, true)));
    return c.json(service.pause(peer, c.req.param('channel'), req));
  });
  app.post(ROUTES.resume, async (c) => {
    const peer = requireRole(c, 'operator');
    const req = validated(parsePauseRequest(await readJson(c, true)));
    return c.json(service.resume(peer, c.req.param('channel'), req));
  });
  app.get(ROUTES.quarantines, (c) => {
    requireRole(c, 'operator');
    return c.json(service.quarantines());
  });
  app.post(ROUTES.quarantinesClear, async (c) => {
    const peer = requireRole(c, 'operator');
    const req = validated(parseQuarantineClearRequest(await readJson(c, false)));
    return c.json(service.clearQuarantines(peer, req));
  });

  return app;
}
