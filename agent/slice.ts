/**
 * The agent's check of a target against its signed slice (issue 19, protocol/slice.ts), instead of
 * the whole artefact when the CP offers one (`target.slice`). It trusts nothing the CP says:
 *
 *  1. the target's shape (BAD_TARGET), as for the full artefact;
 *  2. the signed index through the same pipeline as the artefact (protocol/verify.ts kind
 *     `index`): the agent's OWN trust.json, freshness, and its OWN newest accepted index
 *     (ROLLBACK, EQUIVOCATION);
 *  3. the index names the artefact the target names (ARTIFACT_MISMATCH), and that artefact is not
 *     older than the newest fleet artefact this agent accepted (ROLLBACK; the same signedAt with
 *     another artefact: EQUIVOCATION) — the index signs the artefact's sha256 and signedAt, so a
 *     verified index also advances the newest accepted fleet state (`fleetAccepted`): a CP that
 *     later serves an older full artefact is refused as a rollback;
 *  4. the leaf is canonical, is THIS host's (SLICE_WRONG_HOST) and its audit path leads to the
 *     signed root over the signed leaf count (SLICE_BAD_PROOF; SLICE_INVALID, SLICE_NOT_CANONICAL);
 *  5. the target matches the leaf: closure, channel, rollout, wave, signedAt — the same codes as
 *     agent/target.ts uses for the full artefact.
 *
 * Pure: bytes, trust, time and state in; a result out.
 */
import type { SliceResponse, Target } from '../protocol/api.ts';
import { fromBase64 } from '../protocol/crypto.ts';
import { err, ok, type Result } from '../protocol/result.ts';
import { parseTimestamp, type Host, type Trust } from '../protocol/schema.ts';
import type { Channel } from '../protocol/fleet.ts';
import { verifySlice, type SliceErrorCode, type SliceLeaf } from '../protocol/slice.ts';
import { verifySliceIndex, type AcceptedState, type VerifiedArtifact } from '../protocol/verify.ts';
import { isStoreBasename } from '../protocol/vocab.ts';
import { checkControls, type TargetErrorCode } from './target.ts';

export type SliceTargetErrorCode = TargetErrorCode | SliceErrorCode;
export type SliceTargetError = { code: SliceTargetErrorCode; message: string; acceptedAnyway?: AcceptedState };

export type CheckedSlice = {
  /** The verified index (kind `index`): `accepted` is what the caller persists. */
  verified: VerifiedArtifact;
  /** The artefact the signed index names: the caller persists it as the newest accepted fleet. */
  fleetAccepted: AcceptedState;
  leaf: SliceLeaf;
  host: Host;
  /** The host's channel settings as signed in the slice. */
  channel: Channel | null;
  cpDeadlineMs: number;
};

export type CheckSliceInput = {
  target: Target;
  hostname: string;
  slice: SliceResponse;
  trust: Trust;
  nowMs: number;
  /** The agent's newest accepted index. */
  lastAccepted: AcceptedState | null;
  /** The agent's newest accepted fleet artefact. */
  lastAcceptedFleet: AcceptedState | null;
};

/**
 * Verify the index, the slice and the target against it. On an index verification error the
 * result carries no accepted state; on a later refusal the index itself was good, so the caller
 * may persist `acceptedAnyway` (as for the full artefact).
 */
export function checkSliceTarget(input: CheckSliceInput): Result<CheckedSlice, SliceTargetError> {
  const { target, hostname, slice } = input;
  if (!isStoreBasename(target.closureHash)) return err({ code: 'BAD_TARGET', message: `closureHash ${JSON.stringify(target.closureHash)} is not a store basename` });
  const cpDeadlineMs = parseTimestamp(target.confirmDeadline);
  if (cpDeadlineMs === null) return err({ code: 'BAD_TARGET', message: `confirmDeadline ${JSON.stringify(target.confirmDeadline)} is not RFC 3339 UTC` });

  const signature = fromBase64(slice.indexSignature);
  if (signature === null) return err({ code: 'BAD_SIGNATURE', message: 'indexSignature is not base64' });
  const v = verifySliceIndex({ bytes: new TextEncoder().encode(slice.index), signature, trust: input.trust, nowMs: input.nowMs, lastAccepted: input.lastAccepted });
  if (!v.ok) return err({ code: v.error.code, message: `slice index: ${v.error.message}` });
  const verified = v.value;
  const index = verified.index;
  const fleetAccepted: AcceptedState = { signedAt: verified.signedAt, sha256: index.artifactSha256 };
  const lf = input.lastAcceptedFleet;
  if (lf !== null && lf.sha256 !== fleetAccepted.sha256) {
    const lastMs = parseTimestamp(lf.signedAt, false);
    const signedMs = parseTimestamp(verified.signedAt, true);
    if (lastMs !== null && signedMs !== null && signedMs < lastMs) return err({ code: 'ROLLBACK', message: `slice index signed at ${verified.signedAt}, older than the already accepted artefact ${lf.signedAt}` });
    if (lastMs !== null && signedMs === lastMs) return err({ code: 'EQUIVOCATION', message: `slice index signed at ${verified.signedAt} like the already accepted artefact, but for another artefact` });
  }
  const refuse = (code: SliceTargetErrorCode, message: string) => err({ code, message, acceptedAnyway: verified.accepted });

  if (index.artifactSha256 !== target.artifactSha256) return refuse('ARTIFACT_MISMATCH', `target names artefact ${target.artifactSha256}, the signed index is of ${index.artifactSha256}`);
  const s = verifySlice({ index, slice, hostname });
  if (!s.ok) return refuse(s.error.code, s.error.message);
  const leaf = s.value;
  const host = leaf.host;
  if (host.closureHash !== target.closureHash) {
    return refuse('CLOSURE_MISMATCH', `dispatched ${target.closureHash} but the signed slice says ${host.closureHash ?? 'null'} for ${hostname}`);
  }
  if (host.channel !== target.channel || leaf.channel.name !== target.channel) {
    return refuse('CHANNEL_MISMATCH', `dispatched on channel ${target.channel}, signed channel is ${host.channel}`);
  }
  if (!target.rolloutId.startsWith(`${target.channel}@`)) return refuse('ROLLOUT_MISMATCH', `rollout ${target.rolloutId} is not of channel ${target.channel}`);
  if (!Number.isInteger(target.wave) || leaf.wave === null || leaf.wave.index !== target.wave) {
    return refuse('WAVE_MISMATCH', `${hostname} is not in wave ${target.wave} of ${host.channel} in the signed slice`);
  }
  const signedMs = parseTimestamp(target.signedAt);
  if (signedMs === null || signedMs !== parseTimestamp(verified.signedAt)) {
    return refuse('SIGNED_AT_MISMATCH', `target says signedAt ${target.signedAt}, the signed index says ${verified.signedAt}`);
  }
  // Issue 14: the signed slice carries the channel's settings: its window and the pin bind here too.
  const controls = checkControls(hostname, host, leaf.channel.settings, input.nowMs);
  if (controls !== null) return refuse(controls.code, controls.message);
  return ok({ verified, fleetAccepted, leaf, host, channel: leaf.channel.settings, cpDeadlineMs });
}
