/**
 * Quiet check-ins (issue 19): a check-in that changes nothing the control plane decides on is
 * answered without deciding again and without a durable write before the answer.
 *
 * A host polls every 60 s and, at rest, says the same thing each time: same closure, boot, probe
 * verdict, failed units, signed statements. Only its check-in time and its probes' times and
 * messages move. After a check-in decided in full that wrote nothing but the host row (no target,
 * no rollback, no statement to keep, no transition), the next one whose *decision inputs* are the
 * same (`decisionInputs`) is quiet when everything that decision read is still the very same object:
 * the fleet artefact in force, the host's observation in the mirror, and its record in every
 * rollout that holds it (any pass, confirm, report or reload that moves the host replaces them;
 * looked up once per mirror epoch, mirror.ts: within one, only a quiet check-in's touch moves them),
 * plus, read again each time, no pending dispatch or rollback instruction (the store), no soak to
 * restore, the same client certificate, and not back from offline. The answer is then what the
 * full decision would give (no target, no rollback), and the only changes are the check-in time
 * in the mirror (kept in the host's entry and folded in by the mirror's next read other than this
 * path's — the next pass, full check-in or view — with one journal note per host: `touchLater`)
 * and the row's check-in time
 * and probe details, which the store keeps in memory and writes in batches (`Store.touchCheckin`):
 * reads see them at once; a crash loses at most the last batch's check-in times, far less than
 * `offlineAfterSecs`. A store shared by replicas (PostgreSQL) decides every check-in in full.
 */
import { hash } from 'node:crypto';
import type { CheckinRequest, CheckinResponse } from '../protocol/api.ts';
import type { HostObservation, Observed, RolloutHost } from '../reconciler/types.ts';
import type { ArtifactManager } from './artifacts.ts';
import type { Config } from './config.ts';
import type { PeerIdentity } from './identity.ts';
import type { CpMetrics, Tally } from './metrics.ts';
import type { ObservedMirror, PendingTouch } from './mirror.ts';
import type { SoakRestorer } from './soak-restore.ts';
import type { Store } from './store/types.ts';

export type QuietDeps = {
  config: Pick<Config, 'offlineAfterSecs' | 'agentPollIntervalSecs' | 'quietCheckins'>;
  store: Store;
  mirror: ObservedMirror;
  restorer: SoakRestorer;
  artifacts: ArtifactManager;
  metrics: CpMetrics;
  now: () => number;
};

/**
 * What a host's last full check-in read, kept when it could have been quiet; also its quiet
 * check-ins' time for the mirror (`PendingTouch`: `obs`, `atMs`, `queued`).
 */
type Entry = PendingTouch & {
  /**
   * The hostname as first kept (the map's key): the effects of a quiet check-in keep this string,
   * not the one just parsed from the body, so what outlives the request (the journal's note, the
   * store's pending touch) holds no new string and the parsed one dies young.
   */
  host: string;
  inputs: DecisionInputs;
  certNotAfterMs: number | null;
  fleet: object;
  /** The host's record in each rollout that holds it and is not Superseded, in mirror order. */
  records: RolloutHost[];
  /** The mirror's epoch when `obs` and `records` were last found in it (-1: not yet). */
  epoch: number;
};

/**
 * What a check-in says that the CP decides on or keeps in its own right: everything but the
 * probes' times and messages (only their verdict counts, SPEC §4), which are kept as the row's
 * probe details; the hostname is the certificate's (the entry is the host's). The fields every
 * check-in has are kept as they are and compared one by one (no digest to compute for each
 * check-in); the rare ones (a last outcome and its signature, a pending reboot, a confirmation,
 * an audit witness) as one SHA-256 digest, '' when all are absent.
 */
export type DecisionInputs = {
  readonly closure: string | null;
  readonly bootId: string;
  readonly agentVersion: string | null;
  readonly passing: boolean;
  readonly failedUnits: readonly string[];
  readonly rest: string;
};

/** Whether a check-in carries compliance evidence (never quiet). */
const hasEvidence = (req: CheckinRequest): boolean => req.compliance !== undefined && req.compliance.length > 0;

/** The probes' verdict: every one ok. */
function probesPassing(req: CheckinRequest): boolean {
  let passing = true;
  for (const p of req.probes) if (!p.ok) passing = false;
  return passing;
}

/** Whether a check-in has any of the rare fields (kept as one digest, `DecisionInputs.rest`). */
const hasRare = (req: CheckinRequest): boolean =>
  req.lastOutcome !== null || (req.lastOutcomeSignature ?? null) !== null || req.pendingReboot === true || (req.lastConfirmed ?? null) !== null || req.auditWitness !== undefined;

/** The digest of the rare fields ('' when all are absent). */
const rareDigest = (req: CheckinRequest): string =>
  hasRare(req) ? hash('sha256', JSON.stringify([req.lastOutcome, req.lastOutcomeSignature ?? null, req.pendingReboot === true, req.lastConfirmed ?? null, req.auditWitness ?? null]), 'base64') : '';

/** A check-in's decision inputs; null when it carries compliance evidence (never quiet). */
export function decisionInputs(req: CheckinRequest): DecisionInputs | null {
  if (hasEvidence(req)) return null;
  return { closure: req.currentClosure, bootId: req.bootId, agentVersion: req.agentVersion ?? null, passing: probesPassing(req), failedUnits: req.failedUnits, rest: rareDigest(req) };
}

/** Whether two check-ins' decision inputs are the same. */
export function sameInputs(a: DecisionInputs, b: DecisionInputs): boolean {
  if (a.closure !== b.closure || a.bootId !== b.bootId || a.agentVersion !== b.agentVersion || a.passing !== b.passing || a.rest !== b.rest) return false;
  return sameUnits(a.failedUnits, b.failedUnits);
}

function sameUnits(x: readonly string[], y: readonly string[]): boolean {
  if (x.length !== y.length) return false;
  for (let i = 0; i < x.length; i++) if (x[i] !== y[i]) return false;
  return true;
}

/**
 * `sameInputs(a, decisionInputs(req))`, false when `req` has none, without building them: the
 * quiet path asks it for every check-in, and nearly every one is the same.
 */
export function sameAsInputs(a: DecisionInputs, req: CheckinRequest): boolean {
  if (hasEvidence(req)) return false;
  if (a.closure !== req.currentClosure || a.bootId !== req.bootId || a.agentVersion !== (req.agentVersion ?? null)) return false;
  if (a.passing !== probesPassing(req) || !sameUnits(a.failedUnits, req.failedUnits)) return false;
  // The rare fields: absent in both, or the same digest (computed only when the kept inputs have one).
  return a.rest === '' ? !hasRare(req) : a.rest === rareDigest(req);
}

/** The host's rollout records a check-in decision reads (ObservedMirror.slice's rollouts). */
function recordsOf(o: Observed, h: string, into: RolloutHost[] | null, compare: readonly RolloutHost[] | null): boolean {
  let k = 0;
  for (const id in o.rollouts) {
    const r = o.rollouts[id]!;
    if (r.state === 'Superseded') continue;
    const rh = r.hosts[h];
    if (rh === undefined) continue;
    if (into !== null) into.push(rh);
    else if (compare![k] !== rh) return false;
    k++;
  }
  return compare === null || k === compare.length;
}

/** The certificate's expiry as the host row keeps it. */
export const certNotAfter = (peer: PeerIdentity): number | null => (Number.isFinite(peer.notAfterMs) ? peer.notAfterMs : null);

export class QuietCheckins {
  private readonly byHost = new Map<string, Entry>();

  private readonly answered: Tally;
  private readonly quietTally: Tally;
  /**
   * The last answer, its millisecond and the audit head it carries: check-ins answered in the same
   * millisecond with the same head get the very same object (hot-checkin.ts then serialises it once).
   */
  private timeMs = Number.NaN;
  private lastHead: { seq: number; hash: string } | null = null;
  private last: CheckinResponse | null = null;

  constructor(private readonly d: QuietDeps) {
    this.answered = d.metrics.checkin('none');
    this.quietTally = d.metrics.quietCheckin();
  }

  /** Whether any check-in may be quiet (not with a shared store, nor when switched off). */
  private get enabled(): boolean {
    return this.d.config.quietCheckins && !this.d.store.shared && this.d.store.touchCheckin !== undefined;
  }

  /** The decision inputs of a check-in that may be quiet (null: decide it in full: a shared store, evidence). */
  inputsOf(req: CheckinRequest): DecisionInputs | null {
    return this.enabled ? decisionInputs(req) : null;
  }

  /**
   * The answer to a quiet check-in, with its effects done (the check-in time in the mirror and in
   * the store's next batch); null: decide it in full. Answers in the same millisecond may be one
   * object: do not mutate it.
   */
  answer(peer: PeerIdentity, req: CheckinRequest): CheckinResponse | null {
    if (!this.enabled) return null;
    const h = req.hostname;
    const fleet = this.d.artifacts.fleet();
    const mirror = this.d.mirror.peekUnfolded();
    if (fleet === null || mirror === null || this.d.restorer.pending(h)) return null;
    const nowMs = this.d.now();
    const e = this.match(h, req, certNotAfter(peer), fleet, mirror, this.d.mirror.epoch, nowMs, this.d.config.offlineAfterSecs * 1000);
    if (e === null) return null;
    const reads = this.d.store.checkinReads(h);
    if (reads instanceof Promise || reads.pending !== null || reads.rollback !== null) return null;
    const head = this.d.store.auditHead();
    if (head instanceof Promise) return null;
    e.atMs = nowMs;
    this.d.mirror.touchLater(e);
    this.d.store.touchCheckin!(e.host, nowMs, req.probes);
    this.answered.inc();
    this.quietTally.inc();
    if (this.last !== null && nowMs === this.timeMs && head === this.lastHead) return this.last;
    const res: CheckinResponse = { target: null, nextCheckinSecs: this.d.config.agentPollIntervalSecs, serverTime: new Date(nowMs).toISOString() };
    if (head !== null && head.seq > 0) res.auditHead = head;
    this.timeMs = nowMs;
    this.lastHead = head;
    this.last = res;
    return res;
  }

  /**
   * After a full check-in decision on `slice` (the mirror's, not a store read) whose only write was
   * the host row and which answered no target and no rollback: its inputs, for the next one.
   */
  remember(h: string, inputs: DecisionInputs, certNotAfterMs: number | null, fleet: object, slice: Observed, obs: HostObservation): void {
    const records: RolloutHost[] = [];
    recordsOf(slice, h, records, null);
    // A host that never checked in is not quiet (`match`): NaN fails every time comparison.
    this.byHost.set(h, { host: h, obs, atMs: obs.lastCheckinMs ?? Number.NaN, queued: false, inputs, certNotAfterMs, fleet, records, epoch: -1 });
  }

  /** A full decision that was not quiet-eligible: the next check-in decides in full too. */
  forget(h: string): void {
    this.byHost.delete(h);
  }

  /**
   * The host's entry (its `obs` is the mirror's observation now, its `atMs` its last check-in time),
   * when check-in `req` decides nothing new against `mirror` (the caller checks the store's
   * dispatches and the restorer). The observation and the records are looked up in the mirror once
   * per mirror epoch: within one, only the folding of this class's `touchLater` replaces an
   * observation, and it keeps the entry's in step.
   */
  private match(h: string, req: CheckinRequest, certNotAfterMs: number | null, fleet: object, mirror: Observed, epoch: number, nowMs: number, offlineAfterMs: number): Entry | null {
    const e = this.byHost.get(h);
    if (e === undefined || e.certNotAfterMs !== certNotAfterMs || e.fleet !== fleet || !sameAsInputs(e.inputs, req)) return null;
    const last = e.atMs;
    if (!(nowMs - last <= offlineAfterMs) || nowMs < last) return null;
    if (e.epoch === epoch) return e;
    if (mirror.hosts[h] !== e.obs || !recordsOf(mirror, h, null, e.records)) return null;
    e.epoch = epoch;
    return e;
  }
}
