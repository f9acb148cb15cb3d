import fc from 'fast-check';
import { ED25519_TORSION_SUBGROUP, ed25519 } from '@noble/curves/ed25519.js';
import { sha256, sha512 } from '@noble/hashes/sha2.js';
import { bytesToHex } from '@noble/hashes/utils.js';
import { hexToBytes } from '@noble/hashes/utils.js';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { generateKeyPair, sha256Hex, signBytes, toBase64, verifyEd25519Reference, verifySignature } from './crypto.ts';

const L = 2n ** 252n + 27742317777372353535851937790883648493n;
const P = 2n ** 255n - 19n;
const leToBig = (b: Uint8Array): bigint => b.reduceRight((acc, x) => (acc << 8n) | BigInt(x), 0n);
const bigToLe = (n: bigint, len = 32): Uint8Array => {
  const out = new Uint8Array(len);
  for (let i = 0; i < len; i++) out[i] = Number((n >> BigInt(8 * i)) & 0xffn);
  return out;
};

const native = (pub: string, msg: Uint8Array, sig: Uint8Array): boolean => verifySignature('ed25519', pub, msg, sig);
const agree = (pub: string, msg: Uint8Array, sig: Uint8Array): { native: boolean; reference: boolean } => ({ native: native(pub, msg, sig), reference: verifyEd25519Reference(pub, msg, sig) });

/** A signed case from a seed and a message. */
const signedCase = fc.record({ seed: fc.uint8Array({ minLength: 32, maxLength: 32 }), msg: fc.uint8Array({ maxLength: 200 }) }).map(({ seed, msg }) => {
  const k = generateKeyPair('ed25519', seed);
  return { pub: k.publicKey, msg, sig: signBytes(msg, { algorithm: 'ed25519', secretKey: k.secretKey }) };
});

// Small-order points: the eight canonical encodings, plus non-canonical spellings (y ≥ p, and
// x = 0 with the sign bit set), which strict decoding refuses.
const smallOrder = [
  ...ED25519_TORSION_SUBGROUP.map((h) => hexToBytes(h)),
  bigToLe(P), // y = p ≡ 0
  bigToLe(P + 1n), // y = p + 1 ≡ 1 (the identity)
  bigToLe(P + 1n + 2n ** 255n), // the same, sign bit set
  bigToLe(1n + 2n ** 255n), // identity with the sign bit set (x = 0, x_0 = 1)
  bigToLe(P - 1n + 2n ** 255n), // (0, −1) with the sign bit set
];

const props = suite('ed25519: native path ≡ @noble/curves strict reference');

props('random valid signatures: both accept', () => {
  fc.assert(
    fc.property(signedCase, ({ pub, msg, sig }) => {
      const r = agree(toBase64(pub), msg, sig);
      return r.native && r.reference;
    }),
    { numRuns: 200 },
  );
});

props('a single flipped bit in the signature, key or message: both refuse', () => {
  fc.assert(
    fc.property(signedCase, fc.constantFrom('sig', 'pub', 'msg'), fc.nat(), ({ pub, msg, sig }, where, bit) => {
      const target = where === 'sig' ? Uint8Array.from(sig) : where === 'pub' ? Uint8Array.from(pub) : Uint8Array.from([...msg, 0]);
      const i = bit % (target.length * 8);
      target[i >> 3]! ^= 1 << (i & 7);
      const r = where === 'sig' ? agree(toBase64(pub), msg, target) : where === 'pub' ? agree(toBase64(target), msg, sig) : agree(toBase64(pub), target, sig);
      return r.native === r.reference && !r.native;
    }),
    { numRuns: 300 },
  );
});

props('S + k·L (same equation, non-canonical S): both refuse', () => {
  fc.assert(
    fc.property(signedCase, fc.integer({ min: 1, max: 15 }), ({ pub, msg, sig }, k) => {
      const s = leToBig(sig.subarray(32)) + BigInt(k) * L;
      fc.pre(s < 2n ** 256n);
      const bad = Uint8Array.from(sig);
      bad.set(bigToLe(s), 32);
      const r = agree(toBase64(pub), msg, bad);
      return !r.native && !r.reference;
    }),
    { numRuns: 100 },
  );
});

props('small-order A or R (canonical or not), with a valid or a forged signature: both refuse', () => {
  fc.assert(
    fc.property(signedCase, fc.constantFrom(...smallOrder), fc.constantFrom('A', 'R', 'A+R0'), ({ pub, msg, sig }, point, where) => {
      let r: { native: boolean; reference: boolean };
      if (where === 'R') {
        const bad = Uint8Array.from(sig);
        bad.set(point, 0);
        r = agree(toBase64(pub), msg, bad);
      } else if (where === 'A') r = agree(toBase64(point), msg, sig);
      else {
        // Small-order A with R = identity and S = 0: the forgery that "verifies for every message"
        // under the cofactored equation if small-order keys were allowed.
        const forged = new Uint8Array(64);
        forged.set(hexToBytes(ED25519_TORSION_SUBGROUP[0]!), 0);
        r = agree(toBase64(point), msg, forged);
      }
      return !r.native && !r.reference;
    }),
    { numRuns: 200 },
  );
});

props('non-canonical A (y ≥ p) and R: both refuse', () => {
  fc.assert(
    fc.property(signedCase, fc.integer({ min: 0, max: 18 }), fc.boolean(), fc.boolean(), ({ pub, msg, sig }, d, sign, onA) => {
      const enc = bigToLe(P + BigInt(d) + (sign ? 2n ** 255n : 0n));
      const bad = Uint8Array.from(sig);
      if (!onA) bad.set(enc, 0);
      const r = onA ? agree(toBase64(enc), msg, sig) : agree(toBase64(pub), msg, bad);
      return !r.native && !r.reference;
    }),
    { numRuns: 100 },
  );
});

const diff = suite('ed25519: where the native path is deliberately stricter');

diff('R with a small-order component (crafted, never made by an RFC 8032 signer): the cofactored reference accepts, the native path refuses', () => {
  const seed = new Uint8Array(32).fill(7);
  const { scalar: a, pointBytes: A } = ed25519.utils.getExtendedPublicKey(seed);
  const msg = new TextEncoder().encode('{"schemaVersion":1}');
  const T = ed25519.Point.fromBytes(hexToBytes(ED25519_TORSION_SUBGROUP[1]!)); // order 8
  const r = 123456789n;
  const R = ed25519.Point.BASE.multiply(r).add(T).toBytes();
  const k = leToBig(sha512(Uint8Array.from([...R, ...A, ...msg]))) % L;
  const S = (r + k * a) % L;
  const sig = new Uint8Array(64);
  sig.set(R, 0);
  sig.set(bigToLe(S), 32);
  assert.ok(verifyEd25519Reference(toBase64(A), msg, sig), 'cofactored equation: [8](SB − R − kA) = [8]T = 0');
  assert.not.ok(verifySignature('ed25519', toBase64(A), msg, sig), 'cofactorless: SB − kA ≠ R');
  // The honest signature over the same message verifies on both.
  const honest = signBytes(msg, { algorithm: 'ed25519', secretKey: seed });
  assert.ok(verifySignature('ed25519', toBase64(A), msg, honest));
  assert.ok(verifyEd25519Reference(toBase64(A), msg, honest));
});

props('native signing (Node) gives the same ed25519 signature as @noble/curves; native SHA-256 the same digest', () => {
  fc.assert(
    fc.property(fc.uint8Array({ minLength: 32, maxLength: 32 }), fc.uint8Array({ maxLength: 300 }), (seed, msg) => {
      assert.equal(signBytes(msg, { algorithm: 'ed25519', secretKey: seed }), ed25519.sign(msg, seed));
      assert.is(sha256Hex(msg), bytesToHex(sha256(msg)));
    }),
    { numRuns: 300 },
  );
});

props.run();
diff.run();
