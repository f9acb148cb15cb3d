/**
 * Fleet description(s) → `fleet.resolved.json` (SPEC §3, §3.1). The rules (merge, defaults, wave
 * resolution, the order of checks and their codes) are written down in release/README.md; the Nix
 * `lib.mkFleet` implements the same ones and the golden fixtures under fixtures/fleets/ hold both
 * to byte equality.
 *
 * Pure module: no I/O.
 */
import { toChangeWindow } from '../protocol/windows.ts';
import { err, ok, type Result } from '../protocol/result.ts';
import {
  CHANNEL_DEFAULTS,
  KNOWN_FRAMEWORKS,
  matchesSelector,
  parseFleetDescription,
  SCHEMA_VERSION,
  type Channel,
  type ChannelEdge,
  type ChannelInput,
  type DisruptionBudget,
  type Edge,
  type FleetDescription,
  type FleetResolved,
  type Host,
  type HostInput,
  type PinInput,
  type RolloutPolicy,
  type RolloutPolicyInput,
  type Selector,
  type SelectorInput,
  type Wave,
} from '../protocol/schema.ts';

export type ResolveErrorCode =
  | 'SCHEMA_INVALID'
  | 'HOST_WITHOUT_CHANNEL'
  | 'DUPLICATE_HOST'
  | 'DUPLICATE_CHANNEL'
  | 'DUPLICATE_POLICY'
  | 'UNKNOWN_CHANNEL'
  | 'UNKNOWN_POLICY'
  | 'UNKNOWN_HOST'
  | 'UNKNOWN_FRAMEWORK'
  | 'FRESHNESS_WINDOW'
  | 'DUPLICATE_PIN'
  | 'PIN_TARGET'
  | 'CROSS_CHANNEL_EDGE'
  | 'HOST_EDGE_CYCLE'
  | 'CHANNEL_EDGE_CYCLE'
  | 'BUDGET_NEVER_ADMITS'
  | 'INVALID_PUBKEY'
  // The static compliance gate (release/static-gate.ts), after every check above.
  | 'COMPLIANCE_REPORT_INVALID'
  | 'CONTROL_INVALID'
  | 'DUPLICATE_CONTROL'
  | 'COMPLIANCE_STATIC_FAILED';

export type ResolveError = { code: ResolveErrorCode; message: string };
export type Resolved = { fleet: FleetResolved; warnings: string[] };

const fail = (code: ResolveErrorCode, message: string) => err<ResolveError>({ code, message });
const own = (o: object, k: string): boolean => Object.prototype.hasOwnProperty.call(o, k);
const q = (s: string): string => JSON.stringify(s);

/**
 * An OpenSSH ed25519 public key line, as `ssh-keygen` writes it (`/etc/ssh/ssh_host_ed25519_key.pub`):
 * `ssh-ed25519 `, the 68-character base64 of the SSH wire blob (string "ssh-ed25519", string of 32
 * bytes: a fixed 25-character prefix, then the key), and an optional ` comment`. The blob is 51
 * bytes, so the regular expression is exact; lib/resolve.nix uses the same one.
 */
export const OPENSSH_ED25519_LINE = /^ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAI[A-P][A-Za-z0-9+/]{42}( [^\n]*)?$/;
export const isOpenSshEd25519Line = (s: string): boolean => OPENSSH_ED25519_LINE.test(s);
const PUBKEY_EXPECTED =
  'is not an OpenSSH ed25519 public key line: expected "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAI… [comment]" (the content of the host\'s /etc/ssh/ssh_host_ed25519_key.pub), not the base64 that derive-pubkey prints';

/** The names in a record, in UTF-16 code-unit order (what JCS and `builtins.attrNames` agree on for ASCII). */
const sortedKeys = (o: object): string[] => Object.keys(o).sort();

/**
 * Parse and resolve raw JSON descriptions (one or several files, already parsed with
 * `parseJsonStrict`). Adds the `HOST_WITHOUT_CHANNEL` check that must run before the schema.
 */
export function resolveFleetInput(inputs: unknown | unknown[]): Result<Resolved, ResolveError> {
  const list = Array.isArray(inputs) ? inputs : [inputs];
  const descs: FleetDescription[] = [];
  for (const [i, u] of list.entries()) {
    const where = list.length > 1 ? `fleet file ${i + 1}: ` : '';
    if (typeof u === 'object' && u !== null && !Array.isArray(u)) {
      const hosts = (u as Record<string, unknown>)['hosts'];
      if (typeof hosts === 'object' && hosts !== null && !Array.isArray(hosts)) {
        for (const name of sortedKeys(hosts)) {
          const h = (hosts as Record<string, unknown>)[name];
          if (typeof h === 'object' && h !== null && !Array.isArray(h)) {
            const ch = (h as Record<string, unknown>)['channel'];
            if (ch === undefined || ch === null || ch === '') return fail('HOST_WITHOUT_CHANNEL', `${where}host ${q(name)} has no channel`);
          }
        }
      }
    }
    const d = parseFleetDescription(u);
    if (!d.ok) return fail('SCHEMA_INVALID', where + d.error.message);
    descs.push(d.value);
  }
  return resolveFleet(descs);
}

function normalizeSelector(s: SelectorInput): Selector {
  const out: Selector = {
    all: s.all ?? false,
    hosts: [...(s.hosts ?? [])],
    tags: [...(s.tags ?? [])],
    tagsAny: [...(s.tagsAny ?? [])],
    channel: s.channel ?? null,
  };
  if (s.and !== undefined) out.and = s.and.map(normalizeSelector);
  if (s.not !== undefined) out.not = normalizeSelector(s.not);
  return out;
}

function selectorRefs(s: SelectorInput, acc: { hosts: string[]; channels: string[] }): typeof acc {
  acc.hosts.push(...(s.hosts ?? []));
  if (s.channel !== undefined && s.channel !== null) acc.channels.push(s.channel);
  s.and?.forEach((x) => selectorRefs(x, acc));
  if (s.not !== undefined) selectorRefs(s.not, acc);
  return acc;
}

/** A cycle in a directed graph (edges gates → gated), as a node path, or null. Deterministic. */
function findCycle(nodes: string[], edges: { from: string; to: string }[]): string[] | null {
  const next = new Map<string, string[]>();
  for (const e of edges) {
    const l = next.get(e.from);
    if (l === undefined) next.set(e.from, [e.to]);
    else l.push(e.to);
  }
  for (const v of next.values()) v.sort();
  const state = new Map<string, 1 | 2>(); // 1 on stack, 2 done
  const stack: string[] = [];
  // Iterative DFS so a 10,000-host chain cannot overflow the call stack.
  for (const start of [...nodes].sort()) {
    if (state.has(start)) continue;
    const iters: { node: string; i: number }[] = [{ node: start, i: 0 }];
    state.set(start, 1);
    stack.push(start);
    while (iters.length > 0) {
      const top = iters[iters.length - 1]!;
      const succ = next.get(top.node) ?? [];
      if (top.i < succ.length) {
        const n = succ[top.i++]!;
        const st = state.get(n);
        if (st === 1) return [...stack.slice(stack.indexOf(n)), n];
        if (st === undefined) {
          state.set(n, 1);
          stack.push(n);
          iters.push({ node: n, i: 0 });
        }
      } else {
        state.set(top.node, 2);
        stack.pop();
        iters.pop();
      }
    }
  }
  return null;
}

/**
 * Resolve typed description(s) into `fleet.resolved.json` (unsigned: `meta.signedAt = null`).
 * Several descriptions are merged first. See release/README.md for every rule.
 */
export function resolveFleet(input: FleetDescription | FleetDescription[]): Result<Resolved, ResolveError> {
  const descs = Array.isArray(input) ? input : [input];
  const warnings: string[] = [];

  // Merge.
  const hostsIn: Record<string, HostInput> = {};
  const channelsIn: Record<string, ChannelInput> = {};
  const policiesIn: Record<string, RolloutPolicyInput> = {};
  const edgesIn: NonNullable<FleetDescription['edges']> = [];
  const channelEdgesIn: NonNullable<FleetDescription['channelEdges']> = [];
  const budgetsIn: NonNullable<FleetDescription['disruptionBudgets']> = [];
  const pinsIn: PinInput[] = [];
  for (const d of descs) {
    for (const name of sortedKeys(d.hosts)) {
      const h = d.hosts[name]!;
      if (h.channel === '' || h.channel === undefined || h.channel === null) return fail('HOST_WITHOUT_CHANNEL', `host ${q(name)} has no channel`);
    }
  }
  for (const d of descs) {
    for (const name of sortedKeys(d.hosts)) {
      if (own(hostsIn, name)) return fail('DUPLICATE_HOST', `host ${q(name)} is defined in more than one fleet file`);
      hostsIn[name] = d.hosts[name]!;
    }
    for (const name of sortedKeys(d.channels)) {
      if (own(channelsIn, name)) return fail('DUPLICATE_CHANNEL', `channel ${q(name)} is defined in more than one fleet file`);
      channelsIn[name] = d.channels[name]!;
    }
    for (const name of sortedKeys(d.rolloutPolicies)) {
      if (own(policiesIn, name)) return fail('DUPLICATE_POLICY', `rollout policy ${q(name)} is defined in more than one fleet file`);
      policiesIn[name] = d.rolloutPolicies[name]!;
    }
    edgesIn.push(...(d.edges ?? []));
    channelEdgesIn.push(...(d.channelEdges ?? []));
    budgetsIn.push(...(d.disruptionBudgets ?? []));
    pinsIn.push(...(d.pins ?? []));
  }
  const hostNames = sortedKeys(hostsIn);
  const channelNames = sortedKeys(channelsIn);
  const policyNames = sortedKeys(policiesIn);

  // Every selector in the description, with where it is, for reference checks.
  const selectors: { where: string; sel: SelectorInput }[] = [];
  for (const p of policyNames) policiesIn[p]!.waves.forEach((w, i) => selectors.push({ where: `rollout policy ${q(p)} wave ${i}`, sel: w.selector }));
  budgetsIn.forEach((b, i) => selectors.push({ where: `disruption budget ${i}`, sel: b.selector }));

  // PIN_TARGET
  for (const [i, p] of pinsIn.entries()) {
    if ([p.host, p.tag, p.channel].filter((x) => x !== undefined).length !== 1) return fail('PIN_TARGET', `pin ${i} must name exactly one of host, tag, channel`);
  }
  // UNKNOWN_CHANNEL
  for (const h of hostNames) {
    const ch = hostsIn[h]!.channel;
    if (!own(channelsIn, ch)) return fail('UNKNOWN_CHANNEL', `host ${q(h)} names unknown channel ${q(ch)}`);
  }
  for (const { where, sel } of selectors) {
    for (const ch of selectorRefs(sel, { hosts: [], channels: [] }).channels) {
      if (!own(channelsIn, ch)) return fail('UNKNOWN_CHANNEL', `selector of ${where} names unknown channel ${q(ch)}`);
    }
  }
  for (const [i, e] of channelEdgesIn.entries()) {
    for (const ch of [e.gates, e.gated]) if (!own(channelsIn, ch)) return fail('UNKNOWN_CHANNEL', `channel edge ${i} names unknown channel ${q(ch)}`);
  }
  for (const [i, p] of pinsIn.entries()) if (p.channel !== undefined && !own(channelsIn, p.channel)) return fail('UNKNOWN_CHANNEL', `pin ${i} names unknown channel ${q(p.channel)}`);
  // UNKNOWN_POLICY
  for (const ch of channelNames) {
    const p = channelsIn[ch]!.rolloutPolicy;
    if (!own(policiesIn, p)) return fail('UNKNOWN_POLICY', `channel ${q(ch)} names unknown rollout policy ${q(p)}`);
  }
  // UNKNOWN_HOST
  for (const [i, e] of edgesIn.entries()) {
    for (const h of [e.gates, e.gated]) if (!own(hostsIn, h)) return fail('UNKNOWN_HOST', `host edge ${i} names unknown host ${q(h)}`);
  }
  for (const [i, p] of pinsIn.entries()) if (p.host !== undefined && !own(hostsIn, p.host)) return fail('UNKNOWN_HOST', `pin ${i} names unknown host ${q(p.host)}`);
  for (const { where, sel } of selectors) {
    for (const h of selectorRefs(sel, { hosts: [], channels: [] }).hosts) {
      if (!own(hostsIn, h)) return fail('UNKNOWN_HOST', `selector of ${where} names unknown host ${q(h)}`);
    }
  }
  // UNKNOWN_FRAMEWORK
  for (const ch of channelNames) {
    for (const f of channelsIn[ch]!.compliance?.frameworks ?? []) {
      if (!KNOWN_FRAMEWORKS.includes(f)) return fail('UNKNOWN_FRAMEWORK', `channel ${q(ch)} names unknown compliance framework ${q(f)} (known: ${KNOWN_FRAMEWORKS.join(', ')})`);
    }
  }
  // Channels with defaults; FRESHNESS_WINDOW
  const channels: Record<string, Channel> = {};
  for (const ch of channelNames) {
    const c = channelsIn[ch]!;
    const out: Channel = {
      rolloutPolicy: c.rolloutPolicy,
      freshnessWindow: c.freshnessWindow ?? CHANNEL_DEFAULTS.freshnessWindow,
      signingIntervalMinutes: c.signingIntervalMinutes ?? CHANNEL_DEFAULTS.signingIntervalMinutes,
      reconcileIntervalMinutes: c.reconcileIntervalMinutes ?? CHANNEL_DEFAULTS.reconcileIntervalMinutes,
      compliance: { frameworks: [...(c.compliance?.frameworks ?? [])], mode: c.compliance?.mode ?? 'disabled' },
    };
    // Issue 14 controls: copied when set, omitted when absent (a fleet without them resolves byte-identically as before).
    if (c.rebootPolicy !== undefined) out.rebootPolicy = c.rebootPolicy;
    if (c.onDrift !== undefined) out.onDrift = c.onDrift;
    if (c.progressDeadlineMinutes !== undefined) out.progressDeadlineMinutes = c.progressDeadlineMinutes;
    if (c.changeWindow !== undefined) out.changeWindow = toChangeWindow(c.changeWindow);
    if (c.requireApprovals !== undefined) out.requireApprovals = c.requireApprovals;
    if (out.freshnessWindow < 2 * out.signingIntervalMinutes) {
      return fail('FRESHNESS_WINDOW', `channel ${q(ch)}: freshnessWindow ${out.freshnessWindow} min is less than 2 × signingIntervalMinutes (${out.signingIntervalMinutes} min): hosts would refuse artefacts between two signings`);
    }
    channels[ch] = out;
  }
  // DUPLICATE_PIN: two pins on one host, tag or channel; then two tag pins on a host without its own pin.
  const pinTarget = (p: PinInput): [string, string] => (p.host !== undefined ? ['host', p.host] : p.tag !== undefined ? ['tag', p.tag] : ['channel', p.channel!]);
  const seenPins = new Set<string>();
  for (const p of pinsIn) {
    const [kind, name] = pinTarget(p);
    if (seenPins.has(`${kind}\0${name}`)) return fail('DUPLICATE_PIN', `${kind} ${q(name)} has two pins`);
    seenPins.add(`${kind}\0${name}`);
  }
  const pins = new Map<string, PinInput>();
  for (const name of hostNames) {
    const h = hostsIn[name]!;
    const own_ = pinsIn.find((p) => p.host === name);
    const byTag = pinsIn.filter((p) => p.tag !== undefined && (h.tags ?? []).includes(p.tag));
    if (own_ === undefined && byTag.length > 1) return fail('DUPLICATE_PIN', `host ${q(name)} is covered by two tag pins (${q(byTag[0]!.tag!)}, ${q(byTag[1]!.tag!)})`);
    const pin = own_ ?? byTag[0] ?? pinsIn.find((p) => p.channel !== undefined && p.channel === h.channel);
    if (pin !== undefined) pins.set(name, pin);
  }
  // CROSS_CHANNEL_EDGE
  for (const [i, e] of edgesIn.entries()) {
    const a = hostsIn[e.gates]!.channel;
    const b = hostsIn[e.gated]!.channel;
    if (a !== b) return fail('CROSS_CHANNEL_EDGE', `host edge ${i}: ${q(e.gates)} (channel ${q(a)}) gates ${q(e.gated)} (channel ${q(b)}); host edges must stay inside one channel (use channelEdges)`);
  }
  // Cycles
  const hostCycle = findCycle(hostNames, edgesIn.map((e) => ({ from: e.gates, to: e.gated })));
  if (hostCycle !== null) return fail('HOST_EDGE_CYCLE', `cycle in host edges: ${hostCycle.map(q).join(' → ')}`);
  const channelCycle = findCycle(channelNames, channelEdgesIn.map((e) => ({ from: e.gates, to: e.gated })));
  if (channelCycle !== null) return fail('CHANNEL_EDGE_CYCLE', `cycle in channel edges: ${channelCycle.map(q).join(' → ')}`);
  // BUDGET_NEVER_ADMITS
  for (const [i, b] of budgetsIn.entries()) {
    if (b.maxInFlight === 0) return fail('BUDGET_NEVER_ADMITS', `disruption budget ${i} has maxInFlight 0: it could never admit a host`);
    if (b.maxInFlightPct === 0) return fail('BUDGET_NEVER_ADMITS', `disruption budget ${i} has maxInFlightPct 0: it could never admit a host`);
  }

  // INVALID_PUBKEY
  for (const h of hostNames) {
    const k = hostsIn[h]!.pubkey;
    if (k !== undefined && k !== null && !isOpenSshEd25519Line(k)) return fail('INVALID_PUBKEY', `host ${q(h)}: pubkey ${PUBKEY_EXPECTED}`);
  }

  // Output.
  const hosts: Record<string, Host> = {};
  for (const name of hostNames) {
    const h = hostsIn[name]!;
    const out: Host = {
      system: h.system,
      tags: [...(h.tags ?? [])],
      channel: h.channel,
      closureHash: h.closureHash ?? null,
      pubkey: h.pubkey ?? null,
    };
    const pin = pins.get(name);
    if (pin !== undefined) out.pin = pin.expiresAt === undefined ? { commit: pin.commit, reason: pin.reason } : { commit: pin.commit, reason: pin.reason, expiresAt: pin.expiresAt };
    if (h.leaving === true) out.leaving = true;
    hosts[name] = out;
  }

  const rolloutPolicies: Record<string, RolloutPolicy> = {};
  for (const p of policyNames) {
    const pi = policiesIn[p]!;
    rolloutPolicies[p] = {
      strategy: pi.strategy ?? 'all-at-once',
      waves: pi.waves.map((w) => ({ selector: normalizeSelector(w.selector), soakMinutes: w.soakMinutes ?? 0 })),
      healthGate: structuredClone(pi.healthGate ?? {}),
      onHealthFailure: pi.onHealthFailure ?? 'halt',
    };
  }

  const waves: Record<string, Wave[]> = {};
  for (const ch of channelNames) {
    const pName = channels[ch]!.rolloutPolicy;
    const policy = rolloutPolicies[pName]!;
    const buckets: string[][] = policy.waves.map(() => []);
    for (const name of hostNames) {
      const h = hosts[name]!;
      if (h.channel !== ch) continue;
      const idx = policy.waves.findIndex((w) => matchesSelector(w.selector, name, h));
      if (idx === -1) {
        warnings.push(`channel ${q(ch)}: host ${q(name)} matches no wave of policy ${q(pName)}; placed in the last wave`);
        buckets[buckets.length - 1]!.push(name);
      } else buckets[idx]!.push(name);
    }
    buckets.forEach((b, i) => {
      if (b.length === 0) warnings.push(`channel ${q(ch)}: wave ${i} of policy ${q(pName)} matches no host`);
    });
    waves[ch] = policy.waves.map((w, i) => ({ hosts: buckets[i]!.sort(), soakMinutes: w.soakMinutes }));
  }

  const edges: Edge[] = edgesIn.map((e) => ({ gated: e.gated, gates: e.gates, reason: e.reason ?? null }));
  const channelEdges: ChannelEdge[] = channelEdgesIn.map((e) => ({ gates: e.gates, gated: e.gated, reason: e.reason ?? null }));
  const disruptionBudgets: DisruptionBudget[] = budgetsIn.map((b, i) => {
    const selector = normalizeSelector(b.selector);
    if (!hostNames.some((n) => matchesSelector(selector, n, hosts[n]!))) warnings.push(`disruption budget ${i}: selector matches no host`);
    return { selector, maxInFlight: b.maxInFlight ?? null, maxInFlightPct: b.maxInFlightPct ?? null };
  });

  const fleet: FleetResolved = {
    schemaVersion: SCHEMA_VERSION,
    hosts,
    channels,
    rolloutPolicies,
    waves,
    edges,
    channelEdges,
    disruptionBudgets,
    meta: { schemaVersion: SCHEMA_VERSION, signedAt: null, ciCommit: null },
  };
  return ok({ fleet, warnings });
}
