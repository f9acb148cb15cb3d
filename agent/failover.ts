/**
 * Several control plane replicas (issue 17): the agent talks to one at a time and stays with it
 * while it answers (sticky: its keep-alive connection and TLS session stay warm); when it is
 * unreachable or says it cannot serve (502 / 503 / 504), the same call goes to the next replica in
 * the configured order, and the one that answers becomes the current one. A replica that failed
 * is not tried again before its own backoff ran out (doubling per consecutive failure, capped), so
 * a dead replica costs one failed connection per backoff period, not one per call. When every
 * replica failed, the call returns the current one's error and the loop's own backoff applies.
 *
 * An answer is never retried elsewhere: a 4xx (410 roll back, 409 stale, 403 revoked…) or a 200 is
 * what the fleet says, whichever replica says it. A confirm may go to any replica (each on a new
 * connection, SPEC §6): the store they share holds the dispatch.
 *
 * A load balancer in front of the replicas works too: configure its one URL.
 */
import type { CheckinRequest, CheckinResponse, ConfirmRequest, ReportRequest, SliceResponse } from '../protocol/api.ts';
import type { Result } from '../protocol/result.ts';
import type { HttpError } from './client.ts';
import type { CpApi } from './loop.ts';

/** Statuses that mean "this replica cannot serve now", not an answer: try another. */
const UNAVAILABLE = new Set([502, 503, 504]);

/** Whether a failed call should go to another replica. */
export function isUnavailable(e: HttpError): boolean {
  return e.code === 'NETWORK' || (e.code === 'HTTP_STATUS' && e.status !== undefined && UNAVAILABLE.has(e.status));
}

export type FailoverOptions = {
  now: () => number;
  log: (msg: string) => void;
  /** Backoff of a replica after its first failure; doubles per consecutive failure. */
  backoffMinMs?: number;
  backoffMaxMs?: number;
};

export type Replica = { url: string; client: CpApi };

type Health = { failures: number; retryAtMs: number };

export class FailoverClient implements CpApi {
  private current = 0;
  private readonly health: Health[];
  private readonly minMs: number;
  private readonly maxMs: number;
  readonly fetchSlice?: () => Promise<Result<SliceResponse, HttpError>>;

  constructor(
    private readonly replicas: readonly Replica[],
    private readonly o: FailoverOptions,
  ) {
    if (replicas.length === 0) throw new Error('FailoverClient: no control plane URL');
    this.health = replicas.map(() => ({ failures: 0, retryAtMs: 0 }));
    this.minMs = o.backoffMinMs ?? 1000;
    this.maxMs = o.backoffMaxMs ?? 60_000;
    if (replicas.every((r) => r.client.fetchSlice !== undefined)) {
      this.fetchSlice = () => this.result((c) => c.fetchSlice!());
    }
  }

  /** The URL calls go to now. */
  get currentUrl(): string {
    return this.replicas[this.current]!.url;
  }

  /**
   * The order to try: the current replica first (whatever its backoff: it is the one we believe
   * in), then the others in configured order whose backoff ran out.
   */
  private order(): number[] {
    const nowMs = this.o.now();
    const out = [this.current];
    for (let k = 1; k < this.replicas.length; k++) {
      const i = (this.current + k) % this.replicas.length;
      if (this.health[i]!.retryAtMs <= nowMs) out.push(i);
    }
    return out;
  }

  private failed(i: number, why: string): void {
    const h = this.health[i]!;
    h.failures++;
    const delay = Math.min(this.maxMs, this.minMs * 2 ** Math.min(h.failures - 1, 30));
    h.retryAtMs = this.o.now() + delay;
    if (this.replicas.length > 1) this.o.log(`control plane ${this.replicas[i]!.url} unavailable (${why}); not tried again for ${Math.round(delay / 1000)} s`);
  }

  private succeeded(i: number): void {
    this.health[i] = { failures: 0, retryAtMs: 0 };
    if (i !== this.current) {
      this.o.log(`control plane: now talking to ${this.replicas[i]!.url} (was ${this.currentUrl})`);
      this.current = i;
    }
  }

  /** Run `call` on the replicas in order until one answers; `unavailable` says a result is not an answer. */
  private async run<T>(call: (c: CpApi) => Promise<T>, unavailable: (r: T) => string | null): Promise<T> {
    let first: T | null = null;
    for (const i of this.order()) {
      const r = await call(this.replicas[i]!.client);
      const why = unavailable(r);
      if (why === null) {
        this.succeeded(i);
        return r;
      }
      this.failed(i, why);
      first ??= r;
    }
    return first!;
  }

  private result<T>(call: (c: CpApi) => Promise<Result<T, HttpError>>): Promise<Result<T, HttpError>> {
    return this.run(call, (r) => (!r.ok && isUnavailable(r.error) ? r.error.message : null));
  }

  checkin(body: CheckinRequest): Promise<Result<CheckinResponse, HttpError>> {
    return this.result((c) => c.checkin(body));
  }

  fetchArtifact(): Promise<Result<{ bytes: Uint8Array; signature: Uint8Array }, HttpError>> {
    return this.result((c) => c.fetchArtifact());
  }

  report(body: ReportRequest): Promise<Result<void, HttpError>> {
    return this.result((c) => c.report(body));
  }

  /**
   * `error` is anything but 2xx / 410 (its message does not say which): another replica is tried,
   * which is safe — a confirm that already landed is answered 204 again (a retried confirm).
   */
  confirm(body: ConfirmRequest): Promise<{ result: 'ok' | 'gone' | 'error'; message: string }> {
    return this.run(
      (c) => c.confirm(body),
      (r) => (r.result === 'error' ? r.message : null),
    );
  }
}
