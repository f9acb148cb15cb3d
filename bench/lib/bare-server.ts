/**
 * The baseline for the check-in load (SPEC §8): a bare Node HTTPS server with the same mutual TLS
 * as the control plane (same server certificate, fleet CA, client certificate required) that reads
 * the request body and answers with a fixed JSON body of the size the CP's check-in answer has. No
 * routing framework, no parsing, no database: the ceiling a Node HTTPS server reaches on this
 * machine, so that `cp / bare` separates the CP's own cost from TLS + HTTP.
 *
 * Runs in its own process (fork this file), like the CP, so CPU and RSS are measured the same way.
 */
import { createServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import { fileURLToPath } from 'node:url';
import { forkTs, serveChild, type Forked } from './child.ts';

export type BareServerOptions = {
  certPem: string;
  keyPem: string;
  caPem: string;
  responseBody: string;
  /** Idle keep-alive before the server closes a connection; the CP's default is 10 s (control-plane/config.ts). */
  keepAliveTimeoutMs?: number;
};

export type BareServer = { readonly port: number; readonly pid: number; close(): Promise<void> };

/** Start the bare server in a child process on 127.0.0.1 (ephemeral port). */
export async function startBareServer(opts: BareServerOptions, execArgv: string[] = [], execPath?: string): Promise<BareServer> {
  const f: Forked = forkTs(fileURLToPath(import.meta.url), { execArgv, ...(execPath !== undefined ? { execPath } : {}) });
  const port = await f.call<number>({ cmd: 'start', opts });
  return { port, pid: f.pid, close: () => f.close() };
}

function start(opts: BareServerOptions): Promise<number> {
  const body = Buffer.from(opts.responseBody);
  const server = createServer({ cert: opts.certPem, key: opts.keyPem, ca: opts.caPem, requestCert: true, rejectUnauthorized: true, keepAliveTimeout: opts.keepAliveTimeoutMs ?? 10_000 }, (req, res) => {
    let n = 0;
    req.on('data', (c: Buffer) => (n += c.length));
    req.on('end', () => {
      res.writeHead(n > 0 ? 200 : 400, { 'content-type': 'application/json', 'content-length': body.length, 'x-nixfleet-protocol': '1' });
      res.end(body);
    });
  });
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve((server.address() as AddressInfo).port)));
}

if (process.argv[1] === fileURLToPath(import.meta.url) && process.send !== undefined) {
  serveChild(async (m) => {
    const msg = m as { cmd: 'start'; opts: BareServerOptions };
    return start(msg.opts);
  });
}
