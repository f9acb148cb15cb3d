/** Check-in timing of the agent (SPEC §6 polling): jitter and backoff. Pure. */

/** ± `pct` % of uniform jitter around `baseMs` (`random` in [0, 1)). Pure. */
export function jitter(baseMs: number, pct: number, random: number): number {
  return Math.max(0, Math.round(baseMs * (1 + ((2 * random - 1) * pct) / 100)));
}

/**
 * Delay before the next check-in after `failures` consecutive errors (0 = last one succeeded):
 * base × 2^(failures−1), capped at `maxFactor` × base, jittered, and never below `retryAfterSecs`.
 */
export function nextDelayMs(o: { baseSecs: number; failures: number; maxFactor: number; jitterPct: number; random: number; retryAfterSecs?: number }): number {
  const factor = o.failures === 0 ? 1 : Math.min(2 ** (o.failures - 1), o.maxFactor);
  const d = jitter(o.baseSecs * 1000 * factor, o.jitterPct, o.random);
  return o.retryAfterSecs === undefined ? d : Math.max(d, o.retryAfterSecs * 1000);
}
