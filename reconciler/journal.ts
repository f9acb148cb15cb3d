/**
 * The host-change journal (issue 19): which hosts changed between two `Observed` values of one
 * lineage, kept beside the values (a WeakMap keyed by the `Observed` object), never inside them —
 * `Observed` stays plain JSON-able data. A reconcile tick reads only the hosts changed since the
 * last tick it read (host-view.ts) instead of every host.
 *
 * "A host changed" means its observation (`hosts[h]`) or its record in any rollout
 * (`rollouts[id].hosts[h]`) may be another object. Everything else of `Observed` (rollout states,
 * channel maps, controls) is read afresh every tick and needs no note.
 *
 * Opt-in and fail-safe: a lineage starts with `startJournal` (the CP's mirror on load, the
 * simulator); the pure transitions of apply.ts note what they touch when their input is
 * journaled; an `Observed` without a stamp (built by hand, loaded, copied, or derived from a value
 * that is not the newest of its log) is read in full. A note may name more hosts than changed;
 * naming fewer is a bug, and the properties (journal.props.test.ts) check every tick against a
 * full read.
 *
 * Pure module: no I/O. The WeakMap is memoisation beside the data: reconciling with or without a
 * stamp gives the same actions.
 */
import type { HostObservation, Observed } from './types.ts';

/** Past this many noted names (no reader for a long while) the oldest half of the steps is dropped. */
const MAX_NAMES = 1 << 18;

/** A noted host whose observation changed and none of its rollout records (`JournalChanges.kinds`). */
export const OBSERVATION_ONLY = 1;

/**
 * A host whose observation changed (none of its rollout records): its name, or its name and its
 * new observation (`hosts[name]` from that step on). With the value, a reader takes the object from
 * the note instead of looking it up in a map of 100,000 hosts.
 */
export type ObservationNote = string | readonly [host: string, observation: HostObservation];

/**
 * The hosts noted between two steps (duplicates possible): `names[start..end)`, each with its kind
 * `kinds[j]`, OBSERVATION_ONLY or 0 (its records may have changed too), and `values[j]`: the
 * observation an OBSERVATION_ONLY note carried (undefined: none, look it up). A view into the log,
 * not a copy (at 100,000 hosts a tick's notes are 17,000 names, and copying arrays of that size is
 * a large-object allocation that costs about a millisecond each): read it before the log moves on,
 * do not mutate it.
 */
export type JournalChanges = {
  readonly names: readonly string[];
  readonly kinds: readonly number[];
  readonly values: readonly (HostObservation | undefined)[];
  readonly start: number;
  readonly end: number;
};

/** One lineage's notes: the names changed by each step, in order. */
export class JournalLog {
  /** Absolute step number of `marks[0]`. */
  private base = 0;
  /** `marks[k]`: `names.length` when the lineage was at step `base + k`. */
  private marks: number[] = [0];
  private names: string[] = [];
  /** Aligned with `names`: OBSERVATION_ONLY or 0. */
  private kinds: number[] = [];
  /** Aligned with `names`: the observation an OBSERVATION_ONLY note carried, if any. */
  private values: (HostObservation | undefined)[] = [];
  /** Steps that may have changed any host (a rollout record replaced whole). */
  private wholesale: number[] = [];
  /** The newest step that changed a value in place (older values may share its maps). */
  private lastInPlace = -1;
  /** Something changed in place that the log cannot place: every read is a full read. */
  private poisoned = false;

  /** The newest step. */
  get head(): number {
    return this.base + this.marks.length - 1;
  }

  /** Notes one step (its changed hosts, and hosts of which only the observation changed; null: any host); returns its number. */
  append(hosts: Iterable<string> | null, inPlace: boolean, observationsOnly: Iterable<ObservationNote> = []): number {
    if (hosts !== null) {
      for (const h of hosts) this.push(h, 0, undefined);
      for (const x of observationsOnly) {
        if (typeof x === 'string') this.push(x, OBSERVATION_ONLY, undefined);
        else this.push(x[0], OBSERVATION_ONLY, x[1]);
      }
    }
    return this.endStep(inPlace, hosts === null);
  }

  /** Closes the step whose names were just pushed; returns its number. */
  private endStep(inPlace: boolean, wholesale: boolean): number {
    this.marks.push(this.names.length);
    const step = this.head;
    if (wholesale) this.wholesale.push(step);
    if (inPlace) this.lastInPlace = step;
    if (this.names.length > MAX_NAMES) this.trim();
    return step;
  }

  private push(h: string, kind: number, value: HostObservation | undefined): void {
    this.names.push(h);
    this.kinds.push(kind);
    this.values.push(value);
  }

  poison(): void {
    this.poisoned = true;
  }

  /** The hosts changed from step `from` to step `to` (duplicates possible); null when that is not known. */
  between(from: number, to: number): JournalChanges | null {
    if (this.poisoned || from < this.base || from > to || to > this.head) return null;
    // A value older than an in-place change of its lineage may share the changed maps.
    if (this.lastInPlace > to) return null;
    if (this.wholesale.some((s) => s > from && s <= to)) return null;
    return { names: this.names, kinds: this.kinds, values: this.values, start: this.marks[from - this.base]!, end: this.marks[to - this.base]! };
  }

  /**
   * A reader caught up with step `step`: the names before it are dropped (a reader still behind
   * it reads in full). Keeps the log as long as the changes between two ticks.
   */
  release(step: number): void {
    if (step <= this.base || step > this.head) return;
    const k = step - this.base;
    const cut = this.marks[k]!;
    this.names = this.names.slice(cut);
    this.kinds = this.kinds.slice(cut);
    this.values = this.values.slice(cut);
    this.marks = this.marks.slice(k).map((m) => m - cut);
    this.base = step;
    this.wholesale = this.wholesale.filter((s) => s > step);
  }

  private trim(): void {
    this.release(this.base + (this.marks.length >> 1));
  }
}

/** Where an `Observed` stands in its lineage. */
export type JournalStamp = { readonly log: JournalLog; readonly step: number };

const stamps = new WeakMap<Observed, JournalStamp>();

/** The stamp of `o` (undefined: not journaled; read it in full). */
export function stampOf(o: Observed): JournalStamp | undefined {
  return stamps.get(o);
}

/** Starts a new lineage at `o` (after a load from the store, at the start of a simulation). */
export function startJournal(o: Observed): void {
  stamps.set(o, { log: new JournalLog(), step: 0 });
}

/** Starts a lineage at `o` unless it has one (an owner that lost it to a fork or an unnoted change). */
export function ensureJournal(o: Observed): void {
  if (!stamps.has(o)) startJournal(o);
}

/**
 * `next` was derived from `base` (a new object; `base` is left as it was) and differs from it at
 * most in the hosts `hosts` (null: possibly any host) and in the observations of the hosts
 * `observationsOnly` (their rollout records are the same objects; a note with a value says what
 * `next.hosts[host]` is). When `base` is not journaled, or is not the newest value of its lineage
 * (a fork), `next` is not journaled either: it is read in full.
 */
export function noteDerived(next: Observed, base: Observed, hosts: Iterable<string> | null, observationsOnly: Iterable<ObservationNote> = []): void {
  if (next === base) {
    noteInPlace(next, hosts === null ? null : [...hosts, ...[...observationsOnly].map((x) => (typeof x === 'string' ? x : x[0]))]);
    return;
  }
  const s = stamps.get(base);
  if (s === undefined || s.step !== s.log.head) {
    stamps.delete(next);
    return;
  }
  stamps.set(next, { log: s.log, step: s.log.append(hosts, false, observationsOnly) });
}

/**
 * `o` itself was changed in place in the hosts `hosts` (null: any; the CP's mirror after a
 * check-in), and in the observations only of `observationsOnly` (a quiet check-in; with a value:
 * what `o.hosts[host]` now is). Values of its lineage derived before may share the changed maps,
 * so they are read in full from now on. When `o` is not the newest value of its lineage, the
 * lineage is dropped.
 */
export function noteInPlace(o: Observed, hosts: Iterable<string> | null, observationsOnly: readonly ObservationNote[] = []): void {
  if (Array.isArray(hosts) && hosts.length === 0 && observationsOnly.length === 0) return;
  const s = newestStamp(o);
  if (s !== undefined) stamps.set(o, { log: s.log, step: s.log.append(hosts, true, observationsOnly) });
}

/** The stamp of `o` when `o` is the newest value of its lineage; otherwise the lineage is dropped (undefined). */
function newestStamp(o: Observed): JournalStamp | undefined {
  const s = stamps.get(o);
  if (s === undefined || s.step === s.log.head) return s;
  s.log.poison();
  stamps.delete(o);
  return undefined;
}

/** The hosts that may differ between the values stamped `from` and `to` (null: unknown, read in full). */
export function changedBetween(from: JournalStamp | undefined, to: JournalStamp | undefined): string[] | null {
  const c = changesBetween(from, to);
  return c === null ? null : c.names.slice(c.start, c.end);
}

/** The same, with each host's kind (host-view.ts re-reads only the observation of an OBSERVATION_ONLY host). */
export function changesBetween(from: JournalStamp | undefined, to: JournalStamp | undefined): JournalChanges | null {
  if (from === undefined || to === undefined || from.log !== to.log) return null;
  return to.log.between(from.step, to.step);
}
