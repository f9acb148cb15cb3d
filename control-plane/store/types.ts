/**
 * The control plane's store contract: typed rows, the writes a decision produces (plain data, see
 * `plan.ts`), and the `Store` interface every backend implements (SQLite now, PostgreSQL next).
 *
 * Everything in a store can be rebuilt from the artefact source and the agents' check-ins (SPEC §5
 * rebuild from empty); nothing in it can authorise a deployment.
 *
 * Asynchronous backends: every method returns `Awaitable<T>` and the control plane always awaits
 * it, so a backend may answer with a value (better-sqlite3, synchronous: no extra latency on the
 * check-in path) or with a Promise (node-postgres).
 */
import type { AuditEntry } from '../../protocol/api.ts';
import type { Deferral, DriftInfo, HostObservation, HostRolloutState, Observed, PauseInfo, Rollout, RolloutControls, RolloutHost } from '../../reconciler/types.ts';
import type { AuditAnchor, PruneResult } from './retention.ts';
import type { WitnessRow } from './witness.ts';

export type { AuditAnchor, PruneResult, WitnessRow };

/** A value, or a Promise of it: what a synchronous or an asynchronous backend returns. */
export type Awaitable<T> = T | Promise<T>;

export type HostRow = {
  hostname: string;
  lastCheckinMs: number | null;
  currentClosure: string | null;
  bootId: string | null;
  probesObserved: boolean;
  probesPassing: boolean;
  failedUnits: string[];
  complianceFailures: string[] | null;
  probesJson: string;
  lastOutcomeJson: string | null;
  pendingReboot: boolean;
  agentVersion: string | null;
  /** Issue 16: notAfter of the client certificate the host presented at its last check-in. */
  certNotAfterMs: number | null;
};

export type DispatchStatus = 'pending' | 'confirmed' | 'expired' | 'cancelled' | 'failed';

export type DispatchRow = {
  rolloutId: string;
  hostname: string;
  channel: string;
  closure: string;
  wave: number;
  createdMs: number;
  deliveredMs: number | null;
  deadlineMs: number | null;
  status: DispatchStatus;
  finishedMs: number | null;
  rollbackReason: string | null;
};

/** A rollout as stored: the reconciler's record without its hosts and history (their own tables). */
export type RolloutRow = Omit<Rollout, 'hosts' | 'history'> & {
  signedAt: string;
  artifactSha256: string;
  updatedAtMs: number;
};

export type RolloutHostRow = { rolloutId: string; hostname: string; state: HostRolloutState; enteredAtMs: number; closure: string; wave: number; skipJson: string | null };

export type TransitionRow = { rolloutId: string; atMs: number; hostname: string | null; from: string | null; to: string; wave: number; reason: string };

export type QuarantineRow = { channel: string; closure: string; rolloutId: string | null; hostname: string | null; reason: string; sinceMs: number };

export type PauseRow = { channel: string; sinceMs: number; reason: string; by: string };

/** Signed kinds whose newest accepted state the CP persists; `index` = the slice index (issue 19). */
export type ArtifactKind = 'fleet' | 'revocations' | 'index';

export type ArtifactRow = { kind: ArtifactKind; signedAt: string; sha256: string; bytes: Uint8Array; signature: Uint8Array; acceptedMs: number };

export type ReportRow = { hostname: string; receivedMs: number; event: string; rolloutId: string | null; reportJson: string; signature: string | null; verdict: string };

/**
 * A host-signed evidence record as stored (issue 15): `recordJson` is the JCS text the host signed,
 * `verdict` `verified` (signature good under the fleet's host key) or `unsigned-no-pubkey`.
 */
export type EvidenceRow = {
  hostname: string;
  control: string;
  result: string;
  closure: string | null;
  rolloutId: string | null;
  at: string;
  receivedMs: number;
  recordJson: string;
  signature: string | null;
  verdict: 'verified' | 'unsigned-no-pubkey';
};

/**
 * The evidence history keeps a record when it differs from the host's newest one for the control
 * (result, observed value, closure), or once this much later than the last kept one; the newest
 * record per host and control is always kept (`latestEvidence`).
 */
export const EVIDENCE_KEEP_UNCHANGED_MS = 24 * 3600 * 1000;

/** Should `next` join the history after `prev` (the newest kept for its host and control)? */
export function keepEvidence(prev: EvidenceRow | null, next: EvidenceRow): boolean {
  if (prev === null) return true;
  const a = JSON.parse(prev.recordJson) as { observed?: unknown };
  const b = JSON.parse(next.recordJson) as { observed?: unknown };
  return prev.result !== next.result || prev.closure !== next.closure || a.observed !== b.observed || Date.parse(next.at) - Date.parse(prev.at) >= EVIDENCE_KEEP_UNCHANGED_MS;
}

export type AuditInput = { atMs: number; kind: string; actor: string; subject: string; data: unknown };

/** Metadata the store adds to a rollout it has not seen before. */
export type RolloutOrigin = { signedAt: string; artifactSha256: string };

/** The channel-level maps of observed state (small tables, read on every reconcile pass). */
/** Channel-level maps, plus issue 14's drift and rollout controls (stored since schema version 2; always set when loaded). */
export type ChannelState = Pick<Observed, 'quarantinedClosures' | 'pausedChannels' | 'lastConverged' | 'deferrals' | 'drifted' | 'controls'>;

export type { AuditEntry, Deferral, HostObservation, PauseInfo, RolloutHost };

/**
 * One write, as plain data. A list of them is applied in order, in one transaction. The few
 * conditional ones say so in their fields (`onlyIfPending`, `auditIfAny`): the condition is on rows
 * the same list may have written just before, so it is evaluated by the store, in order.
 */
export type Write =
  /** The whole host row (a check-in). */
  | { kind: 'host.put'; row: HostRow }
  /** The reconciler's observation of a host only (the other columns are kept). */
  | { kind: 'host.observation'; hostname: string; observation: HostObservation }
  | { kind: 'host.pending-reboot'; hostname: string; pending: boolean }
  /** A rollout the store has not seen (or a superseded id that comes back: its host rows are dropped). */
  | { kind: 'rollout.insert'; row: RolloutRow }
  | { kind: 'rollout.update'; row: Omit<RolloutRow, 'channel' | 'targetRef' | 'signedAt' | 'artifactSha256'> }
  /**
   * `before`: the row as the decision saw it (null: none). A shared store (several replicas) applies
   * the write only if the row is still that one, else the list fails with `StoreConflictError`
   * (another replica moved the host meanwhile: decide again). A single-process store ignores it.
   */
  | { kind: 'rollout-host.put'; rolloutId: string; hostname: string; host: RolloutHost; before?: RolloutHost | null }
  | { kind: 'transition'; row: TransitionRow }
  | { kind: 'dispatch.put'; rolloutId: string; hostname: string; channel: string; closure: string; wave: number; createdMs: number }
  /** First hand-over of a target: starts the confirm clock (no-op when already delivered). */
  | { kind: 'dispatch.deliver'; rolloutId: string; hostname: string; deliveredMs: number; deadlineMs: number }
  /** Issue 14: a deferred activation waits for the boot — drop the pending dispatch's confirm deadline. */
  | { kind: 'dispatch.await-boot'; rolloutId: string; hostname: string }
  | { kind: 'dispatch.finish'; rolloutId: string; hostname: string; status: DispatchStatus; finishedMs: number; rollbackReason: string | null; onlyIfPending: boolean }
  | { kind: 'dispatch.clear-rollback'; rolloutId: string; hostname: string }
  /** Withdraw the targets of a rollout not yet handed over; audit `auditIfAny` (with `undelivered: n`) when n > 0. */
  | { kind: 'dispatch.withdraw'; rolloutId: string; finishedMs: number; auditIfAny: AuditInput }
  | { kind: 'quarantine.put'; row: QuarantineRow }
  /** `closure: null`: every quarantine of the channel. */
  | { kind: 'quarantine.delete'; channel: string; closure: string | null }
  | { kind: 'pause.put'; row: PauseRow }
  | { kind: 'pause.delete'; channel: string }
  | { kind: 'converged.put'; channel: string; targetRef: string }
  | { kind: 'converged.delete'; channel: string }
  | { kind: 'deferral.put'; channel: string; deferral: Deferral }
  | { kind: 'deferral.delete'; channel: string }
  /** Issue 14: a host's drift (set / cleared) and a rollout's controls (stall, window hold, released hosts). */
  | { kind: 'drift.put'; hostname: string; drift: DriftInfo }
  | { kind: 'drift.delete'; hostname: string }
  | { kind: 'controls.put'; rolloutId: string; controls: RolloutControls }
  | { kind: 'controls.delete'; rolloutId: string }
  /** A stored host statement; `audit`, when given, is appended with `{id, ...audit.data}`. */
  | { kind: 'report'; row: ReportRow; audit: (AuditInput & { data: Record<string, unknown> }) | null }
  | { kind: 'artifact.put'; row: ArtifactRow }
  /** Host-signed evidence (issue 15): newest per host and control replaced; history per {@link keepEvidence}. */
  | { kind: 'evidence'; rows: readonly EvidenceRow[] }
  /** Issue 15: a witnessed audit head (kept once per witness and seq). */
  | { kind: 'witness'; row: WitnessRow }
  | { kind: 'audit'; entry: AuditInput };

/** A conditional write found the row changed by another replica: nothing was written; decide again. */
export class StoreConflictError extends Error {
  readonly code = 'STORE_CONFLICT';
}

/** A fenced list was refused: this replica no longer holds the leader lease (nothing was written). */
export class NotLeaderError extends Error {
  readonly code = 'NOT_LEADER';
}

/**
 * The database cannot be reached (PostgreSQL restarting, connection lost): the operation is not
 * acknowledged (a connection lost during COMMIT may still have committed it: every write the CP
 * makes is safe to retry). The API answers 503 `STORE_UNAVAILABLE` with Retry-After.
 */
export class StoreUnavailableError extends Error {
  readonly code = 'STORE_UNAVAILABLE';
}

/** The leader lease a fenced write is conditional on. */
export type Fence = { holder: string; epoch: number };

/** What applying a list returned: the ids of the `report` writes, in order. */
export type ApplyResult = { reportIds: number[] };

/**
 * The store behind the control plane. Reads return rows; every change goes through `apply` (one
 * transaction) or `applyGrouped` (the check-in path: group commit).
 */
export interface Store {
  /** Apply the writes in order, in one transaction (all or nothing). */
  apply(writes: readonly Write[]): Awaitable<ApplyResult>;
  /**
   * `apply`, in a transaction that first checks that `fence` still holds the leader lease (and keeps
   * the lease from moving until it commits): a leader that was paused past its lease writes nothing
   * (`NotLeaderError`). A single-process store has no lease to lose: same as `apply`.
   */
  applyFenced(writes: readonly Write[], fence: Fence): Awaitable<ApplyResult>;
  /** Several control planes share this store (PostgreSQL): in-memory state is only a cache. */
  readonly shared: boolean;
  /**
   * Take or renew the leader lease for `holder` for `leaseMs` (on the store's clock): its epoch when
   * `holder` leads, else null. A new holder gets a higher epoch than every earlier one. A
   * single-process store always leads (epoch 1).
   */
  lease(holder: string, leaseMs: number): Awaitable<number | null>;
  /** Give the lease up now (clean shutdown: another replica takes over without waiting). */
  releaseLease(holder: string): Awaitable<void>;
  /** Who holds the lease now (null: nobody, or it expired). */
  leaseHolder(): Awaitable<{ holder: string; epoch: number } | null>;
  /**
   * Ask the leader for a reconcile pass (PostgreSQL `NOTIFY`; call after the write it should see
   * committed). `from` names the asking replica. A single-process store: nothing to do.
   */
  notifyLeader(from: string): Awaitable<void>;
  /**
   * Call `onWake` whenever a replica asks for a pass (PostgreSQL `LISTEN` on a connection of its
   * own, kept across server restarts; once more after each reconnection). A single-process store
   * never calls it. Stopped by `close`.
   */
  listenForWakeups(onWake: (from: string) => void): Awaitable<void>;
  /** The LISTEN session's health (metrics); a single-process store: never listening. */
  wakeupListener(): { listening: boolean; reconnects: number };
  /**
   * Group commit (the check-in path): the writes join the transaction shared by the callers of this
   * turn, each list atomically (a list that fails undoes only itself and throws or rejects). The
   * Promise resolves once that shared transaction committed: answer the client only then.
   */
  applyGrouped(writes: readonly Write[]): Promise<ApplyResult>;
  /** Called when a grouped commit failed and was rolled back (in-memory mirrors must reload). */
  onGroupRollback: ((e: unknown) => void) | null;
  close(): Awaitable<void>;

  /** Everything the reconciler reads (rollout histories empty: the reconciler only appends). */
  loadObserved(): Awaitable<Observed>;
  loadChannelState(): Awaitable<ChannelState>;
  /**
   * The part of Observed one host event can touch: the host's observation and every rollout holding
   * it that is not Superseded, with only that host. Channel maps empty.
   */
  loadHostSlice(hostname: string): Awaitable<Observed>;

  getHost(hostname: string): Awaitable<HostRow | null>;
  allHosts(): Awaitable<HostRow[]>;

  getRollout(id: string): Awaitable<RolloutRow | null>;
  allRollouts(): Awaitable<RolloutRow[]>;
  rolloutHosts(id: string): Awaitable<RolloutHostRow[]>;
  rolloutHostCounts(id: string): Awaitable<Partial<Record<HostRolloutState, number>>>;
  transitions(id: string): Awaitable<TransitionRow[]>;
  /** Per host, its row in the newest rollout that holds it. */
  newestRolloutRowPerHost(): Awaitable<Map<string, RolloutHostRow>>;
  /** Hosts by state in the newest rollout of each channel. */
  hostStateCounts(): Awaitable<Record<string, number>>;
  rolloutStateCounts(): Awaitable<Record<string, number>>;

  /**
   * What a check-in reads before it decides: the host's pending dispatch (its target, if any) and
   * the newest cancelled dispatch carrying a rollback instruction. A backend may run these reads in
   * the transaction the check-in's writes will join (SQLite does: reads inside the open group
   * transaction cost less than autocommit reads).
   */
  checkinReads(hostname: string): Awaitable<{ pending: DispatchRow | null; rollback: DispatchRow | null }>;
  /**
   * Issue 19 (control-plane/quiet-checkins.ts): a quiet check-in's time and probe details, kept in
   * memory and written in batches; every read of the host row sees them at once. `probes` is the
   * check-in's array, serialised when the batch is written or the row read (a host that checks in
   * several times within a batch is serialised once); the caller does not change it afterwards.
   * Absent: every check-in is decided and written in full (a store shared by replicas).
   */
  touchCheckin?(hostname: string, lastCheckinMs: number, probes: readonly unknown[]): void;
  getDispatch(rolloutId: string, hostname: string): Awaitable<DispatchRow | null>;
  pendingDispatchFor(hostname: string): Awaitable<DispatchRow | null>;
  /** The newest cancelled dispatch of the host that carries a rollback instruction. */
  rollbackFor(hostname: string): Awaitable<DispatchRow | null>;
  pendingDispatches(): Awaitable<DispatchRow[]>;
  expiredDispatches(nowMs: number): Awaitable<DispatchRow[]>;

  quarantines(): Awaitable<QuarantineRow[]>;
  getPause(channel: string): Awaitable<PauseRow | null>;
  reportCount(): Awaitable<number>;
  getArtifact(kind: ArtifactKind): Awaitable<ArtifactRow | null>;
  /** Issue 15: every artefact of `kind` ever accepted (oldest first), for the evidence packet. */
  artifactHistory(kind: ArtifactKind): Awaitable<ArtifactRow[]>;
  /** Issue 15: the audit chain head (null: empty chain). */
  auditHead(): Awaitable<{ seq: number; hash: string } | null>;
  /** Issue 15: every witnessed audit head, ascending seq. */
  witnesses(): Awaitable<WitnessRow[]>;
  auditPage(after: number, limit: number): Awaitable<AuditEntry[]>;
  auditAll(): Awaitable<AuditEntry[]>;
  /** Where the kept audit log chains from after retention pruned its start (null: genesis). */
  auditAnchor(): Awaitable<AuditAnchor | null>;
  /**
   * Retention (retention.ts): prune what is older than `cutoffMs` in one transaction and append a
   * `retention.pruned` audit entry. Fenced like a leader's pass (on a shared store only the leader prunes).
   */
  prune(cutoffMs: number, nowMs: number, fence: Fence): Awaitable<PruneResult>;
  /** Issue 15: the newest evidence record per host and control. */
  latestEvidence(): Awaitable<EvidenceRow[]>;
  /** Issue 15: the evidence history received in [fromMs, toMs], oldest first. */
  evidenceHistory(fromMs: number, toMs: number): Awaitable<EvidenceRow[]>;
}
