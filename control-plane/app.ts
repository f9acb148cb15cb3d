/**
 * The HTTP surface of the control plane (SPEC §5): the Hono app, assembled from middleware
 * factories (middleware.ts) and three groups of routes — open (`/healthz`, `/readyz`,
 * `/metrics`), agent (routes-agent.ts) and operator (routes-operator.ts). All policy lives in the
 * services; all status codes in `errors.ts`, mapped in the one `onError` (middleware.ts `handleErrors`).
 *
 * Order on `/v1/*`: protocol header → peer identity (from the TLS socket) → revocation →
 * readiness (503 + Retry-After) → body limit → role → body (415 / 413 / 400).
 */
import { Hono, type Env } from 'hono';
import type { ReadyzResponse } from '../protocol/api.ts';
import { ROUTES } from '../protocol/api.ts';
import type { ServedArtifact } from './agent-service.ts';
import { ApiError } from './errors.ts';
import type { PeerIdentity } from './identity.ts';
import { logBug, silentLogger, type Logger } from './log.ts';
import { authenticate, handleErrors, requestLog, limitBody, protocolHeader, refuseRevoked, requireIssuer, requireReady, type AppEnv, type IssuerPins } from './middleware.ts';
import { renewRoutes, type EnrolApi } from './routes-enrol.ts';
import { ENROL_ROUTES } from '../protocol/enrol.ts';
import { agentRoutes, type AgentApi } from './routes-agent.ts';
import { operatorRoutes, type OperatorApi } from './routes-operator.ts';
import { whoamiRoutes, type WhoamiApi } from './routes-whoami.ts';
import { hotCheckinRoute, type NodeRoute } from './hot-checkin.ts';

export type { ServedArtifact };
export type { AppEnv };

/** What the open routes and the `/v1/*` gate need. */
export interface OpenApi {
  readiness(): ReadyzResponse;
  /** `readiness().ready`, cheaper (the check-in route asks it for every check-in); absent: readiness() is read. */
  isReady?(): boolean;
  isRevoked(peer: PeerIdentity): boolean;
  metricsText(): Promise<{ contentType: string; body: string }>;
  /** Called for every request that reached a handler or failed, for the metrics. */
  observeRequest?(route: string, status: number): void;
  /** What `observeRequest(route, status)` counts into, kept by a route that answers that pair often. */
  requestTally?(route: string, status: number): { inc(): void };
}

/** Everything the HTTP layer needs from the control plane (control-plane/service.ts). */
export interface CpService extends OpenApi, AgentApi, OperatorApi, WhoamiApi {
  /** Issue 16: enrolment and renewal, when configured. */
  enrolment?(): EnrolApi | null;
}

export type AppOptions = {
  service: CpService;
  maxBodyBytes: number;
  retryAfterSecs: number;
  /** Structured log: requests at debug, security refusals at warn, bugs (500s) at error. */
  log?: Logger;
  /** Sink for 500s (bugs) instead of `log`; without either, console.error. */
  logError?: (message: string, err: unknown) => void;
  /** Issue 16: the issuers each role accepts (config.ts `loadStartupMaterial`); absent: any the TLS layer accepted. */
  pins?: IssuerPins;
};

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

/** The app of the mTLS listener: Hono, plus the check-in route below it (hot-checkin.ts) that server.ts tries first. */
export type CpApp = Hono<AppEnv> & { readonly nodeRoute: NodeRoute };

/** Build the Hono app. Pure wiring: no listening socket here (see server.ts). */
export function createApp(opts: AppOptions): CpApp {
  const { service } = opts;
  const log = opts.log ?? silentLogger;
  const logError = opts.logError ?? (opts.log !== undefined ? (m: string, e: unknown) => logBug(log, 'http.internal-error', e, { request: m }) : (m: string, e: unknown) => console.error(m, e));
  const app = new Hono<AppEnv>();

  const errors = { log, logError, retryAfterSecs: opts.retryAfterSecs };
  handleErrors(app, errors);
  if (opts.log !== undefined) app.use('*', requestLog(opts.log));
  app.use('*', protocolHeader({ observe: service.observeRequest?.bind(service) }));

  // Open routes: no role needed. A revoked certificate is refused, except on /healthz (liveness
  // must not depend on the revocation list). Issue 16: so is a certificate from an issuer not
  // configured for its role.
  const pinned = opts.pins === undefined ? [] : [requireIssuer(opts.pins)];
  const openGate = [authenticate({ required: false }), ...pinned, refuseRevoked((p) => service.isRevoked(p))] as const;
  app.use(ROUTES.readyz, ...openGate);
  app.use(ROUTES.metrics, ...openGate);
  openRoutes(app, service);

  // Every /v1/* route: identity, revocation, readiness, body limit; then each group's role.
  // A refused renewal by a revoked certificate is audited (issue 16 acceptance).
  const onRevoked = (peer: PeerIdentity, path: string) => (path === ENROL_ROUTES.renew ? service.enrolment?.()?.auditRevokedRenewal(peer) : undefined);
  app.use('/v1/*', authenticate({ required: true }), ...pinned, refuseRevoked((p) => service.isRevoked(p), onRevoked), requireReady(() => service.readiness()), limitBody(opts.maxBodyBytes));
  app.route('/', agentRoutes(service));
  app.route('/', renewRoutes(() => service.enrolment?.() ?? null));
  app.route('/', operatorRoutes(service));
  app.route('/', whoamiRoutes(service));
  const nodeRoute = hotCheckinRoute({ service, pins: opts.pins, maxBodyBytes: opts.maxBodyBytes, errors, requestLog: opts.log ?? null });
  return Object.assign(app, { nodeRoute });
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
