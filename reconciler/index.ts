/**
 * The pure reconciler (SPEC §4) as a library: see reconciler/README.md.
 *
 * Pure module: no I/O.
 */
export * from './types.ts';
export { reconcile } from './reconcile.ts';
export {
  applyActions,
  applyHostEvent,
  applyHostEvents,
  hostTransition,
  findHostRollout,
  emptyObserved,
  emptyHostObservation,
  pauseChannel,
  resumeChannel,
  clearQuarantine,
} from './apply.ts';
export { simulate, isSettled, type HostBehaviour, type SimOptions, type SimResult, type SimTick } from './simulate.ts';
export { computeTargetRef, rolloutIdOf, targetRefs, budgetLimit, selectorMatches } from './fleet-index.ts';
