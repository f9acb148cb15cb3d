/**
 * Private key files of `nixfleet-release` (shell helper: uses node:crypto, no file I/O itself).
 *
 * Format: PKCS#8 PEM (`-----BEGIN PRIVATE KEY-----`), the format `openssl genpkey` writes and
 * `openssl pkeyutl -sign` reads, so an operator can inspect or move keys with standard tools.
 * ASN.1 is parsed by Node (via JWK export), never by us. The raw secret then goes to @noble/curves.
 */
import { createPrivateKey } from 'node:crypto';
import { fromBase64, publicKeyOf, toBase64, type PrivateKey } from '../protocol/crypto.ts';
import { err, ok, type Result } from '../protocol/result.ts';

const b64url = (b: Uint8Array): string => toBase64(b).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
function fromB64url(s: string): Uint8Array | null {
  const std = s.replace(/-/g, '+').replace(/_/g, '/');
  return fromBase64(std + '='.repeat((4 - (std.length % 4)) % 4));
}

/** PKCS#8 PEM of a raw private key. */
export function toPkcs8Pem(key: PrivateKey): string {
  const pub = publicKeyOf(key);
  const jwk =
    key.algorithm === 'ed25519'
      ? { kty: 'OKP', crv: 'Ed25519', d: b64url(key.secretKey), x: b64url(pub) }
      : { kty: 'EC', crv: 'P-256', d: b64url(key.secretKey), x: b64url(pub.subarray(0, 32)), y: b64url(pub.subarray(32)) };
  return createPrivateKey({ key: jwk, format: 'jwk' }).export({ type: 'pkcs8', format: 'pem' }).toString();
}

export type KeyFileError = { code: 'BAD_KEY'; message: string };

/** Read a PKCS#8 PEM ed25519 or P-256 private key. */
export function parsePrivateKeyPem(pem: string): Result<PrivateKey, KeyFileError> {
  let jwk: { kty?: string; crv?: string; d?: string };
  try {
    jwk = createPrivateKey({ key: pem, format: 'pem' }).export({ format: 'jwk' }) as typeof jwk;
  } catch (e) {
    return err({ code: 'BAD_KEY', message: `not a PEM private key: ${e instanceof Error ? e.message : String(e)}` });
  }
  const d = jwk.d === undefined ? null : fromB64url(jwk.d);
  if (d === null || d.length !== 32) return err({ code: 'BAD_KEY', message: 'private key has no 32-byte secret' });
  if (jwk.kty === 'OKP' && jwk.crv === 'Ed25519') return ok({ algorithm: 'ed25519', secretKey: d });
  if (jwk.kty === 'EC' && jwk.crv === 'P-256') return ok({ algorithm: 'ecdsa-p256', secretKey: d });
  return err({ code: 'BAD_KEY', message: `unsupported key type ${jwk.kty ?? '?'}/${jwk.crv ?? '?'} (need Ed25519 or P-256)` });
}
