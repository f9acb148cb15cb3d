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
 * store's own (methods bound to it, so private fields keep working).
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
  const wrapped: Partial<Record<keyof Store, unknown>> = {
    apply: wrap(store.apply.bind(store)),
    applyFenced: wrap(store.applyFenced.bind(store)),
    applyGrouped: wrap(store.applyGrouped.bind(store)),
  };
  // One bound function per method (the check-in path reads several per request).
  const bound = new WeakMap<(...a: unknown[]) => unknown, unknown>();
  return new Proxy(store, {
    get(target, prop) {
      if (typeof prop === 'string' && prop in wrapped) return wrapped[prop as keyof Store];
      const v: unknown = Reflect.get(target, prop);
      if (typeof v !== 'function') return v;
      const f = v as (...a: unknown[]) => unknown;
      let b = bound.get(f);
      if (b === undefined) bound.set(f, (b = f.bind(target)));
      return b;
    },
  });
}
