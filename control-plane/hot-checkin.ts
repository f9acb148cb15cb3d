/**
 * `POST /v1/agent/checkin` served below Hono (issue 19): the route every host calls every minute.
 * Hono's dispatch and @hono/node-server's web Request and Response objects cost ≈ 17 % of a steady
 * check-in's CPU (docs/performance.md); here the request is answered from Node's own objects.
 *
 * The same checks, with the same functions (middleware.ts): protocol header, peer identity, issuer
 * pinning, revocation, readiness, body limit, role. A request this route would not serve exactly
 * as Hono does — another method or path, a query string, a chunked body, no Content-Length — and
 * every request one of those checks refuses is handed to Hono untouched, before its body is read:
 * each such refusal is Hono's (logged, counted, answered). Once the body is read, parsing,
 * validation, the identity match and the service fail as routes-agent.ts does, through the same
 * `errorResponse`. hot-checkin.test.ts sends each case to both and compares the answers.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { TLSSocket } from 'node:tls';
import { PROTOCOL_HEADER, PROTOCOL_VERSION, ROUTES } from '../protocol/api.ts';
import { parseCheckinRequest } from '../protocol/api-parse.ts';
import type { CpService } from './app.ts';
import { peerIdentity } from './identity.ts';
import type { Logger } from './log.ts';
import { errorResponse, issuerAccepted, parseJsonBody, protocolRefusal, requireSelf, validated, type ErrorPolicy, type IssuerPins } from './middleware.ts';

/** A route below Hono: true when it took the request (it answers it), false to hand it to Hono. */
export type NodeRoute = (req: IncomingMessage, res: ServerResponse) => boolean;

const PROTOCOL = PROTOCOL_HEADER.toLowerCase();

export function hotCheckinRoute(o: { service: CpService; pins: IssuerPins | undefined; maxBodyBytes: number; errors: ErrorPolicy; requestLog: Logger | null }): NodeRoute {
  const { service, pins, maxBodyBytes, errors, requestLog } = o;
  const observe = service.observeRequest?.bind(service);
  return (req, res) => {
    if (req.method !== 'POST' || req.url !== ROUTES.checkin) return false;
    const headers = req.headers;
    const length = headers['content-length'];
    if (headers['transfer-encoding'] !== undefined || length === undefined || !(Number.parseInt(length, 10) <= maxBodyBytes)) return false;
    const proto = headers[PROTOCOL];
    if (Array.isArray(proto) || protocolRefusal(proto) !== null) return false;
    const peer = peerIdentity(req.socket as TLSSocket);
    if (peer === null || peer.role !== 'host' || (pins !== undefined && !issuerAccepted(pins, peer)) || service.isRevoked(peer) || !service.readiness().ready) return false;
    const started = performance.now();
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const reply = (status: number, body: unknown, extra: Record<string, string>): void => {
        const text = JSON.stringify(body);
        res.writeHead(status, { 'content-type': 'application/json', [PROTOCOL_HEADER]: PROTOCOL_VERSION, ...extra, 'content-length': Buffer.byteLength(text) });
        res.end(text);
        observe?.(ROUTES.checkin, status);
        requestLog?.debug('http.request', { method: 'POST', route: ROUTES.checkin, status, ms: Math.round((performance.now() - started) * 10) / 10, peer: peer.cn, remote: req.socket.remoteAddress ?? null });
      };
      const fail = (e: unknown): void => {
        const r = errorResponse(e, { method: 'POST', path: ROUTES.checkin, peer: peer.cn }, errors);
        reply(r.status, r.body, r.headers);
      };
      try {
        const body = validated(parseCheckinRequest(parseJsonBody(chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks), headers['content-type'], false)));
        requireSelf(peer, body.hostname);
        service.checkin(peer, body).then((answer) => reply(200, answer, {}), fail);
      } catch (e) {
        fail(e);
      }
    });
    return true;
  };
}
