/**
 * Per-fleet indexes the reconciler needs every tick (members per channel, wave of each host,
 * host edges, budgets, target refs). Built once per fleet object and memoised in a WeakMap: the
 * control plane passes the same verified fleet object tick after tick, so a tick costs
 * O(hosts in rollouts), not a re-sort of the fleet. Everything is sorted, so the result does not
 * depend on the key order of the input maps (SPEC §4).
 *
 * Pure module: no I/O.
 */
import { sha256Hex } from '../protocol/crypto.ts';
import { matchesSelector } from '../protocol/schema.ts';
import { parseTimestamp } from '../protocol/vocab.ts';
import { CHANNEL_CONTROL_DEFAULTS, type ChangeWindow, type OnDrift } from '../protocol/windows.ts';
import type { DisruptionBudget, FleetResolved, Host, OnHealthFailure, Selector, ComplianceMode } from '../protocol/schema.ts';

export type BudgetIndex = {
  index: number;
  budget: DisruptionBudget;
  /** Hosts of the whole fleet the selector matches. */
  matching: number;
  /** min(maxInFlight, ceil(pct × matching / 100)), never below 1; Infinity when both are null. */
  limit: number;
  label: string;
};

export type ChannelIndex = {
  name: string;
  /** Hosts of this channel with a non-null closureHash, sorted (UTF-16 code units). */
  members: string[];
  closureOf: Map<string, string>;
  waveOf: Map<string, number>;
  waveCount: number;
  soakMsOf: number[];
  /** null when the channel has no member (nothing to roll out). */
  targetRef: string | null;
  rolloutId: string | null;
  onHealthFailure: OnHealthFailure;
  failedUnitsMax: number | null;
  complianceProbesRequired: boolean;
  complianceMode: ComplianceMode;
  /** Channels this one waits for (channelEdges where gated = this), sorted. */
  gatedBy: string[];
  /** gated host → its gating hosts (same channel, both members), sorted. */
  hostEdges: Map<string, string[]>;
  // The same, as arrays aligned with `members` (index i = members[i]): one tick walks these.
  waveAt: number[];
  closureAt: string[];
  /** Indexes into `FleetIndex.budgets` of the budgets matching members[i] (undefined: none). */
  budgetsAt: (number[] | undefined)[];
  /** Indexes into `members` of the gating hosts of members[i] (undefined: none). */
  gatesAt: (number[] | undefined)[];
  /** Aligned with `gatesAt`: the reason of the first fleet edge for each of those pairs. */
  edgeReasonsAt: ((string | null)[] | undefined)[];
  // Issue 14 controls (protocol/windows.ts; defaults when the channel does not set them).
  changeWindow: ChangeWindow | undefined;
  onDrift: OnDrift;
  progressDeadlineMs: number;
  /** Distinct operator approvals a rollout needs before it starts (0 = none). */
  requireApprovals: number;
  /** Aligned with `members`: the pin's expiry (ms; Infinity = no expiry), undefined = not pinned. */
  pinUntilAt: (number | undefined)[];
  /** Aligned with `members`: the pin's `commit (reason)`, for readable reasons. */
  pinLabelAt: (string | undefined)[];
};

export type FleetIndex = {
  /** Channel names in processing order: gating channels before gated ones, then by name. */
  channelOrder: string[];
  channels: Map<string, ChannelIndex>;
  budgets: BudgetIndex[];
  /** host → indexes into `budgets` of the budgets whose selector matches it. */
  hostBudgets: Map<string, number[]>;
  /** The channels with their position in `memberAt` codes (channel name order). */
  memberChannels: ChannelIndex[];
  /**
   * member host (non-null closure) → `i × memberChannels.length + k`: its index i in the members of
   * `memberChannels[k]`. A number, not a pair: a tick looks up every changed host (host-view.ts),
   * 17,000 at 100,000 hosts. An object without prototype, not a Map: V8's dictionary lookup of a
   * name (the key and its value in one entry) costs about half a Map's on a map this large, whose
   * entries are not in the cache.
   */
  memberAt: Readonly<Record<string, number>>;
  /** How many hosts `memberAt` holds. */
  memberCount: number;
};

const cache = new WeakMap<FleetResolved, FleetIndex>();

const byCodeUnits = (a: string, b: string): number => (a < b ? -1 : a > b ? 1 : 0);

/** Selector match (SPEC §2.2): the schema module's `matchesSelector`, the single definition. */
export const selectorMatches: (sel: Selector, name: string, host: Host) => boolean = matchesSelector;

/** SPEC §2.2: both limits enforced, the smaller wins, never below 1. */
export function budgetLimit(b: Pick<DisruptionBudget, 'maxInFlight' | 'maxInFlightPct'>, matching: number): number {
  let limit = Infinity;
  if (b.maxInFlight !== null) limit = Math.min(limit, b.maxInFlight);
  if (b.maxInFlightPct !== null) limit = Math.min(limit, Math.ceil((b.maxInFlightPct * matching) / 100));
  return Math.max(1, limit);
}

/**
 * The id of a channel's signed target: first 16 hex digits of sha256 over a stable JSON of the
 * sorted `{host: closureHash}` of that channel (hosts with a null closure excluded). Only an id:
 * any change of a member or of its closure gives a new ref, hence a new rollout (supersession).
 */
export function computeTargetRef(closures: ReadonlyArray<readonly [string, string]>): string {
  const sorted = [...closures].sort((a, b) => byCodeUnits(a[0], b[0]));
  const body = '{' + sorted.map(([h, c]) => `${JSON.stringify(h)}:${JSON.stringify(c)}`).join(',') + '}';
  return sha256Hex(body).slice(0, 16);
}

/** `<channel>@<targetRef>`. */
export const rolloutIdOf = (channel: string, targetRef: string): string => `${channel}@${targetRef}`;

function budgetLabel(b: DisruptionBudget, index: number): string {
  const s = b.selector;
  const parts: string[] = [];
  if (s.all) parts.push('all');
  if (s.channel !== null) parts.push(`channel=${s.channel}`);
  if (s.tags.length > 0) parts.push(`tags=${s.tags.join('+')}`);
  if (s.tagsAny.length > 0) parts.push(`tagsAny=${s.tagsAny.join('|')}`);
  if (s.hosts.length > 0) parts.push(`hosts=${s.hosts.length <= 3 ? s.hosts.join(',') : `${s.hosts.length} hosts`}`);
  return `budget #${index}${parts.length > 0 ? ` (${parts.join(' ')})` : ''}`;
}

/** Topological order of channels over channel edges (Kahn, ties by name; a cycle falls back to name order). */
function channelOrder(names: string[], fleet: FleetResolved): string[] {
  const known = new Set(names);
  const indeg = new Map<string, number>(names.map((n) => [n, 0]));
  const out = new Map<string, string[]>(names.map((n) => [n, []]));
  for (const e of fleet.channelEdges) {
    if (!known.has(e.gates) || !known.has(e.gated) || e.gates === e.gated) continue;
    out.get(e.gates)!.push(e.gated);
    indeg.set(e.gated, indeg.get(e.gated)! + 1);
  }
  const order: string[] = [];
  const ready = names.filter((n) => indeg.get(n) === 0);
  while (ready.length > 0) {
    ready.sort(byCodeUnits);
    const n = ready.shift()!;
    order.push(n);
    for (const m of out.get(n)!) {
      const d = indeg.get(m)! - 1;
      indeg.set(m, d);
      if (d === 0) ready.push(m);
    }
  }
  const placed = new Set(order);
  for (const n of names) if (!placed.has(n)) order.push(n); // cycle: `resolve` refuses these (SPEC §3.1)
  return order;
}

/** A pin's expiry in ms (Infinity: none), undefined when the host has no pin. An unreadable expiry counts as none (the parser refuses it). */
function pinUntil(host: Host): number | undefined {
  const p = host.pin;
  if (p === undefined) return undefined;
  if (p.expiresAt === undefined || p.expiresAt === null) return Infinity;
  return parseTimestamp(p.expiresAt) ?? Infinity;
}

function build(fleet: FleetResolved): FleetIndex {
  const hostNames = Object.keys(fleet.hosts).sort(byCodeUnits);
  const channelNames = Object.keys(fleet.channels).sort(byCodeUnits);

  const membersOf = new Map<string, string[]>(channelNames.map((c) => [c, []]));
  for (const h of hostNames) {
    const host = fleet.hosts[h]!;
    if (host.closureHash === null) continue;
    membersOf.get(host.channel)?.push(h);
  }

  const channels = new Map<string, ChannelIndex>();
  for (const name of channelNames) {
    const ch = fleet.channels[name]!;
    const policy = fleet.rolloutPolicies[ch.rolloutPolicy];
    const members = membersOf.get(name)!;
    const memberSet = new Set(members);
    const closureOf = new Map<string, string>();
    for (const h of members) closureOf.set(h, fleet.hosts[h]!.closureHash!);

    const waves = fleet.waves[name] ?? [];
    const waveOf = new Map<string, number>();
    waves.forEach((w, i) => {
      for (const h of w.hosts) if (memberSet.has(h) && !waveOf.has(h)) waveOf.set(h, i);
    });
    const soakMsOf = waves.map((w) => w.soakMinutes * 60_000);
    // Hosts no wave selects still get the target, in an implicit last wave without soak.
    if (members.some((h) => !waveOf.has(h)) || waves.length === 0) {
      const implicit = waves.length;
      for (const h of members) if (!waveOf.has(h)) waveOf.set(h, implicit);
      soakMsOf.push(0);
    }

    const targetRef = members.length > 0 ? computeTargetRef(members.map((h) => [h, closureOf.get(h)!] as const)) : null;
    const gatedBy = [...new Set(fleet.channelEdges.filter((e) => e.gated === name && e.gates !== name && e.gates in fleet.channels).map((e) => e.gates))].sort(
      byCodeUnits,
    );
    const hostEdges = new Map<string, string[]>();
    const edgeReason = new Map<string, Map<string, string | null>>(); // gated → gates → reason (first edge wins)
    for (const e of fleet.edges) {
      if (!memberSet.has(e.gated) || !memberSet.has(e.gates) || e.gated === e.gates) continue;
      const list = hostEdges.get(e.gated) ?? [];
      if (!list.includes(e.gates)) list.push(e.gates);
      hostEdges.set(e.gated, list);
      const reasons = edgeReason.get(e.gated) ?? new Map<string, string | null>();
      if (!reasons.has(e.gates)) reasons.set(e.gates, e.reason);
      edgeReason.set(e.gated, reasons);
    }
    for (const list of hostEdges.values()) list.sort(byCodeUnits);

    const memberIndex = new Map<string, number>(members.map((h, i) => [h, i]));
    channels.set(name, {
      name,
      waveAt: members.map((h) => waveOf.get(h)!),
      closureAt: members.map((h) => closureOf.get(h)!),
      budgetsAt: [],
      gatesAt: members.map((h) => hostEdges.get(h)?.map((g) => memberIndex.get(g)!)),
      edgeReasonsAt: members.map((h) => hostEdges.get(h)?.map((g) => edgeReason.get(h)?.get(g) ?? null)),
      members,
      closureOf,
      waveOf,
      waveCount: soakMsOf.length,
      soakMsOf,
      targetRef,
      rolloutId: targetRef === null ? null : rolloutIdOf(name, targetRef),
      onHealthFailure: policy?.onHealthFailure ?? 'halt',
      failedUnitsMax: policy?.healthGate.systemdFailedUnits?.max ?? null,
      complianceProbesRequired: policy?.healthGate.complianceProbes?.required ?? false,
      complianceMode: ch.compliance.mode,
      gatedBy,
      hostEdges,
      changeWindow: ch.changeWindow,
      onDrift: ch.onDrift ?? CHANNEL_CONTROL_DEFAULTS.onDrift,
      progressDeadlineMs: (ch.progressDeadlineMinutes ?? CHANNEL_CONTROL_DEFAULTS.progressDeadlineMinutes) * 60_000,
      requireApprovals: ch.requireApprovals ?? 0,
      pinUntilAt: members.map((h) => pinUntil(fleet.hosts[h]!)),
      pinLabelAt: members.map((h) => {
        const p = fleet.hosts[h]!.pin;
        return p === undefined ? undefined : `${p.commit}${p.reason !== '' ? ` (${p.reason})` : ''}`;
      }),
    });
  }

  const budgets: BudgetIndex[] = [];
  const hostBudgets = new Map<string, number[]>();
  fleet.disruptionBudgets.forEach((b, index) => {
    let matching = 0;
    for (const h of hostNames) {
      if (!selectorMatches(b.selector, h, fleet.hosts[h]!)) continue;
      matching++;
      const list = hostBudgets.get(h);
      if (list) list.push(index);
      else hostBudgets.set(h, [index]);
    }
    const unlimited = b.maxInFlight === null && b.maxInFlightPct === null;
    budgets.push({ index, budget: b, matching, limit: unlimited ? Infinity : budgetLimit(b, matching), label: budgetLabel(b, index) });
  });

  const memberChannels = [...channels.values()];
  const memberAt = Object.create(null) as Record<string, number>;
  let memberCount = 0;
  memberChannels.forEach((ch, k) => {
    ch.budgetsAt = ch.members.map((h) => hostBudgets.get(h));
    ch.members.forEach((h, i) => (memberAt[h] = i * memberChannels.length + k));
    memberCount += ch.members.length;
  });
  return { channelOrder: channelOrder(channelNames, fleet), channels, budgets, hostBudgets, memberChannels, memberAt, memberCount };
}

/** The memoised index of a fleet (treat the fleet object as immutable once passed in). */
export function indexFleet(fleet: FleetResolved): FleetIndex {
  let idx = cache.get(fleet);
  if (idx === undefined) {
    idx = build(fleet);
    cache.set(fleet, idx);
  }
  return idx;
}

/** The current target ref of every channel with at least one member. */
export function targetRefs(fleet: FleetResolved): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [name, ch] of indexFleet(fleet).channels) if (ch.targetRef !== null) out[name] = ch.targetRef;
  return out;
}
