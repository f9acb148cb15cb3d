/**
 * Merkle tree hashing, inclusion proofs and their verification as in RFC 9162 (Certificate
 * Transparency v2) §2.1, used for the signed per-host slices (SPEC §10, issue 19): the release
 * tool builds one tree over one leaf per host, the CP serves each host its leaf and audit path,
 * the agent checks the path against the root in the signed index.
 *
 * - leaf hash  = SHA-256(0x00 ‖ leaf bytes)              (RFC 9162 §2.1.1)
 * - node hash  = SHA-256(0x01 ‖ left ‖ right)
 * - MTH({})    = SHA-256() ; MTH of n > 1 leaves splits at k, the largest power of two < n.
 *
 * The 0x00 / 0x01 prefixes make a leaf hash and an interior node hash differ, so an interior node
 * cannot be passed off as a leaf (second-preimage attack on the tree). Pure: no I/O.
 */
import { sha256Bytes as sha256, sha256Into } from './crypto.ts';

/** Hash size of SHA-256, the only hash RFC 9162's v2 log uses here. */
export const HASH_BYTES = 32;

const LEAF_PREFIX = 0x00;
const NODE_PREFIX = 0x01;

/** RFC 9162 §2.1.1: the hash of one leaf's bytes. */
export function leafHash(leaf: Uint8Array): Uint8Array {
  const buf = new Uint8Array(leaf.length + 1);
  buf[0] = LEAF_PREFIX;
  buf.set(leaf, 1);
  return sha256(buf);
}

/** `leafHash` of a leaf given as text (its UTF-8 bytes), without copying it into a buffer first. */
export function leafHashOfText(leaf: string): Uint8Array {
  return sha256('\u0000' + leaf);
}

// The input of an interior node hash of two 32-byte children, reused: a tree over 100,000 leaves
// hashes ≈ 100,000 nodes, and the hash copies its input (pure: nothing else reads it).
const nodeInput = new Uint8Array(1 + 2 * HASH_BYTES);

/** RFC 9162 §2.1.1: the hash of an interior node from its two children's hashes. */
export function nodeHash(left: Uint8Array, right: Uint8Array): Uint8Array {
  const buf = left.length === HASH_BYTES && right.length === HASH_BYTES ? nodeInput : new Uint8Array(1 + left.length + right.length);
  buf[0] = NODE_PREFIX;
  buf.set(left, 1);
  buf.set(right, 1 + left.length);
  return sha256(buf);
}

/** The leaf hashes back to back, as {@link merkleLevelsFlat} takes them. */
function flatten(leafHashes: readonly Uint8Array[]): Uint8Array {
  const flat = new Uint8Array(leafHashes.length * HASH_BYTES);
  leafHashes.forEach((h, i) => {
    if (h.length !== HASH_BYTES) throw new RangeError(`leaf hash ${i} has ${h.length} bytes, not ${HASH_BYTES}`);
    flat.set(h, i * HASH_BYTES);
  });
  return flat;
}

/**
 * The tree head over already-hashed leaves (MTH of RFC 9162 §2.1.1), through the same
 * {@link merkleLevelsFlat} the release tool and the CP build, so the RFC's known answers check
 * the production path.
 */
export function merkleRoot(leafHashes: readonly Uint8Array[]): Uint8Array {
  if (leafHashes.length === 0) return sha256(new Uint8Array(0));
  const levels = merkleLevelsFlat(flatten(leafHashes));
  return levels[levels.length - 1]!.slice();
}

/**
 * Every level of the tree, leaves first, each stored flat: `leafHashes` holds the n leaf hashes
 * back to back (32·n bytes), and so does each level (`levels[h]` has ⌈n / 2^h⌉ hashes; hash i of
 * level h is the root of the subtree of leaves [i·2^h, min((i+1)·2^h, n)); the root is
 * `levels[last]`). Pairing left to right and carrying an odd last node up unchanged gives the same
 * tree as the RFC's recursive split at the largest power of two (a property checks it against the
 * recursive definition). Building it once lets the release tool and the CP cut all n audit paths
 * in O(n log n), without one Uint8Array per node (a 100,000-leaf tree has 200,000 nodes).
 */
export function merkleLevelsFlat(leafHashes: Uint8Array): Uint8Array[] {
  const n = leafHashes.length / HASH_BYTES;
  if (!Number.isInteger(n) || n === 0) throw new RangeError(`a flat level must hold one or more ${HASH_BYTES}-byte hashes, got ${leafHashes.length} bytes`);
  const levels: Uint8Array[] = [leafHashes];
  const input = new Uint8Array(1 + 2 * HASH_BYTES);
  input[0] = NODE_PREFIX;
  let level = leafHashes;
  let count = n;
  while (count > 1) {
    const nextCount = Math.ceil(count / 2);
    const next = new Uint8Array(nextCount * HASH_BYTES);
    for (let i = 0; i + 1 < count; i += 2) {
      const from = i * HASH_BYTES;
      for (let k = 0; k < 2 * HASH_BYTES; k++) input[1 + k] = level[from + k]!;
      sha256Into(input, next, (i / 2) * HASH_BYTES);
    }
    // An odd last node is carried up unchanged.
    if (count % 2 === 1) next.set(level.subarray((count - 1) * HASH_BYTES, count * HASH_BYTES), (nextCount - 1) * HASH_BYTES);
    levels.push(next);
    level = next;
    count = nextCount;
  }
  return levels;
}

/**
 * The audit path (PATH(m, D[n]) of RFC 9162 §2.1.3.1) for leaf `index`, read off the flat levels
 * ({@link merkleLevelsFlat}): at each level, the sibling of the node on the way up, skipped where
 * the node is a carried-up last node with no sibling. Ordered from the leaf towards the root.
 */
export function inclusionProofFromFlatLevels(levels: readonly Uint8Array[], index: number): Uint8Array[] {
  const n = (levels[0]?.length ?? 0) / HASH_BYTES;
  if (!Number.isInteger(index) || index < 0 || index >= n) throw new RangeError(`leaf index ${index} outside a tree of ${n} leaves`);
  const path: Uint8Array[] = [];
  let i = index;
  for (let h = 0; h < levels.length - 1; h++) {
    const level = levels[h]!;
    const sibling = i % 2 === 0 ? i + 1 : i - 1;
    if ((sibling + 1) * HASH_BYTES <= level.length) path.push(level.slice(sibling * HASH_BYTES, (sibling + 1) * HASH_BYTES));
    i = Math.floor(i / 2);
  }
  return path;
}

/** The audit path for one leaf of a tree over `leafHashes` (builds the flat levels; see above). */
export function inclusionProof(leafHashes: readonly Uint8Array[], index: number): Uint8Array[] {
  if (leafHashes.length === 0) throw new RangeError(`leaf index ${index} outside a tree of 0 leaves`);
  return inclusionProofFromFlatLevels(merkleLevelsFlat(flatten(leafHashes)), index);
}

/**
 * RFC 9162 §2.1.3.2: does `proof` show that the leaf with hash `leaf` sits at `index` in the tree
 * of `treeSize` leaves whose root is `root`? The algorithm walks the path with the bits of the
 * index and of the last index, and checks that the path is used up exactly where the root is
 * reached, so a proof cannot be padded or cut short.
 */
export function verifyInclusion(leaf: Uint8Array, index: number, treeSize: number, proof: readonly Uint8Array[], root: Uint8Array): boolean {
  if (!Number.isSafeInteger(treeSize) || treeSize < 1 || !Number.isSafeInteger(index) || index < 0 || index >= treeSize) return false;
  if (leaf.length !== HASH_BYTES || root.length !== HASH_BYTES || proof.some((p) => p.length !== HASH_BYTES)) return false;
  // Bit arithmetic on safe integers through division: >>> would truncate past 2^32.
  let fn = index;
  let sn = treeSize - 1;
  let r = leaf;
  for (const p of proof) {
    if (sn === 0) return false;
    if (fn % 2 === 1 || fn === sn) {
      r = nodeHash(p, r);
      if (fn % 2 === 0) {
        // Right-most node with no right sibling at this level: climb until it is a right child.
        while (fn % 2 === 0 && fn !== 0) {
          fn = Math.floor(fn / 2);
          sn = Math.floor(sn / 2);
        }
      }
    } else {
      r = nodeHash(r, p);
    }
    fn = Math.floor(fn / 2);
    sn = Math.floor(sn / 2);
  }
  return sn === 0 && equalBytes(r, root);
}

function equalBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  let diff = 0;
  for (let i = 0; i < a.length; i++) diff |= a[i]! ^ b[i]!;
  return diff === 0;
}
