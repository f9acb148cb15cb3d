/**
 * In-memory activation backend and state store, for pure unit tests and the model-based test of
 * the activation machine ONLY. The real backend is `nix.ts`.
 *
 * `hook(call)` runs before every call; tests use it to advance a virtual clock or to "kill -9"
 * the agent at a chosen point (by throwing `Crash`).
 */
import type { SignedConfirmedRecord } from '../control-plane/api.ts';
import { err, ok, type Result } from '../release/result.ts';
import type { AcceptedState } from '../release/verify.ts';
import type { ActivationBackend, ActivationError, Inspection } from './backend.ts';
import type { Inhibitor, LastOutcome, Pending, QuarantineEntry } from './machine.ts';
import type { StateStore } from './state.ts';

/** Thrown by a test hook to simulate the agent being killed at that point. */
export class Crash extends Error {
  constructor(at: string) {
    super(`simulated crash at ${at}`);
  }
}

export type FakeCall = 'running' | 'realise' | 'inspect' | 'setProfile' | 'activate' | 'rollback' | 'store';

export class FakeBackend implements ActivationBackend {
  runningPath: string | null;
  profile: string[] = [];
  /** Every activation that ran: `<closure> <action>` (the toy switch log). */
  activations: string[] = [];
  realiseError: ActivationError | null = null;
  switchMode: 'ok' | 'fail' | 'fail-after-activating' = 'ok';
  rollbackFails = false;
  withoutAgent = new Set<string>();
  /** Closures whose kernel etc. differ from the running system. */
  inhibitorsOf = new Map<string, Inhibitor[]>();
  hook: (call: FakeCall) => void = () => {};

  constructor(running: string | null) {
    this.runningPath = running;
    if (running !== null) this.profile.push(running);
  }

  get profileCurrent(): string | null {
    return this.profile[this.profile.length - 1] ?? null;
  }

  async running(): Promise<string | null> {
    this.hook('running');
    return this.runningPath;
  }
  async realise(_closurePath: string): Promise<Result<void, ActivationError>> {
    this.hook('realise');
    return this.realiseError === null ? ok(undefined) : err(this.realiseError);
  }
  async inspect(closurePath: string): Promise<Result<Inspection, ActivationError>> {
    this.hook('inspect');
    return ok({ hasAgentService: !this.withoutAgent.has(closurePath), inhibitors: this.inhibitorsOf.get(closurePath) ?? [] });
  }
  async setProfile(closurePath: string): Promise<Result<void, ActivationError>> {
    this.hook('setProfile');
    this.profile.push(closurePath);
    return ok(undefined);
  }
  async activate(closurePath: string, action: 'switch' | 'boot'): Promise<Result<void, ActivationError>> {
    this.hook('activate');
    this.activations.push(`${closurePath} ${action}`);
    if (this.switchMode === 'fail') return err({ code: 'SWITCH_FAILED', message: 'toy switch failed' });
    if (action === 'switch') this.runningPath = closurePath;
    if (this.switchMode === 'fail-after-activating') return err({ code: 'SWITCH_FAILED', message: 'toy switch failed half-way' });
    return ok(undefined);
  }
  async rollback(p: Pending): Promise<Result<void, ActivationError>> {
    this.hook('rollback');
    if (this.rollbackFails) return err({ code: 'ROLLBACK_FAILED', message: 'toy rollback failed' });
    if (p.previous === null) return ok(undefined);
    if (this.profileCurrent !== p.previous) this.profile.push(p.previous);
    this.activations.push(`${p.previous} ${p.action}`);
    if (p.action === 'switch') this.runningPath = p.previous;
    return ok(undefined);
  }
}

/** `StateStore` in memory; `hook('store')` runs before every write. */
export class MemoryStore implements StateStore {
  pending: Pending | null = null;
  quarantine: QuarantineEntry[] = [];
  outcome: { lastOutcome: LastOutcome | null; deferred: string | null } = { lastOutcome: null, deferred: null };
  confirmed: SignedConfirmedRecord | null = null;
  accepted: Partial<Record<'fleet' | 'revocations', AcceptedState>> = {};
  artifacts = new Map<string, { bytes: Uint8Array; signature: Uint8Array }>();
  hook: (call: FakeCall) => void = () => {};

  loadPending(): Pending | null {
    return this.pending;
  }
  savePending(p: Pending): void {
    this.hook('store');
    this.pending = structuredClone(p);
  }
  clearPending(): void {
    this.hook('store');
    this.pending = null;
  }
  loadQuarantine(): QuarantineEntry[] {
    return structuredClone(this.quarantine);
  }
  saveQuarantine(q: QuarantineEntry[]): void {
    this.hook('store');
    this.quarantine = structuredClone(q);
  }
  loadOutcome(): { lastOutcome: LastOutcome | null; deferred: string | null } {
    return structuredClone(this.outcome);
  }
  saveOutcome(lastOutcome: LastOutcome, deferred: string | null): void {
    this.hook('store');
    this.outcome = { lastOutcome: { ...lastOutcome }, deferred };
  }
  loadConfirmed(): SignedConfirmedRecord | null {
    return this.confirmed;
  }
  saveConfirmed(r: SignedConfirmedRecord): void {
    this.hook('store');
    this.confirmed = structuredClone(r);
  }
  loadAccepted(kind: 'fleet' | 'revocations'): AcceptedState | null {
    return this.accepted[kind] ?? null;
  }
  saveAccepted(kind: 'fleet' | 'revocations', a: AcceptedState): void {
    this.accepted[kind] = { ...a };
  }
  loadArtifact(sha256: string): { bytes: Uint8Array; signature: Uint8Array } | null {
    return this.artifacts.get(sha256) ?? null;
  }
  saveArtifact(sha256: string, bytes: Uint8Array, signature: Uint8Array): void {
    this.artifacts.set(sha256, { bytes, signature });
  }
}
