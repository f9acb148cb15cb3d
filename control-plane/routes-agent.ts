/**
 * Agent routes (SPEC §5): check-in, confirm, report (OU `host`, acting only as itself) and the
 * signed artefacts (host or operator). Thin handlers: read the body, call the service, map the
 * result (STYLE §9).
 */
import { Hono, type Context } from 'hono';
import type { CheckinRequest, CheckinResponse, ConfirmRequest, ReportRequest, ReportResponse } from '../protocol/api.ts';
import { ROUTES } from '../protocol/api.ts';
import { parseCheckinRequest, parseConfirmRequest, parseReportRequest } from '../protocol/api-parse.ts';
import type { ServedArtifact } from './agent-service.ts';
import type { ServedSlice } from './slices.ts';
import { ApiError } from './errors.ts';
import type { PeerIdentity } from './identity.ts';
import { readJson, requireRole, requireSelf, validated, type AppEnv } from './middleware.ts';
import type { Awaitable } from './store/types.ts';

/**
 * What the agent routes need. Methods throw `ApiError` for expected failures; they are called only
 * after the role (OU `host`) was checked and every hostname in the body equals the certificate CN.
 */
export interface AgentApi {
  artifact(kind: 'fleet' | 'revocations'): ServedArtifact | null;
  /** The host's own signed slice (issue 19); null when none is available. */
  slice(hostname: string): ServedSlice | null;
  checkin(peer: PeerIdentity, req: CheckinRequest): Promise<CheckinResponse>;
  /** The same, answered at once when the check-in is quiet (quiet-checkins.ts); hot-checkin.ts uses it. */
  checkinNow?(peer: PeerIdentity, req: CheckinRequest): CheckinResponse | Promise<CheckinResponse>;
  confirm(peer: PeerIdentity, req: ConfirmRequest): Awaitable<void>;
  /** `rawReport` is the `report` value exactly as received (the signature covers its JCS bytes). */
  report(peer: PeerIdentity, req: ReportRequest, rawReport: unknown): Awaitable<ReportResponse>;
}

export function agentRoutes(service: AgentApi): Hono<AppEnv> {
  const app = new Hono<AppEnv>();
  const host = requireRole('host');
  const hostOrOperator = requireRole('any');

  app.post(ROUTES.checkin, host, async (c) => {
    const req = validated(parseCheckinRequest(await readJson(c, false)));
    requireSelf(c.get('peer'), req.hostname);
    return c.json(await service.checkin(c.get('peer'), req));
  });
  app.post(ROUTES.confirm, host, async (c) => {
    const peer = c.get('peer');
    const req = validated(parseConfirmRequest(await readJson(c, false)));
    requireSelf(peer, req.hostname);
    if (req.confirmed !== undefined) requireSelf(peer, req.confirmed.record.hostname);
    await service.confirm(peer, req);
    return c.body(null, 204);
  });
  app.post(ROUTES.report, host, async (c) => {
    const raw = await readJson(c, false);
    const req = validated(parseReportRequest(raw));
    requireSelf(c.get('peer'), req.report.hostname);
    return c.json(await service.report(c.get('peer'), req, (raw as { report: unknown }).report), 202);
  });

  // The caller's own slice only: the hostname is the certificate CN, never a parameter.
  app.get(ROUTES.slice, host, (c) => {
    const s = service.slice(c.get('peer').cn);
    if (s === null) throw new ApiError('NO_SLICE', 'no verified slice index matches the fleet in force: use GET /v1/artifact');
    c.header('ETag', `"${s.etag}"`);
    c.header('Cache-Control', 'no-cache');
    const inm = c.req.header('if-none-match');
    if (inm !== undefined && inm.split(',').some((t) => t.trim() === `"${s.etag}"`)) return c.body(null, 304);
    return c.json(s.body);
  });

  const serve = (kind: 'fleet' | 'revocations', part: 'bytes' | 'signature') => (c: Context<AppEnv>) => {
    const a = service.artifact(kind);
    if (a === null) throw new ApiError('NOT_FOUND', `no ${kind} artefact is configured`);
    // gzip only when asked for (a 10,000-host fleet is ~2.6 MB, ~0.7 MB gzipped): the client
    // then gunzips — under its own size limit — and verifies the decoded bytes as usual.
    const gzip = part === 'bytes' && a.gzip !== undefined && /\bgzip\b/i.test(c.req.header('accept-encoding') ?? '');
    const tag = `${a.sha256}${part === 'signature' ? '.sig' : ''}`;
    c.header('ETag', `"${tag}${gzip ? '-gzip' : ''}"`);
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
  app.get(ROUTES.artifact, hostOrOperator, serve('fleet', 'bytes'));
  app.get(ROUTES.artifactSig, hostOrOperator, serve('fleet', 'signature'));
  app.get(ROUTES.revocations, hostOrOperator, serve('revocations', 'bytes'));
  app.get(ROUTES.revocationsSig, hostOrOperator, serve('revocations', 'signature'));
  return app;
}
