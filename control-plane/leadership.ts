/**
 * Leadership among control plane replicas sharing one store (issue 17). Any replica serves agents
 * and operators; one — the holder of the store's leader lease — runs the reconcile loop and the
 * confirm deadlines, and every write of its passes is fenced by the lease's epoch (the store
 * checks it in the same transaction: `applyFenced`). The lease is renewed every `leaseMs / 3`; a
 * replica whose leader died takes the lease within `leaseMs` + one renewal period. A replica
 * counts itself leader only until `leaseMs` after its last successful renewal began (its own
 * monotonic clock), so a paused leader stops deciding before another can take over; the fence
 * catches the rest.
 *
 * A store that is not shared (SQLite: one process) always leads, with epoch 1.
 */
import { randomUUID } from 'node:crypto';
import { hostname } from 'node:os';
import type { Logger } from './log.ts';
import type { Fence, Store } from './store/types.ts';

export type LeadershipDeps = { store: Store; leaseMs: number; log: Logger; onGained: () => void };

export type LeadershipStatus = { role: 'leader' | 'follower'; holder: string; epoch: number | null; storeOk: boolean; storeError: string | null };

export class Leadership {
  readonly holder = `${hostname()}/${process.pid}/${randomUUID().slice(0, 8)}`;
  private epoch: number | null = null;
  private validUntil = 0;
  private renewedAt = -Infinity;
  private storeError: string | null = null;
  private timer: NodeJS.Timeout | null = null;
  private ticking: Promise<void> | null = null;

  constructor(private readonly d: LeadershipDeps) {}

  /** Renew (or try to take) the lease now. */
  tick(): Promise<void> {
    this.ticking ??= this.renew().finally(() => (this.ticking = null));
    return this.ticking;
  }

  private async renew(): Promise<void> {
    if (!this.d.store.shared) return;
    const started = performance.now();
    let epoch: number | null;
    try {
      epoch = await this.d.store.lease(this.holder, this.d.leaseMs);
      this.storeError = null;
    } catch (e) {
      this.storeError = e instanceof Error ? e.message : String(e);
      this.d.log.warn('leader.store-unreachable', { error: this.storeError });
      return; // keep what we had until it runs out (validUntil)
    }
    const was = this.epoch;
    this.renewedAt = started;
    if (epoch === null) {
      if (was !== null) this.d.log.warn('leader.lost', { holder: this.holder, epoch: was });
      this.epoch = null;
      return;
    }
    this.epoch = epoch;
    this.validUntil = started + this.d.leaseMs;
    if (was !== epoch) {
      this.d.log.info('leader.gained', { holder: this.holder, epoch });
      this.d.onGained();
    }
  }

  /** Renew periodically (every leaseMs / 3). */
  start(): void {
    if (!this.d.store.shared) return;
    this.timer ??= setInterval(() => void this.tick(), Math.max(100, Math.floor(this.d.leaseMs / 3)));
  }

  /** Stop renewing and give the lease up (another replica takes over at once). */
  async stop(): Promise<void> {
    if (this.timer !== null) clearInterval(this.timer);
    this.timer = null;
    await this.ticking;
    if (this.d.store.shared && this.epoch !== null) {
      this.epoch = null;
      try {
        await this.d.store.releaseLease(this.holder);
      } catch {
        // the lease runs out by itself
      }
    }
  }

  /** The fence for a leader's writes, renewing first when due; null: not the leader now. */
  async fence(): Promise<Fence | null> {
    if (!this.d.store.shared) return { holder: this.holder, epoch: 1 };
    if (performance.now() - this.renewedAt > this.d.leaseMs / 3) await this.tick();
    return this.current();
  }

  private current(): Fence | null {
    if (!this.d.store.shared) return { holder: this.holder, epoch: 1 };
    return this.epoch !== null && performance.now() < this.validUntil ? { holder: this.holder, epoch: this.epoch } : null;
  }

  /** `status().storeOk`, without building the status. */
  get storeOk(): boolean {
    return this.storeError === null;
  }

  status(): LeadershipStatus {
    const f = this.current();
    return { role: f !== null ? 'leader' : 'follower', holder: this.holder, epoch: f?.epoch ?? null, storeOk: this.storeOk, storeError: this.storeError };
  }
}
