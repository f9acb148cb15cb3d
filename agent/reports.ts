/**
 * The agent's outgoing reports (SPEC §5 `POST /v1/agent/report`): each is signed with the host key
 * and sent at once; one the CP could not take now (network, 5xx, 408, 429) waits in a bounded
 * queue and goes with the next flush; one the CP refuses for good (other 4xx) is logged and
 * dropped. `reportOnce` sends a report once per key (a CP re-dispatching the same refused target
 * every poll must not produce a report per poll). Never throws.
 */
import type { Logger } from '../io/log.ts';
import type { ReportEvent, ReportRequest } from '../protocol/api.ts';
import type { PrivateKey } from '../protocol/crypto.ts';
import type { Result } from '../protocol/result.ts';
import type { HttpError } from './client.ts';
import { signJcs } from './hostkey.ts';

const REPORT_QUEUE_MAX = 200;
const ONCE_KEYS_MAX = 1000;

export type ReportInput = { event: ReportEvent; rolloutId: string | null; closureHash: string | null; message: string; details?: Record<string, unknown> | undefined };

export type ReportDeps = {
  hostname: string;
  hostKey: PrivateKey | null;
  send: (body: ReportRequest) => Promise<Result<void, HttpError>>;
  now: () => number;
  log: Logger;
};

export class ReportQueue {
  private readonly queue: ReportRequest[] = [];
  private readonly once = new Set<string>();

  constructor(private readonly d: ReportDeps) {}

  async report(r: ReportInput): Promise<void> {
    const report = {
      hostname: this.d.hostname,
      event: r.event,
      rolloutId: r.rolloutId,
      closureHash: r.closureHash,
      at: new Date(this.d.now()).toISOString(),
      message: r.message,
      ...(r.details === undefined ? {} : { details: r.details }),
    };
    const body: ReportRequest = { report, signature: this.d.hostKey === null ? null : signJcs(report, this.d.hostKey) };
    this.d.log.info('agent.report', { event: r.event, rolloutId: r.rolloutId, closure: r.closureHash, message: r.message });
    await this.send(body);
  }

  private async send(body: ReportRequest): Promise<void> {
    const res = await this.d.send(body).catch((e: Error) => ({ ok: false as const, error: { code: 'NETWORK' as const, message: e.message } }));
    if (res.ok) return;
    // 4xx other than 408/429: the CP will never take it; anything else is retried later.
    const status = 'status' in res.error ? res.error.status : undefined;
    if (status !== undefined && status >= 400 && status < 500 && status !== 408 && status !== 429) {
      this.d.log.warn('agent.report-refused', { code: res.error.code, status, message: res.error.message });
      return;
    }
    if (this.queue.length >= REPORT_QUEUE_MAX) this.queue.shift();
    this.queue.push(body);
  }

  /** Send what waits in the queue (again queued if the CP still cannot take it). */
  async flush(): Promise<void> {
    const pending = this.queue.splice(0, this.queue.length);
    for (const body of pending) await this.send(body);
  }

  async reportOnce(key: string, r: ReportInput): Promise<void> {
    if (this.once.has(key)) return;
    this.mark(key);
    await this.report(r);
  }

  /** Has `key` been reported (or marked) already? */
  seen(key: string): boolean {
    return this.once.has(key);
  }

  mark(key: string): void {
    if (this.once.size > ONCE_KEYS_MAX) this.once.clear();
    this.once.add(key);
  }
}
