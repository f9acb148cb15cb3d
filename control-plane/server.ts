/**
 * Node's HTTPS server with mutual TLS around the Hono app (SPEC §5): `requestCert` +
 * `rejectUnauthorized` against the fleet CA only, so a client without a certificate, or with one
 * from another CA, fails the TLS handshake before any HTTP is read.
 */
import { createAdaptorServer, getRequestListener } from '@hono/node-server';
import { once } from 'node:events';
import { createServer as createHttpServer } from 'node:http';
import { createServer as createHttpsServer, type Server } from 'node:https';
import type { AddressInfo } from 'node:net';
import type { TLSSocket } from 'node:tls';
import type { Hono } from 'hono';
import type { AppEnv } from './middleware.ts';
import type { NodeRoute } from './hot-checkin.ts';

export type TlsMaterial = { cert: string; key: string; ca: string };

export type ListeningServer = {
  server: Server;
  host: string;
  port: number;
  /** Stop accepting, end idle keep-alive connections, wait for in-flight requests. */
  close(): Promise<void>;
};

/**
 * `clientCerts: false` (issue 16): the enrolment listener, which a host without a certificate must
 * reach; it serves only the enrolment app (routes-enrol.ts), never the mTLS routes.
 */
export async function listenHttps(
  app: Pick<Hono<AppEnv>, 'fetch'> & { nodeRoute?: NodeRoute },
  tls: TlsMaterial,
  host: string,
  port: number,
  opts: { keepAliveSecs?: number; onTlsConnection?: (socket: TLSSocket) => void; onTlsClientError?: (err: Error, remote: string | null) => void; clientCerts?: boolean } = {},
): Promise<ListeningServer> {
  const mutual = opts.clientCerts ?? true;
  const serverOptions = {
    cert: tls.cert,
    key: tls.key,
    ...(mutual ? { ca: tls.ca, requestCert: true, rejectUnauthorized: true } : { requestCert: false }),
    minVersion: 'TLSv1.2' as const,
    // Keep-alive for agents that poll (config keepAliveSecs); bounded header/request times against slow clients.
    keepAliveTimeout: (opts.keepAliveSecs ?? 10) * 1000,
    headersTimeout: 30_000,
    requestTimeout: 60_000,
  };
  // Issue 19: the app's route below Hono (hot-checkin.ts) sees each request first.
  const hono = getRequestListener(app.fetch);
  const first = app.nodeRoute;
  const server = createHttpsServer(serverOptions, first === undefined ? hono : (req, res) => void (first(req, res) || hono(req, res)));
  // A failed handshake (no cert, wrong CA) is the client's problem, not ours: no crash; counted
  // and logged (throttled) by the caller (tls-failures.ts).
  const onErr = opts.onTlsClientError;
  server.on('tlsClientError', (err: Error, socket: TLSSocket) => onErr?.(err, socket.remoteAddress ?? null));
  const onTls = opts.onTlsConnection;
  if (onTls !== undefined) server.on('secureConnection', (s: TLSSocket) => onTls(s));
  server.listen(port, host);
  return listening(server);
}

/** A plain-HTTP listener (the optional metrics listener: /healthz, /readyz, /metrics only). */
export async function listenHttp(app: { fetch: (req: Request) => Response | Promise<Response> }, host: string, port: number): Promise<ListeningServer> {
  const server = createAdaptorServer({ fetch: app.fetch, createServer: createHttpServer, serverOptions: { headersTimeout: 30_000, requestTimeout: 60_000 } }) as unknown as Server;
  server.listen(port, host);
  return listening(server);
}

/** Once `server` listens: its address and a close that also drops idle keep-alive connections. */
async function listening(server: Server): Promise<ListeningServer> {
  await once(server, 'listening');
  const addr = server.address() as AddressInfo;
  return {
    server,
    host: addr.address,
    port: addr.port,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeIdleConnections();
      }),
  };
}
