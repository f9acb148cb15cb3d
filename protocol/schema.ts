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
import { err, ok, type Result } from './result.ts';

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

// ---------------------------------------------------------------------------------------------
// Parsers: `unknown` → typed value, reporting EVERY bad field path (STYLE §4). Artefact parsers
// keep unknown fields (they are signed) and fill the v1 defaults a NixFleet v1 reader fills
// (missing `edges` / `channelEdges` / `disruptionBudgets` / `rolloutPolicies` / `waves` = empty,
// missing nullable fields = null, missing selector rules = unset), so that parse → JCS of the
// interop files gives their `.canonical` bytes. Channel edges written with the old spelling
// `{before, after}` are read as `{gates: before, gated: after}`.
// ---------------------------------------------------------------------------------------------


export type SchemaIssue = { path: string; message: string };
export type SchemaError = { code: 'SCHEMA_INVALID'; message: string; issues: SchemaIssue[] };

type Obj = Record<string, unknown>;

class Ctx {
  readonly issues: SchemaIssue[] = [];
  add(path: string, message: string): void {
    this.issues.push({ path, message });
  }
}

const isObj = (u: unknown): u is Obj => typeof u === 'object' && u !== null && !Array.isArray(u);
const own = (o: Obj, k: string): boolean => Object.prototype.hasOwnProperty.call(o, k);
const fieldPath = (path: string, k: string): string => (/^[A-Za-z_$][\w$-]*$/.test(k) ? `${path}.${k}` : `${path}[${JSON.stringify(k)}]`);

/** Copy of `o` (own enumerable props, `__proto__` kept as data) to be overwritten field by field. */
function copyObj(o: Obj): Obj {
  const out: Obj = {};
  for (const k of Object.keys(o)) setField(out, k, o[k]);
  return out;
}
function setField(o: Obj, k: string, v: unknown): void {
  if (k === '__proto__') Object.defineProperty(o, k, { value: v, enumerable: true, writable: true, configurable: true });
  else o[k] = v;
}

function str(c: Ctx, o: Obj, k: string, path: string, opts: { nonEmpty?: boolean } = {}): string {
  const v = o[k];
  if (typeof v !== 'string') {
    c.add(fieldPath(path, k), own(o, k) ? 'must be a string' : 'is required');
    return '';
  }
  if (opts.nonEmpty === true && v === '') c.add(fieldPath(path, k), 'must not be empty');
  return v;
}
function nullableStr(c: Ctx, o: Obj, k: string, path: string): string | null {
  const v = o[k];
  if (v === undefined || v === null) return null;
  if (typeof v !== 'string') {
    c.add(fieldPath(path, k), 'must be a string or null');
    return null;
  }
  return v;
}
function int(c: Ctx, o: Obj, k: string, path: string, min: number, max = Number.MAX_SAFE_INTEGER, dflt?: number): number {
  const v = o[k];
  if (v === undefined && dflt !== undefined) return dflt;
  if (typeof v !== 'number' || !Number.isSafeInteger(v)) {
    c.add(fieldPath(path, k), v === undefined ? 'is required' : 'must be an integer');
    return dflt ?? min;
  }
  if (v < min || v > max) c.add(fieldPath(path, k), max === Number.MAX_SAFE_INTEGER ? `must be ≥ ${min}` : `must be between ${min} and ${max}`);
  return v;
}
function nullableInt(c: Ctx, o: Obj, k: string, path: string, min: number, max = Number.MAX_SAFE_INTEGER): number | null {
  const v = o[k];
  if (v === undefined || v === null) return null;
  return int(c, o, k, path, min, max);
}
function bool(c: Ctx, o: Obj, k: string, path: string, dflt: boolean): boolean {
  const v = o[k];
  if (v === undefined) return dflt;
  if (typeof v !== 'boolean') {
    c.add(fieldPath(path, k), 'must be a boolean');
    return dflt;
  }
  return v;
}
function oneOf<T extends string>(c: Ctx, o: Obj, k: string, path: string, allowed: readonly T[], dflt?: T): T {
  const v = o[k];
  if (v === undefined && dflt !== undefined) return dflt;
  if (typeof v !== 'string' || !(allowed as readonly string[]).includes(v)) {
    c.add(fieldPath(path, k), v === undefined ? 'is required' : `must be one of ${allowed.join(', ')}`);
    return dflt ?? allowed[0]!;
  }
  return v as T;
}
function strArray(c: Ctx, o: Obj, k: string, path: string, dflt: string[] | undefined = []): string[] {
  const v = o[k];
  if (v === undefined && dflt !== undefined) return [...dflt];
  if (!Array.isArray(v)) {
    c.add(fieldPath(path, k), v === undefined ? 'is required' : 'must be an array of strings');
    return [];
  }
  v.forEach((x, i) => {
    if (typeof x !== 'string') c.add(`${fieldPath(path, k)}[${i}]`, 'must be a string');
  });
  return v.filter((x): x is string => typeof x === 'string');
}
function objAt(c: Ctx, o: Obj, k: string, path: string, required = true): Obj | null {
  const v = o[k];
  if (v === undefined && !required) return null;
  if (!isObj(v)) {
    c.add(fieldPath(path, k), v === undefined ? 'is required' : 'must be an object');
    return null;
  }
  return v;
}
function arrAt(c: Ctx, o: Obj, k: string, path: string, required: boolean): unknown[] {
  const v = o[k];
  if (v === undefined && !required) return [];
  if (!Array.isArray(v)) {
    c.add(fieldPath(path, k), v === undefined ? 'is required' : 'must be an array');
    return [];
  }
  return v;
}
function recordAt<T>(c: Ctx, o: Obj, k: string, path: string, required: boolean, each: (v: unknown, path: string, key: string) => T): Record<string, T> {
  const v = o[k];
  const out: Record<string, T> = {};
  if (v === undefined && !required) return out;
  if (!isObj(v)) {
    c.add(fieldPath(path, k), v === undefined ? 'is required' : 'must be an object');
    return out;
  }
  const p = fieldPath(path, k);
  for (const key of Object.keys(v)) {
    if (key === '') c.add(p, 'keys must not be empty');
    setField(out, key, each(v[key], fieldPath(p, key), key));
  }
  return out;
}
function unknownFields(c: Ctx, o: Obj, path: string, known: readonly string[]): void {
  for (const k of Object.keys(o)) if (!known.includes(k)) c.add(fieldPath(path, k), 'unknown field');
}

const RFC3339 = /^(\d{4})-(\d{2})-(\d{2})[Tt](\d{2}):(\d{2}):(\d{2})(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$/;

/**
 * RFC 3339 date-time → epoch milliseconds, or null. With `utcOnly`, only the `Z` form is allowed
 * (SPEC §2.2: signedAt is UTC). Calendar fields are range-checked (no 2026-02-30).
 */
export function parseTimestamp(s: string, utcOnly = false): number | null {
  const m = RFC3339.exec(s);
  if (m === null) return null;
  if (utcOnly && m[8]!.toUpperCase() !== 'Z') return null;
  const [y, mo, d, h, mi, se] = [m[1], m[2], m[3], m[4], m[5], m[6]].map(Number) as [number, number, number, number, number, number];
  if (mo < 1 || mo > 12 || h > 23 || mi > 59 || se > 60) return null;
  const daysInMonth = new Date(Date.UTC(y, mo, 0)).getUTCDate();
  if (d < 1 || d > daysInMonth) return null;
  const ms = Date.parse(`${m[1]}-${m[2]}-${m[3]}T${m[4]}:${m[5]}:${se === 60 ? '59' : m[6]}${(m[7] ?? '').slice(0, 4)}${m[8]!.toUpperCase()}`);
  return Number.isFinite(ms) ? ms : null;
}

function timestamp(c: Ctx, o: Obj, k: string, path: string, utcOnly: boolean): string {
  const v = str(c, o, k, path);
  if (typeof o[k] === 'string' && parseTimestamp(v, utcOnly) === null) c.add(fieldPath(path, k), utcOnly ? 'must be an RFC 3339 UTC timestamp (…Z)' : 'must be an RFC 3339 timestamp');
  return v;
}

function parseSelectorAt(c: Ctx, u: unknown, path: string): Selector {
  const out: Selector = { all: false, hosts: [], tags: [], tagsAny: [], channel: null };
  if (!isObj(u)) {
    c.add(path, 'must be an object');
    return out;
  }
  const o = copyObj(u);
  o['all'] = bool(c, u, 'all', path, false);
  o['hosts'] = strArray(c, u, 'hosts', path);
  o['tags'] = strArray(c, u, 'tags', path);
  o['tagsAny'] = strArray(c, u, 'tagsAny', path);
  o['channel'] = nullableStr(c, u, 'channel', path);
  if (u['and'] !== undefined) {
    const a = arrAt(c, u, 'and', path, true);
    o['and'] = a.map((s, i) => parseSelectorAt(c, s, `${path}.and[${i}]`));
  }
  if (u['not'] !== undefined) o['not'] = parseSelectorAt(c, u['not'], `${path}.not`);
  return o as Selector;
}

function parseHealthGate(c: Ctx, u: unknown, path: string): HealthGate {
  if (!isObj(u)) {
    c.add(path, 'must be an object');
    return {};
  }
  const o = copyObj(u);
  if (u['systemdFailedUnits'] !== undefined) {
    const s = objAt(c, u, 'systemdFailedUnits', path);
    if (s !== null) {
      const so = copyObj(s);
      so['max'] = int(c, s, 'max', `${path}.systemdFailedUnits`, 0);
      o['systemdFailedUnits'] = so;
    }
  }
  if (u['complianceProbes'] !== undefined) {
    const s = objAt(c, u, 'complianceProbes', path);
    if (s !== null) {
      const so = copyObj(s);
      if (typeof s['required'] !== 'boolean') c.add(`${path}.complianceProbes.required`, 'must be a boolean');
      o['complianceProbes'] = so;
    }
  }
  return o as HealthGate;
}

function parseMetaAt(c: Ctx, u: Obj, path: string): Meta {
  const m = objAt(c, u, 'meta', path);
  if (m === null) return { schemaVersion: SCHEMA_VERSION, signedAt: null, ciCommit: null };
  const p = `${path}.meta`;
  const o = copyObj(m);
  if (m['schemaVersion'] !== SCHEMA_VERSION) c.add(`${p}.schemaVersion`, `must be ${SCHEMA_VERSION}`);
  o['schemaVersion'] = SCHEMA_VERSION;
  o['signedAt'] = m['signedAt'] === null || m['signedAt'] === undefined ? null : timestamp(c, m, 'signedAt', p, true);
  o['ciCommit'] = nullableStr(c, m, 'ciCommit', p);
  if (m['signatureAlgorithm'] !== undefined) o['signatureAlgorithm'] = oneOf(c, m, 'signatureAlgorithm', p, SIGNATURE_ALGORITHMS);
  return o as Meta;
}

function topVersion(c: Ctx, u: Obj): void {
  if (u['schemaVersion'] !== SCHEMA_VERSION) c.add('$.schemaVersion', own(u, 'schemaVersion') ? `must be ${SCHEMA_VERSION}` : 'is required');
}

function done<T>(c: Ctx, what: string, value: T): Result<T, SchemaError> {
  if (c.issues.length === 0) return ok(value);
  const first = c.issues.slice(0, 5).map((i) => `${i.path}: ${i.message}`).join('; ');
  const more = c.issues.length > 5 ? ` (and ${c.issues.length - 5} more)` : '';
  return err({ code: 'SCHEMA_INVALID', message: `invalid ${what}: ${first}${more}`, issues: c.issues });
}

/** `fleet.resolved.json` (SPEC §2.2), including referential checks (hosts → channels → policies). */
export function parseFleetResolved(u: unknown): Result<FleetResolved, SchemaError> {
  const c = new Ctx();
  if (!isObj(u)) return done(c, 'fleet.resolved.json', (c.add('$', 'must be an object'), u as never));
  const P = '$';
  topVersion(c, u);
  const out = copyObj(u);
  out['schemaVersion'] = SCHEMA_VERSION;

  const hosts = recordAt(c, u, 'hosts', P, true, (v, p): Host => {
    if (!isObj(v)) return (c.add(p, 'must be an object'), { system: '', tags: [], channel: '', closureHash: null, pubkey: null });
    const h = copyObj(v);
    h['system'] = str(c, v, 'system', p, { nonEmpty: true });
    h['tags'] = strArray(c, v, 'tags', p);
    h['channel'] = str(c, v, 'channel', p, { nonEmpty: true });
    h['closureHash'] = nullableStr(c, v, 'closureHash', p);
    h['pubkey'] = nullableStr(c, v, 'pubkey', p);
    if (v['pin'] !== undefined) {
      const pin = objAt(c, v, 'pin', p);
      if (pin !== null) {
        const po = copyObj(pin);
        po['commit'] = str(c, pin, 'commit', `${p}.pin`, { nonEmpty: true });
        po['reason'] = str(c, pin, 'reason', `${p}.pin`);
        if (pin['expiresAt'] !== undefined) po['expiresAt'] = timestamp(c, pin, 'expiresAt', `${p}.pin`, false);
        h['pin'] = po;
      }
    }
    if (v['leaving'] !== undefined) h['leaving'] = bool(c, v, 'leaving', p, false);
    return h as Host;
  });
  out['hosts'] = hosts;

  const channels = recordAt(c, u, 'channels', P, true, (v, p): Channel => {
    if (!isObj(v)) return (c.add(p, 'must be an object'), v as never);
    const ch = copyObj(v);
    ch['rolloutPolicy'] = str(c, v, 'rolloutPolicy', p, { nonEmpty: true });
    const fw = (ch['freshnessWindow'] = int(c, v, 'freshnessWindow', p, 1));
    const si = (ch['signingIntervalMinutes'] = int(c, v, 'signingIntervalMinutes', p, 1));
    ch['reconcileIntervalMinutes'] = int(c, v, 'reconcileIntervalMinutes', p, 1);
    if (typeof v['freshnessWindow'] === 'number' && typeof v['signingIntervalMinutes'] === 'number' && fw < 2 * si) {
      c.add(`${p}.freshnessWindow`, 'must be ≥ 2 × signingIntervalMinutes');
    }
    const comp = objAt(c, v, 'compliance', p);
    if (comp !== null) {
      const co = copyObj(comp);
      co['frameworks'] = strArray(c, comp, 'frameworks', `${p}.compliance`, undefined);
      co['mode'] = oneOf(c, comp, 'mode', `${p}.compliance`, COMPLIANCE_MODES);
      ch['compliance'] = co;
    }
    return ch as Channel;
  });
  out['channels'] = channels;

  const policies = recordAt(c, u, 'rolloutPolicies', P, false, (v, p): RolloutPolicy => {
    if (!isObj(v)) return (c.add(p, 'must be an object'), v as never);
    const po = copyObj(v);
    po['strategy'] = oneOf(c, v, 'strategy', p, STRATEGIES);
    po['waves'] = arrAt(c, v, 'waves', p, true).map((w, i): PolicyWave => {
      const wp = `${p}.waves[${i}]`;
      if (!isObj(w)) return (c.add(wp, 'must be an object'), w as never);
      const wo = copyObj(w);
      wo['selector'] = parseSelectorAt(c, w['selector'], `${wp}.selector`);
      wo['soakMinutes'] = int(c, w, 'soakMinutes', wp, 0);
      return wo as PolicyWave;
    });
    po['healthGate'] = v['healthGate'] === undefined ? {} : parseHealthGate(c, v['healthGate'], `${p}.healthGate`);
    po['onHealthFailure'] = oneOf(c, v, 'onHealthFailure', p, ON_HEALTH_FAILURE);
    return po as RolloutPolicy;
  });
  out['rolloutPolicies'] = policies;

  out['waves'] = recordAt(c, u, 'waves', P, false, (v, p): Wave[] => {
    if (!Array.isArray(v)) return (c.add(p, 'must be an array'), []);
    return v.map((w, i): Wave => {
      const wp = `${p}[${i}]`;
      if (!isObj(w)) return (c.add(wp, 'must be an object'), w as never);
      const wo = copyObj(w);
      wo['hosts'] = strArray(c, w, 'hosts', wp, undefined);
      wo['soakMinutes'] = int(c, w, 'soakMinutes', wp, 0);
      return wo as Wave;
    });
  });

  out['edges'] = arrAt(c, u, 'edges', P, false).map((e, i): Edge => {
    const p = `$.edges[${i}]`;
    if (!isObj(e)) return (c.add(p, 'must be an object'), e as never);
    const eo = copyObj(e);
    eo['gated'] = str(c, e, 'gated', p, { nonEmpty: true });
    eo['gates'] = str(c, e, 'gates', p, { nonEmpty: true });
    eo['reason'] = nullableStr(c, e, 'reason', p);
    return eo as Edge;
  });

  out['channelEdges'] = arrAt(c, u, 'channelEdges', P, false).map((e, i): ChannelEdge => {
    const p = `$.channelEdges[${i}]`;
    if (!isObj(e)) return (c.add(p, 'must be an object'), e as never);
    const eo = copyObj(e);
    const old = e['gates'] === undefined && e['gated'] === undefined && (e['before'] !== undefined || e['after'] !== undefined);
    if (old) {
      // Old spelling (SPEC §2.2): `before` converges first, i.e. it gates `after`.
      eo['gates'] = str(c, e, 'before', p, { nonEmpty: true });
      eo['gated'] = str(c, e, 'after', p, { nonEmpty: true });
      delete eo['before'];
      delete eo['after'];
    } else {
      eo['gates'] = str(c, e, 'gates', p, { nonEmpty: true });
      eo['gated'] = str(c, e, 'gated', p, { nonEmpty: true });
    }
    eo['reason'] = nullableStr(c, e, 'reason', p);
    return eo as ChannelEdge;
  });

  out['disruptionBudgets'] = arrAt(c, u, 'disruptionBudgets', P, false).map((b, i): DisruptionBudget => {
    const p = `$.disruptionBudgets[${i}]`;
    if (!isObj(b)) return (c.add(p, 'must be an object'), b as never);
    const bo = copyObj(b);
    bo['selector'] = parseSelectorAt(c, b['selector'], `${p}.selector`);
    bo['maxInFlight'] = nullableInt(c, b, 'maxInFlight', p, 0);
    bo['maxInFlightPct'] = nullableInt(c, b, 'maxInFlightPct', p, 0, 100);
    return bo as DisruptionBudget;
  });

  out['meta'] = parseMetaAt(c, u, P);

  // Referential integrity: the reconciler may rely on every name resolving.
  for (const [name, h] of Object.entries(hosts)) {
    if (isObj(h) && typeof h.channel === 'string' && h.channel !== '' && !own(channels, h.channel)) c.add(`$.hosts.${name}.channel`, `unknown channel ${JSON.stringify(h.channel)}`);
  }
  for (const [name, ch] of Object.entries(channels)) {
    if (isObj(ch) && typeof ch.rolloutPolicy === 'string' && ch.rolloutPolicy !== '' && !own(policies, ch.rolloutPolicy)) c.add(`$.channels.${name}.rolloutPolicy`, `unknown rollout policy ${JSON.stringify(ch.rolloutPolicy)}`);
  }
  for (const [ch, waves] of Object.entries(out['waves'] as Record<string, Wave[]>)) {
    if (!own(channels, ch)) c.add(`$.waves.${ch}`, 'unknown channel');
    waves.forEach((w, i) => {
      if (!isObj(w) || !Array.isArray(w.hosts)) return;
      w.hosts.forEach((h, j) => {
        if (typeof h === 'string' && !own(hosts, h)) c.add(`$.waves.${ch}[${i}].hosts[${j}]`, `unknown host ${JSON.stringify(h)}`);
      });
    });
  }
  (out['edges'] as Edge[]).forEach((e, i) => {
    for (const k of ['gated', 'gates'] as const) if (isObj(e) && typeof e[k] === 'string' && e[k] !== '' && !own(hosts, e[k])) c.add(`$.edges[${i}].${k}`, `unknown host ${JSON.stringify(e[k])}`);
  });
  (out['channelEdges'] as ChannelEdge[]).forEach((e, i) => {
    for (const k of ['gated', 'gates'] as const) if (isObj(e) && typeof e[k] === 'string' && e[k] !== '' && !own(channels, e[k])) c.add(`$.channelEdges[${i}].${k}`, `unknown channel ${JSON.stringify(e[k])}`);
  });
  return done(c, 'fleet.resolved.json', out as FleetResolved);
}

/** `revocations.json` (SPEC §2.3). */
export function parseRevocations(u: unknown): Result<Revocations, SchemaError> {
  const c = new Ctx();
  if (!isObj(u)) return done(c, 'revocations.json', (c.add('$', 'must be an object'), u as never));
  topVersion(c, u);
  const out = copyObj(u);
  out['schemaVersion'] = SCHEMA_VERSION;
  out['revocations'] = arrAt(c, u, 'revocations', '$', true).map((r, i): Revocation => {
    const p = `$.revocations[${i}]`;
    if (!isObj(r)) return (c.add(p, 'must be an object'), r as never);
    const ro = copyObj(r);
    ro['hostname'] = str(c, r, 'hostname', p, { nonEmpty: true });
    ro['notBefore'] = timestamp(c, r, 'notBefore', p, false);
    ro['reason'] = nullableStr(c, r, 'reason', p);
    ro['revokedBy'] = nullableStr(c, r, 'revokedBy', p);
    return ro as Revocation;
  });
  out['meta'] = parseMetaAt(c, u, '$');
  return done(c, 'revocations.json', out as Revocations);
}

function parsePublicKeyAt(c: Ctx, u: unknown, path: string): PublicKey {
  if (!isObj(u)) return (c.add(path, 'must be an object'), u as never);
  const o = copyObj(u);
  const alg = (o['algorithm'] = oneOf(c, u, 'algorithm', path, SIGNATURE_ALGORITHMS));
  const pub = (o['public'] = str(c, u, 'public', path, { nonEmpty: true }));
  if (typeof u['public'] === 'string') {
    const want = alg === 'ed25519' ? 32 : 64;
    const len = base64Length(pub);
    if (len !== want) c.add(`${path}.public`, `must be base64 of ${want} raw bytes for ${alg}`);
  }
  return o as PublicKey;
}

/** Decoded length of a strict, padded base64 string, or -1. */
function base64Length(s: string): number {
  if (s.length % 4 !== 0 || !/^[A-Za-z0-9+/]*={0,2}$/.test(s)) return -1;
  const pad = s.endsWith('==') ? 2 : s.endsWith('=') ? 1 : 0;
  return (s.length / 4) * 3 - pad;
}

function parseKeySlotAt(c: Ctx, u: unknown, path: string): KeySlot {
  if (!isObj(u)) return (c.add(path, 'must be an object'), {});
  const o = copyObj(u);
  for (const k of ['current', 'previous', 'successor'] as const) {
    if (u[k] !== undefined && u[k] !== null) o[k] = parsePublicKeyAt(c, u[k], `${path}.${k}`);
    else delete o[k];
  }
  for (const k of ['rejectBefore', 'retireAt'] as const) {
    if (u[k] !== undefined && u[k] !== null) o[k] = timestamp(c, u, k, path, false);
    else delete o[k];
  }
  return o as KeySlot;
}

/** `trust.json` (SPEC §2.3). */
export function parseTrust(u: unknown): Result<Trust, SchemaError> {
  const c = new Ctx();
  if (!isObj(u)) return done(c, 'trust.json', (c.add('$', 'must be an object'), u as never));
  topVersion(c, u);
  const out = copyObj(u);
  out['schemaVersion'] = SCHEMA_VERSION;
  out['ciReleaseKey'] = parseKeySlotAt(c, u['ciReleaseKey'], '$.ciReleaseKey');
  out['cacheKeys'] = strArray(c, u, 'cacheKeys', '$');
  (out['cacheKeys'] as string[]).forEach((k, i) => {
    if (!/^[^:\s]+:[A-Za-z0-9+/]+={0,2}$/.test(k)) c.add(`$.cacheKeys[${i}]`, 'must be a Nix public key "name:base64"');
  });
  if (u['orgRootKey'] !== undefined && u['orgRootKey'] !== null) out['orgRootKey'] = parseKeySlotAt(c, u['orgRootKey'], '$.orgRootKey');
  else delete out['orgRootKey'];
  if (u['fleetCaPem'] !== undefined && u['fleetCaPem'] !== null) out['fleetCaPem'] = str(c, u, 'fleetCaPem', '$');
  else delete out['fleetCaPem'];
  return done(c, 'trust.json', out as Trust);
}

// ---- fleet description -----------------------------------------------------------------------

function parseSelectorInputAt(c: Ctx, u: unknown, path: string): SelectorInput {
  if (!isObj(u)) return (c.add(path, 'must be an object'), {});
  unknownFields(c, u, path, ['all', 'hosts', 'tags', 'tagsAny', 'channel', 'and', 'not']);
  const o: SelectorInput = {};
  if (u['all'] !== undefined) o.all = bool(c, u, 'all', path, false);
  if (u['hosts'] !== undefined) o.hosts = strArray(c, u, 'hosts', path);
  if (u['tags'] !== undefined) o.tags = strArray(c, u, 'tags', path);
  if (u['tagsAny'] !== undefined) o.tagsAny = strArray(c, u, 'tagsAny', path);
  if (u['channel'] !== undefined) o.channel = nullableStr(c, u, 'channel', path);
  if (u['and'] !== undefined) o.and = arrAt(c, u, 'and', path, true).map((s, i) => parseSelectorInputAt(c, s, `${path}.and[${i}]`));
  if (u['not'] !== undefined) o.not = parseSelectorInputAt(c, u['not'], `${path}.not`);
  return o;
}

/**
 * A fleet description (input of `resolve` and `lib.mkFleet`). Strict: unknown fields are errors
 * here (a typo in a hand-written description must not be ignored). Defaults are NOT filled here;
 * `resolveFleet` fills them (see the type comments above).
 */
export function parseFleetDescription(u: unknown): Result<FleetDescription, SchemaError> {
  const c = new Ctx();
  if (!isObj(u)) return done(c, 'fleet description', (c.add('$', 'must be an object'), u as never));
  unknownFields(c, u, '$', ['hosts', 'channels', 'rolloutPolicies', 'edges', 'channelEdges', 'disruptionBudgets', 'pins']);
  const hosts = recordAt(c, u, 'hosts', '$', true, (v, p): HostInput => {
    if (!isObj(v)) return (c.add(p, 'must be an object'), v as never);
    unknownFields(c, v, p, ['system', 'channel', 'tags', 'pubkey', 'closureHash', 'leaving']);
    const h: HostInput = { system: str(c, v, 'system', p, { nonEmpty: true }), channel: str(c, v, 'channel', p, { nonEmpty: true }) };
    if (v['tags'] !== undefined) h.tags = strArray(c, v, 'tags', p);
    if (v['pubkey'] !== undefined) h.pubkey = nullableStr(c, v, 'pubkey', p);
    if (v['closureHash'] !== undefined) h.closureHash = nullableStr(c, v, 'closureHash', p);
    if (v['leaving'] !== undefined) h.leaving = bool(c, v, 'leaving', p, false);
    return h;
  });
  const channels = recordAt(c, u, 'channels', '$', true, (v, p): ChannelInput => {
    if (!isObj(v)) return (c.add(p, 'must be an object'), v as never);
    unknownFields(c, v, p, ['rolloutPolicy', 'freshnessWindow', 'signingIntervalMinutes', 'reconcileIntervalMinutes', 'compliance']);
    const ch: ChannelInput = { rolloutPolicy: str(c, v, 'rolloutPolicy', p, { nonEmpty: true }) };
    if (v['freshnessWindow'] !== undefined) ch.freshnessWindow = int(c, v, 'freshnessWindow', p, 1);
    if (v['signingIntervalMinutes'] !== undefined) ch.signingIntervalMinutes = int(c, v, 'signingIntervalMinutes', p, 1);
    if (v['reconcileIntervalMinutes'] !== undefined) ch.reconcileIntervalMinutes = int(c, v, 'reconcileIntervalMinutes', p, 1);
    if (v['compliance'] !== undefined) {
      const co = objAt(c, v, 'compliance', p);
      if (co !== null) {
        unknownFields(c, co, `${p}.compliance`, ['frameworks', 'mode']);
        const comp: { frameworks?: string[]; mode?: ComplianceMode } = {};
        if (co['frameworks'] !== undefined) comp.frameworks = strArray(c, co, 'frameworks', `${p}.compliance`);
        if (co['mode'] !== undefined) comp.mode = oneOf(c, co, 'mode', `${p}.compliance`, COMPLIANCE_MODES);
        ch.compliance = comp;
      }
    }
    return ch;
  });
  const rolloutPolicies = recordAt(c, u, 'rolloutPolicies', '$', true, (v, p): RolloutPolicyInput => {
    if (!isObj(v)) return (c.add(p, 'must be an object'), v as never);
    unknownFields(c, v, p, ['strategy', 'waves', 'healthGate', 'onHealthFailure']);
    const waves = arrAt(c, v, 'waves', p, true);
    if (Array.isArray(v['waves']) && waves.length === 0) c.add(`${p}.waves`, 'must hold at least one wave');
    const po: RolloutPolicyInput = {
      waves: waves.map((w, i) => {
        const wp = `${p}.waves[${i}]`;
        if (!isObj(w)) return (c.add(wp, 'must be an object'), { selector: {} });
        unknownFields(c, w, wp, ['selector', 'soakMinutes']);
        const wo: { selector: SelectorInput; soakMinutes?: number } = { selector: parseSelectorInputAt(c, w['selector'], `${wp}.selector`) };
        if (w['soakMinutes'] !== undefined) wo.soakMinutes = int(c, w, 'soakMinutes', wp, 0);
        return wo;
      }),
    };
    if (v['strategy'] !== undefined) po.strategy = oneOf(c, v, 'strategy', p, STRATEGIES);
    if (v['healthGate'] !== undefined) {
      const hg = v['healthGate'];
      if (isObj(hg)) unknownFields(c, hg, `${p}.healthGate`, ['systemdFailedUnits', 'complianceProbes']);
      po.healthGate = parseHealthGate(c, hg, `${p}.healthGate`);
    }
    if (v['onHealthFailure'] !== undefined) po.onHealthFailure = oneOf(c, v, 'onHealthFailure', p, ON_HEALTH_FAILURE);
    return po;
  });
  const out: FleetDescription = { hosts, channels, rolloutPolicies };
  if (u['edges'] !== undefined) {
    out.edges = arrAt(c, u, 'edges', '$', true).map((e, i) => {
      const p = `$.edges[${i}]`;
      if (!isObj(e)) return (c.add(p, 'must be an object'), { gated: '', gates: '' });
      unknownFields(c, e, p, ['gated', 'gates', 'reason']);
      const eo: { gated: string; gates: string; reason?: string | null } = { gated: str(c, e, 'gated', p, { nonEmpty: true }), gates: str(c, e, 'gates', p, { nonEmpty: true }) };
      if (e['reason'] !== undefined) eo.reason = nullableStr(c, e, 'reason', p);
      return eo;
    });
  }
  if (u['channelEdges'] !== undefined) {
    out.channelEdges = arrAt(c, u, 'channelEdges', '$', true).map((e, i) => {
      const p = `$.channelEdges[${i}]`;
      if (!isObj(e)) return (c.add(p, 'must be an object'), { gated: '', gates: '' });
      unknownFields(c, e, p, ['gated', 'gates', 'reason']);
      const eo: { gated: string; gates: string; reason?: string | null } = { gates: str(c, e, 'gates', p, { nonEmpty: true }), gated: str(c, e, 'gated', p, { nonEmpty: true }) };
      if (e['reason'] !== undefined) eo.reason = nullableStr(c, e, 'reason', p);
      return eo;
    });
  }
  if (u['disruptionBudgets'] !== undefined) {
    out.disruptionBudgets = arrAt(c, u, 'disruptionBudgets', '$', true).map((b, i) => {
      const p = `$.disruptionBudgets[${i}]`;
      if (!isObj(b)) return (c.add(p, 'must be an object'), { selector: {} });
      unknownFields(c, b, p, ['selector', 'maxInFlight', 'maxInFlightPct']);
      const bo: { selector: SelectorInput; maxInFlight?: number | null; maxInFlightPct?: number | null } = { selector: parseSelectorInputAt(c, b['selector'], `${p}.selector`) };
      if (b['maxInFlight'] !== undefined) bo.maxInFlight = nullableInt(c, b, 'maxInFlight', p, 0);
      if (b['maxInFlightPct'] !== undefined) bo.maxInFlightPct = nullableInt(c, b, 'maxInFlightPct', p, 0, 100);
      return bo;
    });
  }
  if (u['pins'] !== undefined) {
    out.pins = arrAt(c, u, 'pins', '$', true).map((x, i) => {
      const p = `$.pins[${i}]`;
      if (!isObj(x)) return (c.add(p, 'must be an object'), { host: '', commit: '', reason: '' });
      unknownFields(c, x, p, ['host', 'commit', 'reason', 'expiresAt']);
      const pin: PinInput = { host: str(c, x, 'host', p, { nonEmpty: true }), commit: str(c, x, 'commit', p, { nonEmpty: true }), reason: str(c, x, 'reason', p) };
      if (x['expiresAt'] !== undefined) pin.expiresAt = timestamp(c, x, 'expiresAt', p, false);
      return pin;
    });
  }
  return done(c, 'fleet description', out);
}

/**
 * Does `sel` match host `name`? OR over the base rules that are set (SPEC §2.2), then our `and` /
 * `not` additions (see `Selector`). An empty selector matches nothing.
 */
export function matchesSelector(sel: Selector | SelectorInput, name: string, host: Pick<Host, 'tags' | 'channel'>): boolean {
  const tags = sel.tags ?? [];
  const tagsAny = sel.tagsAny ?? [];
  const hostsList = sel.hosts ?? [];
  const channel = sel.channel ?? null;
  const anyBase = sel.all === true || hostsList.length > 0 || tags.length > 0 || tagsAny.length > 0 || channel !== null;
  let base: boolean;
  if (anyBase) {
    base =
      sel.all === true ||
      hostsList.includes(name) ||
      (channel !== null && host.channel === channel) ||
      (tags.length > 0 && tags.every((t) => host.tags.includes(t))) ||
      tagsAny.some((t) => host.tags.includes(t));
  } else base = sel.and !== undefined || sel.not !== undefined;
  if (!base) return false;
  if (sel.and !== undefined && !sel.and.every((s) => matchesSelector(s, name, host))) return false;
  if (sel.not !== undefined && matchesSelector(sel.not, name, host)) return false;
  return true;
}
