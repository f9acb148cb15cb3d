/**
 * Laws the CP's fast slice tree relies on (issue 19):
 * - protocol/json-spans.ts finds, in canonical JSON bytes, exactly the members of a top-level
 *   object: each name's bytes are the JCS of the name, each value's bytes the JCS of the value;
 * - a tree whose host entries are read from the canonical bytes of the artefact is the tree
 *   serialised from the model (same root, levels and leaf texts), for arbitrary host names
 *   (quotes, backslashes, digits, non-ASCII), tags and unknown host fields — including fields
 *   named `hosts`; the bytes are really read (another entry in the bytes gives that entry's
 *   tree), and bytes that do not list the model's hosts are not used;
 * - flat levels are the levels of protocol/merkle.ts, and `sha256Into` is `sha256Bytes`.
 */
import fc from 'fast-check';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { sampleFleet } from '../fixtures/artifacts.ts';
import { sha256Bytes, sha256Hex, sha256Into } from './crypto.ts';
import { canonicalBytes, canonicalize } from './jcs.ts';
import { canonicalIntegerBytes } from './jcs-spelling.ts';
import { topLevelMemberSpans } from './json-spans.ts';
import { mthRecursive, pathRecursive } from '../fixtures/merkle-reference.ts';
import { inclusionProofFromFlatLevels, leafHash, merkleLevelsFlat } from './merkle.ts';
import type { FleetResolved } from './schema.ts';
import { buildSliceTree, type SliceTree } from './slice.ts';

const props = suite('slice tree from canonical bytes');
const utf8 = new TextEncoder();
const jcs = (v: unknown): Uint8Array => {
  const r = canonicalBytes(v);
  if (!r.ok) throw new Error(r.error.message);
  return r.value;
};
const text = (v: unknown): string => {
  const r = canonicalize(v);
  if (!r.ok) throw new Error(r.error.message);
  return r.value;
};
const hex = (b: Uint8Array): string => Buffer.from(b).toString('hex');

/** Strings that stress a byte scanner: quotes, backslashes, control characters, digits, non-ASCII, JSON punctuation. */
const nasty = fc.oneof(
  fc.string({ unit: 'binary', maxLength: 8 }),
  fc.constantFrom('"hosts"', 'hosts', 'a"b', 'a\\b', '\\', '"', '{', '}', '[]', ',', ':', '10', '9', '0', 'é', '\u2028', '😀', '\u0001', '\u007f', 'a,"b":{'),
);

props('topLevelMemberSpans: the spans of a top-level object member are the JCS of each name and value', () => {
  fc.assert(
    fc.property(fc.dictionary(nasty, fc.jsonValue({ maxDepth: 3 }), { maxKeys: 8 }), fc.dictionary(nasty, fc.jsonValue({ maxDepth: 2 }), { maxKeys: 4 }), nasty, (inner, others, key) => {
      const top: Record<string, unknown> = {};
      for (const [k, v] of Object.entries(others)) Object.defineProperty(top, k, { value: v, enumerable: true, writable: true, configurable: true });
      Object.defineProperty(top, key, { value: inner, enumerable: true, writable: true, configurable: true });
      const bytes = jcs(top);
      const spans = topLevelMemberSpans(bytes, utf8.encode(JSON.stringify(key)));
      assert.ok(spans !== null, 'found');
      const names = Object.keys(inner).sort();
      assert.is(spans.length, 4 * names.length);
      const dec = new TextDecoder();
      names.forEach((n, i) => {
        assert.is(dec.decode(bytes.subarray(spans[4 * i]!, spans[4 * i + 1]!)), JSON.stringify(n));
        assert.is(dec.decode(bytes.subarray(spans[4 * i + 2]!, spans[4 * i + 3]!)), text(inner[n]));
      });
      // A member that is not there, or whose value is not an object: null.
      assert.is(topLevelMemberSpans(bytes, utf8.encode(JSON.stringify(`${key}\u0000absent`))), null);
      assert.is(topLevelMemberSpans(jcs({ [key]: [1, 2] }), utf8.encode(JSON.stringify(key))), null);
    }),
    { numRuns: 300 },
  );
});

props('topLevelMemberSpans never throws on bytes that are not canonical JSON', () => {
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 64 }), (b) => {
      topLevelMemberSpans(b, utf8.encode('"hosts"'));
      topLevelMemberSpans(utf8.encode(`{"hosts":${new TextDecoder().decode(b)}`), utf8.encode('"hosts"'));
    }),
    { numRuns: 300 },
  );
});

/** A sample fleet whose hosts get arbitrary names, tags and unknown fields (waves follow the renaming). */
const fleets = fc
  .tuple(fc.integer({ min: 1, max: 30 }), fc.integer({ min: 1, max: 4 }), fc.nat(), fc.uniqueArray(nasty, { minLength: 30, maxLength: 30 }), fc.array(fc.option(fc.dictionary(nasty, fc.jsonValue({ maxDepth: 2 }), { maxKeys: 3 })), { minLength: 30, maxLength: 30 }), fc.array(fc.array(nasty, { maxLength: 3 }), { minLength: 30, maxLength: 30 }))
  .map(([n, waves, seed, names, extras, tags]): FleetResolved => {
    const base = sampleFleet({ hosts: n, channels: ['a', 'b', 'c'].slice(0, 1 + (seed % 3)), waves, closures: true, withPubkeys: seed % 2 === 0 });
    const rename = new Map(Object.keys(base.hosts).map((h, i) => [h, names[i] === '' ? `empty-${i}` : names[i]!]));
    const hosts: FleetResolved['hosts'] = {};
    Object.keys(base.hosts).forEach((h, i) => {
      const entry: Record<string, unknown> = { ...base.hosts[h]!, tags: tags[i]! };
      for (const [k, v] of Object.entries(extras[i] ?? {})) if (!(k in entry)) Object.defineProperty(entry, k, { value: v, enumerable: true, writable: true, configurable: true });
      Object.defineProperty(hosts, rename.get(h)!, { value: entry, enumerable: true, writable: true, configurable: true });
    });
    const wavesOut: FleetResolved['waves'] = {};
    for (const [ch, ws] of Object.entries(base.waves)) wavesOut[ch] = ws.map((w) => ({ ...w, hosts: w.hosts.map((h) => rename.get(h)!) }));
    return { ...base, hosts, waves: wavesOut };
  });

const same = (a: SliceTree, b: SliceTree): void => {
  assert.is(a.index.root, b.index.root);
  assert.equal(a.hostnames, b.hostnames);
  assert.equal(a.levels.map(hex), b.levels.map(hex));
  a.hostnames.forEach((_, i) => assert.is(a.leafText(i), b.leafText(i)));
};

props('buildSliceTree: host entries read from JCS(fleet) give the tree serialised from the model; the bytes are really read', () => {
  fc.assert(
    fc.property(fleets, fc.nat(), (fleet, pick) => {
      const bytes = jcs(fleet);
      const sha = sha256Hex(bytes);
      const model = buildSliceTree(fleet, sha);
      same(buildSliceTree(fleet, sha, bytes), model);
      // Another entry for one host in the bytes: the tree of that other artefact (so the bytes are what is hashed).
      const names = Object.keys(fleet.hosts);
      const h = names[pick % names.length]!;
      const other: FleetResolved = { ...fleet, hosts: { ...fleet.hosts } };
      Object.defineProperty(other.hosts, h, { value: { ...fleet.hosts[h]!, closureHash: `changed-${pick}` }, enumerable: true, writable: true, configurable: true });
      const fromOther = buildSliceTree(fleet, sha, jcs(other));
      same(fromOther, buildSliceTree(other, sha));
      assert.is.not(fromOther.index.root, model.index.root);
      // Bytes that do not list exactly the model's hosts are not used.
      if (names.length > 1) {
        const fewer: FleetResolved = { ...fleet, hosts: { ...fleet.hosts } };
        delete fewer.hosts[h];
        same(buildSliceTree(fleet, sha, jcs(fewer)), model);
      }
      same(buildSliceTree(fleet, sha, utf8.encode('{"hosts":[]}')), model);
      // The spans the verifier's one-pass check found in the same bytes give the same tree; spans
      // naming other hosts (those of bytes without one host) are not used.
      const hostsKey = utf8.encode('"hosts"');
      const scan = canonicalIntegerBytes(bytes, 512, hostsKey);
      if (scan !== null && scan.spans !== null) {
        same(buildSliceTree(fleet, sha, bytes, scan.spans), model);
        const fewer: FleetResolved = { ...fleet, hosts: { ...fleet.hosts } };
        delete fewer.hosts[h];
        const fewerSpans = canonicalIntegerBytes(jcs(fewer), 512, hostsKey)?.spans;
        if (fewerSpans !== undefined && fewerSpans !== null && names.length > 1) same(buildSliceTree(fleet, sha, bytes, fewerSpans), model);
        same(buildSliceTree(fleet, sha, bytes, new Uint32Array(0)), model);
        // …and they are used: the other artefact's bytes and spans give the other artefact's tree.
        const otherBytes = jcs(other);
        const otherSpans = canonicalIntegerBytes(otherBytes, 512, hostsKey)?.spans;
        assert.ok(otherSpans !== undefined && otherSpans !== null);
        same(buildSliceTree(fleet, sha, otherBytes, otherSpans), buildSliceTree(other, sha));
      }
    }),
    { numRuns: 150 },
  );
});

props('flat levels: the top is the RFC\'s recursive MTH, and audit paths are its PATH(m, D[n]), n = 1 … 300', () => {
  for (let n = 1; n <= 300; n++) {
    const leaves = Array.from({ length: n }, (_, i) => leafHash(utf8.encode(`leaf-${n}-${i}`)));
    const flat = new Uint8Array(32 * n);
    leaves.forEach((l, i) => flat.set(l, 32 * i));
    const flatLevels = merkleLevelsFlat(flat);
    assert.is(hex(flatLevels[flatLevels.length - 1]!), hex(mthRecursive(leaves)), `n = ${n}`);
    for (const i of [0, n - 1, Math.floor(n / 2)]) assert.equal(inclusionProofFromFlatLevels(flatLevels, i).map(hex), pathRecursive(i, leaves).map(hex), `n = ${n}, i = ${i}`);
  }
});

props('sha256Into writes sha256Bytes at the offset, for bytes and strings', () => {
  fc.assert(
    fc.property(fc.oneof(fc.uint8Array({ maxLength: 300 }), fc.string({ unit: 'binary', maxLength: 100 })), fc.nat(64), (input, offset) => {
      const out = new Uint8Array(offset + 40).fill(7);
      sha256Into(input, out, offset);
      assert.is(hex(out.subarray(offset, offset + 32)), hex(sha256Bytes(input)));
      assert.ok(out.subarray(0, offset).every((x) => x === 7) && out.subarray(offset + 32).every((x) => x === 7), 'nothing else written');
    }),
    { numRuns: 300 },
  );
});

props.run();
