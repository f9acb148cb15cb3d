/**
 * Laws of protocol/merkle.ts (issue 19): the O(n) tree head equals the RFC's recursive MTH;
 * every leaf of every tree proves against the head; any change to the leaf, the index, the path
 * or the root makes the proof fail. Sizes 1 … 1,000, powers of two and not. (The tree size is
 * not bound by a proof alone — a path can also fit a larger tree — which is why the signed index
 * carries the leaf count next to the root, as a CT tree head does.)
 */
import fc from 'fast-check';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { mthRecursive, pathRecursive } from '../fixtures/merkle-reference.ts';
import { HASH_BYTES, inclusionProof, inclusionProofFromFlatLevels, leafHash, merkleLevelsFlat, merkleRoot, verifyInclusion } from './merkle.ts';

const leavesOf = (n: number, seed: number): Uint8Array[] => Array.from({ length: n }, (_, i) => leafHash(new TextEncoder().encode(`host-${seed}-${i}`)));
const hex = (b: Uint8Array): string => Buffer.from(b).toString('hex');
const flipBit = (b: Uint8Array, bit: number): Uint8Array => {
  const c = b.slice();
  c[(bit >> 3) % c.length]! ^= 1 << (bit & 7);
  return c;
};

test('the bottom-up tree head equals the recursive MTH, n = 0 … 300', () => {
  for (let n = 0; n <= 300; n++) {
    const leaves = leavesOf(n, 1);
    assert.is(hex(merkleRoot(leaves)), hex(mthRecursive(leaves)), `n = ${n}`);
  }
});

test('every audit path of every tree n = 1 … 130 is the RFC\'s recursive PATH(m, D[n]), and proves against the head', () => {
  for (let n = 1; n <= 130; n++) {
    const leaves = leavesOf(n, 2);
    const root = merkleRoot(leaves);
    for (let i = 0; i < n; i++) {
      const path = inclusionProof(leaves, i);
      assert.equal(path.map(hex), pathRecursive(i, leaves).map(hex), `n = ${n}, i = ${i}`);
      assert.ok(verifyInclusion(leaves[i]!, i, n, path, root), `n = ${n}, i = ${i}`);
    }
  }
});

test('any leaf of a tree of 1 … 1,000 leaves proves; the wrong index, leaf, path bit or root bit does not', () => {
  fc.assert(
    fc.property(
      fc.integer({ min: 1, max: 1000 }).chain((n) => fc.tuple(fc.constant(n), fc.nat(n - 1), fc.nat(), fc.nat(255))),
      ([n, i, seed, bit]) => {
        const leaves = leavesOf(n, seed);
        const flat = new Uint8Array(n * HASH_BYTES);
        leaves.forEach((l, k) => flat.set(l, k * HASH_BYTES));
        const levels = merkleLevelsFlat(flat);
        const root = levels[levels.length - 1]!;
        const path = inclusionProofFromFlatLevels(levels, i);
        if (!verifyInclusion(leaves[i]!, i, n, path, root)) return false;
        if (verifyInclusion(flipBit(leaves[i]!, bit), i, n, path, root)) return false;
        if (verifyInclusion(leaves[i]!, i, n, path, flipBit(root, bit))) return false;
        if (n > 1 && verifyInclusion(leaves[i]!, (i + 1) % n, n, path, root)) return false;
        for (let k = 0; k < path.length; k++) {
          const bad = path.slice();
          bad[k] = flipBit(path[k]!, bit);
          if (verifyInclusion(leaves[i]!, i, n, bad, root)) return false;
        }
        return true;
      },
    ),
    { numRuns: 300 },
  );
});

test.run();
