/**
 * The state vocabularies both sides of the wire spell the same way (SPEC §4): the reconciler
 * drives them, the CP serves them, the CLI and the agent read them. Pure data, no imports.
 */

/**
 * Host state inside one rollout (SPEC §4):
 * `Queued → Dispatched → Activating → ConfirmWindow → Healthy → Soaked → Converged`,
 * side exits `Failed` and `Reverted`. `PendingReboot` (SPEC §10, issue 14): the agent activated the
 * closure for the next boot (switch-inhibitor); it holds its budget slot and runs no confirm
 * deadline until the boot, then confirms (→ Healthy) or boots back into the old system (→ Reverted).
 */
export type HostRolloutState =
  | 'Queued'
  | 'Dispatched'
  | 'Activating'
  | 'ConfirmWindow'
  | 'PendingReboot'
  | 'Healthy'
  | 'Soaked'
  | 'Converged'
  | 'Failed'
  | 'Reverted';

export const HOST_ROLLOUT_STATES: readonly HostRolloutState[] = [
  'Queued',
  'Dispatched',
  'Activating',
  'ConfirmWindow',
  'PendingReboot',
  'Healthy',
  'Soaked',
  'Converged',
  'Failed',
  'Reverted',
];

/** States that use a disruption-budget slot (SPEC §4). */
export const IN_FLIGHT_STATES: readonly HostRolloutState[] = ['Dispatched', 'Activating', 'ConfirmWindow', 'PendingReboot', 'Healthy'];
/** States that count as done for wave order and host edges (SPEC §4). */
export const DONE_STATES: readonly HostRolloutState[] = ['Soaked', 'Converged'];

/**
 * Rollout state: `Pending → Executing(wave k) → Converged`, or `Halted` (a host Failed or
 * Reverted), `Superseded` (the channel's signed target changed) or `Paused` (operator).
 */
export type RolloutState = 'Pending' | 'Executing' | 'Converged' | 'Halted' | 'Superseded' | 'Paused';

export const ROLLOUT_STATES: readonly RolloutState[] = ['Pending', 'Executing', 'Converged', 'Halted', 'Superseded', 'Paused'];
