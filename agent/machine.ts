/**
 * The agent's activation state machine (SPEC §6), as a pure core: `step(state, event, nowMs)`
 * returns the next state and the effects to perform, in order. The imperative shell
 * (`loop.ts`) performs the effects and feeds each effect's outcome back as the next event.
 * No I/O, no clock: `nowMs` is a parameter (STYLE §2–3), which is what lets the model-based test
 * drive it with a virtual clock.
 *
 * Magic rollback, exactly as §6:
 * - before anything touches the profile, `save-pending` persists `{closure, previous, deadline}`
 *   (the shell writes it atomically and only then performs the next effect);
 * - after the switch, probes must pass, then `confirm` (the shell uses a NEW connection) before
 *   the deadline;
 * - on 410, on a failed switch, on a failed confirm or probe past the deadline, or when the
 *   deadline passes: `rollback` (profile back to the previous generation and the PREVIOUS closure's
 *   own switch script), then the closure is quarantined (persisted, 24 h by default) and
 *   `rolled-back` is reported as a failure;
 * - after a crash or restart, `recover` decides from the persisted record: confirm if still in
 *   time and the new closure is what runs, else roll back.
 */

import type { LastOutcome as ApiLastOutcome, ReportEvent as ApiReportEvent } from '../protocol/api.ts';

/** What the control plane asked for, after the shell verified it against the signed bytes. */
export type Job = {
  rolloutId: string;
  /** Store basename, as in the signed fleet. */
  closureHash: string;
  /** `/nix/store/<closureHash>`. */
  closurePath: string;
  /** The CP's confirm deadline (ms since epoch). */
  cpDeadlineMs: number;
  /** Fleet marks the host as leaving: the agent guard does not apply. */
  leaving: boolean;
};

/** The persisted record of an activation in progress (`pending.json`). */
export type Pending = {
  rolloutId: string;
  closureHash: string;
  closurePath: string;
  /** The system that ran before (store path), null on a host with no previous system. */
  previous: string | null;
  /** Confirm before this (ms since epoch) or roll back. */
  deadlineMs: number;
  startedAtMs: number;
  /** `switch` for a live switch; `boot` when inhibitors deferred it (rollback then uses boot too). */
  action: 'switch' | 'boot';
  /**
   * `switching`: profile/switch may be half done; `switched`: the switch returned success;
   * `rolling-back`: a rollback was decided and must be completed, whatever happens next.
   */
  phase: 'switching' | 'switched' | 'rolling-back';
  /** Why the rollback was decided (phase `rolling-back`). */
  reason?: string;
};

export type QuarantineEntry = { closureHash: string; rolloutId: string; sinceMs: number; untilMs: number; reason: string };

/** The CP API's outcome vocabulary (protocol/api.ts), not restated. */
export type Outcome = ApiLastOutcome['outcome'];
export type LastOutcome = {
  rolloutId: string;
  closureHash: string;
  outcome: Outcome;
  atMs: number;
  /** For `confirmed`: the system that ran before, so a later rollback-and-halt can go back to it. */
  previous?: string | null;
  /** For `activation-deferred` (issue 14): the boot it happened in, so the next boot can be told apart. */
  bootId?: string;
};

export type Inhibitor = 'kernel' | 'initrd' | 'systemd' | 'dbus';

export type RefusalCode = 'QUARANTINED' | 'NO_AGENT_SERVICE' | 'BUSY';

export type Phase =
  | { tag: 'idle' }
  | { tag: 'realising'; job: Job }
  | { tag: 'switching'; pending: Pending }
  | { tag: 'probing'; pending: Pending }
  | { tag: 'confirming'; pending: Pending }
  /** A target that is already the running system: probes + confirm, never a rollback. */
  | { tag: 'reconfirming'; job: Job }
  | { tag: 'rolling-back'; pending: Pending };

/** Everything the agent keeps: `phase` is in memory, the rest is persisted by the shell. */
export type MachineState = {
  phase: Phase;
  quarantine: QuarantineEntry[];
  lastOutcome: LastOutcome | null;
  /** Closures deferred to the next boot (`switch-to-configuration boot` ran), by basename. */
  deferred: string | null;
};

/** The report events the machine itself emits (a subset of the API's). */
export type ReportEvent = Extract<ApiReportEvent, 'activation-started' | 'activation-switched' | 'activation-failed' | 'activation-deferred' | 'rolled-back' | 'closure-quarantined'>;

export type Effect =
  | { kind: 'realise'; closurePath: string }
  | { kind: 'save-pending'; pending: Pending }
  | { kind: 'clear-pending' }
  | { kind: 'set-profile'; closurePath: string }
  | { kind: 'switch'; closurePath: string; action: 'switch' | 'boot' }
  | { kind: 'run-probes' }
  | { kind: 'confirm'; rolloutId: string; closureHash: string }
  | { kind: 'rollback'; pending: Pending }
  | { kind: 'wait'; untilMs: number }
  | { kind: 'save-quarantine'; quarantine: QuarantineEntry[] }
  | { kind: 'save-outcome'; lastOutcome: LastOutcome; deferred: string | null }
  | { kind: 'save-confirmed'; rolloutId: string; closureHash: string; atMs: number }
  | { kind: 'report'; event: ReportEvent; rolloutId: string; closureHash: string; message: string; details?: Record<string, unknown> };

export type ConfirmResult = 'ok' | 'gone' | 'error';

export type Event =
  | { kind: 'target'; job: Job }
    /** `running`: store path of the running system now (becomes the rollback target). */
  | { kind: 'realised'; ok: true; hasAgentService: boolean; inhibitors: Inhibitor[]; running: string | null }
  | { kind: 'realised'; ok: false; code: string; message: string }
  | { kind: 'switched'; ok: boolean; message: string }
  | { kind: 'probed'; ok: boolean; failures: string[] }
  | { kind: 'confirmed'; result: ConfirmResult; message: string }
  | { kind: 'rolled-back'; ok: boolean; message: string }
  /** Time passed (after a `wait`, or a poll). */
  | { kind: 'tick' };

export type Step = { state: MachineState; effects: Effect[]; refused?: { code: RefusalCode; message: string } };

export type MachineConfig = {
  confirmDeadlineSecs: number;
  quarantineHours: number;
  /** Pause between two probe / confirm attempts inside the confirm window. */
  retryIntervalSecs: number;
  /** The boot this agent runs in (`/proc/sys/kernel/random/boot_id`); recorded with a deferral (issue 14). */
  bootId?: string;
};

export const INITIAL_STATE: MachineState = Object.freeze({ phase: { tag: 'idle' }, quarantine: [], lastOutcome: null, deferred: null }) as MachineState;

/** True while a non-expired quarantine entry exists for this closure. */
export function isQuarantined(state: MachineState, closureHash: string, nowMs: number): boolean {
  return state.quarantine.some((q) => q.closureHash === closureHash && q.untilMs > nowMs);
}

/** Drops expired quarantine entries. */
export function pruneQuarantine(q: QuarantineEntry[], nowMs: number): QuarantineEntry[] {
  return q.filter((e) => e.untilMs > nowMs);
}

/** The deadline for a switch that starts now: the CP's, capped by our own window. */
export function deadlineFor(job: Job, nowMs: number, cfg: MachineConfig): number {
  return Math.min(job.cpDeadlineMs, nowMs + cfg.confirmDeadlineSecs * 1000);
}

function outcome(
  state: MachineState,
  rolloutId: string,
  closureHash: string,
  o: Outcome,
  nowMs: number,
  deferred: string | null = state.deferred,
  previous?: string | null,
): { state: MachineState; effect: Effect } {
  const lastOutcome: LastOutcome = { rolloutId, closureHash, outcome: o, atMs: nowMs };
  if (previous !== undefined) lastOutcome.previous = previous;
  return { state: { ...state, lastOutcome, deferred }, effect: { kind: 'save-outcome', lastOutcome, deferred } };
}

function startRollback(state: MachineState, pending: Pending, reason: string): Step {
  const p: Pending = { ...pending, phase: 'rolling-back', reason };
  return { state: { ...state, phase: { tag: 'rolling-back', pending: p } }, effects: [{ kind: 'save-pending', pending: p }, { kind: 'rollback', pending: p }] };
}

function idle(state: MachineState): MachineState {
  return { ...state, phase: { tag: 'idle' } };
}

/**
 * One transition. Events that do not fit the current phase leave the state unchanged with no
 * effects (the shell only sends the event of the effect it just ran, so this is a guard, not a
 * path the shell takes).
 */
export function step(state: MachineState, event: Event, nowMs: number, cfg: MachineConfig): Step {
  const phase = state.phase;
  const none: Step = { state, effects: [] };
  switch (event.kind) {
    case 'target': {
      const job = event.job;
      if (phase.tag !== 'idle') return { ...none, refused: { code: 'BUSY', message: `busy (${phase.tag})` } };
      if (isQuarantined(state, job.closureHash, nowMs)) {
        const q = state.quarantine.find((e) => e.closureHash === job.closureHash && e.untilMs > nowMs)!;
        return {
          state,
          effects: [
            {
              kind: 'report',
              event: 'closure-quarantined',
              rolloutId: job.rolloutId,
              closureHash: job.closureHash,
              message: `closure failed here at ${new Date(q.sinceMs).toISOString()} and is quarantined until ${new Date(q.untilMs).toISOString()}`,
              details: { code: 'QUARANTINED', reason: q.reason },
            },
          ],
          refused: { code: 'QUARANTINED', message: 'closure is quarantined on this host' },
        };
      }
      if (state.deferred === job.closureHash) return none; // already set for the next boot
      return { state: { ...state, phase: { tag: 'realising', job } }, effects: [{ kind: 'realise', closurePath: job.closurePath }] };
    }

    case 'realised': {
      if (phase.tag !== 'realising') return none;
      const job = phase.job;
      if (!event.ok) {
        const o = outcome(idle(state), job.rolloutId, job.closureHash, 'activation-failed', nowMs);
        return {
          state: o.state,
          effects: [
            { kind: 'report', event: 'activation-failed', rolloutId: job.rolloutId, closureHash: job.closureHash, message: event.message, details: { code: event.code } },
            o.effect,
          ],
        };
      }
      if (!event.hasAgentService && !job.leaving) {
        const o = outcome(idle(state), job.rolloutId, job.closureHash, 'refused', nowMs);
        return {
          state: o.state,
          effects: [
            {
              kind: 'report',
              event: 'activation-failed',
              rolloutId: job.rolloutId,
              closureHash: job.closureHash,
              message: 'closure does not contain the nixfleet agent service; activating it would cut this host off',
              details: { code: 'NO_AGENT_SERVICE' },
            },
            o.effect,
          ],
          refused: { code: 'NO_AGENT_SERVICE', message: 'closure lacks the agent service' },
        };
      }
      return beginSwitch(state, job, event.inhibitors, event.running, nowMs, cfg);
    }

    case 'switched': {
      if (phase.tag !== 'switching') return none;
      const p = phase.pending;
      if (!event.ok) return startRollback(state, p, `switch-to-configuration ${p.action} failed: ${event.message}`);
      if (p.action === 'boot') {
        // Deferred to the next boot: nothing runs yet, so there is nothing to confirm or roll back.
        const o = outcome(idle(state), p.rolloutId, p.closureHash, 'activation-deferred', nowMs, p.closureHash);
        if (cfg.bootId !== undefined) o.state.lastOutcome!.bootId = cfg.bootId; // the same object as the effect's
        return {
          state: o.state,
          // The deferral is persisted before the record goes: `recover` then knows it completed.
          effects: [
            o.effect,
            { kind: 'clear-pending' },
            {
              kind: 'report',
              event: 'activation-deferred',
              rolloutId: p.rolloutId,
              closureHash: p.closureHash,
              message: 'kernel, initrd, systemd or dbus differ from the running system: switch-to-configuration boot ran; pending reboot',
            },
          ],
        };
      }
      const next: Pending = { ...p, phase: 'switched' };
      if (nowMs >= next.deadlineMs) return startRollback(state, next, 'confirm deadline passed during the switch');
      return {
        state: { ...state, phase: { tag: 'probing', pending: next } },
        effects: [
          { kind: 'save-pending', pending: next },
          { kind: 'report', event: 'activation-switched', rolloutId: p.rolloutId, closureHash: p.closureHash, message: 'switched; confirm window open', details: { deadline: new Date(p.deadlineMs).toISOString() } },
          { kind: 'run-probes' },
        ],
      };
    }

    case 'probed': {
      if (phase.tag === 'reconfirming') {
        if (!event.ok) return { state: idle(state), effects: [] };
        return { state, effects: [{ kind: 'confirm', rolloutId: phase.job.rolloutId, closureHash: phase.job.closureHash }] };
      }
      if (phase.tag !== 'probing') return none;
      const p = phase.pending;
      if (event.ok) return { state: { ...state, phase: { tag: 'confirming', pending: p } }, effects: [{ kind: 'confirm', rolloutId: p.rolloutId, closureHash: p.closureHash }] };
      if (nowMs >= p.deadlineMs) return startRollback(state, p, `probes still failing at the deadline: ${event.failures.join('; ')}`);
      return { state, effects: [{ kind: 'wait', untilMs: Math.min(p.deadlineMs, nowMs + cfg.retryIntervalSecs * 1000) }] };
    }

    case 'confirmed': {
      if (phase.tag === 'reconfirming') {
        const j = phase.job;
        if (event.result !== 'ok') return { state: idle(state), effects: [] };
        const o = outcome(idle(state), j.rolloutId, j.closureHash, 'confirmed', nowMs, state.deferred === j.closureHash ? null : state.deferred);
        return { state: o.state, effects: [{ kind: 'save-confirmed', rolloutId: j.rolloutId, closureHash: j.closureHash, atMs: nowMs }, o.effect] };
      }
      if (phase.tag !== 'confirming') return none;
      const p = phase.pending;
      if (event.result === 'ok' && nowMs < p.deadlineMs) {
        const o = outcome(idle(state), p.rolloutId, p.closureHash, 'confirmed', nowMs, null, p.previous);
        return {
          state: o.state,
          effects: [{ kind: 'save-confirmed', rolloutId: p.rolloutId, closureHash: p.closureHash, atMs: nowMs }, { kind: 'clear-pending' }, o.effect],
        };
      }
      if (event.result === 'ok') return startRollback(state, p, 'confirm answered after the deadline');
      if (event.result === 'gone') return startRollback(state, p, `control plane refused the confirm (410): ${event.message}`);
      if (nowMs >= p.deadlineMs) return startRollback(state, p, `no confirm before the deadline: ${event.message}`);
      return {
        state: { ...state, phase: { tag: 'probing', pending: p } },
        effects: [{ kind: 'wait', untilMs: Math.min(p.deadlineMs, nowMs + cfg.retryIntervalSecs * 1000) }],
      };
    }

    case 'rolled-back': {
      if (phase.tag !== 'rolling-back') return none;
      const p = phase.pending;
      if (!event.ok) {
        // Keep the record: the rollback is retried (the shell waits, then ticks) until it works.
        return { state, effects: [{ kind: 'wait', untilMs: nowMs + cfg.retryIntervalSecs * 1000 }] };
      }
      const entry: QuarantineEntry = {
        closureHash: p.closureHash,
        rolloutId: p.rolloutId,
        sinceMs: nowMs,
        untilMs: nowMs + cfg.quarantineHours * 3600_000,
        reason: p.reason ?? 'rolled back',
      };
      const quarantine = [...pruneQuarantine(state.quarantine, nowMs).filter((q) => q.closureHash !== p.closureHash), entry];
      const o = outcome({ ...idle(state), quarantine }, p.rolloutId, p.closureHash, 'rolled-back', nowMs, null);
      return {
        state: o.state,
        effects: [
          { kind: 'save-quarantine', quarantine },
          { kind: 'clear-pending' },
          {
            kind: 'report',
            event: 'rolled-back',
            rolloutId: p.rolloutId,
            closureHash: p.closureHash,
            message: `rolled back to ${p.previous ?? '(no previous system)'}: ${p.reason ?? ''}`,
            details: { code: 'ROLLED_BACK', previous: p.previous, reason: p.reason ?? null },
          },
          o.effect,
        ],
      };
    }

    case 'tick': {
      switch (phase.tag) {
        case 'probing':
          if (nowMs >= phase.pending.deadlineMs) return startRollback(state, phase.pending, 'confirm deadline passed');
          return { state, effects: [{ kind: 'run-probes' }] };
        case 'confirming':
          if (nowMs >= phase.pending.deadlineMs) return startRollback(state, phase.pending, 'confirm deadline passed');
          return { state, effects: [{ kind: 'confirm', rolloutId: phase.pending.rolloutId, closureHash: phase.pending.closureHash }] };
        case 'switching':
          // The switch is still running (it is awaited): nothing to do until it returns.
          return none;
        case 'rolling-back':
          return { state, effects: [{ kind: 'rollback', pending: phase.pending }] };
        default:
          return none;
      }
    }
  }
}

function beginSwitch(state: MachineState, job: Job, inhibitors: Inhibitor[], running: string | null, nowMs: number, cfg: MachineConfig): Step {
  const action = inhibitors.length > 0 ? 'boot' : 'switch';
  const pending: Pending = {
    rolloutId: job.rolloutId,
    closureHash: job.closureHash,
    closurePath: job.closurePath,
    previous: running,
    deadlineMs: deadlineFor(job, nowMs, cfg),
    startedAtMs: nowMs,
    action,
    phase: 'switching',
  };
  return {
    state: { ...state, phase: { tag: 'switching', pending } },
    effects: [
      { kind: 'save-pending', pending },
      {
        kind: 'report',
        event: 'activation-started',
        rolloutId: job.rolloutId,
        closureHash: job.closureHash,
        message: action === 'boot' ? `switch inhibited by ${inhibitors.join(', ')}: activating for the next boot` : 'switching',
        details: { action, inhibitors },
      },
      { kind: 'set-profile', closurePath: job.closurePath },
      { kind: 'switch', closurePath: job.closurePath, action },
    ],
  };
}

/**
 * After a start (crash, reboot, restart): the persisted record decides (§6). `running` is the store
 * path of the running system (null if unknown).
 */
export function recover(
  persisted: Omit<MachineState, 'phase'>,
  pending: Pending | null,
  running: string | null,
  nowMs: number,
  lastConfirmed: { rolloutId: string; closureHash: string; confirmedAt: string } | null,
): Step {
  const base: MachineState = { ...persisted, phase: { tag: 'idle' } };
  if (pending === null) return { state: base, effects: [] };
  // Only a confirm of THIS activation counts (the same rollout and closure may have been confirmed,
  // rolled back and dispatched again before).
  const confirmedThis =
    lastConfirmed !== null &&
    lastConfirmed.rolloutId === pending.rolloutId &&
    lastConfirmed.closureHash === pending.closureHash &&
    Date.parse(lastConfirmed.confirmedAt) >= pending.startedAtMs;
  if (pending.phase !== 'rolling-back' && confirmedThis) {
    // Killed after the CP accepted the confirm and its record was saved: finish the bookkeeping.
    const lastOutcome: LastOutcome = { rolloutId: pending.rolloutId, closureHash: pending.closureHash, outcome: 'confirmed', atMs: nowMs, previous: pending.previous };
    return { state: { ...base, lastOutcome, deferred: null }, effects: [{ kind: 'clear-pending' }, { kind: 'save-outcome', lastOutcome, deferred: null }] };
  }
  if (pending.phase === 'rolling-back') return startRollback(base, pending, pending.reason ?? 'rollback interrupted');
  if (pending.action === 'boot') {
    // Killed after the deferral was recorded: it completed, only the record is left to drop.
    if (persisted.deferred === pending.closureHash) return { state: base, effects: [{ kind: 'clear-pending' }] };
    // Killed while preparing the next boot: nothing runs yet, so restore the boot entry.
    return startRollback(base, pending, 'interrupted while activating for the next boot');
  }
  if (nowMs >= pending.deadlineMs) return startRollback(base, pending, 'agent restarted after the confirm deadline');
  if (running !== pending.closurePath) return startRollback(base, pending, `agent restarted mid-activation and ${running ?? 'an unknown system'} runs instead of the new closure`);
  const next: Pending = { ...pending, phase: 'switched' };
  return { state: { ...base, phase: { tag: 'probing', pending: next } }, effects: [{ kind: 'save-pending', pending: next }, { kind: 'run-probes' }] };
}

/** A target that already runs here (e.g. after a CP wipe, or after the reboot of a deferred
 * activation): probe and confirm it, never roll it back. */
export function reconfirm(state: MachineState, job: Job): Step {
  if (state.phase.tag !== 'idle') return { state, effects: [] };
  return { state: { ...state, phase: { tag: 'reconfirming', job } }, effects: [{ kind: 'run-probes' }] };
}

/**
 * Issue 14: the host booted again after an activation deferred to the next boot, but runs another
 * system than the deferred closure (the boot loader fell back, someone picked the old generation):
 * the deferral failed. Put the boot entry back on what runs (a rollback with `boot`), quarantine
 * the closure and report `rolled-back`, so that the CP marks the host Reverted. Nothing while the
 * boot is the one the deferral happened in, or when the deferral's boot is unknown.
 */
export function afterBoot(state: MachineState, bootId: string, running: string | null, nowMs: number): Step {
  const lo = state.lastOutcome;
  const d = state.deferred;
  const none: Step = { state, effects: [] };
  if (state.phase.tag !== 'idle' || d === null || running === null || lo === null) return none;
  if (lo.outcome !== 'activation-deferred' || lo.closureHash !== d || lo.bootId === undefined || lo.bootId === bootId) return none;
  const closurePath = `/nix/store/${d}`;
  if (running === closurePath) return none; // booted into it: the target is confirmed through `reconfirm`
  const pending: Pending = { rolloutId: lo.rolloutId, closureHash: d, closurePath, previous: running, deadlineMs: nowMs, startedAtMs: nowMs, action: 'boot', phase: 'rolling-back' };
  return startRollback(state, pending, `booted back into ${running} instead of the deferred ${closurePath}`);
}

/** Whether the machine is in the middle of an activation whose record is persisted. */
export function hasPending(state: MachineState): boolean {
  const t = state.phase.tag;
  return t === 'switching' || t === 'probing' || t === 'confirming' || t === 'rolling-back';
}

/**
 * The CP's rollback-and-halt instruction (protocol/api.ts `RollbackInstruction`): undo a
 * confirmed activation of exactly that rollout and closure, back to the system that ran before it.
 * Anything else (another closure runs, unknown previous) is ignored: the CP can stop a deployment,
 * never pick what runs.
 */
export function instructedRollback(state: MachineState, instr: { rolloutId: string; closureHash: string; reason: string }, running: string | null, nowMs: number): Step {
  const lo = state.lastOutcome;
  const closurePath = `/nix/store/${instr.closureHash}`;
  if (state.phase.tag !== 'idle' || lo === null || lo.outcome !== 'confirmed') return { state, effects: [] };
  if (lo.rolloutId !== instr.rolloutId || lo.closureHash !== instr.closureHash || running !== closurePath) return { state, effects: [] };
  if (lo.previous === undefined || lo.previous === null) return { state, effects: [] };
  const pending: Pending = {
    rolloutId: instr.rolloutId,
    closureHash: instr.closureHash,
    closurePath,
    previous: lo.previous,
    deadlineMs: nowMs,
    startedAtMs: nowMs,
    action: 'switch',
    phase: 'rolling-back',
  };
  return startRollback(state, pending, `control plane asked for a rollback: ${instr.reason}`);
}
