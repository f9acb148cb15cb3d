/**
 * The effect interpreter between the pure machine (`machine.ts`) and the host: performs each
 * effect in order, turns the outcome of the one effect that has an outcome into the next event,
 * and steps the machine again, until the machine is idle or asks to `wait`.
 *
 * Order is the safety argument: `save-pending` is a synchronous atomic write that completes
 * before `set-profile` / `switch` start, so a kill -9 at any point leaves a record that `recover`
 * can act on.
 */
import type { ActivationBackend } from './backend.ts';
import { step, type ConfirmResult, type Effect, type Event, type MachineConfig, type MachineState, type Step } from './machine.ts';
import type { StateStore } from './state.ts';
import type { Logger } from '../io/log.ts';

export type ProbeSummary = { ok: boolean; failures: string[] };
export type ReportEffect = Extract<Effect, { kind: 'report' }>;

export type DriveDeps = {
  backend: ActivationBackend;
  store: StateStore;
  now: () => number;
  cfg: MachineConfig;
  runProbes: () => Promise<ProbeSummary>;
  /** Confirm over a NEW connection (the shell's job); never throws. */
  confirm: (rolloutId: string, closureHash: string) => Promise<{ result: ConfirmResult; message: string }>;
  /** Sign and send (or queue) a report; never throws. */
  report: (r: ReportEffect) => Promise<void>;
  /** Sign and persist the confirmed-target record. */
  saveConfirmed: (rolloutId: string, closureHash: string, atMs: number) => void;
  log?: Logger;
};

export type DriveResult = { state: MachineState; waitUntilMs: number | null };

const MAX_STEPS = 10_000;

/** Runs `first`'s effects and every step they lead to. */
export async function drive(deps: DriveDeps, first: Step): Promise<DriveResult> {
  let state = first.state;
  let queue: Effect[] = [...first.effects];
  for (let i = 0; i < MAX_STEPS; i++) {
    const effect = queue.shift();
    if (effect === undefined) return { state, waitUntilMs: null };
    if (effect.kind === 'wait') {
      if (queue.length > 0) throw new Error('bug: effects after wait');
      return { state, waitUntilMs: effect.untilMs };
    }
    const event = await perform(deps, effect, queue);
    if (event === null) continue;
    if (queue.length > 0 && effect.kind !== 'set-profile') throw new Error(`bug: effects after ${effect.kind}`);
    queue = [];
    const next = step(state, event, deps.now(), deps.cfg);
    deps.log?.info('agent.step', { effect: effect.kind, event: event.kind, ...('ok' in event ? { ok: event.ok } : {}), ...('result' in event ? { result: event.result } : {}), phase: next.state.phase.tag });
    state = next.state;
    queue = [...next.effects];
  }
  throw new Error('bug: the activation machine did not settle');
}

async function perform(deps: DriveDeps, effect: Exclude<Effect, { kind: 'wait' }>, rest: Effect[]): Promise<Event | null> {
  const { backend, store } = deps;
  switch (effect.kind) {
    case 'realise': {
      const r = await backend.realise(effect.closurePath);
      if (!r.ok) return { kind: 'realised', ok: false, code: r.error.code, message: r.error.message };
      const ins = await backend.inspect(effect.closurePath);
      if (!ins.ok) return { kind: 'realised', ok: false, code: ins.error.code, message: ins.error.message };
      return { kind: 'realised', ok: true, hasAgentService: ins.value.hasAgentService, inhibitors: ins.value.inhibitors, running: await backend.running() };
    }
    case 'save-pending':
      store.savePending(effect.pending);
      return null;
    case 'clear-pending':
      store.clearPending();
      return null;
    case 'set-profile': {
      const r = await backend.setProfile(effect.closurePath);
      if (r.ok) return null;
      // The switch must not run on a profile we could not set: report it as a failed switch.
      rest.length = 0;
      return { kind: 'switched', ok: false, message: `${r.error.code}: ${r.error.message}` };
    }
    case 'switch': {
      const r = await backend.activate(effect.closurePath, effect.action);
      return r.ok ? { kind: 'switched', ok: true, message: 'ok' } : { kind: 'switched', ok: false, message: `${r.error.code}: ${r.error.message}` };
    }
    case 'run-probes': {
      const p = await deps.runProbes();
      return { kind: 'probed', ok: p.ok, failures: p.failures };
    }
    case 'confirm': {
      const c = await deps.confirm(effect.rolloutId, effect.closureHash);
      return { kind: 'confirmed', result: c.result, message: c.message };
    }
    case 'rollback': {
      const r = await backend.rollback(effect.pending);
      return r.ok ? { kind: 'rolled-back', ok: true, message: 'ok' } : { kind: 'rolled-back', ok: false, message: `${r.error.code}: ${r.error.message}` };
    }
    case 'save-quarantine':
      store.saveQuarantine(effect.quarantine);
      return null;
    case 'save-outcome':
      store.saveOutcome(effect.lastOutcome, effect.deferred);
      return null;
    case 'save-confirmed':
      deps.saveConfirmed(effect.rolloutId, effect.closureHash, effect.atMs);
      return null;
    case 'report':
      await deps.report(effect);
      return null;
  }
}
