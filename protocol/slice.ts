/**
 * Signed per-host slices (SPEC §10, issue 19): one RFC 9162 Merkle tree over one leaf per host,
 * so that an agent can check its own entry against a small signed index instead of downloading
 * the whole artefact (2.6 MB at 10,000 hosts).
 *
 * - A **leaf** is the JCS bytes of what the host's agent needs from the fleet: its hostname, its
 *   host entry, its channel's name and settings, and its wave (index and soak) — see
 *   {@link SliceLeaf}. Leaves are in hostname order (UTF-16 code units, the order JCS sorts keys).
 * - The **index** names the tree (`root`, `leafCount`), binds it to the full artefact
 *   (`artifactSha256`, the sha256 of its canonical bytes) and carries the artefact's `meta` and the
 *   freshness window the artefact would get; it is canonicalised with JCS and signed with the
 *   release key like the artefact, with the same trust slots, freshness, rollback and
 *   equivocation rules.
 * - A **slice** served to one host is its leaf text, its position, its audit path and the signed
 *   index.
 *
 * Pure: building, proving and checking; the signature over the index is checked by the caller
 * (protocol/verify.ts) before {@link verifySlice} is asked about a leaf.
 */
import { controlsForFrameworks, type Control } from './compliance.ts';
import { type Static, Type } from '@sinclair/typebox';
import { TypeCompiler } from '@sinclair/typebox/compiler';
import { bytesToHex, hexToBytes } from '@noble/hashes/utils.js';
import { canonicalize, parseJsonStrict } from './jcs.ts';
import { sha256Into } from './crypto.ts';
import { topLevelMemberSpans } from './json-spans.ts';
import { HASH_BYTES, inclusionProofFromFlatLevels, leafHash, merkleLevelsFlat, verifyInclusion } from './merkle.ts';
import { err, ok, type Result } from './result.ts';
import { CHANNEL_DEFAULTS, type Channel, type FleetResolved, type Host, type Meta } from './schema.ts';

export const SLICE_INDEX_KIND = 'nixfleet.slice-index';
export const SLICE_TREE = 'rfc9162-sha256';
/** The index's file name beside `fleet.resolved.json` in a release (SPEC §2.4). */
export const SLICE_INDEX_FILE = 'fleet.index.json';

/** What one host's agent needs from the signed fleet; its JCS bytes are the Merkle leaf. */
export type SliceLeaf = {
  schemaVersion: 1;
  hostname: string;
  host: Host;
  channel: { name: string; settings: Channel | null };
  /** The host's wave on its channel, or null when no wave lists it. */
  wave: { index: number; soakMinutes: number } | null;
  /**
   * Issue 15: the fleet's own compliance controls (artefact `compliance.controls`) of the
   * channel's frameworks, whose runtime checks the agent runs; absent when there are none (so a
   * fleet without them has the leaves it had before).
   */
  controls?: Control[];
};

const Hex32 = Type.String({ pattern: '^[0-9a-f]{64}$' });

/** The signed index (canonical JSON). Unknown fields are kept and ignored, as in the artefact. */
export const SliceIndexSchema = Type.Object({
  schemaVersion: Type.Literal(1),
  kind: Type.Literal(SLICE_INDEX_KIND),
  tree: Type.Literal(SLICE_TREE),
  root: Hex32,
  leafCount: Type.Integer({ minimum: 1 }),
  artifactSha256: Hex32,
  /** The window the full artefact gets (the smallest over its channels), so both age alike. */
  freshnessWindowMinutes: Type.Integer({ minimum: 1 }),
  meta: Type.Object({
    schemaVersion: Type.Literal(1),
    signedAt: Type.Union([Type.String(), Type.Null()]),
    ciCommit: Type.Union([Type.String(), Type.Null()]),
    signatureAlgorithm: Type.Optional(Type.Union([Type.Literal('ed25519'), Type.Literal('ecdsa-p256')])),
  }),
});
export type SliceIndex = Static<typeof SliceIndexSchema>;
const checkIndex = TypeCompiler.Compile(SliceIndexSchema);

/** One host's slice as the CP serves it (`GET /v1/agent/slice`). */
export type Slice = {
  /** The leaf exactly as hashed: canonical JSON text of a {@link SliceLeaf}. */
  leaf: string;
  leafIndex: number;
  /** Audit path, leaf to root, lowercase hex. */
  proof: string[];
};

export type SliceErrorCode = 'SLICE_INVALID' | 'SLICE_NOT_CANONICAL' | 'SLICE_WRONG_HOST' | 'SLICE_BAD_PROOF' | 'INDEX_INVALID' | 'INDEX_MISMATCH';
export type SliceError = { code: SliceErrorCode; message: string };

/** The leaves of a fleet in hostname order. */
export function sliceLeaves(fleet: FleetResolved): { hostnames: string[]; leaves: SliceLeaf[] } {
  const hostnames = Object.keys(fleet.hosts).sort();
  // Wave of each host on its own channel, keyed `channel NUL host`: one pass over the waves.
  const waveOf = new Map<string, { index: number; soakMinutes: number }>();
  for (const [channel, waves] of Object.entries(fleet.waves)) {
    waves.forEach((w, index) => {
      for (const h of w.hosts) if (!waveOf.has(`${channel}\0${h}`)) waveOf.set(`${channel}\0${h}`, { index, soakMinutes: w.soakMinutes });
    });
  }
  const own = fleet.compliance?.controls ?? [];
  const ownControls = new Map(Object.entries(fleet.channels).map(([name, ch]) => [name, own.length === 0 ? [] : controlsForFrameworks(ch.compliance.frameworks, own)]));
  const leaves = hostnames.map((hostname): SliceLeaf => {
    const host = fleet.hosts[hostname]!;
    // Members in JCS order, so a leaf built from a verified (canonical) artefact serialises natively;
    // `controls` (issue 15, only when the channel has fleet controls) sits between channel and host.
    const own = ownControls.get(host.channel);
    return {
      channel: { name: host.channel, settings: fleet.channels[host.channel] ?? null },
      ...(own !== undefined && own.length > 0 ? { controls: own } : {}),
      host,
      hostname,
      schemaVersion: 1,
      wave: waveOf.get(`${host.channel}\0${hostname}`) ?? null,
    };
  });
  return { hostnames, leaves };
}

/** JCS text of a value we built ourselves (a failure is a bug: our values are plain JSON). */
function jcsText(value: unknown): string {
  const t = canonicalize(value);
  if (!t.ok) throw new Error(`bug: slice value has no JCS form: ${t.error.message}`);
  return t.value;
}

/** The per-channel and per-wave texts every leaf is composed of (see {@link sliceLeafTexts}). */
function leafComposer(fleet: FleetResolved): {
  channelMember: (channel: string) => string;
  wave: (hostname: string, channel: string) => string;
  wavesOf: (channel: string) => Map<string, string> | undefined;
  text: (hostname: string, hostText: string) => string;
} {
  // channel → host → the wave member's text, first listing wins (as in `sliceLeaves`).
  const waveText = new Map<string, Map<string, string>>();
  for (const [channel, waves] of Object.entries(fleet.waves)) {
    const m = new Map<string, string>();
    waveText.set(channel, m);
    waves.forEach((w, index) => {
      const text = `{"index":${index},"soakMinutes":${w.soakMinutes}}`;
      for (const h of w.hosts) if (!m.has(h)) m.set(h, text);
    });
  }
  const own = fleet.compliance?.controls ?? [];
  const channelText = new Map<string, string>();
  const channelMember = (name: string): string => {
    let ch = channelText.get(name);
    if (ch === undefined) {
      // The channel member, and the channel's fleet controls when it has any (the same for every host of the channel).
      const settings = Object.prototype.hasOwnProperty.call(fleet.channels, name) ? fleet.channels[name]! : null;
      const controls = settings === null || own.length === 0 ? [] : controlsForFrameworks(settings.compliance.frameworks, own);
      ch = jcsText({ name, settings }) + (controls.length === 0 ? '' : `,"controls":${jcsText(controls)}`);
      channelText.set(name, ch);
    }
    return ch;
  };
  const wave = (hostname: string, channel: string): string => waveText.get(channel)?.get(hostname) ?? 'null';
  const text = (hostname: string, hostText: string): string => {
    const channel = fleet.hosts[hostname]!.channel;
    return `{"channel":${channelMember(channel)},"host":${hostText},"hostname":${JSON.stringify(hostname)},"schemaVersion":1,"wave":${wave(hostname, channel)}}`;
  };
  return { channelMember, wave, wavesOf: (channel) => waveText.get(channel), text };
}

/**
 * The canonical text of every leaf, in hostname order: exactly `JCS(leaf)` of `sliceLeaves`, but
 * composed from its members' canonical texts (JCS of an object whose member names are written in
 * sorted order is the concatenation of its members' JCS), with each channel's settings (and
 * fleet controls) and each wave serialised once rather than once per host, and no leaf object
 * built. A test compares it with `canonicalize` per leaf of `sliceLeaves`.
 */
export function sliceLeafTexts(fleet: FleetResolved): { hostnames: string[]; texts: string[] } {
  const hostnames = Object.keys(fleet.hosts).sort();
  const c = leafComposer(fleet);
  return { hostnames, texts: hostnames.map((h) => c.text(h, jcsText(fleet.hosts[h]!))) };
}

const utf8 = new TextEncoder();
const utf8Decode = new TextDecoder();
const HOSTS_KEY = utf8.encode('"hosts"');
const HOSTNAME_MEMBER = utf8.encode(',"hostname":');

/**
 * Where each host entry of the canonical artefact bytes is (`[nameStart, nameEnd, valueStart,
 * valueEnd]` per host, in `hostnames` order), or null when the bytes do not list exactly these
 * hosts, in this order, under the top-level `hosts`. `known`: the spans the verifier found in the
 * same bytes (protocol/verify.ts `hostSpans`), checked here the same way instead of scanning again.
 */
function hostSpans(canonical: Uint8Array, hostnames: readonly string[], known?: Uint32Array): Uint32Array | null {
  const spans = known ?? topLevelMemberSpans(canonical, HOSTS_KEY);
  if (spans === null || spans.length !== 4 * hostnames.length) return null;
  for (let i = 0; i < hostnames.length; i++) {
    const ns = spans[4 * i]!;
    const ne = spans[4 * i + 1]!;
    const vs = spans[4 * i + 2]!;
    const ve = spans[4 * i + 3]!;
    // (Known spans are the verifier's own: shaped as a scan's — name, `:`, an object — and named as the model's hosts.)
    if (vs !== ne + 1 || canonical[ne] !== 0x3a || canonical[vs] !== 0x7b || canonical[ve - 1] !== 0x7d || ve > canonical.length || !isJsonStringAt(canonical, ns, ne, hostnames[i]!)) return null;
  }
  return spans;
}

/** Are the bytes [start, end) the UTF-8 of `JSON.stringify(s)`? */
function isJsonStringAt(b: Uint8Array, start: number, end: number, s: string): boolean {
  if (end - start === s.length + 2 && b[start] === 0x22 && b[end - 1] === 0x22) {
    // Printable ASCII other than `"` and `\` is written as itself: compare in place.
    let plain = true;
    for (let k = 0; k < s.length; k++) {
      const c = s.charCodeAt(k);
      if (c < 0x20 || c === 0x22 || c === 0x5c || c >= 0x80) {
        plain = false;
        break;
      }
      if (b[start + 1 + k] !== c) return false;
    }
    if (plain) return true;
  }
  const want = utf8.encode(JSON.stringify(s));
  if (want.length !== end - start) return false;
  for (let k = 0; k < want.length; k++) if (b[start + k] !== want[k]) return false;
  return true;
}

/**
 * The leaf hashes (flat, 32 bytes each) with every host entry taken from the canonical bytes: the
 * leaf's bytes are `{"channel":…,"host":` + the entry's bytes + `,"hostname":` + the name's bytes +
 * `,"schemaVersion":1,"wave":…}`, assembled in one buffer and hashed natively — no text per leaf.
 * The per-channel and per-wave parts are encoded once each.
 */
function leafHashesOfSpans(hosts: FleetResolved['hosts'], hostnames: readonly string[], c: ReturnType<typeof leafComposer>, b: Uint8Array, spans: Uint32Array): Uint8Array {
  const prefixes = new Map<string, Uint8Array>();
  const suffixes = new Map<string, Uint8Array>();
  const out = new Uint8Array(HASH_BYTES * hostnames.length);
  let scratch = new Uint8Array(4096);
  let channel: string | null = null;
  let waves: Map<string, string> | undefined;
  let prefix: Uint8Array = new Uint8Array(0);
  let wave: string | null = null;
  let suffix: Uint8Array = new Uint8Array(0);
  for (let i = 0; i < hostnames.length; i++) {
    const name = hostnames[i]!;
    const ch = hosts[name]!.channel;
    if (ch !== channel) {
      channel = ch;
      waves = c.wavesOf(ch);
      let p = prefixes.get(ch);
      if (p === undefined) prefixes.set(ch, (p = utf8.encode(`\u0000{"channel":${c.channelMember(ch)},"host":`)));
      prefix = p;
    }
    const w = waves?.get(name) ?? 'null';
    if (w !== wave) {
      wave = w;
      let x = suffixes.get(w);
      if (x === undefined) suffixes.set(w, (x = utf8.encode(`,"schemaVersion":1,"wave":${w}}`)));
      suffix = x;
    }
    const ns = spans[4 * i]!;
    const ne = spans[4 * i + 1]!;
    const vs = spans[4 * i + 2]!;
    const ve = spans[4 * i + 3]!;
    const len = prefix.length + (ve - vs) + HOSTNAME_MEMBER.length + (ne - ns) + suffix.length;
    if (len > scratch.length) scratch = new Uint8Array(2 * len);
    scratch.set(prefix, 0);
    let o = prefix.length;
    scratch.set(b.subarray(vs, ve), o);
    o += ve - vs;
    scratch.set(HOSTNAME_MEMBER, o);
    o += HOSTNAME_MEMBER.length;
    for (let k = ns; k < ne; k++) scratch[o++] = b[k]!;
    scratch.set(suffix, o);
    o += suffix.length;
    sha256Into(scratch.subarray(0, o), out, HASH_BYTES * i);
  }
  return out;
}

/** The freshness window the artefact verifier applies: the smallest over the channels. */
export function fleetFreshnessWindowMinutes(fleet: FleetResolved): number {
  const windows = Object.values(fleet.channels).map((c) => c.freshnessWindow);
  return windows.length > 0 ? Math.min(...windows) : CHANNEL_DEFAULTS.freshnessWindow;
}

export type SliceTree = {
  index: SliceIndex;
  hostnames: string[];
  /**
   * The canonical text of leaf `i` (hostname order), composed when asked: a tree built from the
   * artefact's bytes holds no 100,000 leaf strings.
   */
  leafText: (i: number) => string;
  /** The tree's levels, flat (protocol/merkle.ts `merkleLevelsFlat`). */
  levels: Uint8Array[];
};

/**
 * Build the tree and the (unsigned) index for a signed artefact: `fleet` is the artefact's model
 * and `artifactSha256` the hex sha256 of its canonical bytes. Throws on an empty fleet (nothing
 * to slice: the release tool publishes no index then).
 *
 * `canonical`: the artefact's canonical bytes, passed only when they are exactly `JCS(fleet)`
 * (protocol/verify.ts `modelIsCanonical`). Each leaf's host entry is then its bytes in the
 * artefact — `JCS(fleet.hosts[h])` is the value of member `h` of the top-level `hosts` in
 * `JCS(fleet)` — rather than a serialisation of the model (100,000 of them at 100,000 hosts);
 * when the bytes do not list exactly the model's hosts, the entries are serialised as without
 * them. The leaves are the same either way (a property checks it). `knownHostSpans`: where the
 * verifier found the host entries in `canonical` (protocol/verify.ts `hostSpans`) instead of a second
 * scan; their names are checked against the model's as a scan's are.
 */
export function buildSliceTree(fleet: FleetResolved, artifactSha256: string, canonical?: Uint8Array, knownHostSpans?: Uint32Array): SliceTree {
  const hostnames = sortedKeys(fleet.hosts);
  if (hostnames.length === 0) throw new RangeError('a fleet with no hosts has no slices');
  const c = leafComposer(fleet);
  const spans = canonical === undefined ? null : hostSpans(canonical, hostnames, knownHostSpans);
  let leafHashes: Uint8Array;
  let leafText: (i: number) => string;
  if (canonical !== undefined && spans !== null) {
    leafHashes = leafHashesOfSpans(fleet.hosts, hostnames, c, canonical, spans);
    leafText = (i) => c.text(hostnames[i]!, utf8Decode.decode(canonical.subarray(spans[4 * i + 2]!, spans[4 * i + 3]!)));
  } else {
    const texts = hostnames.map((h) => c.text(h, jcsText(fleet.hosts[h]!)));
    leafHashes = new Uint8Array(HASH_BYTES * texts.length);
    texts.forEach((t, i) => sha256Into('\u0000' + t, leafHashes, HASH_BYTES * i));
    leafText = (i) => texts[i]!;
  }
  const levels = merkleLevelsFlat(leafHashes);
  const meta: Meta = fleet.meta;
  const index: SliceIndex = {
    schemaVersion: 1,
    kind: SLICE_INDEX_KIND,
    tree: SLICE_TREE,
    root: bytesToHex(levels[levels.length - 1]!),
    leafCount: hostnames.length,
    artifactSha256,
    freshnessWindowMinutes: fleetFreshnessWindowMinutes(fleet),
    meta: { schemaVersion: 1, signedAt: meta.signedAt, ciCommit: meta.ciCommit, ...(meta.signatureAlgorithm === undefined ? {} : { signatureAlgorithm: meta.signatureAlgorithm }) },
  };
  return { index, hostnames, leafText, levels };
}

/**
 * `Object.keys(o).sort()`, without the sort when the keys already come in order (a canonical
 * model lists its members in JCS order: one comparison per key instead of a sort of 100,000).
 */
function sortedKeys(o: object): string[] {
  const keys = Object.keys(o);
  for (let i = 1; i < keys.length; i++) if (!(keys[i - 1]! < keys[i]!)) return keys.sort();
  return keys;
}

/** The slice of one host, or null when the host is not in the tree. */
export function sliceFor(tree: SliceTree, hostname: string): Slice | null {
  const i = binarySearch(tree.hostnames, hostname);
  if (i < 0) return null;
  return { leaf: tree.leafText(i), leafIndex: i, proof: inclusionProofFromFlatLevels(tree.levels, i).map(bytesToHex) };
}

/** Whether the tree has a leaf for `hostname` (what `sliceFor` would find, without cutting the slice). */
export function hasSlice(tree: SliceTree, hostname: string): boolean {
  return binarySearch(tree.hostnames, hostname) >= 0;
}

function binarySearch(sorted: readonly string[], x: string): number {
  let lo = 0;
  let hi = sorted.length - 1;
  while (lo <= hi) {
    const mid = (lo + hi) >> 1;
    const v = sorted[mid]!;
    if (v === x) return mid;
    if (v < x) lo = mid + 1;
    else hi = mid - 1;
  }
  return -1;
}

/** Structural check of an index parsed from signed bytes (the signature is checked before). */
export function parseSliceIndex(u: unknown): Result<SliceIndex, SliceError> {
  if (checkIndex.Check(u)) return ok(u);
  const first = [...checkIndex.Errors(u)].slice(0, 3).map((e) => `$${e.path.replace(/\//g, '.')}: ${e.message}`);
  return err({ code: 'INDEX_INVALID', message: `slice index: ${first.join('; ')}` });
}

/**
 * Does this index describe this artefact? Recomputes the tree from the artefact and compares
 * root, leaf count, artefact hash and meta — what the CP checks before it serves any slice.
 * `canonical`, `knownHostSpans`: as for {@link buildSliceTree} (only when the bytes are exactly `JCS(fleet)`).
 */
export function verifyIndexMatchesArtifact(index: SliceIndex, fleet: FleetResolved, artifactSha256: string, canonical?: Uint8Array, knownHostSpans?: Uint32Array): Result<SliceTree, SliceError> {
  if (index.artifactSha256 !== artifactSha256) return err({ code: 'INDEX_MISMATCH', message: `index names artefact ${index.artifactSha256}, the artefact is ${artifactSha256}` });
  const tree = buildSliceTree(fleet, artifactSha256, canonical, knownHostSpans);
  const want = tree.index;
  if (index.root !== want.root || index.leafCount !== want.leafCount) {
    return err({ code: 'INDEX_MISMATCH', message: `index root ${index.root} over ${index.leafCount} leaves, the artefact gives ${want.root} over ${want.leafCount}` });
  }
  if (index.meta.signedAt !== want.meta.signedAt || index.meta.ciCommit !== want.meta.ciCommit || index.freshnessWindowMinutes !== want.freshnessWindowMinutes) {
    return err({ code: 'INDEX_MISMATCH', message: 'index meta (signedAt, ciCommit or freshness window) differs from the artefact' });
  }
  return ok({ ...tree, index });
}

/**
 * The agent's check of its slice against an index whose signature and freshness it has already
 * verified: the leaf text must be canonical JSON naming this host, and its audit path must lead
 * to the signed root over the signed leaf count.
 */
export function verifySlice(input: { index: SliceIndex; slice: Slice; hostname: string }): Result<SliceLeaf, SliceError> {
  const { index, slice, hostname } = input;
  const parsed = parseJsonStrict(slice.leaf);
  if (!parsed.ok) return err({ code: 'SLICE_INVALID', message: `slice leaf: ${parsed.error.message}` });
  const text = canonicalize(parsed.value);
  if (!text.ok || text.value !== slice.leaf) return err({ code: 'SLICE_NOT_CANONICAL', message: 'slice leaf is not in canonical (JCS) form' });
  const leaf = parsed.value as Partial<SliceLeaf> | null;
  if (leaf === null || typeof leaf !== 'object' || leaf.schemaVersion !== 1 || typeof leaf.hostname !== 'string' || typeof leaf.host !== 'object' || leaf.host === null) {
    return err({ code: 'SLICE_INVALID', message: 'slice leaf is not a host entry' });
  }
  if (leaf.hostname !== hostname) return err({ code: 'SLICE_WRONG_HOST', message: `slice is for ${JSON.stringify(leaf.hostname)}, not ${hostname}` });
  if (!/^(0|[1-9][0-9]*)$/.test(String(slice.leafIndex)) || slice.proof.some((p) => !/^[0-9a-f]{64}$/.test(p))) {
    return err({ code: 'SLICE_INVALID', message: 'slice position or audit path is malformed' });
  }
  const good = verifyInclusion(leafHash(new TextEncoder().encode(slice.leaf)), slice.leafIndex, index.leafCount, slice.proof.map(hexToBytes), hexToBytes(index.root));
  if (!good) return err({ code: 'SLICE_BAD_PROOF', message: `the audit path of ${hostname} does not lead to the signed root` });
  return ok(leaf as SliceLeaf);
}
