/**
 * The HTTP surface of the control plane (SPEC §5): the Hono app, assembled from middleware
 * factories (middleware.ts) and three groups of routes — open (`/healthz`, `/readyz`,
 * `/metrics`), agent (routes-agent.ts) and operator (routes-operator.ts). All policy lives in the
 * services; all status codes in `errors.ts`, mapped here in the one `onError`.
 *
 * Order on `/v1/*`: protocol header → peer identity (from the TLS socket) → revocation →
 * readiness (503 + Retry-After) → body limit → role → body (415 / 413 / 400).
 */
import { Hono, type Env } from 'hono';
import type { ReadyzResponse } from '../protocol/api.ts';
import { PROTOCOL_HEADER, PROTOCOL_VERSION, ROUTES } from '../protocol/api.ts';
import type { ServedArtifact } from './agent-service.ts';
import { ApiError } from './errors.ts';
import { StoreUnavailableError } from './store/types.ts';
import type { PeerIdentity } from './identity.ts';
import { logBug, silentLogger, type Logger } from './log.ts';
import { authenticate, requestLog, limitBody, protocolHeader, refuseRevoked, requireReady, type AppEnv } from './middleware.ts';
import { agentRoutes, type AgentApi } from './routes-agent.ts';
import { operatorRoutes, type OperatorApi } from './routes-operator.ts';

export type { ServedArtifact };
export type { AppEnv };

/** What the open routes and the `/v1/*` gate need. */
export interface OpenApi {
  readiness(): ReadyzResponse;
  isRevoked(peer: PeerIdentity): boolean;
  metricsText(): Promise<{ contentType: string; body: string }>;
  /** Called for every request that reached a handler or failed, for the metrics. */
  observeRequest?(route: string, status: number): void;
}

/** Everything the HTTP layer needs from the control plane (control-plane/service.ts). */
export interface CpService extends OpenApi, AgentApi, OperatorApi {}

export type AppOptions = {
  service: CpService;
  maxBodyBytes: number;
  retryAfterSecs: number;
  /** Structured log: requests at debug, security refusals at warn, bugs (500s) at error. */
  log?: Logger;
  /** Sink for 500s (bugs) instead of `log`; without either, console.error. */
  logError?: (message: string, err: unknown) => void;
};

/** Refusals that say something about who is calling: logged at warn with their code; the others at debug. */
const SECURITY_REFUSALS: ReadonlySet<string> = new Set(['UNAUTHENTICATED', 'CERT_REVOKED', 'FORBIDDEN_ROLE', 'IDENTITY_MISMATCH', 'REPORT_SIGNATURE_INVALID', 'BODY_TOO_LARGE', 'UNSUPPORTED_PROTOCOL', 'REPORT_QUOTA']);

/**
 * The plain-HTTP app of the optional `metricsListen` listener: `/healthz`, `/readyz`, `/metrics`
 * and nothing else (no identity there, so no `/v1/*`).
 */
export function createOpenApp(service: OpenApi): Hono {
  const app = new Hono();
  openRoutes(app, service);
  app.notFound((c) => c.json(new ApiError('NOT_FOUND', `no route ${c.req.method} ${c.req.path} on the metrics listener`).toBody(), 404));
  return app;
}

/** Build the Hono app. Pure wiring: no listening socket here (see server.ts). */
export function createApp(opts: AppOptions): Hono<AppEnv> {
  const { service } = opts;
  const log = opts.log ?? silentLogger;
  const logError = opts.logError ?? (opts.log !== undefined ? (m: string, e: unknown) => logBug(log, 'http.internal-error', e, { request: m }) : (m: string, e: unknown) => console.error(m, e));
  const app = new Hono<AppEnv>();

  // The one place where errors become responses: an ApiError by its code's status, anything else
  // is a bug — 500 with a generic body, the details in the log only (STYLE §7).
  app.onError((e, c) => {
    // The store unreachable (PostgreSQL restarting): 503 with a code, nothing of the request stored.
    const apiErr = e instanceof ApiError ? e : e instanceof StoreUnavailableError ? new ApiError('STORE_UNAVAILABLE', e.message) : null;
    if (apiErr === null) logError(`internal error on ${c.req.method} ${c.req.path}`, e);
    else {
      const fields = { code: apiErr.code, status: apiErr.status, method: c.req.method, path: c.req.path, peer: (c.get('peer') as PeerIdentity | undefined)?.cn ?? null, message: apiErr.message };
      if (SECURITY_REFUSALS.has(apiErr.code)) log.warn('http.refused', fields);
      else log.debug('http.refused', fields);
    }
    const error = apiErr ?? new ApiError('INTERNAL', 'internal error; see the control plane log');
    c.header(PROTOCOL_HEADER, PROTOCOL_VERSION);
    if (error.code === 'NOT_READY' || error.code === 'STORE_UNAVAILABLE') c.header('Retry-After', String(opts.retryAfterSecs));
    if (error.retryAfterSecs !== undefined) c.header('Retry-After', String(error.retryAfterSecs));
    return c.json(error.toBody(), error.status as 400);
  });
  app.notFound((c) => {
    c.header(PROTOCOL_HEADER, PROTOCOL_VERSION);
    return c.json(new ApiError('NOT_FOUND', `no route ${c.req.method} ${c.req.path}`).toBody(), 404);
  });

  if (opts.log !== undefined) app.use('*', requestLog(opts.log));
  app.use('*', protocolHeader({ observe: service.observeRequest?.bind(service) }));

  // Open routes: no role needed. A revoked certificate is refused, except on /healthz (liveness
  // must not depend on the revocation list).
  const openGate = [authenticate({ required: false }), refuseRevoked((p) => service.isRevoked(p))] as const;
  app.use(ROUTES.readyz, ...openGate);
  app.use(ROUTES.metrics, ...openGate);
  openRoutes(app, service);

  // Every /v1/* route: identity, revocation, readiness, body limit; then each group's role.
  app.use('/v1/*', authenticate({ required: true }), refuseRevoked((p) => service.isRevoked(p)), requireReady(() => service.readiness()), limitBody(opts.maxBodyBytes));
  app.route('/', agentRoutes(service));
  app.route('/', operatorRoutes(service));
  return app;
}

/** `/healthz`, `/readyz` and `/metrics`: on the mTLS listener (behind the open gate) and the metrics listener. */
function openRoutes<E extends Env>(app: Hono<E>, service: OpenApi): void {
  app.get(ROUTES.healthz, (c) => c.json({ ok: true as const }));
  app.get(ROUTES.readyz, (c) => {
    const r = service.readiness();
    return c.json(r, r.ready ? 200 : 503);
  });
  app.get(ROUTES.metrics, async (c) => {
    const m = await service.metricsText();
    return c.body(m.body, 200, { 'content-type': m.contentType });
  });
}
