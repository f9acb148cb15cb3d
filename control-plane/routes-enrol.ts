/**
 * Enrolment routes (issue 16). Thin handlers (STYLE §9): read the body, validate it, call the
 * enrolment service (enrol-service.ts), answer.
 *
 * - `POST /v1/enroll` lives on its own listener (HTTPS **without** client certificates: a host
 *   that has none yet must reach it), which serves nothing else; the mTLS listener keeps refusing
 *   every client without a fleet certificate in the handshake.
 * - `POST /v1/agent/renew` is on the mTLS listener, behind the same gate as every agent route
 *   (issuer pinned per role, revocation, readiness, body limit), OU host, acting as itself.
 */
import { Hono } from 'hono';
import { ROUTES, type ReadyzResponse } from '../protocol/api.ts';
import { parseEnrolRequest, parseRenewRequest } from '../protocol/api-parse.ts';
import { ENROL_ROUTES, type CertificateResponse, type EnrolRequest, type RenewRequest } from '../protocol/enrol.ts';
import { ApiError } from './errors.ts';
import type { PeerIdentity } from './identity.ts';
import { logBug, silentLogger, type Logger } from './log.ts';
import { handleErrors, limitBody, requestLog, protocolHeader, readJson, requireReady, requireRole, requireSelf, validated, type AppEnv } from './middleware.ts';

/** What the routes need (control-plane/enrol-service.ts). */
export interface EnrolApi {
  /** `source`: the client's address (the refusal throttle keys on it). */
  enrol(req: EnrolRequest, source: string | null): Promise<CertificateResponse>;
  renew(peer: PeerIdentity, req: RenewRequest): Promise<CertificateResponse>;
  auditRevokedRenewal(peer: PeerIdentity): Promise<void>;
}

const disabled = (): never => {
  throw new ApiError('ENROLMENT_DISABLED', 'this control plane has no enrolment issuer configured (enrolment in its configuration)');
};

/** `POST /v1/agent/renew` on the mTLS app (mounted after the `/v1/*` gate). */
export function renewRoutes(api: () => EnrolApi | null): Hono<AppEnv> {
  const app = new Hono<AppEnv>();
  app.post(ENROL_ROUTES.renew, requireRole('host'), async (c) => {
    const svc = api() ?? disabled();
    const req = validated(parseRenewRequest(await readJson(c, false)));
    requireSelf(c.get('peer'), req.hostname);
    return c.json(await svc.renew(c.get('peer'), req));
  });
  return app;
}

export type EnrolAppOptions = {
  api: EnrolApi;
  readiness: () => ReadyzResponse;
  maxBodyBytes: number;
  retryAfterSecs: number;
  /** Refusals (warn for the proofs and tokens), requests at debug, bugs at error; default: none. */
  log?: Logger;
  observeRequest?: (route: string, status: number) => void;
};

/** The enrolment listener's app: `/healthz` and `POST /v1/enroll`, nothing else. */
export function createEnrolApp(o: EnrolAppOptions): Hono<AppEnv> {
  const app = new Hono<AppEnv>();
  const log = o.log ?? silentLogger;
  const logError = o.log !== undefined ? (m: string, e: unknown) => logBug(log, 'http.internal-error', e, { request: m }) : (m: string, e: unknown) => console.error(m, e);
  handleErrors(app, { log, logError, retryAfterSecs: o.retryAfterSecs });
  if (o.log !== undefined) app.use('*', requestLog(o.log));
  app.use('*', protocolHeader({ observe: o.observeRequest }));
  app.get(ROUTES.healthz, (c) => c.json({ ok: true as const }));
  app.post(ENROL_ROUTES.enroll, requireReady(o.readiness), limitBody(o.maxBodyBytes), async (c) => {
    const req = validated(parseEnrolRequest(await readJson(c, false)));
    const source = (c.env.incoming.socket as { remoteAddress?: string } | undefined)?.remoteAddress ?? null;
    return c.json(await o.api.enrol(req, source));
  });
  return app;
}
