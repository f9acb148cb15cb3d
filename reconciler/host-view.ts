/**
 * What a tick reads of every member host (issue 19), cached per fleet index and channel between
 * ticks: the host's record in the channel's current rollout, its observation, its state, the
 * in-flight count per budget, and a few facts of the observation in flat arrays (when it was last
 * seen, whether it runs its target). At 100,000 hosts reading these afresh is most of a tick: two
 * hash lookups per host into objects of 25,000 and 100,000 keys, each a cache miss.
 *
 * A tick whose `Observed` carries a journal stamp (journal.ts) of the same lineage as the last
 * tick's re-reads only the hosts noted as changed in between; anything else (no stamp, another
 * lineage, another fleet object, another rollout record, a channel not read last tick) is a full
 * read, exactly the per-host reads of before. Both give the same arrays, so the same actions.
 *
 * Pure module: no I/O. The WeakMap is memoisation beside the data, as fleet-index.ts's.
 */
import type { ChannelIndex, FleetIndex } from './fleet-index.ts';
import { changesBetween, OBSERVATION_ONLY, stampOf, type JournalChanges, type JournalStamp } from './journal.ts';
import type { HostObservation, HostRolloutState, Observed, Rollout, RolloutHost } from './types.ts';

/** `flags` bits. */
export const RUNS_TARGET = 1; // checked in, and runs its target closure
export const RUNS_OTHER = 2; // checked in, and runs a closure (not null) other than its target
export const COMPLIANCE_FAILING = 4; // reports open compliance failures

/** One channel's current rollout as last read; arrays aligned with `ChannelIndex.members`. */
export type ChannelReads = {
  id: string;
  /** Read with a rollout record (false: the rollout opens this tick; every host Queued). */
  withRecord: boolean;
  recs: (RolloutHost | undefined)[];
  obs: (HostObservation | undefined)[];
  /** The record's states (not this tick's transitions: those go to `work`). */
  states: HostRolloutState[];
  /** `Plan.states` of the tick being read: `states` copied in, then this tick's transitions (allocated once). */
  work: HostRolloutState[];
  /** `obs[i].lastCheckinMs`; NaN when never seen (no observation, or null). */
  seenAt: Float64Array;
  flags: Uint8Array;
  /** In-flight members per budget (index into `FleetIndex.budgets`). */
  inFlight: number[];
  /** Newest `enteredAtMs` over `recs` (the stall clock); NaN: to be recomputed. */
  lastEnteredAtMs: number;
};

type FleetReads = {
  stamp: JournalStamp | undefined;
  channels: Map<string, ChannelReads>;
  /** Position k of each channel in `FleetIndex.memberChannels`. */
  ordinal: Map<ChannelIndex, number>;
  /**
   * Per channel k: at the members noted as changed and not re-read yet, READ_OBSERVATION or
   * READ_ALL (a byte per member, allocated once: marking and a scan in member order replace
   * building, sorting and deduplicating index lists every tick). All zero between ticks.
   */
  marks: Uint8Array[];
  /** Per channel k: how many marks are set. */
  marked: number[];
  /**
   * Per channel k, aligned with `marks`: at a marked member whose last note carried its new
   * observation (journal.ts `ObservationNote`), that observation; undefined: look it up. At 100,000
   * hosts a tick re-reads the observations of the 17,000 hosts that checked in since the last
   * (each host every 60 s), and a lookup in the map of 100,000 hosts is a few cache misses each.
   */
  given: (HostObservation | undefined)[][];
  /** Marks may be set (a tick that threw before `close`). */
  pending: boolean;
  /** Per channel k: no member is named like an `Object.prototype` member, so `o[h]` is an own lookup. */
  plain: boolean[];
};

const cache = new WeakMap<FleetIndex, FleetReads>();

/** Own-property test for host-keyed records (a host may be named like an `Object.prototype` member). Also tick.ts's and apply.ts's. */
export const hasOwn = (o: object, k: string): boolean => Object.prototype.hasOwnProperty.call(o, k);
const PROTO_KEYS: ReadonlySet<string> = new Set(Object.getOwnPropertyNames(Object.prototype));

/** `o[k]` if own, else undefined: one hash probe (two only for the names `Object.prototype` answers to). */
function own<T>(o: Record<string, T>, k: string): T | undefined {
  const v = o[k];
  return v === undefined || !PROTO_KEYS.has(k) || hasOwn(o, k) ? v : undefined;
}

/** A state that holds a disruption-budget slot (SPEC §4). Also tick.ts's. */
export const isInFlight = (s: HostRolloutState): boolean =>
  s === 'Dispatched' || s === 'Activating' || s === 'ConfirmWindow' || s === 'PendingReboot' || s === 'Healthy';

/** One tick's reading session: open before the plans, `close` after the last one. */
export class TickReads {
  private readonly reads: FleetReads;
  /** Read every channel in full (no journal of the same lineage). */
  private readonly full: boolean;
  private readonly used = new Set<string>();
  private readonly stamp: JournalStamp | undefined;

  constructor(
    private readonly idx: FleetIndex,
    private readonly observed: Observed,
  ) {
    let reads = cache.get(idx);
    if (reads === undefined) {
      const chs = idx.memberChannels;
      reads = {
        stamp: undefined,
        channels: new Map(),
        ordinal: new Map(chs.map((ch, k) => [ch, k])),
        marks: chs.map((ch) => new Uint8Array(ch.members.length)),
        marked: chs.map(() => 0),
        given: chs.map((ch) => new Array<HostObservation | undefined>(ch.members.length).fill(undefined)),
        pending: false,
        plain: chs.map((ch) => !ch.members.some((h) => PROTO_KEYS.has(h))),
      };
      cache.set(idx, reads);
    }
    this.reads = reads;
    this.stamp = stampOf(observed);
    const changed = changesBetween(reads.stamp, this.stamp);
    // Until `close`, the cache is being moved to `observed`: a tick that throws leaves no stamp.
    reads.stamp = undefined;
    if (reads.pending) clearMarks(reads);
    this.full = changed === null || changed.end - changed.start > idx.memberCount;
    if (!this.full) markChanged(idx, reads, changed!);
  }

  /** The reads of channel `ch`'s current rollout `id` (`record` null: it opens this tick). Do not mutate. */
  channel(ch: ChannelIndex, id: string, record: Rollout | null): ChannelReads {
    this.used.add(ch.name);
    const k = this.reads.ordinal.get(ch)!;
    const marks = this.reads.marks[k]!;
    const recHosts = record === null ? null : record.hosts;
    let r = this.reads.channels.get(ch.name);
    if (r === undefined || this.full || r.id !== id || r.withRecord !== (record !== null)) {
      if (this.reads.marked[k]! > 0) clearChannel(this.reads, k);
      r = fullRead(this.idx, ch, id, recHosts, this.observed.hosts, this.reads.plain[k]!);
      this.reads.channels.set(ch.name, r);
    } else if (this.reads.marked[k]! > 0) {
      patch(r, ch, marks, this.reads.given[k]!, recHosts, this.observed.hosts, this.reads.plain[k]!);
      if (Number.isNaN(r.lastEnteredAtMs)) r.lastEnteredAtMs = newestEntered(r.recs);
    }
    this.reads.marked[k] = 0;
    return r;
  }

  /** The cache now describes `observed` (channels not read this tick are dropped). */
  close(): void {
    for (const name of [...this.reads.channels.keys()]) if (!this.used.has(name)) this.reads.channels.delete(name);
    clearMarks(this.reads);
    this.reads.stamp = this.stamp;
    this.stamp?.log.release(this.stamp.step);
  }
}

/** `FleetReads.marks`: re-read the observation only (its records are the same objects), or everything. */
const READ_OBSERVATION = 1;
const READ_ALL = 3;

/** Marks the member slot of every changed host (names that are no member are skipped), with the observation its last note carried. */
function markChanged(idx: FleetIndex, reads: FleetReads, changed: JournalChanges): void {
  const n = idx.memberChannels.length;
  const at = idx.memberAt;
  const { names, kinds, values, end } = changed;
  reads.pending = true;
  for (let j = changed.start; j < end; j++) {
    const code = at[names[j]!];
    if (code === undefined) continue;
    const k = code % n;
    const m = reads.marks[k]!;
    const i = (code - k) / n;
    if (m[i] === 0) reads.marked[k]!++;
    // A later note without a value (a record, or an observation changed in place) clears an earlier value.
    reads.given[k]![i] = values[j];
    m[i] = m[i]! | (kinds[j] === OBSERVATION_ONLY ? READ_OBSERVATION : READ_ALL);
  }
}

/** Clears channel k's marks and the observations noted with them. */
function clearChannel(reads: FleetReads, k: number): void {
  reads.marks[k]!.fill(0);
  reads.given[k]!.fill(undefined);
  reads.marked[k] = 0;
}

function clearMarks(reads: FleetReads): void {
  for (let k = 0; k < reads.marks.length; k++) if (reads.marked[k]! > 0) clearChannel(reads, k);
  reads.pending = false;
}

/**
 * Re-reads the marked members in member order (as a full read walks the aligned arrays: at 100,000
 * hosts random order costs a cache miss per array), clearing the marks and the noted observations.
 */
function patch(r: ChannelReads, ch: ChannelIndex, marks: Uint8Array, given: (HostObservation | undefined)[], recHosts: Rollout['hosts'] | null, hosts: Observed['hosts'], plain: boolean): void {
  for (let i = 0; i < marks.length; i++) {
    const m = marks[i]!;
    if (m === 0) continue;
    marks[i] = 0;
    if (m === READ_ALL) readRecord(r, ch, i, recHosts, plain);
    const o = given[i];
    if (o === undefined) readObservation(r, ch, i, hosts, plain);
    else {
      given[i] = undefined;
      readFacts(r, ch, i, o);
    }
  }
}

/** Every member read (the loop of `readRecord` without a previous slot to move from; observations through `readObservation`). */
function fullRead(idx: FleetIndex, ch: ChannelIndex, id: string, recHosts: Rollout['hosts'] | null, hosts: Observed['hosts'], plain: boolean): ChannelReads {
  const n = ch.members.length;
  const r: ChannelReads = {
    id,
    withRecord: recHosts !== null,
    recs: new Array<RolloutHost | undefined>(n),
    obs: new Array<HostObservation | undefined>(n),
    states: new Array<HostRolloutState>(n),
    work: new Array<HostRolloutState>(n),
    seenAt: new Float64Array(n),
    flags: new Uint8Array(n),
    inFlight: idx.budgets.map(() => 0),
    lastEnteredAtMs: -Infinity,
  };
  for (let i = 0; i < n; i++) {
    const h = ch.members[i]!;
    const rh = recHosts === null ? undefined : plain ? recHosts[h] : own(recHosts, h);
    r.recs[i] = rh;
    const s = rh === undefined ? 'Queued' : rh.state;
    r.states[i] = s;
    if (rh !== undefined && rh.enteredAtMs > r.lastEnteredAtMs) r.lastEnteredAtMs = rh.enteredAtMs;
    if (isInFlight(s)) {
      const list = ch.budgetsAt[i];
      if (list !== undefined) for (let b = 0; b < list.length; b++) r.inFlight[list[b]!]!++;
    }
    readObservation(r, ch, i, hosts, plain);
  }
  return r;
}

/**
 * (Re-)reads member i's record (`recHosts` null: the rollout opens this tick, no record): its
 * state and in-flight counts move from what the slot held. `plain`: no member name is an
 * `Object.prototype` name, so a plain lookup is an own lookup.
 */
function readRecord(r: ChannelReads, ch: ChannelIndex, i: number, recHosts: Rollout['hosts'] | null, plain: boolean): void {
  const h = ch.members[i]!;
  const rh = recHosts === null ? undefined : plain ? recHosts[h] : own(recHosts, h);
  const from = r.states[i]!;
  const to = rh === undefined ? 'Queued' : rh.state;
  if (from !== to) {
    const delta = (isInFlight(to) ? 1 : 0) - (isInFlight(from) ? 1 : 0);
    if (delta !== 0) {
      const list = ch.budgetsAt[i];
      if (list !== undefined) for (let b = 0; b < list.length; b++) r.inFlight[list[b]!]! += delta;
    }
    r.states[i] = to;
  }
  const before = r.recs[i];
  if (rh !== before) {
    r.recs[i] = rh;
    // Records are replaced, never changed in place (apply.ts copies them): the same object, the same time.
    const now = rh === undefined ? -Infinity : rh.enteredAtMs;
    if (now >= r.lastEnteredAtMs) r.lastEnteredAtMs = now;
    else if ((before === undefined ? -Infinity : before.enteredAtMs) >= r.lastEnteredAtMs) r.lastEnteredAtMs = NaN; // the newest may have gone: recompute
  }
}

/** (Re-)reads member i's observation and the facts of it a tick uses. */
function readObservation(r: ChannelReads, ch: ChannelIndex, i: number, hosts: Observed['hosts'], plain: boolean): void {
  const h = ch.members[i]!;
  readFacts(r, ch, i, plain ? hosts[h] : own(hosts, h));
}

/** Member i's observation is `o`: the facts of it a tick uses. */
function readFacts(r: ChannelReads, ch: ChannelIndex, i: number, o: HostObservation | undefined): void {
  r.obs[i] = o;
  let f = 0;
  let seen = NaN;
  if (o !== undefined) {
    const last = o.lastCheckinMs;
    if (last !== null) {
      seen = last;
      const c = o.currentClosure;
      if (c === ch.closureAt[i]) f |= RUNS_TARGET;
      else if (c !== null) f |= RUNS_OTHER;
    }
    const cf = o.complianceFailures;
    if (cf !== undefined && cf.length > 0) f |= COMPLIANCE_FAILING;
  }
  r.seenAt[i] = seen;
  r.flags[i] = f;
}

function newestEntered(recs: readonly (RolloutHost | undefined)[]): number {
  let last = -Infinity;
  for (const rh of recs) if (rh !== undefined && rh.enteredAtMs > last) last = rh.enteredAtMs;
  return last;
}
