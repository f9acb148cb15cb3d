/**
 * The crypto policy of nixfleet, in one file (STYLE §6, SPEC §2.1). Explicit choices:
 *
 * - ed25519 verification is **strict** (RFC 8032 / FIPS 186-5, not ZIP-215): `zip215: false` makes
 *   @noble/curves decode A and R only when y < p (canonical encodings), reject a non-canonical S
 *   (S ≥ L, so an `S + L` malleated signature fails), and reject small-order public keys.
 *   We also refuse small-order R ourselves, so no signature can verify for "every" message.
 * - ecdsa-p256 signatures are raw r‖s (64 bytes) over SHA-256 of the message. Verification
 *   normalises to low-s first (TPMs and HSMs emit high-s signatures) — equivalent to verifying
 *   with `lowS: false`; our own signatures are always low-s.
 * - Public keys: base64 of the raw 32 bytes (ed25519) or of the 64-byte X‖Y (p256; we prepend the
 *   SEC1 0x04 tag). Input lengths are checked before anything is decoded.
 * - `verifySignature` never throws on bad input: it returns false.
 *
 * Pure module: no I/O. Key generation uses the platform CSPRNG unless a seed is passed.
 */
import { ED25519_TORSION_SUBGROUP, ed25519 } from '@noble/curves/ed25519.js';
import { p256 } from '@noble/curves/nist.js';
import { sha256 } from '@noble/hashes/sha2.js';
import { bytesToHex } from '@noble/hashes/utils.js';
import { err, ok, type Result } from './result.ts';
import type { SignatureAlgorithm } from './schema.ts';

export const SIGNATURE_BYTES = 64;

/** A private signing key held in memory: raw 32-byte secret (ed25519 seed, or p256 scalar). */
export type PrivateKey = { algorithm: SignatureAlgorithm; secretKey: Uint8Array };

export type KeyPair = {
  algorithm: SignatureAlgorithm;
  secretKey: Uint8Array;
  /** Raw public key as on the wire: 32 bytes (ed25519) or X‖Y 64 bytes (p256). */
  publicKey: Uint8Array;
  /** base64 of `publicKey`: the `public` of a trust.json key. */
  publicKeyB64: string;
};

export function toBase64(bytes: Uint8Array): string {
  let bin = '';
  for (let i = 0; i < bytes.length; i++) bin += String.fromCharCode(bytes[i]!);
  return btoa(bin);
}

/** Strict base64 (standard alphabet, padded) → bytes, or null. */
export function fromBase64(s: string): Uint8Array | null {
  if (s.length % 4 !== 0 || !/^[A-Za-z0-9+/]*={0,2}$/.test(s)) return null;
  let bin: string;
  try {
    bin = atob(s);
  } catch {
    return null;
  }
  const out = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
  // Refuse non-canonical encodings (non-zero padding bits) so one key has one spelling.
  if (toBase64(out) !== s) return null;
  return out;
}

export function sha256Hex(bytes: Uint8Array): string {
  return bytesToHex(sha256(bytes));
}

/** Expected raw public-key length per algorithm. */
export function publicKeyLength(alg: SignatureAlgorithm): number {
  return alg === 'ed25519' ? 32 : 64;
}

/** Public key (wire form) of a raw secret key. */
export function publicKeyOf(key: PrivateKey): Uint8Array {
  if (key.algorithm === 'ed25519') return ed25519.getPublicKey(key.secretKey);
  return p256.getPublicKey(key.secretKey, false).subarray(1); // drop the 0x04 SEC1 tag
}

/** A fresh key pair. `seed` (32 bytes) makes it deterministic, for tests. */
export function generateKeyPair(algorithm: SignatureAlgorithm = 'ed25519', seed?: Uint8Array): KeyPair {
  let secretKey: Uint8Array;
  if (algorithm === 'ed25519') secretKey = seed === undefined ? ed25519.utils.randomSecretKey() : Uint8Array.from(seed);
  else {
    // p256 secret keys must be in [1, n); derive one from the seed when given.
    secretKey = seed === undefined ? p256.utils.randomSecretKey() : p256.utils.randomSecretKey(padSeedP256(seed));
  }
  const publicKey = publicKeyOf({ algorithm, secretKey });
  return { algorithm, secretKey, publicKey, publicKeyB64: toBase64(publicKey) };
}

function padSeedP256(seed: Uint8Array): Uint8Array {
  // noble's p256 randomSecretKey(seed) wants ≥ 40 bytes of seed material (FIPS 186-5 A.2.1).
  const out = new Uint8Array(48);
  out.set(sha256(seed), 0);
  out.set(sha256(Uint8Array.from([...seed, 0xff])).subarray(0, 16), 32);
  return out;
}

/** Raw 64-byte signature over `bytes` (ed25519: RFC 8032; p256: SHA-256, low-s, r‖s). */
export function signBytes(bytes: Uint8Array, key: PrivateKey): Uint8Array {
  if (key.algorithm === 'ed25519') return ed25519.sign(bytes, key.secretKey);
  return p256.sign(bytes, key.secretKey, { prehash: true, lowS: true, format: 'compact' });
}

// Encodings of the eight small-order points (the torsion subgroup), as @noble/curves lists them.
// A signature whose R is one of them is refused outright (no legitimate signer produces one).
const SMALL_ORDER_R = new Set(ED25519_TORSION_SUBGROUP.map((h) => h.toLowerCase()));

/**
 * Verify a raw signature with a base64 public key. Never throws; any malformed input is `false`.
 */
export function verifySignature(alg: SignatureAlgorithm, publicKeyB64: string, bytes: Uint8Array, sig: Uint8Array): boolean {
  if (sig.length !== SIGNATURE_BYTES) return false;
  const pub = fromBase64(publicKeyB64);
  if (pub === null || pub.length !== publicKeyLength(alg)) return false;
  try {
    if (alg === 'ed25519') {
      if (SMALL_ORDER_R.has(bytesToHex(sig.subarray(0, 32)))) return false;
      // zip215:false ⇒ canonical A and R, S < L, A not of small order (see the file comment).
      return ed25519.verify(sig, bytes, pub, { zip215: false });
    }
    if (alg === 'ecdsa-p256') {
      const sec1 = new Uint8Array(65);
      sec1[0] = 0x04;
      sec1.set(pub, 1);
      // Normalising s to n − s before a strict low-s check accepts exactly what lowS:false accepts.
      return p256.verify(sig, bytes, sec1, { prehash: true, lowS: false, format: 'compact' });
    }
    return false;
  } catch {
    return false;
  }
}

export type KeyParseError = { code: 'BAD_KEY'; message: string };

/**
 * `ssh-ed25519 AAAA… [comment]` → the raw 32-byte public key. The base64 blob is the SSH wire
 * form: string "ssh-ed25519", string key (RFC 8709 §4).
 */
export function parseOpenSshEd25519(line: string): Result<Uint8Array, KeyParseError> {
  const parts = line.trim().split(/\s+/);
  if (parts.length < 2 || parts[0] !== 'ssh-ed25519') return err({ code: 'BAD_KEY', message: 'expected "ssh-ed25519 <base64> [comment]"' });
  const blob = fromBase64(parts[1]!);
  if (blob === null) return err({ code: 'BAD_KEY', message: 'key blob is not valid base64' });
  const view = new DataView(blob.buffer, blob.byteOffset, blob.byteLength);
  const readString = (off: number): { value: Uint8Array; next: number } | null => {
    if (off + 4 > blob.length) return null;
    const len = view.getUint32(off);
    if (off + 4 + len > blob.length) return null;
    return { value: blob.subarray(off + 4, off + 4 + len), next: off + 4 + len };
  };
  const type = readString(0);
  if (type === null || new TextDecoder().decode(type.value) !== 'ssh-ed25519') return err({ code: 'BAD_KEY', message: 'key blob is not an ssh-ed25519 key' });
  const key = readString(type.next);
  if (key === null || key.value.length !== 32 || key.next !== blob.length) return err({ code: 'BAD_KEY', message: 'ssh-ed25519 key must hold exactly 32 bytes' });
  return ok(Uint8Array.from(key.value));
}

/** Raw 32-byte ed25519 public key → `ssh-ed25519 AAAA… comment`. */
export function toOpenSshEd25519(publicKey: Uint8Array, comment = ''): string {
  const type = new TextEncoder().encode('ssh-ed25519');
  const blob = new Uint8Array(4 + type.length + 4 + publicKey.length);
  const view = new DataView(blob.buffer);
  view.setUint32(0, type.length);
  blob.set(type, 4);
  view.setUint32(4 + type.length, publicKey.length);
  blob.set(publicKey, 8 + type.length);
  return `ssh-ed25519 ${toBase64(blob)}${comment === '' ? '' : ' ' + comment}`;
}
