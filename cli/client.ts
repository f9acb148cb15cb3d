/**
 * The CLI's connection to the control plane: HTTPS with mutual TLS (operator certificate) through
 * an undici Agent, and the mapping of every failure to one line and an exit code:
 *
 * - no HTTP answer at all (refused, DNS, TLS handshake, timeout) → `UNREACHABLE` (exit 3);
 * - 403 `FORBIDDEN_ROLE` → `FORBIDDEN` (exit 1) naming the certificate's role, so an operator who
 *   points the CLI at a host certificate learns why;
 * - any other non-2xx → `REFUSED` / `NOT_FOUND` (exit 1) with the CP's own error code and message.
 */
import { X509Certificate } from 'node:crypto';
import { checkCertificate, type CertCheck } from '../pki/check.ts';
import { readFileSync } from 'node:fs';
import { Agent, request } from 'undici';
import { PROTOCOL_HEADER, PROTOCOL_VERSION, type ErrorBody } from '../protocol/api.ts';
import { parseErrorBody, type ResponseError } from '../protocol/api-parse.ts';
import { parseJsonStrict } from '../protocol/jcs.ts';
import type { Result } from '../protocol/result.ts';
import { err, ok } from '../protocol/result.ts';
import type { CliError, Ctx } from './framework.ts';
import { flagInt, flagStr } from './framework.ts';

export type Client = {
  readonly baseUrl: string;
  /** GET `path`; the answer is checked with `parse` (protocol/api-parse.ts), never cast. */
  get<T>(path: string, parse: AnswerParser<T>, query?: Record<string, string | number | undefined>): Promise<Result<T, CliError>>;
  post<T>(path: string, body: unknown, parse: AnswerParser<T>): Promise<Result<T, CliError>>;
  close(): Promise<void>;
};

/** One of protocol/api-parse.ts's response parsers. */
export type AnswerParser<T> = (u: unknown) => Result<T, ResponseError>;

export type ClientOptions = { url: string; certPem: string; keyPem: string; caPem: string; timeoutMs: number };

/** The connection settings of an online command, read, with our identity checked locally. */
export function connectionFromCtx(ctx: Ctx): Result<{ options: ClientOptions; identity: CertCheck }, CliError> {
  // resolveFlags has made url/cert/key/ca mandatory for online commands.
  const url = flagStr(ctx, 'url')!;
  const read = (flag: string): Result<string, CliError> => {
    const path = flagStr(ctx, flag)!;
    try {
      return ok(readFileSync(path, 'utf8'));
    } catch (e) {
      return err({ code: 'USAGE', message: `cannot read --${flag} ${path}: ${(e as NodeJS.ErrnoException).code ?? String(e)}` });
    }
  };
  const cert = read('cert');
  if (!cert.ok) return cert;
  const key = read('key');
  if (!key.ok) return key;
  const ca = read('ca');
  if (!ca.ok) return ca;
  // Our own identity is checked here, before connecting: an expired --cert or the --key of another
  // certificate is a local mistake (exit 2, saying which), not "cannot reach the control plane".
  // Validity is judged by the real clock, the one the TLS handshake will use (not the injected one).
  const own = checkOwnIdentity(cert.value, key.value, ca.value, flagStr(ctx, 'cert')!, flagStr(ctx, 'key')!, Date.now());
  if (!own.ok) return own;
  const timeoutSecs = flagInt(ctx, 'timeout-secs') ?? 10;
  // 0 would mean "no timeout" to undici: an operator command must always come back.
  if (timeoutSecs < 1) return err({ code: 'USAGE', message: '--timeout-secs must be at least 1' });
  return ok({ options: { url, certPem: cert.value, keyPem: key.value, caPem: ca.value, timeoutMs: timeoutSecs * 1000 }, identity: own.value });
}

/** Build a client from the resolved connection settings of an online command. */
export function clientFromCtx(ctx: Ctx): Result<Client, CliError> {
  const c = connectionFromCtx(ctx);
  return c.ok ? openClient(c.value.options) : c;
}

/** The CLI's client certificate, checked locally (pki/check.ts): clientAuth, validity, key, fleet CA. */
export function checkOwnIdentity(certPem: string, keyPem: string, caPem: string, certPath: string, keyPath: string, nowMs: number): Result<CertCheck, CliError> {
  const c = checkCertificate({ what: `--cert ${certPath}`, certPem, keyPem, keyWhat: `--key ${keyPath}`, caPem, purpose: 'clientAuth', nowMs });
  if (c.problems.length > 0) return err({ code: 'USAGE', message: c.problems.map((p) => `${p.code}: ${p.message}`).join('; ') });
  return ok(c);
}

export function openClient(opts: ClientOptions): Result<Client, CliError> {
  let base: URL;
  try {
    base = new URL(opts.url);
  } catch {
    return err({ code: 'USAGE', message: `--url ${JSON.stringify(opts.url)} is not a URL` });
  }
  if (base.protocol !== 'https:') return err({ code: 'USAGE', message: `--url must be https:// (the CP only speaks mutual TLS), got ${base.protocol}//` });
  const baseUrl = base.href.replace(/\/+$/, '');
  const agent = new Agent({
    connect: { cert: opts.certPem, key: opts.keyPem, ca: opts.caPem, timeout: opts.timeoutMs },
    headersTimeout: opts.timeoutMs,
    bodyTimeout: opts.timeoutMs,
  });

  async function call<T>(method: 'GET' | 'POST', path: string, parse: AnswerParser<T>, body?: unknown): Promise<Result<T, CliError>> {
    const headers: Record<string, string> = { [PROTOCOL_HEADER]: PROTOCOL_VERSION, accept: 'application/json' };
    if (body !== undefined) headers['content-type'] = 'application/json';
    let res: Awaited<ReturnType<typeof request>>;
    try {
      res = await request(baseUrl + path, {
        dispatcher: agent,
        method,
        headers,
        ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
      });
    } catch (e) {
      return err({ code: 'UNREACHABLE', message: `cannot reach the control plane at ${baseUrl}: ${describeNetworkError(e)}` });
    }
    let text: string;
    try {
      text = await res.body.text();
    } catch (e) {
      return err({ code: 'UNREACHABLE', message: `connection to ${baseUrl} broke while reading the answer: ${describeNetworkError(e)}` });
    }
    if (res.statusCode >= 200 && res.statusCode < 300) {
      const json = text === '' ? ({ ok: true, value: undefined } as const) : parseJsonStrict(text);
      if (!json.ok) return err({ code: 'REFUSED', message: `${method} ${path}: the control plane answered ${res.statusCode} with a body that is not JSON` });
      const answer = parse(json.value);
      if (!answer.ok) return err({ code: 'REFUSED', message: `${method} ${path}: unexpected answer from the control plane: ${answer.error.message}` });
      return answer;
    }
    return err(httpError(res.statusCode, text, opts.certPem));
  }

  const client: Client = {
    baseUrl,
    get: (path, parse, query) => {
      const q = Object.entries(query ?? {}).filter((kv): kv is [string, string | number] => kv[1] !== undefined);
      const qs = q.length > 0 ? '?' + new URLSearchParams(q.map(([k, v]): [string, string] => [k, String(v)])).toString() : '';
      return call('GET', path + qs, parse);
    },
    post: (path, body, parse) => call('POST', path, parse, body),
    close: () => agent.close(),
  };
  return ok(client);
}

/** The CP's error body, if it sent one. */
function errorBody(text: string): ErrorBody['error'] | null {
  const json = parseJsonStrict(text);
  return json.ok ? parseErrorBody(json.value) : null;
}

/** Subject of our own client certificate, for messages ("CN=web1, OU=host"). */
export function describeOwnCert(certPem: string): { cn: string | null; ou: string | null } {
  try {
    const subject = new X509Certificate(certPem).subject;
    const get = (k: string) => subject.split('\n').find((l) => l.startsWith(`${k}=`))?.slice(k.length + 1) ?? null;
    return { cn: get('CN'), ou: get('OU') };
  } catch {
    return { cn: null, ou: null };
  }
}

function httpError(status: number, text: string, certPem: string): CliError {
  const e = errorBody(text);
  const said = e ? `${e.code}: ${e.message}` : `HTTP ${status}`;
  if (status === 403 && (e === null || e.code === 'FORBIDDEN_ROLE')) {
    const me = describeOwnCert(certPem);
    const who = me.cn !== null ? `CN=${me.cn}${me.ou !== null ? `, OU=${me.ou}` : ''}` : 'this certificate';
    const hint =
      me.ou === 'host'
        ? `${who} is a host certificate; operator commands need an operator certificate (OU=operator): nixfleet mint-operator-cert NAME`
        : `${who} is not an operator certificate (OU=operator); mint one with: nixfleet mint-operator-cert NAME`;
    return { code: 'FORBIDDEN', message: `the control plane refused this identity: ${hint}` };
  }
  if (status === 401) return { code: 'REFUSED', message: `the control plane refused this certificate (${said})` };
  if (status === 404) return { code: 'NOT_FOUND', message: e ? e.message : 'not found' };
  if (status === 503) return { code: 'REFUSED', message: `the control plane is not ready yet (${said})` };
  return { code: 'REFUSED', message: `the control plane said ${status} ${said}` };
}

/** One line for a failure before any HTTP answer. */
export function describeNetworkError(e: unknown): string {
  const chain: { code?: unknown; message?: unknown }[] = [];
  let cur: unknown = e;
  for (let i = 0; i < 4 && typeof cur === 'object' && cur !== null; i++) {
    chain.push(cur as { code?: unknown; message?: unknown });
    cur = (cur as { cause?: unknown }).cause;
  }
  const codes = chain.map((c) => (typeof c.code === 'string' ? c.code : '')).filter((c) => c !== '');
  const has = (c: string) => codes.includes(c);
  if (has('ECONNREFUSED')) return 'connection refused (is it running, is the port right?)';
  if (has('ENOTFOUND') || has('EAI_AGAIN')) return 'host name not found';
  if (has('UND_ERR_CONNECT_TIMEOUT') || has('ETIMEDOUT')) return 'timed out connecting';
  if (has('UND_ERR_HEADERS_TIMEOUT') || has('UND_ERR_BODY_TIMEOUT')) return 'timed out waiting for an answer';
  if (has('ERR_TLS_CERT_ALTNAME_INVALID')) return 'TLS: the server certificate does not name this host (check --url)';
  const tls = codes.find((c) => /CERT|SELF_SIGNED|UNABLE_TO|ERR_SSL|ERR_TLS|SSL_/.test(c));
  if (tls) return `TLS handshake failed (${tls}): is --ca the fleet CA, and --cert/--key an operator certificate from it?`;
  if (has('ECONNRESET') || has('UND_ERR_SOCKET') || has('EPIPE')) return 'the connection was closed (TLS client certificate refused, or not a nixfleet CP)';
  const m = chain.map((c) => (typeof c.message === 'string' ? c.message : '')).find((x) => x !== '') ?? String(e);
  return `${codes[0] ? codes[0] + ': ' : ''}${m.split('\n')[0]}`;
}
