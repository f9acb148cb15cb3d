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
 * `errorResponse`. hot-checkin.test.ts sends each case to both and compares the answers. The body
 * is read in one pass when protocol/decode.ts decides it, with the same value (decode.props.test.ts).
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { TLSSocket } from 'node:tls';
import { PROTOCOL_HEADER, PROTOCOL_VERSION, ROUTES } from '../protocol/api.ts';
import { decodeCheckinRequest, parseCheckinRequest } from '../protocol/api-parse.ts';
import type { CpService } from './app.ts';
import { peerIdentity, type PeerIdentity } from './identity.ts';
import type { Logger } from './log.ts';
import { decodeJsonBody, errorResponse, issuerAccepted, parseJsonBody, protocolRefusal, requireSelf, validated, type ErrorPolicy, type IssuerPins } from './middleware.ts';

/** A route below Hono: true when it took the request (it answers it), false to hand it to Hono. */
export type NodeRoute = (req: IncomingMessage, res: ServerResponse) => boolean;

const PROTOCOL = PROTOCOL_HEADER.toLowerCase();
/** The answer's header names are written out in `reply`; this fails to compile if PROTOCOL_HEADER changes. */
const HEADER_NAME: typeof PROTOCOL_HEADER = 'X-Nixfleet-Protocol';
const EMPTY = Buffer.alloc(0);

type Options = { service: CpService; pins: IssuerPins | undefined; maxBodyBytes: number; errors: ErrorPolicy; requestLog: Logger | null };

/** One request taken by the route, once its body is read. */
type Taken = { req: IncomingMessage; res: ServerResponse; peer: PeerIdentity; /** performance.now() when taken; -1: debug was off. */ started: number };

export function hotCheckinRoute(o: Options): NodeRoute {
  const { service, pins, maxBodyBytes, errors, requestLog } = o;
  const observe = service.observeRequest?.bind(service);
  // The answer nearly every check-in gets, counted without looking its tally up each time.
  const ok = service.requestTally?.(ROUTES.checkin, 200) ?? null;
  // The request line's fields, its time included, are only read when debug is on.
  const debugOn = (): boolean => requestLog !== null && requestLog.enabled?.('debug') !== false;
  // Cheaper forms of `readiness().ready` and `checkin` (issue 19), when the service has them.
  const ready = service.isReady?.bind(service) ?? ((): boolean => service.readiness().ready);
  const decide = service.checkinNow?.bind(service) ?? service.checkin.bind(service);

  // The last answer serialised: quiet check-ins answered in the same millisecond share one answer
  // object (quiet-checkins.ts), serialised once.
  let lastBody: unknown = null;
  let lastText = '';
  let lastLength = 0;
  const reply = (t: Taken, status: number, body: unknown, extra: Record<string, string> | null): void => {
    if (body !== lastBody) {
      lastText = JSON.stringify(body);
      lastLength = Buffer.byteLength(lastText);
      lastBody = body;
    }
    const text = lastText;
    const length = lastLength;
    // Literals without a computed name (PROTOCOL_HEADER's value, held to it by `HEADER_NAME`): V8
    // builds them from a template.
    t.res.writeHead(status, extra === null ? { 'content-type': 'application/json', 'X-Nixfleet-Protocol': PROTOCOL_VERSION, 'content-length': length } : { 'content-type': 'application/json', 'X-Nixfleet-Protocol': PROTOCOL_VERSION, ...extra, 'content-length': length });
    t.res.end(text);
    if (status === 200 && ok !== null) ok.inc();
    else observe?.(ROUTES.checkin, status);
    if (t.started >= 0 && debugOn()) {
      requestLog!.debug('http.request', { method: 'POST', route: ROUTES.checkin, status, ms: Math.round((performance.now() - t.started) * 10) / 10, peer: t.peer.cn, remote: t.req.socket.remoteAddress ?? null });
    }
  };
  const fail = (t: Taken, e: unknown): void => {
    const r = errorResponse(e, { method: 'POST', path: ROUTES.checkin, peer: t.peer.cn }, errors);
    reply(t, r.status, r.body, r.headers);
  };
  const answer = (t: Taken, raw: Buffer): void => {
    let answered: ReturnType<typeof decide>;
    try {
      // One pass when the decoder decides (protocol/decode.ts); else the strict parse and the
      // schema's check, which also give every refusal its code and issues.
      const type = t.req.headers['content-type'];
      const body = decodeJsonBody(decodeCheckinRequest, raw, type) ?? validated(parseCheckinRequest(parseJsonBody(raw, type, false)));
      requireSelf(t.peer, body.hostname);
      answered = decide(t.peer, body);
    } catch (e) {
      return fail(t, e);
    }
    // A quiet check-in is answered at once; one decided in full once its commit is done.
    if (answered instanceof Promise) answered.then((a) => reply(t, 200, a, null), (e: unknown) => fail(t, e));
    else reply(t, 200, answered, null);
  };

  return (req, res) => {
    if (req.method !== 'POST' || req.url !== ROUTES.checkin) return false;
    const headers = req.headers;
    const length = headers['content-length'];
    if (headers['transfer-encoding'] !== undefined || length === undefined || !(Number.parseInt(length, 10) <= maxBodyBytes)) return false;
    const proto = headers[PROTOCOL];
    if (Array.isArray(proto) || protocolRefusal(proto) !== null) return false;
    const peer = peerIdentity(req.socket as TLSSocket);
    if (peer === null || peer.role !== 'host' || (pins !== undefined && !issuerAccepted(pins, peer)) || service.isRevoked(peer) || !ready()) return false;
    const t: Taken = { req, res, peer, started: debugOn() ? performance.now() : -1 };
    let first: Buffer | null = null;
    let chunks: Buffer[] | null = null;
    req.on('data', (c: Buffer) => {
      if (first === null) first = c;
      else (chunks ??= [first]).push(c);
    });
    req.on('end', () => answer(t, chunks !== null ? Buffer.concat(chunks) : (first ?? EMPTY)));
    return true;
  };
}
