/**
 * A compromised control plane (issue 7, scenarios 6 and 7): it holds the real server TLS key and
 * the fleet CA certificate (so agents accept the connection — the attacker owns the CP host), but
 * not the release key. It answers check-ins with whatever target the test scripts, serves whatever
 * artefact bytes and signature the test gives it, and records every report and confirm the agent
 * sends, so a test can assert that the agent refused and said why.
 *
 * Speaks the agent half of protocol/api.ts over real mTLS (node:https).
 */
import { createServer, type Server } from 'node:https';
import type { AddressInfo } from 'node:net';
import type { TLSSocket } from 'node:tls';
import type { CheckinRequest, CheckinResponse, ConfirmRequest, ReportRequest, SliceResponse, Target } from '../protocol/api.ts';

export type RogueScript = {
  /** What the next check-ins get (null: nothing to do). */
  target: Target | null;
  artifact: Uint8Array;
  signature: Uint8Array;
  revocations?: Uint8Array;
  revocationsSig?: Uint8Array;
  /** `GET /v1/agent/slice` (issue 19): this body; absent = 404. */
  slice?: SliceResponse;
};

export class RogueCp {
  readonly checkins: CheckinRequest[] = [];
  readonly reports: ReportRequest[] = [];
  readonly confirms: ConfirmRequest[] = [];
  readonly artifactFetches: number[] = [];
  script: RogueScript;
  private server: Server | null = null;
  url = '';

  constructor(script: RogueScript) {
    this.script = script;
  }

  async listen(host: string, tls: { certPem: string; keyPem: string; caPem: string }): Promise<void> {
    const server = createServer({ cert: tls.certPem, key: tls.keyPem, ca: tls.caPem, requestCert: true, rejectUnauthorized: true }, (req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        const peer = (req.socket as TLSSocket).getPeerCertificate();
        const cn = typeof peer.subject?.CN === 'string' ? peer.subject.CN : '?';
        const body = Buffer.concat(chunks).toString('utf8');
        const json = (status: number, v: unknown) => {
          res.writeHead(status, { 'content-type': 'application/json', 'x-nixfleet-protocol': '1' }).end(JSON.stringify(v));
        };
        const bytes = (b: Uint8Array, ct: string) => {
          res.writeHead(200, { 'content-type': ct, 'x-nixfleet-protocol': '1', 'content-length': b.length }).end(Buffer.from(b));
        };
        const path = (req.url ?? '').split('?')[0];
        try {
          if (req.method === 'POST' && path === '/v1/agent/checkin') {
            this.checkins.push(JSON.parse(body) as CheckinRequest);
            const r: CheckinResponse = { target: this.script.target, nextCheckinSecs: 1, serverTime: new Date().toISOString() };
            return json(200, r);
          }
          if (req.method === 'GET' && path === '/v1/artifact') {
            this.artifactFetches.push(Date.now());
            return bytes(this.script.artifact, 'application/json');
          }
          if (req.method === 'GET' && path === '/v1/agent/slice' && this.script.slice !== undefined) return json(200, this.script.slice);
          if (req.method === 'GET' && path === '/v1/artifact.sig') return bytes(this.script.signature, 'application/octet-stream');
          if (req.method === 'GET' && path === '/v1/revocations' && this.script.revocations !== undefined) return bytes(this.script.revocations, 'application/json');
          if (req.method === 'GET' && path === '/v1/revocations.sig' && this.script.revocationsSig !== undefined) {
            return bytes(this.script.revocationsSig, 'application/octet-stream');
          }
          if (req.method === 'POST' && path === '/v1/agent/report') {
            this.reports.push(JSON.parse(body) as ReportRequest);
            return json(202, { id: this.reports.length, verdict: 'verified' });
          }
          if (req.method === 'POST' && path === '/v1/agent/confirm') {
            this.confirms.push(JSON.parse(body) as ConfirmRequest);
            res.writeHead(204, { 'x-nixfleet-protocol': '1' }).end();
            return;
          }
          json(404, { error: { code: 'NOT_FOUND', message: `rogue CP has no ${req.method} ${path} (peer ${cn})` } });
        } catch (e) {
          json(400, { error: { code: 'MALFORMED_JSON', message: String(e) } });
        }
      });
    });
    this.server = server;
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(0, host, () => resolve());
    });
    this.url = `https://${host}:${(server.address() as AddressInfo).port}`;
  }

  /** Reports of one kind (e.g. `verify-failed`). */
  reportsOf(event: string): ReportRequest[] {
    return this.reports.filter((r) => r.report.event === event);
  }

  async close(): Promise<void> {
    const s = this.server;
    this.server = null;
    if (s === null) return;
    s.closeAllConnections();
    await new Promise<void>((r) => s.close(() => r()));
  }
}
