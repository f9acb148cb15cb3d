/**
 * Per-host report quota (issue 18 hardening): a host may have its reports stored at most
 * `perHour` times in any rolling hour (a token bucket refilled continuously, capacity `perHour`).
 * Reports beyond it are refused before anything is stored: 429 REPORT_QUOTA with Retry-After,
 * counted in `nixfleet_report_refusals_total{reason="quota"}`, and audited once per burst (the
 * first refusal after the host was last within its quota). The agent keeps a refused report
 * queued and retries later (429 is retryable). In memory, per replica: a restart or another
 * replica starts with full buckets, which only ever lets a host store more, never less.
 */
export type QuotaDecision = { ok: true } | { ok: false; retryAfterSecs: number; firstOfBurst: boolean };

export class ReportQuota {
  private readonly buckets = new Map<string, { tokens: number; atMs: number; refusing: boolean }>();
  private readonly perMs: number;

  constructor(private readonly perHour: number) {
    this.perMs = perHour / 3_600_000;
  }

  /** Take one report's token for `host` at `nowMs`. */
  take(host: string, nowMs: number): QuotaDecision {
    const b = this.buckets.get(host) ?? { tokens: this.perHour, atMs: nowMs, refusing: false };
    b.tokens = Math.min(this.perHour, b.tokens + Math.max(0, nowMs - b.atMs) * this.perMs);
    b.atMs = nowMs;
    this.buckets.set(host, b);
    if (b.tokens >= 1) {
      b.tokens -= 1;
      b.refusing = false;
      return { ok: true };
    }
    const firstOfBurst = !b.refusing;
    b.refusing = true;
    return { ok: false, retryAfterSecs: Math.max(1, Math.ceil((1 - b.tokens) / this.perMs / 1000)), firstOfBurst };
  }
}
