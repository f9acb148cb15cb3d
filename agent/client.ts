/**
 * The agent's HTTP client for the control plane's agent routes (protocol/api.ts), over
 * mutual TLS with undici.
 *
 * - check-in, artefact fetch and reports go through one pooled keep-alive `Agent`, whose TLS
 *   connector ({@link resumingConnector}) lives as long as this client: a poll after the CP closed
 *   the idle connection resumes the TLS session (an abbreviated handshake);
 * - confirm ALWAYS opens a NEW connection: a fresh undici `Client` per call, closed afterwards
 *   (SPEC §6: a configuration that breaks new connections must not be able to confirm itself
 *   over a connection that was opened before the switch);
 * - the artefact is read under a byte limit (STYLE §5), checked against `Content-Length` first;
 * - `Retry-After` (seconds or HTTP date) is surfaced so the loop can honour it.
 */
import { Agent, buildConnector, Client, type Dispatcher } from 'undici';
import { PROTOCOL_HEADER, PROTOCOL_VERSION, ROUTES, type CheckinRequest, type CheckinResponse, type ConfirmRequest, type ReportRequest, type SliceResponse } from '../protocol/api.ts';
import { parseCertificateResponse, parseCheckinResponse, parseErrorBody, parseSliceResponse, parseWhoamiResponse } from '../protocol/api-parse.ts';
import { ENROL_ROUTES, type CertificateResponse, type RenewRequest, type WhoamiResponse } from '../protocol/enrol.ts';
import { parseJsonStrict } from '../protocol/jcs.ts';
import { err, ok, type Result } from '../protocol/result.ts';

export type TlsMaterial = { cert: string; key: string; ca: string };

export type HttpErrorCode = 'NETWORK' | 'HTTP_STATUS' | 'BAD_RESPONSE' | 'TOO_LARGE';
export type HttpError = { code: HttpErrorCode; message: string; status?: number; retryAfterSecs?: number; errorCode?: string };

export type ClientOptions = {
  cpUrl: string;
  tls: TlsMaterial | null;
  requestTimeoutSecs: number;
  maxArtifactBytes: number;
};

/** Seconds from a `Retry-After` header (delta-seconds or HTTP-date), or undefined. */
export function parseRetryAfter(v: string | string[] | undefined, nowMs: number): number | undefined {
  const s = Array.isArray(v) ? v[0] : v;
  if (s === undefined) return undefined;
  if (/^\d+$/.test(s.trim())) return Number(s.trim());
  const t = Date.parse(s);
  return Number.isFinite(t) ? Math.max(0, Math.ceil((t - nowMs) / 1000)) : undefined;
}

type Raw = { status: number; headers: Record<string, string | string[] | undefined>; body: Uint8Array };

/**
 * undici's TLS connector, holding on to the newest TLS session ticket so that reconnects resume.
 *
 * Two undici behaviours defeat resumption for a client that polls every minute: an `Agent` drops
 * an origin's pool — and the connector inside it — once the last connection closed, and the
 * connector's session cache holds tickets through a `WeakRef`, so the first garbage collection
 * after a connection closed forgets the ticket. Built once per client, with a strong reference to
 * the very ticket object undici cached, both are avoided. (In TLS 1.3 the ticket arrives after the
 * handshake, i.e. after the connect callback that attaches the listener.)
 */
export function resumingConnector(opts: buildConnector.BuildOptions): buildConnector.connector {
  const base = buildConnector(opts);
  const held: { session: Buffer | null } = { session: null };
  return (o, cb) =>
    base(o, (...args: buildConnector.CallbackArgs) => {
      // On a failed connect undici calls back with the error alone (no second argument).
      const socket = args[0] === null ? args[1] : null;
      if (socket !== null && socket !== undefined) socket.on('session', (s: Buffer) => (held.session = s));
      cb(...args);
    });
}

export class CpClient {
  private readonly pool: Agent;
  private readonly origin: string;
  private readonly base: string;
  /** The last slice served with its ETag: a repeat fetch asks If-None-Match and reuses it on 304. */
  private lastSlice: { etag: string; value: SliceResponse } | null = null;

  constructor(private readonly opts: ClientOptions) {
    const u = new URL(opts.cpUrl);
    this.origin = u.origin;
    this.base = u.pathname.replace(/\/+$/, '');
    const { connect, ...rest } = this.connectOptions();
    this.pool = new Agent({ ...rest, ...(connect === undefined ? {} : { connect: resumingConnector(connect) }), keepAliveTimeout: 60_000, keepAliveMaxTimeout: 600_000 });
  }

  private connectOptions(): { connect?: { ca: string; cert: string; key: string } } & Pick<Client.Options, 'headersTimeout' | 'bodyTimeout'> {
    const t = this.opts.requestTimeoutSecs * 1000;
    const tls = this.opts.tls;
    return { ...(tls === null ? {} : { connect: { ca: tls.ca, cert: tls.cert, key: tls.key } }), headersTimeout: t, bodyTimeout: t };
  }

  private async call(dispatcher: Dispatcher, method: 'GET' | 'POST', path: string, body: unknown, limit: number, extra: Record<string, string> = {}): Promise<Result<Raw, HttpError>> {
    const headers: Record<string, string> = { ...extra, [PROTOCOL_HEADER]: PROTOCOL_VERSION };
    let payload: string | undefined;
    if (body !== undefined) {
      payload = JSON.stringify(body);
      headers['content-type'] = 'application/json';
    }
    try {
      const res = await dispatcher.request({
        origin: this.origin,
        path: this.base + path,
        method,
        headers,
        ...(payload === undefined ? {} : { body: payload }),
        signal: AbortSignal.timeout(this.opts.requestTimeoutSecs * 1000),
      });
      const declared = Number(res.headers['content-length'] ?? NaN);
      if (Number.isFinite(declared) && declared > limit) {
        res.body.destroy();
        return err({ code: 'TOO_LARGE', message: `${path}: ${declared} bytes exceeds the limit of ${limit}`, status: res.statusCode });
      }
      const chunks: Buffer[] = [];
      let size = 0;
      for await (const chunk of res.body) {
        size += (chunk as Buffer).length;
        if (size > limit) {
          res.body.destroy();
          return err({ code: 'TOO_LARGE', message: `${path}: body exceeds the limit of ${limit} bytes`, status: res.statusCode });
        }
        chunks.push(chunk as Buffer);
      }
      return ok({ status: res.statusCode, headers: res.headers, body: Buffer.concat(chunks) });
    } catch (e) {
      return err({ code: 'NETWORK', message: `${method} ${path}: ${(e as Error).message}` });
    }
  }

  private statusError(path: string, raw: Raw): HttpError {
    let errorCode: string | undefined;
    let message = `${path}: HTTP ${raw.status}`;
    const json = parseJsonStrict(raw.body);
    const body = json.ok ? parseErrorBody(json.value) : null; // not an ErrorBody: keep the status line
    if (body !== null) {
      errorCode = body.code;
      message += ` ${body.code}: ${body.message}`;
    }
    const retryAfterSecs = parseRetryAfter(raw.headers['retry-after'], Date.now());
    return { code: 'HTTP_STATUS', message, status: raw.status, ...(errorCode === undefined ? {} : { errorCode }), ...(retryAfterSecs === undefined ? {} : { retryAfterSecs }) };
  }

  /** A 200 answer as `parse` reads its JSON body; any other status is the CP's error (statusError). */
  private answer<T>(what: string, path: string, raw: Raw, parse: (u: unknown) => Result<T, { message: string }>): Result<T, HttpError> {
    if (raw.status !== 200) return err(this.statusError(path, raw));
    const json = parseJsonStrict(raw.body);
    if (!json.ok) return err({ code: 'BAD_RESPONSE', message: `${what} answer is not JSON: ${json.error.message}` });
    const v = parse(json.value);
    return v.ok ? ok(v.value) : err({ code: 'BAD_RESPONSE', message: v.error.message });
  }

  /** One request over the pool, its answer read by {@link answer}. */
  private async requestJson<T>(method: 'GET' | 'POST', path: string, body: unknown, limit: number, what: string, parse: (u: unknown) => Result<T, { message: string }>): Promise<Result<T, HttpError>> {
    const r = await this.call(this.pool, method, path, body, limit);
    return r.ok ? this.answer(what, path, r.value, parse) : r;
  }

  checkin(body: CheckinRequest): Promise<Result<CheckinResponse, HttpError>> {
    return this.requestJson('POST', ROUTES.checkin, body, 1024 * 1024, 'check-in', parseCheckinResponse);
  }

  /** The exact signed bytes and the raw signature. */
  async fetchArtifact(): Promise<Result<{ bytes: Uint8Array; signature: Uint8Array }, HttpError>> {
    const a = await this.call(this.pool, 'GET', ROUTES.artifact, undefined, this.opts.maxArtifactBytes);
    if (!a.ok) return a;
    if (a.value.status !== 200) return err(this.statusError(ROUTES.artifact, a.value));
    const s = await this.call(this.pool, 'GET', ROUTES.artifactSig, undefined, 1024);
    if (!s.ok) return s;
    if (s.value.status !== 200) return err(this.statusError(ROUTES.artifactSig, s.value));
    return ok({ bytes: a.value.body, signature: s.value.body });
  }

  /**
   * This host's signed slice (issue 19); the loop verifies it (agent/slice.ts). A repeat fetch
   * sends If-None-Match with the last ETag and, on 304, reuses the slice it already holds (parsed
   * from the CP's earlier answer and verified again by the loop, like any slice).
   */
  async fetchSlice(): Promise<Result<SliceResponse, HttpError>> {
    const held = this.lastSlice;
    const r = await this.call(this.pool, 'GET', ROUTES.slice, undefined, 1024 * 1024, held === null ? {} : { 'if-none-match': held.etag });
    if (!r.ok) return r;
    if (r.value.status === 304 && held !== null) return ok(held.value);
    if (r.value.status !== 200) this.lastSlice = null;
    const v = this.answer('slice', ROUTES.slice, r.value, parseSliceResponse);
    if (!v.ok) return v;
    const etag = r.value.headers['etag'];
    this.lastSlice = typeof etag === 'string' && etag.length > 0 && etag.length <= 200 ? { etag, value: v.value } : null;
    return v;
  }

  /** Issue 16: a new certificate for a new key, over the current certificate (agent/certs.ts). */
  renew(body: RenewRequest): Promise<Result<CertificateResponse, HttpError>> {
    return this.requestJson('POST', ENROL_ROUTES.renew, body, 256 * 1024, 'renew', parseCertificateResponse);
  }

  /** Issue 16: `GET /v1/whoami` — the identity the CP reads from this host's certificate. */
  whoami(): Promise<Result<WhoamiResponse, HttpError>> {
    return this.requestJson('GET', ENROL_ROUTES.whoami, undefined, 64 * 1024, 'whoami', parseWhoamiResponse);
  }

  async report(body: ReportRequest): Promise<Result<void, HttpError>> {
    const r = await this.call(this.pool, 'POST', ROUTES.report, body, 64 * 1024);
    if (!r.ok) return r;
    if (r.value.status < 200 || r.value.status >= 300) return err(this.statusError(ROUTES.report, r.value));
    return ok(undefined);
  }

  /**
   * Confirm over a brand-new TLS connection (never the pool). `gone` = 410 (deadline passed or
   * dispatch cancelled: roll back); anything else that is not 2xx is an `error` (retry until the
   * deadline).
   */
  async confirm(body: ConfirmRequest): Promise<{ result: 'ok' | 'gone' | 'error'; message: string }> {
    const fresh = new Client(this.origin, { ...this.connectOptions(), pipelining: 1, keepAliveTimeout: 1 });
    try {
      const r = await this.call(fresh, 'POST', ROUTES.confirm, body, 64 * 1024);
      if (!r.ok) return { result: 'error', message: r.error.message };
      if (r.value.status >= 200 && r.value.status < 300) return { result: 'ok', message: `HTTP ${r.value.status}` };
      const e = this.statusError(ROUTES.confirm, r.value);
      return { result: r.value.status === 410 ? 'gone' : 'error', message: e.message };
    } finally {
      await fresh.destroy().catch(() => {});
    }
  }

  async close(): Promise<void> {
    await this.pool.close().catch(() => {});
  }
}
