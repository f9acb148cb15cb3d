/**
 * The reconcile loop (SPEC §5): every `reconcileIntervalSecs`, after a new fleet artefact, after
 * operator actions, and — coalesced by `reconcileDebounceMs` — after relevant check-ins, one pass:
 * expire confirm deadlines → `reconcile` (pure, reconciler/) → `applyActions` → `planWrites`
 * (pure) → the store applies the list in one transaction → the mirror takes the new state.
 *
 * Passes never overlap: a pass requested while one runs waits for it.
 */
import type { FleetResolved } from '../protocol/schema.ts';
import { reconcile } from '../reconciler/reconcile.ts';
import { applyActions, applyHostEvents } from '../reconciler/apply.ts';
import { noteDerived } from '../reconciler/journal.ts';
import type { Action, Observed } from '../reconciler/types.ts';
import type { Config } from './config.ts';
import { logBug, type Logger } from './log.ts';
import type { CpMetrics } from './metrics.ts';
import type { ObservedMirror } from './mirror.ts';
import { planExpiries, planWrites } from './plan.ts';
import type { SoakRestorer } from './soak-restore.ts';
import { StoreConflictError, type Fence, type RolloutOrigin, type Store } from './store/types.ts';

export type ReconcileLoopDeps = {
  config: Pick<Config, 'reconcileIntervalSecs' | 'reconcileDebounceMs' | 'offlineAfterSecs' | 'offlineGraceSecs'>;
  store: Store;
  mirror: ObservedMirror;
  restorer: SoakRestorer;
  /** The signed fleet in force and its origin (signedAt, sha256), or null before the first one. */
  inForce: () => { fleet: FleetResolved; origin: RolloutOrigin } | null;
  metrics: CpMetrics;
  now: () => number;
  log: Logger;
  /** The leader's fence (store.applyFenced); null: a follower, which leaves passes to the leader. */
  fence: () => Promise<Fence | null>;
  /** A pass asked for on a follower (it leaves it to the leader): wake the leader (issue 17). */
  onFollowerPass?: (trigger: string) => void;
};

export class ReconcileLoop {
  private timer: NodeJS.Timeout | null = null;
  private debounce: NodeJS.Timeout | null = null;
  private stopped = false;
  private running: Promise<Action[]> | null = null;

  constructor(private readonly d: ReconcileLoopDeps) {}

  /** Start the periodic pass. */
  start(): void {
    this.timer ??= setInterval(() => void this.safeRun('tick'), this.d.config.reconcileIntervalSecs * 1000);
  }

  stop(): void {
    this.stopped = true;
    if (this.timer !== null) clearInterval(this.timer);
    if (this.debounce !== null) clearTimeout(this.debounce);
    this.timer = null;
    this.debounce = null;
  }

  /** Coalesce reconcile requests: at most one pass per `reconcileDebounceMs`. */
  request(delayMs: number = this.d.config.reconcileDebounceMs, trigger: string = 'event'): void {
    if (this.stopped || this.debounce !== null) return;
    this.debounce = setTimeout(() => {
      this.debounce = null;
      void this.safeRun(trigger);
    }, delayMs);
  }

  private async safeRun(trigger: string): Promise<void> {
    try {
      await this.runNow(trigger);
    } catch (e) {
      logBug(this.d.log, 'reconcile.failed', e, { trigger });
    }
  }

  /**
   * One pass now (after the one running, if any). Returns the reconciler's actions. `onStart` is
   * called when the pass begins reading (what was committed before it is in the pass).
   */
  runNow(trigger: string = 'manual', onStart?: () => void): Promise<Action[]> {
    const prev = this.running;
    const run = (): Promise<Action[]> => {
      onStart?.();
      return this.pass(trigger);
    };
    const next: Promise<Action[]> = prev === null ? run() : prev.then(run, run);
    this.running = next;
    const clear = (): void => {
      if (this.running === next) this.running = null;
    };
    next.then(clear, clear);
    return next;
  }

  /**
   * One pass, by the leader only. On a shared store the mirror is reloaded first (other replicas
   * wrote check-ins), and a pass that raced a check-in on another replica (`StoreConflictError`:
   * nothing written) is decided again.
   */
  private async pass(trigger: string): Promise<Action[]> {
    for (let attempt = 1; ; attempt++) {
      const fence = await this.d.fence();
      if (fence === null) {
        this.d.onFollowerPass?.(trigger);
        return [];
      }
      if (this.d.store.shared) await this.d.mirror.reload();
      try {
        return await this.passOnce(trigger, fence);
      } catch (e) {
        if (!(e instanceof StoreConflictError) || attempt >= 5) throw e;
      }
    }
  }

  private async passOnce(trigger: string, fence: Fence): Promise<Action[]> {
    const inForce = this.d.inForce();
    if (inForce === null) return [];
    const started = performance.now();
    const readMs = this.d.now();
    const channels = await this.d.store.loadChannelState();
    const expired = await this.d.store.expiredDispatches(readMs);
    const base = this.d.mirror.peek() ?? (await this.d.mirror.get());
    // From here to apply: synchronous, so the mirror cannot move under the decision. The pass's
    // time is taken now, after the awaited reads: check-ins this replica merged into the mirror
    // meanwhile are not later than it (issue 17; the reconciler also takes a later stamp as "now").
    const nowMs = Math.max(readMs, this.d.now());
    const loaded: Observed = { ...base, ...channels };
    noteDerived(loaded, base, []); // the channel maps only: the pass re-reads the hosts changed since the last (issue 19)
    const expiries = planExpiries(expired, nowMs);
    const mid = this.d.restorer.apply(applyHostEvents(loaded, expiries.events, nowMs), nowMs);
    const actions = reconcile(inForce.fleet, mid, nowMs, { offlineAfterMs: this.d.config.offlineAfterSecs * 1000, offlineGraceMs: this.d.config.offlineGraceSecs * 1000 });
    const final = applyActions(mid, actions, nowMs);
    const { writes } = planWrites(loaded, final, { nowMs, origin: inForce.origin, actor: 'cp', actions });
    const applied = this.d.store.applyFenced([...expiries.writes, ...writes], fence);
    this.d.mirror.replace(final);
    try {
      await applied;
    } catch (e) {
      this.d.mirror.invalidate(); // an asynchronous store failed after the mirror moved on
      throw e;
    }
    this.d.metrics.reconcileDuration.observe((performance.now() - started) / 1000);
    this.d.metrics.reconcileRuns.inc({ trigger });
    for (const gate of gateBlocksOf(actions)) this.d.metrics.gateBlocks.inc({ gate });
    return actions;
  }
}

/** The gate each blocking action names (issue 15 metric `nixfleet_gate_blocks_total{gate}`). */
export function gateBlocksOf(actions: readonly Action[]): string[] {
  const SKIP: Record<string, string> = { quarantined: 'quarantine', offline: 'online', 'skipped-offline': 'online', 'host-edge': 'host-edge', compliance: 'compliance', pinned: 'pin' };
  const WAVE: Record<string, string> = { budget: 'budget', 'host-edge-deadlock': 'host-edge', 'change-window': 'change-window' };
  const out: string[] = [];
  for (const a of actions) {
    if (a.kind === 'skip_host') out.push(SKIP[a.code] ?? a.code);
    else if (a.kind === 'wave_blocked') out.push(WAVE[a.code] ?? a.code);
    else if (a.kind === 'fail_host' && a.reason.startsWith('health gate failed')) out.push(a.reason.includes('compliance') ? 'health-compliance' : 'health');
  }
  return out;
}
