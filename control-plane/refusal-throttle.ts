/**
 * Issue 16: audit unauthenticated enrolment refusals once per burst, not once per request.
 *
 * `POST /v1/enroll` needs no client certificate, so anyone who can reach the enrolment listener
 * can send refused requests as fast as the CP answers them; an audit entry per request would let
 * them grow the audit log (a hash chain that is never pruned below its retention) without bound.
 * A refusal is audited when it is the first of its (source address, code) pair within
 * `windowMs`; the next ones are only counted (metric) and the count is carried into the audit
 * entry of the next burst (`suppressedBefore`). Distinct refusal kinds from one source are each
 * audited, so an operator still sees every kind of attempt.
 *
 * Memory is bounded: at most `maxKeys` (source, code) pairs are remembered; when full, expired
 * pairs are dropped first, then the oldest. Pure: time is a parameter.
 */

export type ThrottleDecision = { audit: true; suppressedBefore: number } | { audit: false };

type Slot = { windowStartMs: number; suppressed: number };

export class RefusalThrottle {
  private readonly slots = new Map<string, Slot>();

  constructor(
    private readonly windowMs: number,
    private readonly maxKeys = 10_000,
  ) {
    if (!(windowMs >= 0) || !Number.isFinite(windowMs)) throw new TypeError('RefusalThrottle: windowMs must be a non-negative number');
    if (!Number.isInteger(maxKeys) || maxKeys < 1) throw new TypeError('RefusalThrottle: maxKeys must be a positive integer');
  }

  /** One refusal from `source` with `code` at `nowMs`: audit it, or count it in the burst. */
  decide(source: string, code: string, nowMs: number): ThrottleDecision {
    const key = `${source}\u0000${code}`;
    const slot = this.slots.get(key);
    if (slot !== undefined && nowMs - slot.windowStartMs < this.windowMs) {
      slot.suppressed += 1;
      return { audit: false };
    }
    const suppressedBefore = slot?.suppressed ?? 0;
    this.slots.delete(key); // re-inserted last: Map order is then oldest first
    if (this.slots.size >= this.maxKeys) this.evict(nowMs);
    this.slots.set(key, { windowStartMs: nowMs, suppressed: 0 });
    return { audit: true, suppressedBefore };
  }

  /** Pairs remembered (for tests). */
  get size(): number {
    return this.slots.size;
  }

  private evict(nowMs: number): void {
    for (const [k, s] of this.slots) if (nowMs - s.windowStartMs >= this.windowMs) this.slots.delete(k);
    while (this.slots.size >= this.maxKeys) {
      const oldest = this.slots.keys().next();
      if (oldest.done === true) break;
      this.slots.delete(oldest.value);
    }
  }
}
