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

/** A small seeded PRNG (mulberry32) so random fleets are reproducible from one integer. */
export function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export type RandomFleetParams = {
  hosts: number;
  channels: number;
  maxWaves: number;
  /** Per host: probability of a host edge to an earlier host of its channel. */
  edgeRate: number;
  /** Chain the channels with channel edges (c0 gates c1 gates …). */
  channelEdges: boolean;
  budgets: number;
  /** Probability that a host has no closure yet (not part of any rollout). */
  nullClosureRate: number;
  maxSoakMinutes: number;
  seed: number;
};

/**
 * A random but valid fleet (what `resolve` would accept): waves are contiguous chunks of each
 * channel's hosts, host edges only point to an earlier host of the same channel (so never
 * against wave order, never a cycle), channel edges form a chain.
 */
export function randomFleet(p: RandomFleetParams): FleetResolved {
  const rnd = prng(p.seed);
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rnd() * xs.length)]!;
  const channelNames = Array.from({ length: p.channels }, (_, i) => `c${i}`);
  const hosts: FleetSpec['hosts'] = {};
  const byChannel = new Map<string, string[]>(channelNames.map((c) => [c, []]));
  const TAGS = ['web', 'db', 'edge', 'eu', 'us'];
  for (let i = 0; i < p.hosts; i++) {
    const name = `h${String(i).padStart(3, '0')}`;
    const channel = pick(channelNames);
    const tags = TAGS.filter(() => rnd() < 0.3);
    hosts[name] = { channel, tags, closure: rnd() < p.nullClosureRate ? null : closureFor(name, p.seed & 0xff) };
    byChannel.get(channel)!.push(name);
  }
  const channels: FleetSpec['channels'] = {};
  const edges: NonNullable<FleetSpec['edges']> = [];
  for (const c of channelNames) {
    const members = byChannel.get(c)!;
    const nWaves = Math.max(1, Math.min(members.length, 1 + Math.floor(rnd() * p.maxWaves)));
    const waves: string[][] = Array.from({ length: nWaves }, () => []);
    // contiguous chunks; the first wave is small (a canary)
    members.forEach((h, i) => {
      const w = i === 0 ? 0 : Math.min(nWaves - 1, 1 + Math.floor(((i - 1) * (nWaves - 1)) / Math.max(1, members.length - 1)));
      waves[nWaves === 1 ? 0 : w]!.push(h);
    });
    members.forEach((h, i) => {
      if (i > 0 && rnd() < p.edgeRate) edges.push({ gated: h, gates: members[Math.floor(rnd() * i)]!, reason: null });
    });
    channels[c] = {
      waves: waves.filter((w) => w.length > 0),
      soakMinutes: waves.map(() => Math.floor(rnd() * (p.maxSoakMinutes + 1))),
      onHealthFailure: rnd() < 0.5 ? 'halt' : 'rollback-and-halt',
      ...(rnd() < 0.3 ? { failedUnitsMax: 0 } : {}),
      complianceMode: pick(['disabled', 'permissive', 'enforce'] as const),
    };
    if (channels[c]!.waves.length === 0) channels[c]!.waves = [[]];
  }
  const channelEdges = p.channelEdges ? channelNames.slice(1).map((c, i) => ({ gates: channelNames[i]!, gated: c, reason: null })) : [];
  const budgets: BudgetSpec[] = [];
  for (let i = 0; i < p.budgets; i++) {
    const kind = Math.floor(rnd() * 3);
    const selector: Partial<Selector> = kind === 0 ? { all: true } : kind === 1 ? { tags: [pick(TAGS)] } : { channel: pick(channelNames) };
    const maxInFlight = rnd() < 0.7 ? 1 + Math.floor(rnd() * 20) : null;
    const maxInFlightPct = rnd() < 0.5 ? 1 + Math.floor(rnd() * 100) : null;
    budgets.push({ selector, maxInFlight, maxInFlightPct });
  }
  return makeFleet({ hosts, channels, edges, channelEdges, budgets });
}

/** Deep copy with the keys of every object inserted in a shuffled order (arrays keep theirs). */
export function shuffleKeys<T>(value: T, rnd: () => number): T {
  if (Array.isArray(value)) return value.map((v) => shuffleKeys(v, rnd)) as T;
  if (value === null || typeof value !== 'object') return value;
  const keys = Object.keys(value);
  for (let i = keys.length - 1; i > 0; i--) {
    const j = Math.floor(rnd() * (i + 1));
    [keys[i], keys[j]] = [keys[j]!, keys[i]!];
  }
  const out: Record<string, unknown> = {};
  for (const k of keys) out[k] = shuffleKeys((value as Record<string, unknown>)[k], rnd);
  return out as T;
}
