/**
 * Types of the pure reconciler (SPEC §4): what the control plane observed (`Observed`), the
 * decisions the reconciler returns (`Action`) and what an agent tells the control plane
 * (`HostEvent`). Fleet types come from `protocol/schema.ts` and are never restated here.
 *
 * Contract: these types are shared with the control plane, the CLI and the simulator. Changes are
 * additive only. Every timestamp is milliseconds since the Unix epoch (`…Ms`).
 *
 * Pure module: no I/O.
 */

export {
  DONE_STATES,
  HOST_ROLLOUT_STATES,
  IN_FLIGHT_STATES,
  ROLLOUT_STATES,
  type HostRolloutState,
  type RolloutState,
} from '../protocol/states.ts';
import type { HostRolloutState, RolloutState } from '../protocol/states.ts';

/** Why a host was skipped this tick (first blocking per-host gate wins). */
export type SkipCode =
  | 'quarantined' // its target closure is quarantined on its channel
  | 'offline' // no check-in for offlineAfterMs; still blocks its wave
  | 'skipped-offline' // offline past the grace: no longer blocks its wave, gets the target on return
  | 'host-edge' // a gating host of the same channel is not Soaked/Converged yet
  | 'compliance' // enforce mode: open compliance failures in earlier waves
  | 'pinned'; // a signed pin holds the host on what it runs until its expiresAt (issue 14)

/** Why a wave cannot move this tick (aggregated over hosts, one action per rollout and cause). */
export type WaveBlockCode = 'budget' | 'host-edge-deadlock' | 'change-window';

/** The gates of SPEC §4, in their order (first block wins); `online` is ours, between wave order and host edges. */
export type GateName = 'pin' | 'quarantine' | 'channel-edge' | 'wave-order' | 'online' | 'host-edge' | 'budget' | 'compliance';

/**
 * Why a gate holds a host back this tick, with its readable reason. A block that carries a `code`
 * is reported as a (debounced) `skip_host`; `budget` blocks are summed into one `wave_blocked`
 * per rollout and budget; `wave-order` and `channel-edge` blocks are not reported per host (it is
 * not the host's turn; a deferred rollout reports `rollout_deferred` once).
 */
export type GateBlock =
  | { readonly gate: 'pin'; readonly code: 'pinned'; readonly reason: string }
  | { readonly gate: 'quarantine'; readonly code: 'quarantined'; readonly reason: string }
  | { readonly gate: 'channel-edge'; readonly gatedBy: string; readonly reason: string }
  | { readonly gate: 'wave-order'; readonly wave: number; readonly reason: string }
  | { readonly gate: 'online'; readonly code: 'offline' | 'skipped-offline'; readonly reason: string }
  /** `deadlock`: the gating host is in a later wave (reported once per tick as `host-edge-deadlock`). */
  | { readonly gate: 'host-edge'; readonly code: 'host-edge'; readonly gatingHost: string; readonly deadlock: string | null; readonly reason: string }
  /** `budget`: index into `fleet.disruptionBudgets`. */
  | { readonly gate: 'budget'; readonly budget: number; readonly reason: string }
  | { readonly gate: 'compliance'; readonly code: 'compliance'; readonly reason: string };

/** One recorded transition: what `nixfleet rollout trace` shows. `host` null = rollout-level. */
export type Transition = {
  atMs: number;
  host: string | null;
  from: HostRolloutState | RolloutState | null;
  to: HostRolloutState | RolloutState;
  wave: number;
  reason: string;
};

export type SkipInfo = { code: SkipCode; reason: string; sinceMs: number };

/** A host inside one rollout. `closure` is the signed target (`fleet.hosts[h].closureHash`). */
export type RolloutHost = {
  state: HostRolloutState;
  /** When the host entered `state` (Healthy's `enteredAtMs` starts the soak clock). */
  enteredAtMs: number;
  closure: string;
  /** Index into `fleet.waves[channel]` (hosts no wave selects get an implicit last wave). */
  wave: number;
  /** Last skip reason recorded for this host (null when not skipped). */
  skip: SkipInfo | null;
  /** `rollback_host` was issued for this host (rollback-and-halt). */
  rollbackRequested: boolean;
};

export type Rollout = {
  /** `<channel>@<targetRef>`. */
  id: string;
  channel: string;
  targetRef: string;
  state: RolloutState;
  /** Index of the wave being executed (0 while Pending). */
  currentWave: number;
  /** Number of waves of this rollout (≥ 1). */
  waveCount: number;
  openedAtMs: number;
  /** When it first left Pending (null while Pending / paused before starting). */
  startedAtMs: number | null;
  /** Reason of the last rollout-level transition. */
  stateReason: string;
  hosts: Record<string, RolloutHost>;
  /** Every transition, in the order applied. */
  history: Transition[];
};

/**
 * Issue 14 state of one rollout, kept beside the rollout records (`Observed.controls`) so that the
 * rollout rows stay as they are: the reported stall, the change-window hold (both debounce their
 * actions) and the hosts the operator released from ordering.
 */
export type RolloutControls = {
  /** Reported stall (absent / null = not stalled). */
  stall?: StallInfo | null;
  /** Why the change window holds the rollout (absent / null = not held). */
  windowHold?: string | null;
  /** Hosts the operator released from ordering (host edges, wave order) for this rollout. */
  released?: Record<string, ReleaseInfo>;
  /** Operators (certificate CN) who approved the rollout (`requireApprovals`; absent = none). */
  approvals?: Record<string, { atMs: number }>;
  /**
   * When a wave was last promoted (absent: never since the start). Progress for the stall clock
   * that no host transition stamps: a wave whose last hosts were passed over for being offline
   * past the grace promotes without any host changing state.
   */
  promotedAtMs?: number;
};

/** A rollout that made no progress past its channel's progress deadline (issue 14). */
export type StallInfo = {
  sinceMs: number;
  /** The gate (or in-flight host state) that holds the first blocking host. */
  gate: string;
  /** Hosts that block the current wave, sorted (at most 20). */
  hosts: string[];
  reason: string;
};

export type ReleaseInfo = { atMs: number; reason: string; by: string | null };

/** A host that runs something other than what its channel's converged rollout gave it (issue 14). */
export type DriftInfo = { sinceMs: number; channel: string; rolloutId: string; expected: string; actual: string };

export type HostProbes = {
  /** At least one probe result has been received since the last activation. */
  observed: boolean;
  /** Every probe passed in the last report. */
  passing: boolean;
};

/** What the control plane knows of one host from its check-ins (not per rollout). */
export type HostObservation = {
  /** Null: never checked in (since the CP started from empty). */
  lastCheckinMs: number | null;
  /** Store basename the host runs now, as reported. */
  currentClosure: string | null;
  probes: HostProbes;
  /** Names of failed systemd units (healthGate.systemdFailedUnits.max is compared with the count). */
  failedUnits: string[];
  bootId: string | null;
  /** Open compliance failures (control ids); absent = none reported. Used in `enforce` mode. */
  complianceFailures?: string[];
};

export type PauseInfo = { sinceMs: number; reason: string };

export type Deferral = { rolloutId: string; reason: string; sinceMs: number };

/** Everything the reconciler reads besides the signed fleet. Plain JSON-able data. */
export type Observed = {
  hosts: Record<string, HostObservation>;
  /** Every rollout known, by id (old Converged / Superseded ones may be pruned by the caller). */
  rollouts: Record<string, Rollout>;
  /** channel → quarantined closures (store basenames). */
  quarantinedClosures: Record<string, string[]>;
  /** channel → pause (operator). A paused channel dispatches nothing. */
  pausedChannels: Record<string, PauseInfo>;
  /** channel → targetRef of the last rollout that converged. */
  lastConverged: Record<string, string>;
  /** channel → the current deferral (debounces `rollout_deferred`). */
  deferrals: Record<string, Deferral>;
  /** host → drift (issue 14; absent = none). */
  drifted?: Record<string, DriftInfo>;
  /** rolloutId → its issue-14 controls (absent = none). */
  controls?: Record<string, RolloutControls>;
  /** Optional trust-root rotation schedule: when `successorRetireAtMs` has passed, `rotate_trust_root`. */
  trust?: { successorRetireAtMs: number | null };
};

/** Tunables of `reconcile` (SPEC §4 offline hosts). */
export type ReconcileOptions = {
  /** No check-in for this long = offline (default 180 s = 3 × the 60 s poll interval). */
  offlineAfterMs: number;
  /** After being offline this long a host no longer blocks its wave (default 30 min). */
  offlineGraceMs: number;
};

export const DEFAULT_RECONCILE_OPTIONS: Readonly<ReconcileOptions> = Object.freeze({
  offlineAfterMs: 180_000,
  offlineGraceMs: 30 * 60_000,
});

/** A host of a rollout being opened, as carried by `open_rollout`. */
export type RolloutMember = { host: string; closure: string; wave: number };

/**
 * Decisions of one tick, as plain data (SPEC §4). Every action has a human-readable `reason`.
 * `applyActions` applies them; the control plane additionally performs the side effects
 * (serve the target on the next check-in, answer 410 to a cancelled confirm, audit, metrics).
 *
 * Kinds beyond the SPEC §4 list (additive): `fail_host` (health gate failed after the soak),
 * `pause_rollout` / `resume_rollout` (mirror the operator's channel pause into the rollout state).
 */
export type Action =
  | {
      kind: 'open_rollout';
      rolloutId: string;
      channel: string;
      targetRef: string;
      waveCount: number;
      /** Sorted by host name. */
      hosts: RolloutMember[];
      reason: string;
    }
  | { kind: 'dispatch_host'; rolloutId: string; channel: string; host: string; closure: string; wave: number; reason: string }
  | {
      kind: 'promote_wave';
      rolloutId: string;
      channel: string;
      /** null = the rollout starts (Pending → Executing at wave 0). */
      fromWave: number | null;
      toWave: number;
      reason: string;
    }
  | { kind: 'soak_host'; rolloutId: string; host: string; reason: string }
  | { kind: 'converge_rollout'; rolloutId: string; channel: string; targetRef: string; reason: string }
  | { kind: 'halt_rollout'; rolloutId: string; channel: string; hosts: string[]; reason: string }
  | { kind: 'rollback_host'; rolloutId: string; host: string; closure: string; reason: string }
  | { kind: 'supersede_rollout'; rolloutId: string; channel: string; byTargetRef: string | null; reason: string }
  | { kind: 'skip_host'; rolloutId: string; host: string; code: SkipCode; reason: string; withdrawn?: true }
  | { kind: 'wave_blocked'; rolloutId: string; wave: number; code: WaveBlockCode; hosts: number; reason: string }
  | { kind: 'rollout_deferred'; rolloutId: string; channel: string; gatedBy: string; reason: string }
  | { kind: 'quarantine_closure'; channel: string; closure: string; host: string; reason: string }
  | { kind: 'rotate_trust_root'; reason: string }
  | { kind: 'fail_host'; rolloutId: string; host: string; reason: string }
  | { kind: 'pause_rollout'; rolloutId: string; channel: string; reason: string }
  | { kind: 'resume_rollout'; rolloutId: string; channel: string; reason: string }
  // Issue 14 (SPEC §10): stalls, drift, change windows.
  | { kind: 'rollout_stalled'; rolloutId: string; channel: string; gate: string; hosts: string[]; reason: string }
  | { kind: 'rollout_unstalled'; rolloutId: string; channel: string; reason: string }
  | { kind: 'host_drifted'; rolloutId: string; channel: string; host: string; expected: string; actual: string; reason: string }
  | { kind: 'drift_cleared'; channel: string; host: string; reason: string }
  /** onDrift = redeploy: the host goes back to Queued in its converged rollout; dispatch then passes the usual gates. */
  | { kind: 'redeploy_host'; rolloutId: string; channel: string; host: string; closure: string; reason: string }
  /** The change window closed (`held`) or opened again for this rollout; debounced on `RolloutControls.windowHold`. */
  | { kind: 'window_hold'; rolloutId: string; channel: string; held: boolean; reason: string };

export type ActionKind = Action['kind'];

/**
 * What an agent check-in, confirm or report tells the control plane. `rolloutId` names the
 * rollout the agent acts for (the target it was handed); when absent, the newest rollout that
 * holds the host and is not Superseded is used.
 */
export type HostEvent =
  /** Plain check-in: refreshes the observation (and counts as a sign of life). */
  | {
      kind: 'checkin';
      currentClosure: string | null;
      bootId?: string | null;
      probes?: HostProbes;
      failedUnits?: string[];
      complianceFailures?: string[];
    }
  /** The agent fetched the target and started realising / switching. Dispatched → Activating. */
  | { kind: 'activating'; rolloutId?: string }
  /** The agent activated the closure for the next boot (switch-inhibitor). → PendingReboot (no confirm deadline). */
  | { kind: 'deferred'; rolloutId?: string }
  /** The switch ran; the confirm clock runs. → ConfirmWindow. */
  | { kind: 'switched'; rolloutId?: string }
  /**
   * The agent confirmed within the deadline. → Healthy (starts the soak clock). `currentClosure`:
   * the closure it confirmed, which it runs now (the observation records it at once, not at the
   * next check-in).
   */
  | { kind: 'confirmed'; rolloutId?: string; currentClosure?: string }
  /** Activation failed (or the host reports a health failure). → Failed. */
  | { kind: 'failed'; rolloutId?: string; reason: string }
  /** The agent rolled itself back (magic rollback). → Reverted. */
  | { kind: 'rolled-back'; rolloutId?: string; reason: string }
  /** The CP's confirm deadline passed without a confirm. → Reverted. */
  | { kind: 'deadline-expired'; rolloutId?: string }
  /** Probe results (from a check-in or a report). */
  | { kind: 'probes'; probes: HostProbes; failedUnits?: string[]; complianceFailures?: string[] };

export type HostEventKind = HostEvent['kind'];
