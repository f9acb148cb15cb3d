/**
 * The observed-state mirror: the hosts and rollouts of observed state the reconciler reads
 * (histories empty), loaded from the store on first use and then kept write-through — check-ins
 * merge their one-host slice, a reconcile pass replaces it. A reconcile pass then costs the
 * reconciler's time, not 20,000 row reads. The channel-level maps (operator state) are not
 * mirrored: the reconcile loop reads them from the store on every pass.
 *
 * The mirror keeps a host-change journal (reconciler/journal.ts) so that a pass re-reads only the
 * hosts changed since the last one (issue 19): a load or reload starts a new one (the next pass
 * reads every host), `merge` notes its host, `replace` carries on the journal of the pass's result.
 */
import { ensureJournal, noteDerived, noteInPlace, startJournal, type ObservationNote } from '../reconciler/journal.ts';
import type { HostObservation, Observed } from '../reconciler/types.ts';
import type { Awaitable } from './store/types.ts';

/**
 * A quiet check-in's time not yet in the mirror (`touchLater`), in an object its owner keeps per
 * host (quiet-checkins.ts) and updates in place: a quiet check-in allocates nothing here. `obs` is
 * the host's observation in the mirror; `atMs` its latest check-in time; `queued` whether it waits
 * in the mirror's queue.
 */
export type PendingTouch = { readonly host: string; obs: HostObservation; atMs: number; queued: boolean };

export class ObservedMirror {
  private cache: Observed | null = null;
  private epochN = 0;
  /** Quiet check-ins' times waiting to be folded in (`touchLater`), each host at most once. */
  private queue: PendingTouch[] = [];

  /**
   * Moves on with every change but a quiet check-in's: a load, `merge`, `replace`, `invalidate`.
   * While it stays the same, every host's observation and rollout records are the very objects they
   * were, except the observations of `touchLater`'s hosts replaced when folded in, each with its
   * `PendingTouch.obs` (quiet-checkins.ts checks a host's once per epoch).
   */
  get epoch(): number {
    return this.epochN;
  }

  constructor(private readonly load: () => Awaitable<Observed>) {}

  /** The mirror (loaded from the store when empty). Do not mutate: use `merge` / `replace`. */
  async get(): Promise<Observed> {
    if (this.cache !== null) return this.peek()!;
    const loaded = toMirror(await this.load());
    // A concurrent load may have finished first: keep the one already in place.
    if (this.cache === null) {
      startJournal(loaded);
      this.cache = loaded;
      this.epochN++;
    }
    return this.cache;
  }

  /** The mirror if loaded, else null (no await once warm), with every quiet check-in's time in it. */
  peek(): Observed | null {
    const c = this.cache;
    if (c !== null && this.queue.length > 0) this.fold(c);
    return c;
  }

  /**
   * The mirror as it is, the times `touchLater` queued not folded in: for the quiet check-in path
   * only, which reads a host's time from its own `PendingTouch`.
   */
  peekUnfolded(): Observed | null {
    return this.cache;
  }

  /** Drop it: the next `get` reloads from the store (after a rolled-back group commit). */
  invalidate(): void {
    this.cache = null;
    this.epochN++;
  }

  /**
   * Reload from the store (a shared store: other replicas wrote check-ins). Issue 14's drift and
   * rollout controls come with it: they are stored (a new leader goes on from them).
   */
  async reload(): Promise<Observed> {
    const loaded = toMirror(await this.load());
    startJournal(loaded);
    this.cache = loaded;
    this.epochN++;
    return loaded;
  }

  /** After a reconcile pass: the new observed state, as the store would load it. */
  replace(after: Observed): void {
    const next = toMirror(after);
    noteDerived(next, after, []); // the same hosts (histories dropped)
    ensureJournal(next); // `after` had no journal (or forked): the next pass reads every host
    this.cache = next;
    this.epochN++;
  }

  /**
   * The part of observed state a host event can touch: the host's observation and its entry in
   * every rollout that is not Superseded (the rollout with only this host). Channel maps are empty:
   * host events do not use them (reconciler/apply.ts).
   */
  static slice(c: Observed, h: string): Observed {
    const hosts: Observed['hosts'] = {};
    if (Object.prototype.hasOwnProperty.call(c.hosts, h)) hosts[h] = c.hosts[h]!;
    const rollouts: Observed['rollouts'] = {};
    for (const r of Object.values(c.rollouts)) {
      // Converged rollouts stay: a host that was offline past the grace gets its target when it
      // returns (SPEC §4), after the rollout converged without it.
      if (r.state === 'Superseded' || !Object.prototype.hasOwnProperty.call(r.hosts, h)) continue;
      rollouts[r.id] = { ...r, hosts: { [h]: r.hosts[h]! }, history: [] };
    }
    return { hosts, rollouts, quarantinedClosures: {}, pausedChannels: {}, lastConverged: {}, deferrals: {} };
  }

  /**
   * A quiet check-in at `t.atMs` (quiet-checkins.ts), folded in by the next `peek` or `get` — the
   * next reconcile pass, full check-in or view: the host's observation with that check-in time, in
   * one journal note (observations only) for all hosts folded at once. One new observation per host
   * per fold, however often it checked in meanwhile (a host polling every second and a pass every
   * 10 s: a tenth of the objects, none of them made on the request path). Skipped at the fold when the host's observation is no longer `t.obs` (a
   * full check-in, a pass or a reload replaced it: the quiet path then decides in full again).
   * Within an epoch, folding replaces only the observations of queued hosts, and `t.obs` with them.
   */
  touchLater(t: PendingTouch): void {
    if (t.queued) return;
    t.queued = true;
    this.queue.push(t);
  }

  private fold(c: Observed): void {
    const q = this.queue;
    this.queue = [];
    const notes: ObservationNote[] = [];
    for (const t of q) {
      t.queued = false;
      const o = t.obs;
      if (c.hosts[t.host] !== o || o.lastCheckinMs === t.atMs) continue;
      const next: HostObservation = { ...o, lastCheckinMs: t.atMs };
      c.hosts[t.host] = next;
      t.obs = next;
      notes.push([t.host, next]);
    }
    noteInPlace(c, [], notes); // observations only, with their values: the next pass re-reads no rollout record for them
  }

  /** Fold a one-host slice back into the mirror (host events change nothing else). No-op when not loaded. */
  merge(h: string, after: Observed): void {
    const c = this.cache;
    if (c === null) return;
    this.epochN++;
    const o = after.hosts[h];
    if (o !== undefined) c.hosts[h] = o;
    for (const r of Object.values(after.rollouts)) {
      const rh = r.hosts[h];
      const target = c.rollouts[r.id];
      if (rh !== undefined && target !== undefined) target.hosts[h] = rh;
    }
    noteInPlace(c, [h]);
  }
}

/**
 * Observed state as `Store.loadObserved` would read it: histories empty, and only the rollouts it
 * loads (live ones, plus the newest of each channel whatever its state).
 */
export function toMirror(o: Observed): Observed {
  const newest = new Map<string, { openedAtMs: number; id: string }>();
  for (const r of Object.values(o.rollouts)) {
    const n = newest.get(r.channel);
    if (n === undefined || r.openedAtMs > n.openedAtMs || (r.openedAtMs === n.openedAtMs && r.id > n.id)) newest.set(r.channel, { openedAtMs: r.openedAtMs, id: r.id });
  }
  const rollouts: Observed['rollouts'] = {};
  for (const [id, r] of Object.entries(o.rollouts)) {
    const terminal = r.state === 'Converged' || r.state === 'Superseded';
    if (terminal && newest.get(r.channel)?.id !== id) continue;
    rollouts[id] = r.history.length === 0 ? r : { ...r, history: [] };
  }
  return { ...o, hosts: o.hosts, rollouts };
}
