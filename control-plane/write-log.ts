/**
 * Every state change of the control plane goes through `Store.apply*` as a list of writes; this
 * is the one place that logs them (issue 18: "every operator action and every state change at
 * info"). Audit entries (operator actions, artefacts, dispatches, quarantines…) log as event
 * `audit` with their kind, actor and subject; rollout state transitions as `state.transition`.
 * Logged after the transaction committed, so a line means the change happened. Host-sent
 * report bodies are not copied into the log (they are in the audit chain); their event,
 * verdict and host are.
 */
import type { Logger } from './log.ts';
import type { ApplyResult, Store, Write } from './store/types.ts';

const SMALL_DATA_BYTES = 2048;

/** The data of an audit entry if it is small, else only its keys (the full entry is in the audit chain). */
function summary(data: unknown): unknown {
  if (data === null || typeof data !== 'object') return data;
  const text = JSON.stringify(data);
  return text.length <= SMALL_DATA_BYTES ? data : { keys: Object.keys(data), bytes: text.length };
}

/** Log the writes of one committed transaction. */
export function logWrites(log: Logger, writes: readonly Write[]): void {
  for (const w of writes) {
    switch (w.kind) {
      case 'audit':
        log.info('audit', { kind: w.entry.kind, actor: w.entry.actor, subject: w.entry.subject, data: summary(w.entry.data) });
        break;
      case 'dispatch.withdraw':
        log.info('audit', { kind: w.auditIfAny.kind, actor: w.auditIfAny.actor, subject: w.auditIfAny.subject, data: summary(w.auditIfAny.data) });
        break;
      case 'transition':
        log.info('state.transition', { rolloutId: w.row.rolloutId, host: w.row.hostname, from: w.row.from, to: w.row.to, wave: w.row.wave, reason: w.row.reason });
        break;
      case 'report':
        log.info('report', { host: w.row.hostname, event: w.row.event, rolloutId: w.row.rolloutId, verdict: w.row.verdict });
        break;
      default:
        break;
    }
  }
}

/** Logging never fails a committed transaction. */
function safely(log: Logger, writes: readonly Write[]): void {
  try {
    logWrites(log, writes);
  } catch {
    // a value the log cannot serialise: the change is in the store and the audit chain anyway
  }
}

/**
 * `store` with its three apply methods logging what they committed. Every other member is the
 * store's own: its methods bound to it (so private fields keep working), its other properties (those
 * it has when wrapped) read and written through to it. A plain object, not a Proxy: the check-in path reads several members
 * per request, and each read through a Proxy trap cost about as much as the call it led to.
 */
export function withWriteLog(store: Store, log: Logger): Store {
  const wrap =
    <A extends unknown[]>(apply: (writes: readonly Write[], ...rest: A) => ApplyResult | Promise<ApplyResult>) =>
    (writes: readonly Write[], ...rest: A): ApplyResult | Promise<ApplyResult> => {
      const r = apply(writes, ...rest);
      if (r instanceof Promise) return r.then((v) => (safely(log, writes), v));
      safely(log, writes);
      return r;
    };
  const out: Record<string, unknown> = {
    apply: wrap(store.apply.bind(store)),
    applyFenced: wrap(store.applyFenced.bind(store)),
    applyGrouped: wrap(store.applyGrouped.bind(store)),
  };
  const target = store as unknown as Record<string, unknown>;
  // The store's own properties, then its class's methods up the prototype chain (nearest first).
  for (let o: object | null = store; o !== null && o !== Object.prototype; o = Object.getPrototypeOf(o) as object | null) {
    for (const k of Object.getOwnPropertyNames(o)) {
      if (k === 'constructor' || Object.prototype.hasOwnProperty.call(out, k)) continue;
      const v = Object.getOwnPropertyDescriptor(o, k)?.value as unknown;
      if (o !== store && typeof v === 'function') out[k] = (v as (...a: unknown[]) => unknown).bind(store);
      else Object.defineProperty(out, k, { get: () => target[k], set: (x: unknown) => void (target[k] = x), enumerable: true });
    }
  }
  return out as unknown as Store;
}
