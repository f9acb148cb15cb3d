/**
 * Independent verification of a target (SPEC §6): the agent trusts nothing the control plane
 * says. It verifies the signed artefact itself (the release chain's `verifyArtifact`, with the
 * agent's OWN trust.json and its OWN newest accepted signedAt), then checks that everything in the
 * dispatched target matches the signed bytes: the artefact digest, this host's `closureHash`,
 * its channel, its wave, and `signedAt`.
 *
 * Pure: bytes, trust, time and state in; a result out.
 */
import type { Target } from '../protocol/api.ts';
import { err, ok, type Result } from '../protocol/result.ts';
import { parseTimestamp, type Host } from '../protocol/schema.ts';
import type { Channel } from '../protocol/fleet.ts';
import { verifyArtifact, type AcceptedState, type VerifiedArtifact, type VerifyErrorCode } from '../protocol/verify.ts';
import type { Trust } from '../protocol/schema.ts';
import { isStoreBasename } from '../protocol/vocab.ts';
import { changeWindowAt } from '../protocol/windows.ts';

export type TargetErrorCode =
  | VerifyErrorCode
  /** The artefact's sha256 is not the one the target names. */
  | 'ARTIFACT_MISMATCH'
  /** This host is not in the signed fleet. */
  | 'UNKNOWN_HOST'
  /** The dispatched closure is not `hosts[<me>].closureHash` of the signed bytes. */
  | 'CLOSURE_MISMATCH'
  | 'CHANNEL_MISMATCH'
  | 'WAVE_MISMATCH'
  | 'SIGNED_AT_MISMATCH'
  | 'ROLLOUT_MISMATCH'
  /** The target is malformed (not a store basename, bad deadline, …). */
  | 'BAD_TARGET'
  /** Issue 14: the channel's signed change window is closed now (a rogue CP cannot bypass it). */
  | 'OUTSIDE_WINDOW'
  /** Issue 14: a signed pin holds this host until its expiresAt. */
  | 'PINNED';

export type TargetError = { code: TargetErrorCode; message: string };

/** Store basename: the shared rule (protocol/vocab.ts). */
export { STORE_BASENAME } from '../protocol/vocab.ts';

export type CheckedTarget = {
  verified: VerifiedArtifact;
  host: Host;
  /** The host's channel in the signed fleet (its rebootPolicy, change window …), null if absent. */
  channel: Channel | null;
  /** Parsed `confirmDeadline`. */
  cpDeadlineMs: number;
};

export type CheckTargetInput = {
  target: Target;
  hostname: string;
  bytes: Uint8Array;
  signature: Uint8Array;
  trust: Trust;
  nowMs: number;
  lastAccepted: AcceptedState | null;
  maxBytes?: number;
};

/**
 * Verify the artefact, then match the target against it. On a verification error the result
 * carries no `accepted` state; on a target mismatch the artefact itself was good, so the caller
 * may still persist `verified.accepted` (returned in `acceptedAnyway`).
 */
export function checkTarget(input: CheckTargetInput): Result<CheckedTarget, TargetError & { acceptedAnyway?: AcceptedState }> {
  const { target, hostname } = input;
  if (!isStoreBasename(target.closureHash)) return err({ code: 'BAD_TARGET', message: `closureHash ${JSON.stringify(target.closureHash)} is not a store basename` });
  const cpDeadlineMs = parseTimestamp(target.confirmDeadline);
  if (cpDeadlineMs === null) return err({ code: 'BAD_TARGET', message: `confirmDeadline ${JSON.stringify(target.confirmDeadline)} is not RFC 3339 UTC` });

  const v = verifyArtifact({
    kind: 'fleet',
    bytes: input.bytes,
    signature: input.signature,
    trust: input.trust,
    nowMs: input.nowMs,
    lastAccepted: input.lastAccepted,
    ...(input.maxBytes === undefined ? {} : { maxBytes: input.maxBytes }),
  });
  if (!v.ok) return err(v.error);
  const verified = v.value;
  const mismatch = (code: TargetErrorCode, message: string) => err({ code, message, acceptedAnyway: verified.accepted });
  const fleet = verified.fleet;
  if (fleet === undefined) throw new Error('bug: verifyArtifact(kind fleet) returned no fleet');

  if (verified.sha256 !== target.artifactSha256) return mismatch('ARTIFACT_MISMATCH', `target names artefact ${target.artifactSha256}, the signed bytes are ${verified.sha256}`);
  const host = fleet.hosts[hostname];
  if (host === undefined) return mismatch('UNKNOWN_HOST', `${hostname} is not in the signed fleet`);
  if (host.closureHash !== target.closureHash) {
    return mismatch('CLOSURE_MISMATCH', `dispatched ${target.closureHash} but the signed fleet says ${host.closureHash ?? 'null'} for ${hostname}`);
  }
  if (host.channel !== target.channel) return mismatch('CHANNEL_MISMATCH', `dispatched on channel ${target.channel}, signed channel is ${host.channel}`);
  if (!target.rolloutId.startsWith(`${target.channel}@`)) return mismatch('ROLLOUT_MISMATCH', `rollout ${target.rolloutId} is not of channel ${target.channel}`);
  const wave = fleet.waves[host.channel]?.[target.wave];
  if (!Number.isInteger(target.wave) || wave === undefined || !wave.hosts.includes(hostname)) {
    return mismatch('WAVE_MISMATCH', `${hostname} is not in wave ${target.wave} of ${host.channel} in the signed fleet`);
  }
  const signedMs = parseTimestamp(target.signedAt);
  if (signedMs === null || signedMs !== parseTimestamp(verified.signedAt)) {
    return mismatch('SIGNED_AT_MISMATCH', `target says signedAt ${target.signedAt}, the signed bytes say ${verified.signedAt}`);
  }
  const channel = fleet.channels[host.channel] ?? null;
  const controls = checkControls(hostname, host, channel, input.nowMs);
  if (controls !== null) return mismatch(controls.code, controls.message);
  return ok({ verified, host, channel, cpDeadlineMs });
}

/**
 * Issue 14: the signed controls bind the agent too, whatever the CP says (full artefact and signed
 * slice alike): the channel's change window must be open and no signed pin may hold the host.
 */
export function checkControls(hostname: string, host: Host, channel: Channel | null, nowMs: number): TargetError | null {
  const window = changeWindowAt(channel?.changeWindow, nowMs);
  if (!window.open) return { code: 'OUTSIDE_WINDOW', message: `channel ${host.channel}: ${window.reason}` };
  const pinUntil = host.pin === undefined ? null : host.pin.expiresAt == null ? Infinity : (parseTimestamp(host.pin.expiresAt) ?? Infinity);
  if (pinUntil !== null && nowMs < pinUntil) {
    return { code: 'PINNED', message: `${hostname} is pinned to ${host.pin!.commit} (${host.pin!.reason})${pinUntil === Infinity ? '' : ` until ${host.pin!.expiresAt}`}` };
  }
  return null;
}
