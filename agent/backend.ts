/**
 * What the agent needs from the host to activate a closure (SPEC §6). `nix.ts` is the real one
 * (Nix + switch-to-configuration / darwin `activate`); `fixtures/agent-fake-backend.ts` has an
 * in-memory one for pure unit and model-based tests only.
 */
import type { Result } from '../protocol/result.ts';
import type { Inhibitor, Pending } from './machine.ts';

export type ActivationErrorCode =
  /** Nix refused the binary-cache signature (unsigned narinfo or a key not in `cacheKeys`). */
  | 'CACHE_SIGNATURE'
  /** The closure could not be realised for another reason (not in any cache, network, …). */
  | 'REALISE_FAILED'
  | 'PROFILE_FAILED'
  | 'SWITCH_FAILED'
  | 'ROLLBACK_FAILED'
  | 'NOT_A_SYSTEM';

export type ActivationError = { code: ActivationErrorCode; message: string };

export type Inspection = {
  /** The closure contains the agent's own service (systemd unit / launchd plist). */
  hasAgentService: boolean;
  /** Components that differ from the running (booted) system: a live switch is not safe. */
  inhibitors: Inhibitor[];
};

export interface ActivationBackend {
  /** Store path of the running system, or null when unknown. */
  running(): Promise<string | null>;
  /** Make the closure valid in the local store, from the binary cache, checking its signatures. */
  realise(closurePath: string): Promise<Result<void, ActivationError>>;
  /** Agent guard + switch inhibitors, on a realised closure. */
  inspect(closurePath: string): Promise<Result<Inspection, ActivationError>>;
  /** A new profile generation pointing at the closure. */
  setProfile(closurePath: string): Promise<Result<void, ActivationError>>;
  /** `switch-to-configuration switch|boot` (NixOS) or `activate` (darwin). */
  activate(closurePath: string, action: 'switch' | 'boot'): Promise<Result<void, ActivationError>>;
  /**
   * Profile back to the previous generation, then the PREVIOUS closure's own activation
   * (`switch`, or `boot` when the record was a deferred activation). Idempotent: it may run
   * again after a crash.
   */
  rollback(pending: Pending): Promise<Result<void, ActivationError>>;
}
