/**
 * The host's Ed25519 key, which signs the agent's reports and its confirmed-target record
 * (SPEC §5 audit, §6 state). Signatures are raw 64-byte Ed25519 over the JCS bytes, base64 on the
 * wire (protocol/api.ts `ReportRequest`, `SignedConfirmedRecord`); the CP verifies them
 * against `hosts[<me>].pubkey` of the signed fleet.
 *
 * Key file formats accepted (choice documented in agent/README.md):
 * - OpenSSH private key (`-----BEGIN OPENSSH PRIVATE KEY-----`, the `openssh-key-v1` container
 *   of PROTOCOL.key), unencrypted, one ssh-ed25519 key: what sshd keeps in
 *   `/etc/ssh/ssh_host_ed25519_key`, so the fleet's `pubkey` is simply the host's SSH host key.
 *   Node cannot read this container, so we unpack it here: it is a length-prefixed byte layout
 *   (no ASN.1, no crypto); the seed is then handed to the release crypto module, and we check
 *   that the embedded public key matches the one derived from the seed.
 * - PKCS#8 PEM (`-----BEGIN PRIVATE KEY-----`), parsed by Node via `io/keyfile.ts`.
 */
import { readFileSync } from 'node:fs';
import { fromBase64, publicKeyOf, signBytes, toBase64, type PrivateKey } from '../protocol/crypto.ts';
import { canonicalBytes } from '../protocol/jcs.ts';
import { parsePrivateKeyPem } from '../io/keyfile.ts';
import { err, ok, type Result } from '../protocol/result.ts';

export type HostKeyError = { code: 'BAD_HOST_KEY'; message: string };

const bad = (message: string) => err<HostKeyError>({ code: 'BAD_HOST_KEY', message });

const MAGIC = 'openssh-key-v1\0';

/** Unpacks an unencrypted OpenSSH ed25519 private key. */
export function parseOpenSshPrivateKey(text: string): Result<PrivateKey, HostKeyError> {
  const m = text.match(/-----BEGIN OPENSSH PRIVATE KEY-----([\s\S]*?)-----END OPENSSH PRIVATE KEY-----/);
  if (m === null) return bad('no OpenSSH private key block');
  const blob = fromBase64(m[1]!.replace(/\s+/g, ''));
  if (blob === null) return bad('OpenSSH key block is not valid base64');
  const view = new DataView(blob.buffer, blob.byteOffset, blob.byteLength);
  let off = 0;
  const magic = new TextDecoder().decode(blob.subarray(0, MAGIC.length));
  if (magic !== MAGIC) return bad('not an openssh-key-v1 container');
  off = MAGIC.length;
  const u32 = (): number | null => {
    if (off + 4 > blob.length) return null;
    const v = view.getUint32(off);
    off += 4;
    return v;
  };
  const bytes = (): Uint8Array | null => {
    const len = u32();
    if (len === null || off + len > blob.length) return null;
    const v = blob.subarray(off, off + len);
    off += len;
    return v;
  };
  const str = (): string | null => {
    const b = bytes();
    return b === null ? null : new TextDecoder().decode(b);
  };
  const cipher = str();
  const kdf = str();
  const kdfOptions = bytes();
  if (cipher === null || kdf === null || kdfOptions === null) return bad('truncated OpenSSH key');
  if (cipher !== 'none' || kdf !== 'none') return bad('the host key is passphrase-protected; the agent needs an unencrypted key');
  if (u32() !== 1) return bad('expected exactly one key in the OpenSSH key file');
  if (bytes() === null) return bad('truncated OpenSSH key (public part)');
  const priv = bytes();
  if (priv === null) return bad('truncated OpenSSH key (private part)');
  // Private section: checkint ×2, keytype, pub, priv (seed ‖ pub), comment, padding.
  const pv = new DataView(priv.buffer, priv.byteOffset, priv.byteLength);
  let p = 0;
  const pu32 = (): number | null => (p + 4 > priv.length ? null : ((p += 4), pv.getUint32(p - 4)));
  const pbytes = (): Uint8Array | null => {
    const len = pu32();
    if (len === null || p + len > priv.length) return null;
    p += len;
    return priv.subarray(p - len, p);
  };
  const c1 = pu32();
  const c2 = pu32();
  if (c1 === null || c1 !== c2) return bad('OpenSSH key check integers differ (encrypted or corrupt key)');
  const type = pbytes();
  if (type === null || new TextDecoder().decode(type) !== 'ssh-ed25519') return bad('the host key is not ssh-ed25519');
  const pub = pbytes();
  const secret = pbytes();
  if (pub === null || pub.length !== 32 || secret === null || secret.length !== 64) return bad('malformed ssh-ed25519 private key');
  const key: PrivateKey = { algorithm: 'ed25519', secretKey: Uint8Array.from(secret.subarray(0, 32)) };
  const derived = publicKeyOf(key);
  if (toBase64(derived) !== toBase64(pub) || toBase64(secret.subarray(32)) !== toBase64(pub)) return bad('OpenSSH key: public key does not match the secret');
  return ok(key);
}

/** Reads the host key file (OpenSSH or PKCS#8 PEM). */
export function loadHostKey(file: string): Result<PrivateKey, HostKeyError> {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (e) {
    return bad(`cannot read ${file}: ${(e as Error).message}`);
  }
  if (text.includes('BEGIN OPENSSH PRIVATE KEY')) return parseOpenSshPrivateKey(text);
  const r = parsePrivateKeyPem(text);
  if (!r.ok) return bad(`${file}: ${r.error.message}`);
  if (r.value.algorithm !== 'ed25519') return bad(`${file}: the host key must be Ed25519`);
  return ok(r.value);
}

/** base64 of the Ed25519 signature over the JCS bytes of `value`. */
export function signJcs(value: unknown, key: PrivateKey): string {
  const bytes = canonicalBytes(value);
  if (!bytes.ok) throw new Error(`bug: unsignable value (${bytes.error.message})`);
  return toBase64(signBytes(bytes.value, key));
}
