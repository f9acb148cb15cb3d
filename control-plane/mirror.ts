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
import { ensureJournal, noteDerived, noteInPlace, noteObservationInPlace, startJournal } from '../reconciler/journal.ts';
import type { HostObservation, Observed } from '../reconciler/types.ts';
import type { Awaitable } from './store/types.ts';

export class ObservedMirror {
  private cache: Observed | null = null;
  private epochN = 0;

  /**
   * Moves on with every change but `touch`: a load, `merge`, `replace`, `invalidate`. While it stays
   * the same, every host's observation and rollout records are the very objects they were, except
   * the observations `touch` replaced (quiet-checkins.ts checks a host's once per epoch).
   */
  get epoch(): number {
    return this.epochN;
  }

  constructor(private readonly load: () => Awaitable<Observed>) {}

  /** The mirror (loaded from the store when empty). Do not mutate: use `merge` / `replace`. */
  async get(): Promise<Observed> {
    if (this.cache !== null) return this.cache;
    const loaded = toMirror(await this.load());
    // A concurrent load may have finished first: keep the one already in place.
    if (this.cache === null) {
      startJournal(loaded);
      this.cache = loaded;
      this.epochN++;
    }
    return this.cache;
  }

  /** The mirror if loaded, else null (the hot path: no await once warm). */
  peek(): Observed | null {
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

  /** A quiet check-in (quiet-checkins.ts): the host's new observation, nothing else. No-op when not loaded. */
  touch(h: string, obs: HostObservation): void {
    const c = this.cache;
    if (c === null) return;
    c.hosts[h] = obs;
    noteObservationInPlace(c, h, obs); // its observation only, with its value: the next pass re-reads no rollout record for it, nor looks the observation up
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
