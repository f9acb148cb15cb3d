/**
 * The fleet description: the input of `nixfleet-release resolve` and of `lib.mkFleet` (Nix), the
 * file operators write. Strict: unknown fields are errors (a typo in a hand-written description
 * must not be ignored). Defaults are NOT filled here; `resolveFleet` fills them (noted on each
 * field); both implementations must fill the same ones so that their outputs are byte-identical
 * after JCS.
 *
 * lib/resolve.nix mirrors `parseFleetDescription`: same paths, same messages, same order (at each
 * object its unknown fields, then its fields in the order declared here), so that the first five
 * issues — the error message — agree (nix-tests/mkfleet*.test.ts). Change both together.
 *
 * Pure module: no I/O.
 */
import { Type, type Static, type TSchema } from '@sinclair/typebox';
import { Count, Named, NonEmpty, schemaParser, type SchemaError } from './artifact.ts';
import { COMPLIANCE_MODES, HealthGateSchema, ON_HEALTH_FAILURE, STRATEGIES } from './fleet.ts';
import type { Result } from './result.ts';
import { SelectorInputSchema } from './selector.ts';
import { Enum, Nullable, Timestamp } from './vocab.ts';
import { channelControlInputProps } from './windows.ts';

/** Frameworks a channel may name (defined beside the catalogue, protocol/compliance.ts). */
export { KNOWN_FRAMEWORKS } from './compliance.ts';

export const CHANNEL_DEFAULTS = Object.freeze({
  freshnessWindow: 180,
  signingIntervalMinutes: 60,
  reconcileIntervalMinutes: 30,
});

const Strict = <P extends Record<string, TSchema>>(props: P) => Type.Object(props, { additionalProperties: false });

/** Defaults: tags [], pubkey null, closureHash null, leaving absent (false is written as absent). */
export const HostInputSchema = Strict({
  system: NonEmpty(),
  channel: NonEmpty(),
  tags: Type.Optional(Type.Array(Type.String())),
  pubkey: Type.Optional(Nullable(Type.String())),
  closureHash: Type.Optional(Nullable(Type.String())),
  leaving: Type.Optional(Type.Boolean()),
});
export type HostInput = Static<typeof HostInputSchema>;

/** Defaults: {@link CHANNEL_DEFAULTS}; compliance {frameworks: [], mode: 'disabled'}. */
export const ChannelInputSchema = Strict({
  rolloutPolicy: NonEmpty(),
  freshnessWindow: Type.Optional(Count(1)),
  signingIntervalMinutes: Type.Optional(Count(1)),
  reconcileIntervalMinutes: Type.Optional(Count(1)),
  compliance: Type.Optional(Strict({ frameworks: Type.Optional(Type.Array(Type.String())), mode: Type.Optional(Enum(COMPLIANCE_MODES)) })),
  /** Issue 14 (protocol/windows.ts): copied when set, omitted when absent; changeWindow.allow / freezes default []. */
  ...channelControlInputProps,
});
export type ChannelInput = Static<typeof ChannelInputSchema>;

const HealthGateInputSchema = Strict({
  systemdFailedUnits: Type.Optional(Strict(HealthGateSchema.properties.systemdFailedUnits.properties)),
  complianceProbes: Type.Optional(Strict(HealthGateSchema.properties.complianceProbes.properties)),
});

/** Defaults: strategy 'all-at-once', soakMinutes 0, healthGate {}, onHealthFailure 'halt'. */
export const RolloutPolicyInputSchema = Strict({
  waves: Type.Array(Strict({ selector: SelectorInputSchema, soakMinutes: Type.Optional(Count(0)) }), { minItems: 1, errorMessage: 'must hold at least one wave' }),
  strategy: Type.Optional(Enum(STRATEGIES)),
  healthGate: Type.Optional(HealthGateInputSchema),
  onHealthFailure: Type.Optional(Enum(ON_HEALTH_FAILURE)),
});
export type RolloutPolicyInput = Static<typeof RolloutPolicyInputSchema>;

/**
 * A pin names exactly one of `host`, `tag` (every host with that tag) or `channel` (every host of
 * it) — `PIN_TARGET` otherwise. A host's pin is its host pin, else its tag pin, else its channel
 * pin (NixFleet v1's precedence); two tag pins on a host without a host pin are `DUPLICATE_PIN`.
 */
export const PinInputSchema = Strict({
  host: Type.Optional(NonEmpty()),
  tag: Type.Optional(NonEmpty()),
  channel: Type.Optional(NonEmpty()),
  commit: NonEmpty(),
  reason: Type.String(),
  expiresAt: Type.Optional(Timestamp()),
});
export type PinInput = Static<typeof PinInputSchema>;

export const FleetDescriptionSchema = Type.Object(
  {
    hosts: Named(HostInputSchema),
    channels: Named(ChannelInputSchema),
    rolloutPolicies: Named(RolloutPolicyInputSchema),
    edges: Type.Optional(Type.Array(Strict({ gated: NonEmpty(), gates: NonEmpty(), reason: Type.Optional(Nullable(Type.String())) }))),
    channelEdges: Type.Optional(Type.Array(Strict({ gates: NonEmpty(), gated: NonEmpty(), reason: Type.Optional(Nullable(Type.String())) }))),
    disruptionBudgets: Type.Optional(
      Type.Array(Strict({ selector: SelectorInputSchema, maxInFlight: Type.Optional(Nullable(Count(0))), maxInFlightPct: Type.Optional(Nullable(Count(0, 100))) })),
    ),
    pins: Type.Optional(Type.Array(PinInputSchema)),
  },
  { additionalProperties: false, title: 'nixfleet fleet description (input of nixfleet-release resolve and lib.mkFleet)' },
);
export type FleetDescription = Static<typeof FleetDescriptionSchema>;

/** A fleet description (input of `resolve` and `lib.mkFleet`); the value is returned as written. */
export const parseFleetDescription: (u: unknown) => Result<FleetDescription, SchemaError> = schemaParser(FleetDescriptionSchema, 'fleet description');
