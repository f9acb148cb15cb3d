/**
 * Bounded waits for end-to-end conditions. A wait polls a probe until it returns a value that is
 * neither `undefined` nor `false`, or fails with an error naming the condition, the time waited and
 * the last value observed (plus whatever diagnostics the caller adds). These are waits for state,
 * never timed assertions: the bound only turns a hang into a readable failure.
 */
import { setTimeout as sleep } from 'node:timers/promises';

export class WaitTimeout extends Error {
  override readonly name = 'WaitTimeout';
}

export type WaitOpts = {
  timeoutMs?: number;
  intervalMs?: number;
  /** Extra text for the timeout error (e.g. log tails); called only on timeout. */
  diagnostics?: () => string | Promise<string>;
};

/** Scale every bound with NIXFLEET_E2E_TIMEOUT_SCALE (slow machines); default 1. */
export function scaled(ms: number): number {
  const f = Number(process.env['NIXFLEET_E2E_TIMEOUT_SCALE'] ?? '1');
  return Number.isFinite(f) && f > 0 ? Math.round(ms * f) : ms;
}

function show(v: unknown): string {
  if (v instanceof Error) return `${v.name}: ${v.message}`;
  try {
    const s = JSON.stringify(v);
    return s === undefined ? String(v) : s.length > 2000 ? s.slice(0, 2000) + '…' : s;
  } catch {
    return String(v);
  }
}

/**
 * Poll `probe` until it yields a truthy-ish value (anything but undefined/false). A probe that
 * throws counts as "not yet" (the error is kept as the last observation).
 * `observe`, when given, records what was seen for the timeout message.
 */
export async function waitFor<T>(
  what: string,
  probe: (observe: (v: unknown) => void) => Promise<T | undefined | false> | T | undefined | false,
  opts: WaitOpts = {},
): Promise<T> {
  const timeoutMs = scaled(opts.timeoutMs ?? 60_000);
  const intervalMs = opts.intervalMs ?? 250;
  const started = Date.now();
  let last: unknown = '(nothing observed)';
  const observe = (v: unknown): void => {
    last = v;
  };
  for (;;) {
    try {
      const v = await probe(observe);
      if (v !== undefined && v !== false) return v;
    } catch (e) {
      last = e;
    }
    if (Date.now() - started >= timeoutMs) {
      const diag = opts.diagnostics !== undefined ? await opts.diagnostics() : '';
      throw new WaitTimeout(
        `timed out after ${Math.round((Date.now() - started) / 1000)} s waiting for: ${what}\nlast observed: ${show(last)}${diag !== '' ? `\n${diag}` : ''}`,
      );
    }
    await sleep(intervalMs);
  }
}

/**
 * Hold a condition for a while (e.g. "no later-wave host is touched while the rollout is halted"):
 * polls `check` for `durationMs` and throws as soon as it returns a string (the violation).
 */
export async function holdFor(what: string, durationMs: number, check: () => Promise<string | null> | string | null, intervalMs = 500): Promise<void> {
  const until = Date.now() + durationMs;
  while (Date.now() < until) {
    const violation = await check();
    if (violation !== null) throw new Error(`${what} violated: ${violation}`);
    await sleep(intervalMs);
  }
}
