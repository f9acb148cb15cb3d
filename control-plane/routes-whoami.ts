/**
 * `GET /v1/whoami` (issue 16): the identity the control plane sees in the caller's client
 * certificate — name, role, serial, validity, issuer — for `nixfleet whoami` and
 * `nixfleet-agent whoami`. Read-only, touches no store; mounted after the `/v1/*` gate, so a
 * revoked certificate or one from an issuer not configured for its role is refused there (401
 * `CERT_REVOKED` / `ISSUER_REFUSED`) like everywhere else.
 */
import { Hono } from 'hono';
import { ENROL_ROUTES, type WhoamiResponse } from '../protocol/enrol.ts';
import type { PeerIdentity } from './identity.ts';
import { requireRole, type AppEnv } from './middleware.ts';

/** What the route needs from the control plane. */
export interface WhoamiApi {
  whoami(peer: PeerIdentity): WhoamiResponse;
}

export function whoamiRoutes(service: WhoamiApi): Hono<AppEnv> {
  const app = new Hono<AppEnv>();
  app.get(ENROL_ROUTES.whoami, requireRole('any'), (c) => c.json(service.whoami(c.get('peer'))));
  return app;
}
