/**
 * A small mTLS client for the CP's HTTP API (operator or host identity), on undici. Each call
 * returns the status and the parsed body; it never throws on an HTTP error status (tests assert on
 * it), only on a transport failure.
 */
import { Agent, request } from 'undici';
import type { ErrorBody } from '../protocol/api.ts';

export type ApiResponse<T> = { status: number; body: T | ErrorBody | null; raw: Buffer; headers: Record<string, string | string[] | undefined> };

export class ApiClient {
  private readonly dispatcher: Agent;
  constructor(
    readonly baseUrl: string,
    tls: { caPem: string; certPem: string; keyPem: string },
  ) {
    this.dispatcher = new Agent({
      connect: { ca: tls.caPem, cert: tls.certPem, key: tls.keyPem, rejectUnauthorized: true },
      keepAliveTimeout: 1000,
    });
  }

  async call<T>(method: 'GET' | 'POST', path: string, body?: unknown, headers: Record<string, string> = {}): Promise<ApiResponse<T>> {
    const r = await request(this.baseUrl + path, {
      method,
      dispatcher: this.dispatcher,
      headers: { 'x-nixfleet-protocol': '1', ...(body !== undefined ? { 'content-type': 'application/json' } : {}), ...headers },
      ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
    });
    const raw = Buffer.from(await r.body.arrayBuffer());
    let parsed: T | ErrorBody | null = null;
    const ct = String(r.headers['content-type'] ?? '');
    if (ct.includes('json') && raw.length > 0) {
      try {
        parsed = JSON.parse(raw.toString('utf8')) as T | ErrorBody;
      } catch {
        parsed = null;
      }
    }
    return { status: r.statusCode, body: parsed, raw, headers: r.headers };
  }

  /** GET that must answer 200; returns the body or throws with the status and error body. */
  async get<T>(path: string): Promise<T> {
    const r = await this.call<T>('GET', path);
    if (r.status !== 200) throw new Error(`GET ${path} → ${r.status} ${r.raw.toString('utf8').slice(0, 500)}`);
    return r.body as T;
  }

  async post<T>(path: string, body: unknown = {}): Promise<T> {
    const r = await this.call<T>('POST', path, body);
    if (r.status < 200 || r.status >= 300) throw new Error(`POST ${path} → ${r.status} ${r.raw.toString('utf8').slice(0, 500)}`);
    return r.body as T;
  }

  async close(): Promise<void> {
    await this.dispatcher.close();
  }
}
