/**
 * Issue 14, only signed statements move a host: the statement a host signs for the last outcome in
 * its check-ins, and why the CP may refuse to act on one. Pure; re-exported by api.ts.
 */
import type { LastOutcome } from './api.ts';

/**
 * What the host signs for its last outcome (issue 14: only signed statements move a host): the
 * outcome with the host's name, so the statement stands on its own in the audit log. The check-in's
 * `lastOutcomeSignature` is base64 of the raw 64-byte Ed25519 signature by the host key over the
 * JCS bytes of `outcomeStatement(hostname, lastOutcome)`.
 */
export type OutcomeStatement = LastOutcome & { hostname: string };
export function outcomeStatement(hostname: string, lo: LastOutcome): OutcomeStatement {
  return { hostname, rolloutId: lo.rolloutId, closureHash: lo.closureHash, outcome: lo.outcome, at: lo.at };
}

/**
 * Why the CP did not act on a check-in's `lastOutcome` (the check-in itself is answered; the
 * outcome changes no state, is audited as `checkin.outcome-refused` and counted):
 * - `OUTCOME_SIGNATURE_INVALID`: signature missing or wrong while the host has a pubkey in the fleet;
 * - `OUTCOME_STALE`: well signed, but from before the host's current dispatch in that rollout (a
 *   replayed statement) or for another closure than the one dispatched.
 */
export const OUTCOME_REFUSALS = ['OUTCOME_SIGNATURE_INVALID', 'OUTCOME_STALE'] as const;
export type OutcomeRefusal = (typeof OUTCOME_REFUSALS)[number];
