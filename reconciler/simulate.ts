/**
 * Plays whole rollouts over virtual time against a model of hosts, applying the reconciler's
 * actions the way the control plane does (SPEC §5 reconcile loop) and the agents' check-ins,
 * activations, confirms and roll-backs the way agents do (SPEC §6). Used by the property tests,
 * the benchmark and the README's worked example.
 *
 * Each host follows a behaviour: activation succeeds / fails / never confirms, goes offline for a
 * while (or for good), probes start failing N ms after its confirm, failed systemd units.
 * Everything is deterministic: check-in times are spread by a hash of the host name, not jitter.
 *
 * Pure module: no I/O, no clock, no randomness (virtual time is a number).
 */
import type { FleetResolved } from '../protocol/schema.ts';
import { applyActions, applyHostEvents, emptyObserved } from './apply.ts';
import { indexFleet } from './fleet-index.ts';
import { ensureJournal } from './journal.ts';
import { reconcile } from './reconcile.ts';
import type { Action, HostEvent, Observed, ReconcileOptions } from './types.ts';

export type HostBehaviour = {
  /**
   * What happens when the host activates a target. Default 'ok'. 'reboot' (issue 14): the switch
   * is deferred to the next boot (PendingReboot); the host reboots `rebootAfterMs` later (null:
   * never, a manual reboot that does not come) and then confirms.
   */
  activation?: 'ok' | 'fail' | 'never-confirm' | 'reboot';
  rebootAfterMs?: number | null;
  /** Someone switches the host by hand to `hand-<host>` this many ms after the start (drift; issue 14). */
  driftAtMs?: number | null;
  /** Offline from this many ms after the start of the simulation … */
  offlineFromMs?: number | null;
  /** … until this many ms after the start (null or absent: for good). */
  offlineUntilMs?: number | null;
  /** Probes fail from this many ms after its confirm (null: never). */
  probesFailAfterMs?: number | null;
  /** Failed systemd units reported after a confirm. */
  failedUnits?: string[];
  /** Open compliance failures reported after a confirm. */
  complianceFailures?: string[];
};

export type SimTick = { nowMs: number; tick: number; before: Observed; actions: Action[]; after: Observed };

export type SimOptions = {
  startMs?: number; // default 2026-01-01T00:00:00Z
  tickMs?: number; // CP reconcile interval, default 10 s
  pollMs?: number; // agent poll interval, default 60 s
  activationMs?: number; // fetch + switch + probes until the confirm, default 20 s
  confirmDeadlineMs?: number; // default 120 s, counted from the hand-out of the target
  maxTicks?: number; // default 10,000
  reconcile?: Partial<ReconcileOptions>;
  behaviour?: (host: string) => HostBehaviour;
  /** What each host runs at the start (default `old-<host>`). */
  initialClosure?: (host: string) => string | null;
  initialObserved?: Observed;
  /** Stop when every channel's rollout is Converged or Halted and nothing is in flight (default true). */
  stopWhenSettled?: boolean;
  /** Operator or test hook run before each reconcile (pause / resume a channel, clear a quarantine…). */
  operator?: (nowMs: number, observed: Observed) => Observed;
  onTick?: (t: SimTick) => void;
  /** Stop after a tick for which this returns true (the benchmark stops once it has its ticks). */
  until?: (t: SimTick) => boolean;
  /** The decision function (default `reconcile`; the benchmark wraps it to time each tick). */
  decide?: typeof reconcile;
};

export type SimResult = {
  observed: Observed;
  ticks: number;
  startMs: number;
  endMs: number;
  settled: boolean;
  /** channel → virtual time its current rollout converged (absent: did not). */
  convergedAtMs: Record<string, number>;
  actionCounts: Record<string, number>;
  events: number;
};

type Agent = {
  name: string;
  channel: string;
  current: string | null;
  previous: string | null;
  nextCheckinMs: number;
  activation: { rolloutId: string; closure: string; doneAtMs: number } | null;
  confirmedAtMs: number | null;
  /** The agent's own magic-rollback deadline for a switched but unconfirmed closure. */
  unconfirmedUntilMs: number | null;
  behaviour: HostBehaviour;
  /** Deferred activation waiting for the boot (issue 14). */
  pendingBoot: { rolloutId: string; closure: string; bootAtMs: number | null } | null;
  drifted: boolean;
};

function spread(name: string, range: number): number {
  let x = 0x811c9dc5;
  for (let i = 0; i < name.length; i++) x = Math.imul(x ^ name.charCodeAt(i), 0x01000193) >>> 0;
  return range <= 0 ? 0 : x % range;
}

/** Runs the simulation; see `SimOptions` for the model and its defaults. */
export function simulate(fleet: FleetResolved, options: SimOptions = {}): SimResult {
  const startMs = options.startMs ?? Date.UTC(2026, 0, 1);
  const tickMs = options.tickMs ?? 10_000;
  const pollMs = options.pollMs ?? 60_000;
  const activationMs = options.activationMs ?? 20_000;
  const confirmDeadlineMs = options.confirmDeadlineMs ?? 120_000;
  const maxTicks = options.maxTicks ?? 10_000;
  const stopWhenSettled = options.stopWhenSettled ?? true;
  const idx = indexFleet(fleet);

  const names = Object.keys(fleet.hosts).sort();
  const agents: Agent[] = names.map((name) => ({
    name,
    channel: fleet.hosts[name]!.channel,
    current: options.initialClosure ? options.initialClosure(name) : `old-${name}`,
    previous: null,
    nextCheckinMs: startMs + spread(name, pollMs),
    activation: null,
    confirmedAtMs: null,
    unconfirmedUntilMs: null,
    behaviour: options.behaviour?.(name) ?? {},
    pendingBoot: null,
    drifted: false,
  }));
  const deadlines = new Map<string, { rolloutId: string; atMs: number }>();
  let observed = options.initialObserved ?? emptyObserved();
  const convergedAtMs: Record<string, number> = {};
  const actionCounts: Record<string, number> = {};
  let events = 0;
  let settled = false;
  let tick = 0;
  let nowMs = startMs;

  const isOffline = (a: Agent, t: number): boolean => {
    const from = a.behaviour.offlineFromMs;
    if (from === undefined || from === null) return false;
    const until = a.behaviour.offlineUntilMs ?? null;
    return t - startMs >= from && (until === null || t - startMs < until);
  };
  const currentRollout = (a: Agent) => {
    const id = idx.channels.get(a.channel)?.rolloutId ?? null;
    return id === null ? undefined : observed.rollouts[id];
  };

  for (; tick < maxTicks; tick++) {
    nowMs = startMs + tick * tickMs;
    const ev: { host: string; event: HostEvent }[] = [];

    for (const a of agents) {
      // Activation in progress finishes: switch, then confirm (or not).
      if (a.activation !== null && a.activation.doneAtMs <= nowMs) {
        const act = a.activation;
        a.activation = null;
        if (isOffline(a, nowMs)) continue; // the agent died mid-activation: nothing switched
        const mode = a.behaviour.activation ?? 'ok';
        if (mode === 'fail') {
          ev.push({ host: a.name, event: { kind: 'failed', rolloutId: act.rolloutId, reason: 'switch-to-configuration failed' } });
          continue;
        }
        if (mode === 'reboot') {
          const after = a.behaviour.rebootAfterMs === undefined ? 5 * 60_000 : a.behaviour.rebootAfterMs;
          a.pendingBoot = { rolloutId: act.rolloutId, closure: act.closure, bootAtMs: after === null ? null : nowMs + after };
          deadlines.delete(a.name); // no confirm deadline until the boot
          ev.push({ host: a.name, event: { kind: 'deferred', rolloutId: act.rolloutId } });
          continue;
        }
        a.previous = a.current;
        a.current = act.closure;
        ev.push({ host: a.name, event: { kind: 'switched', rolloutId: act.rolloutId } });
        const r = observed.rollouts[act.rolloutId];
        const dl = deadlines.get(a.name);
        const st = r?.hosts[a.name]?.state;
        const cancelled =
          r === undefined || r.state === 'Superseded' || dl === undefined || dl.atMs < nowMs || (st !== 'Activating' && st !== 'Dispatched' && st !== 'ConfirmWindow');
        if (mode === 'never-confirm') {
          a.unconfirmedUntilMs = nowMs + confirmDeadlineMs;
        } else if (cancelled) {
          // 410 on confirm: magic rollback (SPEC §6).
          a.current = a.previous;
          ev.push({ host: a.name, event: { kind: 'rolled-back', rolloutId: act.rolloutId, reason: 'confirm refused (410)' } });
        } else {
          a.confirmedAtMs = nowMs;
          deadlines.delete(a.name);
          ev.push({ host: a.name, event: { kind: 'confirmed', rolloutId: act.rolloutId } });
        }
      }
      if (a.pendingBoot !== null && a.pendingBoot.bootAtMs !== null && a.pendingBoot.bootAtMs <= nowMs && !isOffline(a, nowMs)) {
        // The reboot: the booted system is the target; a fresh confirm.
        a.previous = a.current;
        a.current = a.pendingBoot.closure;
        a.confirmedAtMs = nowMs;
        ev.push({ host: a.name, event: { kind: 'confirmed', rolloutId: a.pendingBoot.rolloutId } });
        a.pendingBoot = null;
      }
      const driftAt = a.behaviour.driftAtMs;
      if (!a.drifted && driftAt !== undefined && driftAt !== null && nowMs - startMs >= driftAt) {
        a.drifted = true;
        a.current = `hand-${a.name}`;
      }
      if (a.unconfirmedUntilMs !== null && a.unconfirmedUntilMs <= nowMs) {
        a.unconfirmedUntilMs = null;
        a.current = a.previous; // the agent's own deadline: roll back
      }
      if (a.nextCheckinMs > nowMs) continue;
      while (a.nextCheckinMs <= nowMs) a.nextCheckinMs += pollMs;
      if (isOffline(a, nowMs)) continue;

      const sinceConfirm = a.confirmedAtMs === null ? null : nowMs - a.confirmedAtMs;
      const probesFail = a.behaviour.probesFailAfterMs != null && sinceConfirm !== null && sinceConfirm >= a.behaviour.probesFailAfterMs;
      const confirmed = a.confirmedAtMs !== null;
      ev.push({
        host: a.name,
        event: {
          kind: 'checkin',
          currentClosure: a.current,
          bootId: `boot-${a.name}`,
          probes: { observed: true, passing: !probesFail },
          failedUnits: confirmed ? (a.behaviour.failedUnits ?? []) : [],
          complianceFailures: confirmed ? (a.behaviour.complianceFailures ?? []) : [],
        },
      });
      // The CP's answer: a target when Dispatched, a rollback instruction when requested.
      const r = currentRollout(a);
      const rh = r?.hosts[a.name];
      if (r !== undefined && rh !== undefined && a.activation === null) {
        if (rh.state === 'Dispatched') {
          deadlines.set(a.name, { rolloutId: r.id, atMs: nowMs + confirmDeadlineMs });
          a.activation = { rolloutId: r.id, closure: rh.closure, doneAtMs: nowMs + activationMs };
          ev.push({ host: a.name, event: { kind: 'activating', rolloutId: r.id } });
        } else if (rh.state === 'Failed' && rh.rollbackRequested) {
          if (a.current === rh.closure && a.previous !== null) a.current = a.previous;
          ev.push({ host: a.name, event: { kind: 'rolled-back', rolloutId: r.id, reason: 'rollback requested by the control plane' } });
        }
      }
    }
    // CP confirm deadlines.
    for (const [host, dl] of [...deadlines].sort((x, y) => (x[0] < y[0] ? -1 : 1))) {
      if (dl.atMs > nowMs) continue;
      deadlines.delete(host);
      ev.push({ host, event: { kind: 'deadline-expired', rolloutId: dl.rolloutId } });
    }
    events += ev.length;
    observed = applyHostEvents(observed, ev, nowMs);
    if (options.operator) observed = options.operator(nowMs, observed);
    // The journal (journal.ts): each tick re-reads only the hosts changed since the last one. An
    // operator hook's value built by hand starts a new lineage (that tick reads every host).
    ensureJournal(observed);

    const before = observed;
    const actions = (options.decide ?? reconcile)(fleet, observed, nowMs, options.reconcile);
    observed = applyActions(observed, actions, nowMs);
    for (const a of actions) {
      actionCounts[a.kind] = (actionCounts[a.kind] ?? 0) + 1;
      if (a.kind === 'converge_rollout' && !(a.channel in convergedAtMs)) convergedAtMs[a.channel] = nowMs;
    }
    const simTick: SimTick = { nowMs, tick, before, actions, after: observed };
    options.onTick?.(simTick);
    if (options.until?.(simTick) === true) {
      tick++;
      break;
    }

    if (stopWhenSettled && isSettled(fleet, observed) && agents.every((a) => a.activation === null && a.unconfirmedUntilMs === null)) {
      settled = true;
      tick++;
      break;
    }
  }
  return { observed, ticks: tick, startMs, endMs: nowMs, settled, convergedAtMs, actionCounts, events };
}

/**
 * True when every channel with hosts to update has its current rollout Converged or Halted, no
 * host of it in flight and no requested rollback outstanding.
 */
export function isSettled(fleet: FleetResolved, observed: Observed): boolean {
  for (const ch of indexFleet(fleet).channels.values()) {
    if (ch.rolloutId === null) continue;
    const r = observed.rollouts[ch.rolloutId];
    if (r === undefined || (r.state !== 'Converged' && r.state !== 'Halted')) return false;
    for (const h of ch.members) {
      const rh = r.hosts[h];
      if (rh === undefined) continue;
      const s = rh.state;
      if (s === 'Dispatched' || s === 'Activating' || s === 'ConfirmWindow' || s === 'PendingReboot' || s === 'Healthy') return false;
      if (s === 'Failed' && rh.rollbackRequested) return false;
    }
  }
  return true;
}
