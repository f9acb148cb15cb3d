/**
 * Known answers for protocol/merkle.ts: the RFC 6962 / RFC 9162 test leaves used by Certificate
 * Transparency implementations, with the tree heads and audit paths computed by an independent
 * implementation (Python's hashlib, the recursive MTH and PATH exactly as RFC 9162 §2.1 writes
 * them); the 8-leaf head 5dc9da79… is the one CT's own test suites publish.
 */
import { sha256 } from '@noble/hashes/sha2.js';
import { bytesToHex, hexToBytes } from '@noble/hashes/utils.js';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { inclusionProof, leafHash, leafHashOfText, merkleRoot, nodeHash, verifyInclusion } from './merkle.ts';

const LEAVES = ['', '00', '10', '2021', '3031', '40414243', '5051525354555657', '606162636465666768696a6b6c6d6e6f'].map(hexToBytes);
const HASHED = LEAVES.map(leafHash);

const ROOTS: Record<number, string> = {
  1: '6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d',
  2: 'fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125',
  3: 'aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77',
  4: 'd37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7',
  5: '4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4',
  6: '76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef',
  7: 'ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c',
  8: '5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328',
};

const PATHS: { index: number; size: number; path: string[] }[] = [
  {
    index: 0,
    size: 8,
    path: [
      '96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7',
      '5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e',
      '6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4',
    ],
  },
  {
    index: 5,
    size: 8,
    path: [
      'bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b',
      'ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0',
      'd37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7',
    ],
  },
  { index: 2, size: 3, path: ['fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125'] },
  {
    index: 3,
    size: 7,
    path: [
      '0298d122906dcfc10892cb53a73992fc5b9f493ea4c9badb27b791b4127a7fe7',
      'fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125',
      '837dbb152e9b079010717e84e865da4ebc0fa198a806d59d31bf15accef22d0e',
    ],
  },
];

const kat = suite('merkle: RFC 9162 known answers');

kat('the empty tree is SHA-256 of nothing', () => {
  assert.is(bytesToHex(merkleRoot([])), bytesToHex(sha256(new Uint8Array(0))));
});

kat('leaf and node hashes carry the 0x00 / 0x01 prefixes', () => {
  assert.is(bytesToHex(leafHash(new Uint8Array(0))), bytesToHex(sha256(Uint8Array.of(0))));
  const a = HASHED[0]!;
  const b = HASHED[1]!;
  assert.is(bytesToHex(nodeHash(a, b)), bytesToHex(sha256(Uint8Array.of(1, ...a, ...b))));
});

for (const [n, root] of Object.entries(ROOTS)) {
  kat(`tree head over the first ${n} test leaves`, () => {
    assert.is(bytesToHex(merkleRoot(HASHED.slice(0, Number(n)))), root);
  });
}

for (const { index, size, path } of PATHS) {
  kat(`audit path of leaf ${index} in a tree of ${size}, and it verifies`, () => {
    const leaves = HASHED.slice(0, size);
    assert.equal(inclusionProof(leaves, index).map(bytesToHex), path);
    assert.ok(verifyInclusion(HASHED[index]!, index, size, path.map(hexToBytes), hexToBytes(ROOTS[size]!)));
  });
}

kat('a one-leaf tree: the leaf hash is the root, the path is empty', () => {
  assert.equal(inclusionProof([HASHED[0]!], 0), []);
  assert.ok(verifyInclusion(HASHED[0]!, 0, 1, [], HASHED[0]!));
  assert.not.ok(verifyInclusion(HASHED[0]!, 0, 1, [HASHED[1]!], HASHED[0]!));
});

kat('refusals: index out of range, wrong size, padded or cut path, wrong hash lengths', () => {
  const root = hexToBytes(ROOTS[8]!);
  const path = PATHS[0]!.path.map(hexToBytes);
  const leaf = HASHED[0]!;
  assert.ok(verifyInclusion(leaf, 0, 8, path, root));
  assert.not.ok(verifyInclusion(leaf, 8, 8, path, root));
  assert.not.ok(verifyInclusion(leaf, -1, 8, path, root));
  assert.not.ok(verifyInclusion(leaf, 0, 0, path, root));
  assert.not.ok(verifyInclusion(leaf, 0, 9, path, root));
  assert.not.ok(verifyInclusion(leaf, 0, 8, path.slice(0, 2), root));
  assert.not.ok(verifyInclusion(leaf, 0, 8, [...path, path[0]!], root));
  assert.not.ok(verifyInclusion(leaf.subarray(0, 31), 0, 8, path, root));
  assert.not.ok(verifyInclusion(leaf, 0, 8, path, root.subarray(0, 31)));
  assert.throws(() => inclusionProof(HASHED, 8), /outside a tree of 8 leaves/);
});

kat('leafHashOfText is leafHash of the UTF-8 bytes (ASCII, multi-byte, astral, empty)', () => {
  for (const t of ['', '{"a":1}', 'h\u00e9llo', '\u20ac\ud83d\ude00', 'x'.repeat(1000)]) {
    assert.is(bytesToHex(leafHashOfText(t)), bytesToHex(leafHash(new TextEncoder().encode(t))), JSON.stringify(t));
  }
});

kat.run();
