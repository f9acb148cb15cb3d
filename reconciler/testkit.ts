/**
 * Builders for tests, properties, the simulator's callers and the benchmark: a compact fleet
 * spec → `FleetResolved`, and hand-made rollouts / observations for golden cases.
 *
 * Pure module: no I/O.
 */
import type { ComplianceMode, FleetResolved, Host, OnHealthFailure, Selector } from '../release/schema.ts';
import { indexFleet } from './fleet-index.ts';
import { emptyHostObservation, emptyObserved } from './apply.ts';
import type { HostObservation, HostRolloutState, Observed, Rollout, RolloutState } from './types.ts';

export type ChannelSpec = {
  /** Host names per wave. */
  waves: string[][];
  /** Soak per wave (a number applies to every wave). Default 0. */
  soakMinutes?: number | number[];
  onHealthFailure?: OnHealthFailure;
  failedUnitsMax?: number;
  complianceMode?: ComplianceMode;
  complianceProbesRequired?: boolean;
};

export type HostSpec = { channel: string; closure?: string | null; tags?: string[] };

export type BudgetSpec = { selector: Partial<Selector>; maxInFlight?: number | null; maxInFlightPct?: number | null };

export type FleetSpec = {
  hosts: Record<string, HostSpec>;
  channels: Record<string, ChannelSpec>;
  edges?: { gated: string; gates: string; reason?: string | null }[];
  channelEdges?: { gates: string; gated: string; reason?: string | null }[];
  budgets?: BudgetSpec[];
  signedAt?: string;
};

export const selector = (s: Partial<Selector>): Selector => ({
  all: s.all ?? false,
  hosts: s.hosts ?? [],
  tags: s.tags ?? [],
  tagsAny: s.tagsAny ?? [],
  channel: s.channel ?? null,
  ...(s.and !== undefined ? { and: s.and } : {}),
  ...(s.not !== undefined ? { not: s.not } : {}),
});

/** A store-basename-looking closure for host `h` at generation `gen`. */
export function closureFor(h: string, gen: number | string = 1): string {
  let x = 0x811c9dc5;
  const s = `${gen}/${h}`;
  for (let i = 0; i < s.length; i++) x = Math.imul(x ^ s.charCodeAt(i), 0x01000193) >>> 0;
  const hex = (x.toString(16).padStart(8, '0') + 'abcdfghijklmnpqrsvwxyz0123456789').slice(0, 32);
  return `${hex}-nixos-system-${h}-${gen}`;
}

/** Builds a `FleetResolved` (policy `p-<channel>` per channel, waves resolved as given). */
export function makeFleet(spec: FleetSpec): FleetResolved {
  const hosts: Record<string, Host> = {};
  for (const [h, hs] of Object.entries(spec.hosts)) {
    hosts[h] = {
      system: 'x86_64-linux',
      tags: hs.tags ?? [],
      channel: hs.channel,
      closureHash: hs.closure === undefined ? closureFor(h) : hs.closure,
      pubkey: null,
    };
  }
  const channels: FleetResolved['channels'] = {};
  const rolloutPolicies: FleetResolved['rolloutPolicies'] = {};
  const waves: FleetResolved['waves'] = {};
  for (const [c, cs] of Object.entries(spec.channels)) {
    const soak = (i: number): number => (typeof cs.soakMinutes === 'number' ? cs.soakMinutes : (cs.soakMinutes?.[i] ?? 0));
    channels[c] = {
      rolloutPolicy: `p-${c}`,
      freshnessWindow: 180,
      signingIntervalMinutes: 60,
      reconcileIntervalMinutes: 30,
      compliance: { frameworks: [], mode: cs.complianceMode ?? 'disabled' },
    };
    rolloutPolicies[`p-${c}`] = {
      strategy: cs.waves.length > 1 ? 'staged' : 'all-at-once',
      waves: cs.waves.map((hs, i) => ({ selector: selector({ hosts: hs }), soakMinutes: soak(i) })),
      healthGate: {
        ...(cs.failedUnitsMax !== undefined ? { systemdFailedUnits: { max: cs.failedUnitsMax } } : {}),
        ...(cs.complianceProbesRequired !== undefined ? { complianceProbes: { required: cs.complianceProbesRequired } } : {}),
      },
      onHealthFailure: cs.onHealthFailure ?? 'halt',
    };
    waves[c] = cs.waves.map((hs, i) => ({ hosts: hs, soakMinutes: soak(i) }));
  }
  return {
    schemaVersion: 1,
    hosts,
    channels,
    rolloutPolicies,
    waves,
    edges: (spec.edges ?? []).map((e) => ({ gated: e.gated, gates: e.gates, reason: e.reason ?? null })),
    channelEdges: (spec.channelEdges ?? []).map((e) => ({ gates: e.gates, gated: e.gated, reason: e.reason ?? null })),
    disruptionBudgets: (spec.budgets ?? []).map((b) => ({
      selector: selector(b.selector),
      maxInFlight: b.maxInFlight ?? null,
      maxInFlightPct: b.maxInFlightPct ?? null,
    })),
    meta: { schemaVersion: 1, signedAt: spec.signedAt ?? '2026-04-24T09:55:00Z', ciCommit: null },
  };
}

/** An online host observation (checked in at `atMs`, probes observed and passing by default). */
export function onlineHost(atMs: number, patch: Partial<HostObservation> = {}): HostObservation {
  return { ...emptyHostObservation(), lastCheckinMs: atMs, currentClosure: 'old-closure', probes: { observed: true, passing: true }, ...patch };
}

export type HostStateSpec = HostRolloutState | { state: HostRolloutState; enteredAtMs: number };

/**
 * A rollout record of `channel`'s current target, as `applyActions` would have built it, with
 * the given host states (others Queued).
 */
export function makeRollout(
  fleet: FleetResolved,
  channel: string,
  opts: { state?: RolloutState; currentWave?: number; atMs: number; hosts?: Record<string, HostStateSpec> },
): Rollout {
  const ch = indexFleet(fleet).channels.get(channel);
  if (ch === undefined || ch.rolloutId === null || ch.targetRef === null) throw new Error(`makeRollout: channel ${channel} has no members`);
  const hosts: Rollout['hosts'] = {};
  for (const h of ch.members) {
    const spec = opts.hosts?.[h] ?? 'Queued';
    const st = typeof spec === 'string' ? { state: spec, enteredAtMs: opts.atMs } : spec;
    hosts[h] = { state: st.state, enteredAtMs: st.enteredAtMs, closure: ch.closureOf.get(h)!, wave: ch.waveOf.get(h)!, skip: null, rollbackRequested: false };
  }
  const state = opts.state ?? 'Executing';
  return {
    id: ch.rolloutId,
    channel,
    targetRef: ch.targetRef,
    state,
    currentWave: opts.currentWave ?? 0,
    waveCount: ch.waveCount,
    openedAtMs: opts.atMs,
    startedAtMs: state === 'Pending' ? null : opts.atMs,
    stateReason: 'test',
    hosts,
    history: [],
  };
}

/** An `Observed` with the given host observations and rollouts. */
export function makeObserved(parts: Partial<Observed> & { rolloutList?: Rollout[] } = {}): Observed {
  const base = emptyObserved();
  const { rolloutList, ...rest } = parts;
  const o: Observed = { ...base, ...rest };
  if (rolloutList !== undefined) {
    o.rollouts = { ...o.rollouts };
    for (const r of rolloutList) o.rollouts[r.id] = r;
  }
  return o;
}
