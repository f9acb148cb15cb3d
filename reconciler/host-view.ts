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
import { changedBetween, stampOf, type JournalStamp } from './journal.ts';
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

type FleetReads = { stamp: JournalStamp | undefined; channels: Map<string, ChannelReads> };

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
  /** Changed member indexes per channel; null: read every channel in full. */
  private readonly dirty: Map<ChannelIndex, Int32Array> | null;
  private readonly used = new Set<string>();
  private readonly stamp: JournalStamp | undefined;

  constructor(
    private readonly idx: FleetIndex,
    private readonly observed: Observed,
  ) {
    let reads = cache.get(idx);
    if (reads === undefined) {
      reads = { stamp: undefined, channels: new Map() };
      cache.set(idx, reads);
    }
    this.reads = reads;
    this.stamp = stampOf(observed);
    const changed = changedBetween(reads.stamp, this.stamp);
    // Until `close`, the cache is being moved to `observed`: a tick that throws leaves no stamp.
    reads.stamp = undefined;
    this.dirty = changed === null || changed.length > idx.memberAt.size ? null : byChannel(idx, changed);
  }

  /** The reads of channel `ch`'s current rollout `id` (`record` null: it opens this tick). Do not mutate. */
  channel(ch: ChannelIndex, id: string, record: Rollout | null): ChannelReads {
    this.used.add(ch.name);
    let r = this.reads.channels.get(ch.name);
    if (r === undefined || this.dirty === null || r.id !== id || r.withRecord !== (record !== null)) {
      r = fullRead(this.idx, ch, id, record, this.observed.hosts);
      this.reads.channels.set(ch.name, r);
      return r;
    }
    const list = this.dirty.get(ch);
    if (list !== undefined) {
      const hosts = this.observed.hosts;
      for (let k = 0; k < list.length; k++) if (k === 0 || list[k] !== list[k - 1]) readHost(r, ch, list[k]!, record, hosts);
    }
    if (Number.isNaN(r.lastEnteredAtMs)) r.lastEnteredAtMs = newestEntered(r.recs);
    return r;
  }

  /** The cache now describes `observed` (channels not read this tick are dropped). */
  close(): void {
    for (const name of [...this.reads.channels.keys()]) if (!this.used.has(name)) this.reads.channels.delete(name);
    this.reads.stamp = this.stamp;
    this.stamp?.log.release(this.stamp.step);
  }
}

/** The changed member indexes per channel, sorted: the patch then walks the aligned arrays in order, as a full read does (at 100,000 hosts random order costs a cache miss per array). */
function byChannel(idx: FleetIndex, changed: string[]): Map<ChannelIndex, Int32Array> {
  const lists = new Map<ChannelIndex, number[]>();
  for (const h of changed) {
    const at = idx.memberAt.get(h);
    if (at === undefined) continue;
    const [ch, i] = at;
    const list = lists.get(ch);
    if (list === undefined) lists.set(ch, [i]);
    else list.push(i);
  }
  const out = new Map<ChannelIndex, Int32Array>();
  for (const [ch, list] of lists) out.set(ch, Int32Array.from(list).sort());
  return out;
}

function fullRead(idx: FleetIndex, ch: ChannelIndex, id: string, record: Rollout | null, hosts: Observed['hosts']): ChannelReads {
  const n = ch.members.length;
  const r: ChannelReads = {
    id,
    withRecord: record !== null,
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
    const rh = record === null ? undefined : own(record.hosts, h);
    r.recs[i] = rh;
    const s = rh?.state ?? 'Queued';
    r.states[i] = s;
    if (rh !== undefined && rh.enteredAtMs > r.lastEnteredAtMs) r.lastEnteredAtMs = rh.enteredAtMs;
    if (isInFlight(s)) {
      const list = ch.budgetsAt[i];
      if (list !== undefined) for (const b of list) r.inFlight[b]!++;
    }
    observe(r, ch, i, own(hosts, h));
  }
  return r;
}

/** Re-reads member i (noted as changed). */
function readHost(r: ChannelReads, ch: ChannelIndex, i: number, record: Rollout | null, hosts: Observed['hosts']): void {
  const h = ch.members[i]!;
  const rh = record === null ? undefined : own(record.hosts, h);
  const from = r.states[i]!;
  const to = rh?.state ?? 'Queued';
  const delta = (isInFlight(to) ? 1 : 0) - (isInFlight(from) ? 1 : 0);
  if (delta !== 0) {
    const list = ch.budgetsAt[i];
    if (list !== undefined) for (const b of list) r.inFlight[b]! += delta;
  }
  r.states[i] = to;
  const before = r.recs[i];
  r.recs[i] = rh;
  // Records are replaced, never changed in place (apply.ts copies them): the same object, the same time.
  const now = rh?.enteredAtMs ?? -Infinity;
  if (now >= r.lastEnteredAtMs) r.lastEnteredAtMs = now;
  else if (rh !== before && (before?.enteredAtMs ?? -Infinity) >= r.lastEnteredAtMs) r.lastEnteredAtMs = NaN; // the newest may have gone: recompute
  observe(r, ch, i, own(hosts, h));
}

function observe(r: ChannelReads, ch: ChannelIndex, i: number, o: HostObservation | undefined): void {
  r.obs[i] = o;
  const last = o?.lastCheckinMs ?? null;
  r.seenAt[i] = last === null ? NaN : last;
  let f = 0;
  if (last !== null) {
    const c = o!.currentClosure;
    if (c === ch.closureAt[i]) f |= RUNS_TARGET;
    else if (c !== null) f |= RUNS_OTHER;
  }
  if ((o?.complianceFailures?.length ?? 0) > 0) f |= COMPLIANCE_FAILING;
  r.flags[i] = f;
}

function newestEntered(recs: readonly (RolloutHost | undefined)[]): number {
  let last = -Infinity;
  for (const rh of recs) if (rh !== undefined && rh.enteredAtMs > last) last = rh.enteredAtMs;
  return last;
}
