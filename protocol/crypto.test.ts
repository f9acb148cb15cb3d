import { createPublicKey, generateKeyPairSync, sign as nodeSign } from 'node:crypto';
import { ED25519_TORSION_SUBGROUP } from '@noble/curves/ed25519.js';
import { p256 } from '@noble/curves/nist.js';
import { hexToBytes } from '@noble/hashes/utils.js';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { fromBase64, generateKeyPair, parseOpenSshEd25519, sha256Hex, signBytes, toBase64, toOpenSshEd25519, verifySignature } from './crypto.ts';

const msg = new TextEncoder().encode('{"schemaVersion":1}');
const L = 2n ** 252n + 27742317777372353535851937790883648493n;
const P = 2n ** 255n - 19n;

const leToBig = (b: Uint8Array): bigint => b.reduceRight((acc, x) => (acc << 8n) | BigInt(x), 0n);
const bigToLe = (n: bigint, len = 32): Uint8Array => {
  const out = new Uint8Array(len);
  for (let i = 0; i < len; i++) out[i] = Number((n >> BigInt(8 * i)) & 0xffn);
  return out;
};

/** Raw 32-byte ed25519 public key of a Node KeyObject. */
const nodeRawEd25519 = (pub: ReturnType<typeof createPublicKey>): Uint8Array => fromBase64((pub.export({ format: 'jwk' }).x as string).replace(/-/g, '+').replace(/_/g, '/') + '=')!;

const ed = suite('ed25519 (strict)');

ed('sign → verify; another message or key is refused', () => {
  const k = generateKeyPair('ed25519');
  const sig = signBytes(msg, { algorithm: 'ed25519', secretKey: k.secretKey });
  assert.is(sig.length, 64);
  assert.ok(verifySignature('ed25519', k.publicKeyB64, msg, sig));
  assert.not.ok(verifySignature('ed25519', k.publicKeyB64, new TextEncoder().encode('{"schemaVersion":2}'), sig));
  assert.not.ok(verifySignature('ed25519', generateKeyPair('ed25519').publicKeyB64, msg, sig));
});

ed("a signature from Node's crypto.sign(null, bytes, key) verifies", () => {
  const { publicKey, privateKey } = generateKeyPairSync('ed25519');
  const sig = new Uint8Array(nodeSign(null, msg, privateKey));
  const pub = toBase64(nodeRawEd25519(publicKey));
  assert.ok(verifySignature('ed25519', pub, msg, sig));
});

ed('S + L (non-canonical S, same equation) is refused', () => {
  const { publicKey, privateKey } = generateKeyPairSync('ed25519');
  const sig = new Uint8Array(nodeSign(null, msg, privateKey));
  const pub = toBase64(nodeRawEd25519(publicKey));
  const s = leToBig(sig.subarray(32));
  const malleated = new Uint8Array(64);
  malleated.set(sig.subarray(0, 32));
  malleated.set(bigToLe(s + L), 32);
  assert.ok(s + L < 2n ** 256n);
  assert.not.ok(verifySignature('ed25519', pub, msg, malleated));
});

ed('small-order public keys and small-order R are refused', () => {
  const k = generateKeyPair('ed25519');
  const sig = signBytes(msg, { algorithm: 'ed25519', secretKey: k.secretKey });
  for (const hex of ED25519_TORSION_SUBGROUP) {
    const small = hexToBytes(hex);
    // Public key of small order: with S = 0 and R = identity the cofactored equation would hold.
    const forged = new Uint8Array(64);
    forged.set(hexToBytes(ED25519_TORSION_SUBGROUP[0]!), 0);
    assert.not.ok(verifySignature('ed25519', toBase64(small), msg, forged), hex);
    assert.not.ok(verifySignature('ed25519', toBase64(small), msg, sig), hex);
    const badR = Uint8Array.from(sig);
    badR.set(small, 0);
    assert.not.ok(verifySignature('ed25519', k.publicKeyB64, msg, badR), hex);
  }
});

ed('non-canonical public key encoding (y ≥ p) is refused', () => {
  // y = p + 1 encodes the same point as y = 1 (the identity) only under ZIP-215 leniency.
  const pub = bigToLe(P + 1n);
  const sig = new Uint8Array(64);
  sig.set(bigToLe(1n), 0);
  assert.not.ok(verifySignature('ed25519', toBase64(pub), msg, sig));
});

ed('malformed inputs are false, never a throw', () => {
  const k = generateKeyPair('ed25519');
  const sig = signBytes(msg, { algorithm: 'ed25519', secretKey: k.secretKey });
  assert.not.ok(verifySignature('ed25519', k.publicKeyB64, msg, sig.subarray(0, 63)));
  assert.not.ok(verifySignature('ed25519', k.publicKeyB64, msg, new Uint8Array(65)));
  assert.not.ok(verifySignature('ed25519', 'not base64!', msg, sig));
  assert.not.ok(verifySignature('ed25519', toBase64(new Uint8Array(31)), msg, sig));
  assert.not.ok(verifySignature('ed25519', k.publicKeyB64 + 'AAAA', msg, sig));
  assert.not.ok(verifySignature('ecdsa-p256', k.publicKeyB64, msg, sig));
  assert.not.ok(verifySignature('rsa' as never, k.publicKeyB64, msg, sig));
});

const ec = suite('ecdsa-p256 (raw r‖s, low-s)');

ec('sign → verify; our signatures are low-s', () => {
  const k = generateKeyPair('ecdsa-p256');
  assert.is(k.publicKey.length, 64);
  for (let i = 0; i < 20; i++) {
    const m = new TextEncoder().encode(`m${i}`);
    const sig = signBytes(m, { algorithm: 'ecdsa-p256', secretKey: k.secretKey });
    assert.ok(verifySignature('ecdsa-p256', k.publicKeyB64, m, sig));
    assert.not.ok(p256.Signature.fromBytes(sig, 'compact').hasHighS());
  }
});

ec('a high-s signature (as a TPM may emit) is normalised and verifies; a wrong key does not', () => {
  const k = generateKeyPair('ecdsa-p256');
  const sig = signBytes(msg, { algorithm: 'ecdsa-p256', secretKey: k.secretKey });
  const s = p256.Signature.fromBytes(sig, 'compact');
  const high = new p256.Signature(s.r, p256.Point.Fn.ORDER - s.s).toBytes('compact');
  assert.ok(p256.Signature.fromBytes(high, 'compact').hasHighS());
  assert.ok(verifySignature('ecdsa-p256', k.publicKeyB64, msg, high));
  assert.not.ok(verifySignature('ecdsa-p256', generateKeyPair('ecdsa-p256').publicKeyB64, msg, high));
});

ec("Node's ECDSA P-256 signature (DER → raw r‖s) verifies", () => {
  const { publicKey, privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const der = nodeSign('sha256', msg, privateKey);
  const raw = p256.Signature.fromBytes(der, 'der').toBytes('compact');
  const jwk = publicKey.export({ format: 'jwk' });
  const b64u = (s: string) => fromBase64(s.replace(/-/g, '+').replace(/_/g, '/') + '='.repeat((4 - (s.length % 4)) % 4))!;
  const xy = new Uint8Array(64);
  xy.set(b64u(jwk.x as string), 0);
  xy.set(b64u(jwk.y as string), 32);
  assert.ok(verifySignature('ecdsa-p256', toBase64(xy), msg, raw));
});

const misc = suite('keys and hashes');

misc('OpenSSH ed25519 round trip; malformed lines are BAD_KEY', () => {
  const k = generateKeyPair('ed25519');
  const line = toOpenSshEd25519(k.publicKey, 'root@web1');
  const r = parseOpenSshEd25519(line);
  assert.ok(r.ok);
  if (r.ok) assert.equal(Array.from(r.value), Array.from(k.publicKey));
  for (const bad of ['', 'ssh-rsa AAAAB3NzaC1yc2E= x', 'ssh-ed25519', 'ssh-ed25519 !!!', 'ssh-ed25519 AAAA...', `ssh-ed25519 ${toBase64(new Uint8Array(51))}`]) {
    const b = parseOpenSshEd25519(bad);
    assert.ok(!b.ok && b.error.code === 'BAD_KEY', bad);
  }
});

misc('seeded key generation is deterministic; sha256Hex matches a known vector', () => {
  const seed = new Uint8Array(32).fill(9);
  assert.is(generateKeyPair('ed25519', seed).publicKeyB64, generateKeyPair('ed25519', seed).publicKeyB64);
  assert.is(generateKeyPair('ecdsa-p256', seed).publicKeyB64, generateKeyPair('ecdsa-p256', seed).publicKeyB64);
  assert.is.not(generateKeyPair('ed25519').publicKeyB64, generateKeyPair('ed25519').publicKeyB64);
  assert.is(sha256Hex(new TextEncoder().encode('abc')), 'ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad');
});

misc('strict base64: one spelling per byte string', () => {
  assert.equal(Array.from(fromBase64('AAE=')!), [0, 1]);
  assert.is(fromBase64('AAF='), null); // non-zero padding bits
  assert.is(fromBase64('AAE'), null);
  assert.is(fromBase64('AA-_'), null);
});

ed.run();
ec.run();
misc.run();
