/**
 * Signed per-host slices (protocol/slice.ts, issue 19): every host's slice verifies against the
 * index built from the same artefact; a slice for another host, a changed leaf, a changed path or
 * position, a non-canonical leaf, or an index that does not match the artefact is refused with
 * its code.
 */
import fc from 'fast-check';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { sampleFleet } from '../fixtures/artifacts.ts';
import { canonicalBytes } from './jcs.ts';
import canonicalizeLib from 'canonicalize';
import { resolveFleet } from '../release/resolve.ts';
import { sampleDescription } from '../fixtures/artifacts.ts';
import { sha256Hex } from './crypto.ts';
import { buildSliceTree, parseSliceIndex, sliceFor, sliceLeafTexts, sliceLeaves, verifyIndexMatchesArtifact, verifySlice, type Slice } from './slice.ts';
import type { FleetResolved } from './schema.ts';

const signed = (fleet: FleetResolved): { fleet: FleetResolved; sha: string } => {
  const f = { ...fleet, meta: { ...fleet.meta, signedAt: '2026-01-01T00:00:00Z', ciCommit: 'abc123' } };
  const b = canonicalBytes(f);
  if (!b.ok) throw new Error(b.error.message);
  return { fleet: f, sha: sha256Hex(b.value) };
};
const code = (r: { ok: boolean; error?: { code: string } }): string => (r.ok ? 'OK' : r.error!.code);

const s = suite('slices');

s('every host of a 3-channel, 3-wave fleet gets a slice that verifies and carries its own entry', () => {
  const { fleet, sha } = signed(sampleFleet({ hosts: 37, channels: ['stable', 'edge', 'db'], waves: 3, closures: true }));
  const tree = buildSliceTree(fleet, sha);
  assert.is(tree.index.leafCount, 37);
  assert.is(tree.index.artifactSha256, sha);
  assert.is(tree.index.meta.signedAt, '2026-01-01T00:00:00Z');
  assert.ok(parseSliceIndex(JSON.parse(JSON.stringify(tree.index))).ok);
  for (const h of Object.keys(fleet.hosts)) {
    const slice = sliceFor(tree, h)!;
    const r = verifySlice({ index: tree.index, slice, hostname: h });
    assert.ok(r.ok, `${h}: ${code(r)}`);
    if (!r.ok) continue;
    assert.equal(r.value.host, fleet.hosts[h]);
    assert.is(r.value.channel.name, fleet.hosts[h]!.channel);
    assert.equal(r.value.channel.settings, fleet.channels[fleet.hosts[h]!.channel]);
    const waves = fleet.waves[fleet.hosts[h]!.channel]!;
    assert.ok(r.value.wave !== null && waves[r.value.wave.index]!.hosts.includes(h));
  }
  assert.is(sliceFor(tree, 'not-a-host'), null);
});

s('leaf texts composed from member texts are exactly the canonicalize package\'s JCS of each leaf (resolve output, sample fleets, hosts in no wave)', () => {
  const resolved = resolveFleet(sampleDescription({ hosts: 40, channels: ['stable', 'edge'], waves: 3, closures: true, withPubkeys: true }));
  if (!resolved.ok) throw new Error(resolved.error.message);
  const noWave = sampleFleet({ hosts: 6, waves: 2 });
  for (const w of Object.values(noWave.waves)) w.pop();
  // Issue 15: a fleet with its own controls; channel a holds nis2 (its leaves carry them), b and c none.
  const withControls = sampleFleet({ hosts: 12, channels: ['a', 'b', 'c'], waves: 2 });
  withControls.channels['a']!.compliance = { frameworks: ['nis2'], mode: 'enforce' };
  withControls.compliance = {
    controls: [{ id: 'own-marker', title: 'Marker', severity: 'high', frameworks: ['nis2:21.2(h)'], static: null, runtime: { kind: 'file', path: '/etc/hardened', matches: '^yes$' } }],
    staticFailures: [],
  };
  for (const fleet of [resolved.value.fleet, sampleFleet({ hosts: 25, channels: ['a', 'b', 'c'], waves: 4, closures: true }), noWave, withControls]) {
    const { leaves } = sliceLeaves(fleet);
    const { texts } = sliceLeafTexts(fleet);
    assert.is(texts.length, leaves.length);
    leaves.forEach((leaf, i) => assert.is(texts[i], canonicalizeLib(leaf) as string));
    assert.ok(leaves.some((l) => l.wave === null) || fleet !== noWave, 'the no-wave case has hosts outside every wave');
    assert.ok(fleet !== withControls || (leaves.some((l) => l.controls !== undefined) && leaves.some((l) => l.controls === undefined)), 'leaves with and without controls');
  }
});

s('leaves are in hostname order (UTF-16 code units, as JCS sorts keys)', () => {
  const { fleet } = signed(sampleFleet({ hosts: 12 }));
  const { hostnames } = sliceLeaves(fleet);
  assert.equal(hostnames, [...hostnames].sort());
});

s('refusals: another host, changed leaf, changed path, wrong position, non-canonical leaf', () => {
  const { fleet, sha } = signed(sampleFleet({ hosts: 9, closures: true }));
  const tree = buildSliceTree(fleet, sha);
  const [a, b] = Object.keys(fleet.hosts).sort();
  const sa = sliceFor(tree, a!)!;
  const check = (slice: Slice, host = a!) => code(verifySlice({ index: tree.index, slice, hostname: host }));
  assert.is(check(sa), 'OK');
  assert.is(check(sa, b!), 'SLICE_WRONG_HOST');
  const other = JSON.parse(sa.leaf) as { host: { closureHash: string } };
  other.host.closureHash = other.host.closureHash.replace(/^./, (c) => (c === 'a' ? 'b' : 'a'));
  const changed = canonicalBytes(other);
  assert.is(check({ ...sa, leaf: new TextDecoder().decode(changed.ok ? changed.value : new Uint8Array()) }), 'SLICE_BAD_PROOF');
  assert.is(check({ ...sa, proof: sa.proof.map((p, i) => (i === 0 ? p.replace(/^./, (c) => (c === '0' ? '1' : '0')) : p)) }), 'SLICE_BAD_PROOF');
  assert.is(check({ ...sa, proof: sa.proof.slice(1) }), 'SLICE_BAD_PROOF');
  assert.is(check({ ...sa, leafIndex: sa.leafIndex + 1 }), 'SLICE_BAD_PROOF');
  assert.is(check({ ...sa, leafIndex: -1 }), 'SLICE_INVALID');
  assert.is(check({ ...sa, proof: ['zz'] }), 'SLICE_INVALID');
  assert.is(check({ ...sa, leaf: JSON.stringify(JSON.parse(sa.leaf), null, 1) }), 'SLICE_NOT_CANONICAL');
  assert.is(check({ ...sa, leaf: '{"a":1,"a":2}' }), 'SLICE_INVALID');
  assert.is(check({ ...sa, leaf: '[]' }), 'SLICE_INVALID');
});

s('the CP refuses an index that does not describe the artefact', () => {
  const one = signed(sampleFleet({ hosts: 5, closures: true }));
  const two = signed(sampleFleet({ hosts: 6, closures: true }));
  const tree = buildSliceTree(one.fleet, one.sha);
  assert.ok(verifyIndexMatchesArtifact(tree.index, one.fleet, one.sha).ok);
  assert.is(code(verifyIndexMatchesArtifact(tree.index, two.fleet, two.sha)), 'INDEX_MISMATCH');
  assert.is(code(verifyIndexMatchesArtifact({ ...tree.index, artifactSha256: two.sha }, two.fleet, two.sha)), 'INDEX_MISMATCH');
  assert.is(code(verifyIndexMatchesArtifact({ ...tree.index, meta: { ...tree.index.meta, ciCommit: 'other' } }, one.fleet, one.sha)), 'INDEX_MISMATCH');
  assert.is(code(parseSliceIndex({ ...tree.index, root: 'x' })), 'INDEX_INVALID');
  assert.is(code(parseSliceIndex({ ...tree.index, kind: 'other' })), 'INDEX_INVALID');
});

s('property: for fleets of 1 … 300 hosts, any host verifies and no host verifies as another', () => {
  fc.assert(
    fc.property(fc.integer({ min: 1, max: 300 }), fc.nat(), fc.nat(), (n, i, j) => {
      const { fleet, sha } = signed(sampleFleet({ hosts: n, channels: ['a', 'b'], closures: true }));
      const tree = buildSliceTree(fleet, sha);
      const hosts = tree.hostnames;
      const h = hosts[i % n]!;
      const other = hosts[j % n]!;
      const slice = sliceFor(tree, h)!;
      if (!verifySlice({ index: tree.index, slice, hostname: h }).ok) return false;
      return other === h || code(verifySlice({ index: tree.index, slice, hostname: other })) === 'SLICE_WRONG_HOST';
    }),
    { numRuns: 60 },
  );
});

s.run();
