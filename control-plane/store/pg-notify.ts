/**
 * Connection health and wake-ups between control plane replicas on one PostgreSQL (issue 17): a follower that took a
 * relevant check-in asks the leader for a pass (`NOTIFY`), so a rollout does not wait for the
 * leader's next periodic pass. One dedicated connection per replica `LISTEN`s; it reconnects with
 * backoff after the server restarts, and reports one wake-up on reconnecting (a notification sent
 * while it was away is lost: PostgreSQL queues them only for listening sessions).
 */
import pg from 'pg';
import type { Q } from './pg-queries.ts';

/** The notification channel (one per database). */
export const CHANNEL = 'nixfleet_reconcile';

const BACKOFF_MIN_MS = 250;
const BACKOFF_MAX_MS = 10_000;

/**
 * Whether an error means the database cannot be reached (connection refused, lost, or the server
 * shutting down or starting: SQLSTATE class 08, 57P01–57P03), as opposed to a statement's failure.
 */
export function isConnectionError(e: unknown): boolean {
  const code = typeof e === 'object' && e !== null ? (e as { code?: unknown }).code : undefined;
  if (typeof code === 'string' && (code.startsWith('08') || ['57P01', '57P02', '57P03', 'ECONNREFUSED', 'ECONNRESET', 'ENOENT', 'EPIPE', 'ETIMEDOUT'].includes(code))) return true;
  const m = e instanceof Error ? e.message : '';
  return /Connection terminated|connection is closed|Client has encountered a connection error|timeout exceeded when trying to connect|Client was closed/i.test(m);
}

/** Ask every listening replica (the leader acts on it) for a pass. Sent after the caller's commit. */
export async function notify(q: Q, from: string): Promise<void> {
  await q.query('SELECT pg_notify($1, $2)', [CHANNEL, from]);
}

/** A `LISTEN` session that survives server restarts. */
export class Listener {
  private client: pg.Client | null = null;
  private closed = false;
  private backoffMs = BACKOFF_MIN_MS;
  private retry: NodeJS.Timeout | null = null;
  /** Reconnections after a lost session (a metric for the operator). */
  reconnects = 0;

  constructor(
    private readonly config: pg.ClientConfig,
    private readonly onWake: (from: string) => void,
  ) {}

  /** Connect and listen; rejects when the first connection fails (the caller's start fails). */
  async start(): Promise<void> {
    await this.connect();
  }

  private async connect(): Promise<void> {
    const c = new pg.Client(this.config);
    const lost = (): void => {
      if (this.client !== c) return;
      this.client = null;
      void c.end().catch(() => {});
      this.schedule();
    };
    c.on('error', lost);
    c.on('end', lost);
    c.on('notification', (n) => {
      if (n.channel === CHANNEL) this.onWake(n.payload ?? '');
    });
    await c.connect();
    await c.query(`LISTEN ${CHANNEL}`);
    if (this.closed) {
      await c.end().catch(() => {});
      return;
    }
    this.client = c;
    this.backoffMs = BACKOFF_MIN_MS;
  }

  private schedule(): void {
    if (this.closed || this.retry !== null) return;
    const delay = this.backoffMs;
    this.backoffMs = Math.min(BACKOFF_MAX_MS, this.backoffMs * 2);
    this.retry = setTimeout(() => {
      this.retry = null;
      this.connect().then(
        () => {
          this.reconnects++;
          this.onWake('reconnected'); // what was sent while away is lost: one pass catches up
        },
        () => this.schedule(),
      );
    }, delay);
    this.retry.unref();
  }

  /** Whether the session is up now. */
  get listening(): boolean {
    return this.client !== null;
  }

  async close(): Promise<void> {
    this.closed = true;
    if (this.retry !== null) clearTimeout(this.retry);
    this.retry = null;
    const c = this.client;
    this.client = null;
    if (c !== null) await c.end().catch(() => {});
  }
}
