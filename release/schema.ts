/**
 * The single source of truth for nixfleet's signed artefacts (SPEC §2.2–§2.3) and for the fleet
 * description that `nixfleet-release resolve` (and `lib.mkFleet` in Nix) turns into
 * `fleet.resolved.json`. Every other module derives its types from these; never restate them.
 *
 * Wire compatibility: NixFleet v1 (`schemaVersion: 1`). Optional fields are explicit `null` on the
 * wire, except `meta.signatureAlgorithm`, `hosts.<h>.pin` and our own additions (`leaving`,
 * selector `and` / `not`), which are omitted when absent. Unknown fields are kept by the parsers
 * (they are covered by the signature) and otherwise ignored.
 *
 * Pure module: no I/O.
 */

export const SCHEMA_VERSION = 1 as const;

export type SignatureAlgorithm = 'ed25519' | 'ecdsa-p256';
export const SIGNATURE_ALGORITHMS: readonly SignatureAlgorithm[] = ['ed25519', 'ecdsa-p256'];

export type ComplianceMode = 'disabled' | 'permissive' | 'enforce';
export const COMPLIANCE_MODES: readonly ComplianceMode[] = ['disabled', 'permissive', 'enforce'];

/** Frameworks a channel may name; anything else is refused by `resolve` (SPEC §3.1). */
export const KNOWN_FRAMEWORKS: readonly string[] = [
  'anssi-bp028',
  'bsi-grundschutz',
  'cis',
  'dora',
  'hipaa',
  'iso27001',
  'nis2',
  'pci-dss',
  'soc2',
];

export type Strategy = 'canary' | 'staged' | 'all-at-once';
export const STRATEGIES: readonly Strategy[] = ['canary', 'staged', 'all-at-once'];

export type OnHealthFailure = 'halt' | 'rollback-and-halt';
export const ON_HEALTH_FAILURE: readonly OnHealthFailure[] = ['halt', 'rollback-and-halt'];

/**
 * Host selector (SPEC §2.2): OR over the rules that are set — `all` ∨ name in `hosts` ∨ same
 * `channel` ∨ has every tag of `tags` (when non-empty) ∨ has any tag of `tagsAny`. An empty
 * selector matches nothing.
 *
 * Our addition (optional, omitted when absent, ignored by v1 readers): `and` and `not`.
 * Match = (OR of the base rules if any base rule is set, else `true` when `and`/`not` is set)
 * ∧ every selector of `and` ∧ ¬`not`. So `{not: {tags: ["db"]}}` is "every host but db".
 */
export type Selector = {
  all: boolean;
  hosts: string[];
  tags: string[];
  tagsAny: string[];
  channel: string | null;
  and?: Selector[];
  not?: Selector;
};

export type Compliance = { frameworks: string[]; mode: ComplianceMode };

export type Channel = {
  rolloutPolicy: string;
  /** Minutes. Invariant: freshnessWindow ≥ 2 × signingIntervalMinutes. */
  freshnessWindow: number;
  signingIntervalMinutes: number;
  reconcileIntervalMinutes: number;
  compliance: Compliance;
};

export type HealthGate = {
  systemdFailedUnits?: { max: number };
  complianceProbes?: { required: boolean };
};

export type PolicyWave = { selector: Selector; soakMinutes: number };

export type RolloutPolicy = {
  strategy: Strategy;
  waves: PolicyWave[];
  healthGate: HealthGate;
  onHealthFailure: OnHealthFailure;
};

export type Pin = { commit: string; reason: string; expiresAt?: string };

export type Host = {
  /** e.g. `x86_64-linux`, `aarch64-darwin`. */
  system: string;
  tags: string[];
  channel: string;
  /** Full store basename, e.g. `abc…-nixos-system-web1-25.05`; null before the build. */
  closureHash: string | null;
  /** OpenSSH `ssh-ed25519 AAAA… comment`, or null. */
  pubkey: string | null;
  pin?: Pin;
  /** Our addition: the host is leaving the fleet; the agent guard lets its closure drop the agent. */
  leaving?: boolean;
};

/** A policy wave resolved to host names, per channel. */
export type Wave = { hosts: string[]; soakMinutes: number };

/** Host ordering inside one channel: `gated` waits until `gates` is Soaked or Converged. */
export type Edge = { gated: string; gates: string; reason: string | null };

/** The `gated` channel may not start a rollout while the `gates` channel has not converged. */
export type ChannelEdge = { gates: string; gated: string; reason: string | null };

/** Limit = min(maxInFlight, ceil(pct × matching / 100)), never below 1; both enforced. */
export type DisruptionBudget = { selector: Selector; maxInFlight: number | null; maxInFlightPct: number | null };

export type Meta = {
  schemaVersion: typeof SCHEMA_VERSION;
  /** RFC 3339 UTC, null before signing. */
  signedAt: string | null;
  ciCommit: string | null;
  /** Omitted when absent; absent means ed25519. */
  signatureAlgorithm?: SignatureAlgorithm;
};

export type FleetResolved = {
  schemaVersion: typeof SCHEMA_VERSION;
  hosts: Record<string, Host>;
  channels: Record<string, Channel>;
  rolloutPolicies: Record<string, RolloutPolicy>;
  waves: Record<string, Wave[]>;
  edges: Edge[];
  channelEdges: ChannelEdge[];
  disruptionBudgets: DisruptionBudget[];
  meta: Meta;
};

export type Revocation = { hostname: string; notBefore: string; reason: string | null; revokedBy: string | null };

export type Revocations = {
  schemaVersion: typeof SCHEMA_VERSION;
  revocations: Revocation[];
  meta: Meta;
};

export type PublicKey = { algorithm: SignatureAlgorithm; /** base64 raw 32 bytes (ed25519) or X‖Y 64 bytes (p256) */ public: string };

/** Active keys: current, previous, and successor until retireAt. */
export type KeySlot = {
  current?: PublicKey;
  previous?: PublicKey;
  /** RFC 3339: artefacts signed before this are refused (REJECTED_BEFORE). */
  rejectBefore?: string;
  successor?: PublicKey;
  retireAt?: string;
};

export type Trust = {
  schemaVersion: typeof SCHEMA_VERSION;
  ciReleaseKey: KeySlot;
  /** Nix binary-cache public keys, `name:base64`. */
  cacheKeys: string[];
  orgRootKey?: KeySlot;
  fleetCaPem?: string;
};

/** The artefact kinds the verifier knows; rollback state is kept per kind. */
export type ArtifactKind = 'fleet' | 'revocations';

// ---------------------------------------------------------------------------------------------
// Fleet description: the input of `nixfleet-release resolve` and of `lib.mkFleet` (Nix).
// Everything optional gets the default noted here; both implementations must fill the same ones
// so that their outputs are byte-identical after JCS.
// ---------------------------------------------------------------------------------------------

/** Selector as written by a human: every field optional (default false / [] / null). */
export type SelectorInput = {
  all?: boolean;
  hosts?: string[];
  tags?: string[];
  tagsAny?: string[];
  channel?: string | null;
  and?: SelectorInput[];
  not?: SelectorInput;
};

export type HostInput = {
  system: string;
  channel: string;
  tags?: string[]; // default []
  pubkey?: string | null; // default null
  closureHash?: string | null; // default null
  leaving?: boolean; // default absent (false is written as absent)
};

export type ChannelInput = {
  rolloutPolicy: string;
  freshnessWindow?: number; // default 180
  signingIntervalMinutes?: number; // default 60
  reconcileIntervalMinutes?: number; // default 30
  compliance?: { frameworks?: string[]; mode?: ComplianceMode }; // default {frameworks: [], mode: 'disabled'}
};

export type RolloutPolicyInput = {
  strategy?: Strategy; // default 'all-at-once'
  waves: { selector: SelectorInput; soakMinutes?: number }[]; // soakMinutes default 0
  healthGate?: HealthGate; // default {}
  onHealthFailure?: OnHealthFailure; // default 'halt'
};

export type PinInput = { host: string; commit: string; reason: string; expiresAt?: string };

export type FleetDescription = {
  hosts: Record<string, HostInput>;
  channels: Record<string, ChannelInput>;
  rolloutPolicies: Record<string, RolloutPolicyInput>;
  edges?: { gated: string; gates: string; reason?: string | null }[];
  channelEdges?: { gates: string; gated: string; reason?: string | null }[];
  disruptionBudgets?: { selector: SelectorInput; maxInFlight?: number | null; maxInFlightPct?: number | null }[];
  pins?: PinInput[];
};

export const CHANNEL_DEFAULTS = Object.freeze({
  freshnessWindow: 180,
  signingIntervalMinutes: 60,
  reconcileIntervalMinutes: 30,
});
