/**
 * `fleet.resolved.json` (SPEC §2.2): the signed artefact CI writes and the CP and every agent
 * verify. The schemas here are the single source of truth for its types.
 *
 * Wire compatibility: NixFleet v1 (`schemaVersion: 1`). Optional fields are explicit `null` on the
 * wire, except `meta.signatureAlgorithm`, `hosts.<h>.pin` and our own additions (`leaving`,
 * selector `and` / `not`), which are omitted when absent. Unknown fields are kept by the parser
 * (they are covered by the signature) and otherwise ignored. The parser fills the v1 defaults a
 * NixFleet v1 reader fills (missing `edges` / `channelEdges` / `disruptionBudgets` /
 * `rolloutPolicies` / `waves` = empty, missing nullable fields = null, missing selector rules =
 * unset), so that parse → JCS of the interop files gives their `.canonical` bytes. Channel edges
 * written with the old spelling `{before, after}` are read as `{gates: before, gated: after}`.
 *
 * Pure module: no I/O.
 */
import { Type, type Static } from '@sinclair/typebox';
import { FleetComplianceSchema } from './compliance.ts';
import { asObject, Count, MetaSchema, Named, NonEmpty, own, schemaParser, SchemaVersionSchema, type SchemaError } from './artifact.ts';
import type { Result } from './result.ts';
import { SelectorSchema } from './selector.ts';
import { fieldPath } from './validate.ts';
import { Enum, Nullable, Timestamp } from './vocab.ts';
import { channelControlProps, isTimeZone } from './windows.ts';

const COMPLIANCE_MODE_NAMES = ['disabled', 'permissive', 'enforce'] as const;
export type ComplianceMode = (typeof COMPLIANCE_MODE_NAMES)[number];
export const COMPLIANCE_MODES: readonly ComplianceMode[] = COMPLIANCE_MODE_NAMES;

const STRATEGY_NAMES = ['canary', 'staged', 'all-at-once'] as const;
export type Strategy = (typeof STRATEGY_NAMES)[number];
export const STRATEGIES: readonly Strategy[] = STRATEGY_NAMES;

const ON_HEALTH_FAILURE_NAMES = ['halt', 'rollback-and-halt'] as const;
export type OnHealthFailure = (typeof ON_HEALTH_FAILURE_NAMES)[number];
export const ON_HEALTH_FAILURE: readonly OnHealthFailure[] = ON_HEALTH_FAILURE_NAMES;

export const ComplianceSchema = Type.Object({ frameworks: Type.Array(Type.String()), mode: Enum(COMPLIANCE_MODES) });
export type Compliance = Static<typeof ComplianceSchema>;

/**
 * `freshnessWindow` in minutes. Invariant (checked by the parser): freshnessWindow ≥ 2 × signingIntervalMinutes.
 * Our additions (optional, omitted when absent; protocol/windows.ts): `rebootPolicy`, `onDrift`,
 * `progressDeadlineMinutes`, `changeWindow`.
 */
export const ChannelSchema = Type.Object({
  rolloutPolicy: NonEmpty(),
  freshnessWindow: Count(1),
  signingIntervalMinutes: Count(1),
  reconcileIntervalMinutes: Count(1),
  compliance: ComplianceSchema,
  ...channelControlProps,
});
export type Channel = Static<typeof ChannelSchema>;

export const HealthGateSchema = Type.Object({
  systemdFailedUnits: Type.Optional(Type.Object({ max: Count(0) })),
  complianceProbes: Type.Optional(Type.Object({ required: Type.Boolean() })),
});
export type HealthGate = Static<typeof HealthGateSchema>;

export const PolicyWaveSchema = Type.Object({ selector: SelectorSchema, soakMinutes: Count(0) });
export type PolicyWave = Static<typeof PolicyWaveSchema>;

export const RolloutPolicySchema = Type.Object({
  strategy: Enum(STRATEGIES),
  waves: Type.Array(PolicyWaveSchema),
  healthGate: Type.Object(HealthGateSchema.properties, { default: {} }),
  onHealthFailure: Enum(ON_HEALTH_FAILURE),
});
export type RolloutPolicy = Static<typeof RolloutPolicySchema>;

/** A pin: the host stays on what it runs until `expiresAt` (absent or null — NixFleet v1 writes null — = no expiry). */
export const PinSchema = Type.Object({ commit: NonEmpty(), reason: Type.String(), expiresAt: Type.Optional(Nullable(Timestamp())) });
export type Pin = Static<typeof PinSchema>;

/**
 * A host. `system`: e.g. `x86_64-linux`, `aarch64-darwin`; `closureHash`: the full store basename
 * (`abc…-nixos-system-web1-25.05`), null before the build (any string: v1 artefacts carry other
 * forms); `pubkey`: OpenSSH `ssh-ed25519 AAAA… comment`, or null; `leaving` (our addition): the
 * host is leaving the fleet, the agent guard lets its closure drop the agent.
 */
export const HostSchema = Type.Object({
  system: NonEmpty(),
  tags: Type.Array(Type.String(), { default: [] }),
  channel: NonEmpty(),
  closureHash: Nullable(Type.String(), { default: null }),
  pubkey: Nullable(Type.String(), { default: null }),
  pin: Type.Optional(PinSchema),
  leaving: Type.Optional(Type.Boolean()),
});
export type Host = Static<typeof HostSchema>;

/** A policy wave resolved to host names, per channel. */
export const WaveSchema = Type.Object({ hosts: Type.Array(Type.String()), soakMinutes: Count(0) });
export type Wave = Static<typeof WaveSchema>;

/** Host ordering inside one channel: `gated` waits until `gates` is Soaked or Converged. */
export const EdgeSchema = Type.Object({ gated: NonEmpty(), gates: NonEmpty(), reason: Nullable(Type.String(), { default: null }) });
export type Edge = Static<typeof EdgeSchema>;

/** The `gated` channel may not start a rollout while the `gates` channel has not converged. */
export const ChannelEdgeSchema = Type.Object({ gates: NonEmpty(), gated: NonEmpty(), reason: Nullable(Type.String(), { default: null }) });
export type ChannelEdge = Static<typeof ChannelEdgeSchema>;

/** Limit = min(maxInFlight, ceil(pct × matching / 100)), never below 1; both enforced. */
export const DisruptionBudgetSchema = Type.Object({
  selector: SelectorSchema,
  maxInFlight: Nullable(Count(0), { default: null }),
  maxInFlightPct: Nullable(Count(0, 100), { default: null }),
});
export type DisruptionBudget = Static<typeof DisruptionBudgetSchema>;

export const FleetResolvedSchema = Type.Object(
  {
    schemaVersion: SchemaVersionSchema,
    hosts: Named(HostSchema),
    channels: Named(ChannelSchema),
    rolloutPolicies: Type.Record(Type.String({ pattern: '^.+$' }), RolloutPolicySchema, { additionalProperties: false, default: {} }),
    waves: Type.Record(Type.String({ pattern: '^.+$' }), Type.Array(WaveSchema), { additionalProperties: false, default: {} }),
    edges: Type.Array(EdgeSchema, { default: [] }),
    channelEdges: Type.Array(ChannelEdgeSchema, { default: [] }),
    disruptionBudgets: Type.Array(DisruptionBudgetSchema, { default: [] }),
    meta: MetaSchema,
    /** Issue 15 (protocol/compliance.ts): present when `resolve` was given a static compliance report. */
    compliance: Type.Optional(FleetComplianceSchema),
  },
  { title: 'fleet.resolved.json (SPEC §2.2)' },
);
export type FleetResolved = Static<typeof FleetResolvedSchema>;

/**
 * Channel edges in the old spelling (SPEC §2.2): `before` converges first, i.e. it gates `after`.
 * Copy on write (the defaults pass may hand over the input itself): returns `u` when nothing is in
 * the old spelling, else a copy with the edges rewritten.
 */
function oldChannelEdgeSpelling(u: unknown): unknown {
  const top = asObject(u);
  const edges = top?.['channelEdges'];
  if (top === null || !Array.isArray(edges)) return u;
  let out: unknown[] | null = null;
  edges.forEach((e, i) => {
    const o = asObject(e);
    if (o === null || o['gates'] !== undefined || o['gated'] !== undefined || (o['before'] === undefined && o['after'] === undefined)) return;
    const { before, after, ...rest } = o;
    out ??= edges.slice();
    out[i] = { ...rest, gates: before, gated: after };
  });
  return out === null ? u : { ...top, channelEdges: out };
}

/** The freshness invariant and referential integrity: the reconciler may rely on every name resolving. */
function fleetRules(u: unknown, add: (path: string, message: string) => void): void {
  const top = asObject(u);
  if (top === null) return;
  const hosts = asObject(top['hosts']) ?? {};
  const channels = asObject(top['channels']) ?? {};
  const policies = asObject(top['rolloutPolicies']) ?? {};
  for (const [name, ch] of Object.entries(channels)) {
    const c = asObject(ch);
    const p = fieldPath('$.channels', name);
    if (c === null) continue;
    if (typeof c['freshnessWindow'] === 'number' && typeof c['signingIntervalMinutes'] === 'number' && c['freshnessWindow'] < 2 * c['signingIntervalMinutes']) {
      add(`${p}.freshnessWindow`, 'must be ≥ 2 × signingIntervalMinutes');
    }
    const pol = c['rolloutPolicy'];
    if (typeof pol === 'string' && pol !== '' && !own(policies, pol)) add(`${p}.rolloutPolicy`, `unknown rollout policy ${JSON.stringify(pol)}`);
    const tz = asObject(c['changeWindow'])?.['timeZone'];
    if (typeof tz === 'string' && tz !== '' && !isTimeZone(tz)) add(`${p}.changeWindow.timeZone`, `unknown time zone ${JSON.stringify(tz)}`);
  }
  // One pass over 100,000 hosts: no [name, entry] pair per host.
  for (const name of Object.keys(hosts)) {
    const ch = asObject(hosts[name])?.['channel'];
    if (typeof ch === 'string' && ch !== '' && !own(channels, ch)) add(`${fieldPath('$.hosts', name)}.channel`, `unknown channel ${JSON.stringify(ch)}`);
  }
  for (const [ch, waves] of Object.entries(asObject(top['waves']) ?? {})) {
    const p = fieldPath('$.waves', ch);
    if (!own(channels, ch)) add(p, 'unknown channel');
    if (!Array.isArray(waves)) continue;
    waves.forEach((w, i) => {
      const list = asObject(w)?.['hosts'];
      if (!Array.isArray(list)) return;
      list.forEach((h, j) => {
        if (typeof h === 'string' && !own(hosts, h)) add(`${p}[${i}].hosts[${j}]`, `unknown host ${JSON.stringify(h)}`);
      });
    });
  }
  const refs = (field: 'edges' | 'channelEdges', names: object, what: string) => {
    const list = top[field];
    if (!Array.isArray(list)) return;
    list.forEach((e, i) => {
      const o = asObject(e);
      for (const k of ['gated', 'gates'] as const) {
        const v = o?.[k];
        if (typeof v === 'string' && v !== '' && !own(names, v)) add(`$.${field}[${i}].${k}`, `unknown ${what} ${JSON.stringify(v)}`);
      }
    });
  };
  refs('edges', hosts, 'host');
  refs('channelEdges', channels, 'channel');
}

const fleetParserOptions = { defaults: true, normalise: oldChannelEdgeSpelling, semantic: fleetRules };

/** `fleet.resolved.json` (SPEC §2.2), including referential checks (hosts → channels → policies). */
export const parseFleetResolved: (u: unknown) => Result<FleetResolved, SchemaError> = schemaParser(FleetResolvedSchema, 'fleet.resolved.json', fleetParserOptions);

/** {@link parseFleetResolved} always filling defaults before the check: the reference its check-first path is tested against. */
export const parseFleetResolvedFillingFirst: (u: unknown) => Result<FleetResolved, SchemaError> = schemaParser(FleetResolvedSchema, 'fleet.resolved.json', { ...fleetParserOptions, checkFirst: false });
