/**
 * Soak restoration after a rebuild from empty (SPEC §5, §6): the verified signed confirmed records
 * agents send with their check-ins, kept until the reconcile loop or the host's next check-in can
 * apply them. This is state restoration, not a decision: the reconciler then soaks, promotes and
 * dispatches as usual.
 */
import { noteDerived } from '../reconciler/journal.ts';
import type { Observed, Rollout } from '../reconciler/types.ts';

const iso = (ms: number): string => new Date(ms).toISOString();

export type ConfirmedClaim = { rolloutId: string; closure: string; confirmedAtMs: number };

export class SoakRestorer {
  /** Verified signed confirmed records not applied yet (host → what it confirmed, when). */
  private readonly restorable = new Map<string, ConfirmedClaim>();
  /** Signature of the last confirmed record examined per host (each record is verified once). */
  private readonly seen = new Map<string, string>();

  /** Whether this record (by its signature) was not examined for this host yet. */
  isNew(host: string, signature: string): boolean {
    return this.seen.get(host) !== signature;
  }

  markSeen(host: string, signature: string): void {
    this.seen.set(host, signature);
  }

  /** Whether a verified claim of `host` waits to be applied. */
  pending(host: string): boolean {
    return this.restorable.has(host);
  }

  note(host: string, claim: ConfirmedClaim): void {
    this.restorable.set(host, claim);
  }

  /**
   * A host that waits Queued in the rollout its record names, runs the record's closure, and that
   * closure is its target there, becomes Healthy since it confirmed — so its wave's soak counts
   * from `confirmedAt`, not from the rebuild (without a record the reconciler would take it as
   * already Soaked). Pure over `o` (copies what it changes); `only` limits it to one host.
   */
  apply(o: Observed, nowMs: number, only?: string): Observed {
    if (this.restorable.size === 0) return o;
    const touched = new Map<string, Rollout>();
    const hosts: string[] = [];
    for (const [h, rec] of this.restorable) {
      if (only !== undefined && h !== only) continue;
      const r0 = touched.get(rec.rolloutId) ?? o.rollouts[rec.rolloutId];
      const rh = r0?.hosts[h];
      if (r0 === undefined || rh === undefined || r0.state === 'Superseded') continue;
      if (rh.state !== 'Queued') {
        this.restorable.delete(h); // it moved on: nothing to restore
        continue;
      }
      if (rh.closure !== rec.closure || o.hosts[h]?.currentClosure !== rec.closure) continue;
      const r = touched.get(r0.id) ?? { ...r0, hosts: { ...r0.hosts }, history: r0.history.slice() };
      touched.set(r.id, r);
      const at = Math.min(rec.confirmedAtMs, nowMs);
      r.hosts[h] = { ...rh, state: 'Healthy', enteredAtMs: at, skip: null };
      hosts.push(h);
      r.history.push({ atMs: nowMs, host: h, from: 'Queued', to: 'Healthy', wave: rh.wave, reason: `restored from the host's signed confirmed record (confirmed ${iso(at)}): the soak counts from then` });
      this.restorable.delete(h);
    }
    if (touched.size === 0) return o;
    const next = { ...o, rollouts: { ...o.rollouts, ...Object.fromEntries(touched) } };
    noteDerived(next, o, hosts); // the reconcile pass re-reads these hosts (reconciler/journal.ts)
    return next;
  }
}
