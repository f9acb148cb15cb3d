/**
 * Enrolment and renewal on the wire (issue 16; SPEC §10 trust model): the request and answer
 * bodies of `POST /v1/enroll` and `POST /v1/agent/renew`, what a host's SSH host key signs, and
 * the one-time bootstrap token.
 *
 * Two proofs of identity for an enrolment:
 * - `ssh-host-key`: an Ed25519 signature, by the host key the **signed fleet** declares for the
 *   host (`hosts[h].pubkey`), over {@link enrolProofBytes} — the JCS bytes of
 *   `{kind: "nixfleet-enrol-csr", hostname, csrSha256}`. The `kind` separates this statement from
 *   every other thing the host key signs (reports, confirmed records): none of those can be
 *   replayed as an enrolment proof, nor this as one of them.
 * - `token`: a bootstrap token minted by an operator (`nixfleet enroll token`) and signed by a
 *   key of trust.json's `orgRootKey` slot: `nfet1.<base64url JCS claims>.<base64url signature>`.
 *   Bound to one hostname, expiring, single use (the CP keeps the used nonces outside its database,
 *   control-plane/enrol-ledger.ts).
 *
 * Pure: no I/O, no clock (`nowMs` is a parameter).
 */
import { Type, type Static } from '@sinclair/typebox';
import { fromBase64, sha256Hex, signBytes, toBase64, verifySignature, type PrivateKey } from './crypto.ts';
import { canonicalBytes, parseJsonStrict } from './jcs.ts';
import { err, ok, type Result } from './result.ts';
import type { KeySlot } from './trust.ts';
import { compile } from './validate.ts';
import { activeKeys } from './verify.ts';
import { Hostname, Timestamp, parseTimestamp } from './vocab.ts';

/**
 * Error codes of enrolment and renewal (part of api.ts `ErrorCode`): 400 `CSR_UNREADABLE`,
 * `CSR_KEY_TYPE` (not ECDSA P-256), `CSR_SIGNATURE_INVALID`, `CSR_SUBJECT`, `CSR_HOST_MISMATCH`
 * (the CSR names another host); 401 `ISSUER_REFUSED` (a client certificate from an issuer not
 * configured for its role); 403 `ENROL_PROOF_INVALID` (SSH host key signature), `NO_HOST_KEY`
 * (the fleet declares none: use a token), `TOKEN_INVALID`, `TOKEN_EXPIRED`, `TOKEN_WRONG_HOST`,
 * `HOST_REVOKED`; 409 `TOKEN_REPLAYED`; 404 `ENROLMENT_DISABLED`; 503 `TOKEN_LEDGER_UNUSABLE`.
 */
export type EnrolErrorCode =
  | 'CSR_UNREADABLE'
  | 'CSR_KEY_TYPE'
  | 'CSR_SIGNATURE_INVALID'
  | 'CSR_SUBJECT'
  | 'CSR_HOST_MISMATCH'
  | 'ISSUER_REFUSED'
  | 'ENROL_PROOF_INVALID'
  | 'NO_HOST_KEY'
  | 'TOKEN_INVALID'
  | 'TOKEN_EXPIRED'
  | 'TOKEN_WRONG_HOST'
  | 'HOST_REVOKED'
  | 'TOKEN_REPLAYED'
  | 'ENROLMENT_DISABLED'
  | 'TOKEN_LEDGER_UNUSABLE';

/**
 * The routes of issue 16 (besides protocol/api.ts `ROUTES`): `enroll` on the enrolment listener
 * (HTTPS, no client certificate), `renew` on the mTLS listener over the current certificate.
 */
export const ENROL_ROUTES = { enroll: '/v1/enroll', renew: '/v1/agent/renew', whoami: '/v1/whoami' } as const;

/**
 * `GET /v1/whoami` (mTLS, OU host or operator): the identity the CP sees in the client
 * certificate of this connection, after the same gate as every `/v1/*` route. A revoked
 * certificate never gets this answer: 401 `CERT_REVOKED` (SPEC §5), which is the answer.
 */
export const WhoamiResponseSchema = Type.Object({
  name: Type.String({ description: 'Subject CN: the hostname or the operator name.' }),
  role: Type.Union([Type.Literal('host'), Type.Literal('operator'), Type.Null()], { description: 'Subject OU when it is a known role.' }),
  serial: Type.String({ description: 'Certificate serial, upper-case hex.' }),
  notBefore: Timestamp(),
  notAfter: Timestamp(),
  certState: Type.Union([Type.Literal('valid'), Type.Literal('expiring'), Type.Literal('expired')]),
  issuer: Type.Object({
    commonName: Type.Union([Type.String(), Type.Null()]),
    fingerprint256: Type.Union([Type.String(), Type.Null()], { description: "SHA-256 of the issuing certificate (OpenSSL's AA:BB:… form)." }),
  }),
  /** Lowest notBefore a revocation in force would accept for this name; null: none names it. */
  revokedBefore: Type.Union([Timestamp(), Type.Null()]),
});
export type WhoamiResponse = Static<typeof WhoamiResponseSchema>;

/** A host certificate with less than this left is "expiring" (`nixfleet status`, the metric). */
export const CERT_EXPIRING_MS = 7 * 86_400_000;

/** `expired`, `expiring` (under {@link CERT_EXPIRING_MS} left) or `valid`, at `nowMs`. */
export function certState(notAfterMs: number, nowMs: number): 'valid' | 'expiring' | 'expired' {
  return nowMs >= notAfterMs ? 'expired' : notAfterMs - nowMs < CERT_EXPIRING_MS ? 'expiring' : 'valid';
}

/** A PEM CSR is well under this (an ECDSA P-256 request is ≈ 400 bytes of PEM). */
export const MAX_CSR_CHARS = 4096;
export const MAX_TOKEN_CHARS = 2048;
/** Clock skew allowed on a token's issuedAt (same as the artefacts, SPEC §2.3). */
export const TOKEN_SKEW_MS = 60_000;

const Signature64 = () => Type.String({ pattern: '^[A-Za-z0-9+/]{86}==$', errorMessage: 'must be base64 of a 64-byte signature' });
const Csr = () => Type.String({ minLength: 1, maxLength: MAX_CSR_CHARS, description: 'PEM PKCS#10 request for an ECDSA P-256 key, subject CN = hostname.' });

export const SshProofSchema = Type.Object({ kind: Type.Literal('ssh-host-key'), signature: Signature64() });
export const TokenProofSchema = Type.Object({ kind: Type.Literal('token'), token: Type.String({ minLength: 1, maxLength: MAX_TOKEN_CHARS }) });

/** `POST /v1/enroll` (enrolment listener, no client certificate). */
export const EnrolRequestSchema = Type.Object({
  hostname: Hostname(),
  csr: Csr(),
  proof: Type.Union([SshProofSchema, TokenProofSchema]),
});
export type EnrolRequest = Static<typeof EnrolRequestSchema>;

/** `POST /v1/agent/renew` (mutual TLS with the host's current, valid certificate). */
export const RenewRequestSchema = Type.Object({ hostname: Hostname(), csr: Csr() });
export type RenewRequest = Static<typeof RenewRequestSchema>;

/** The answer to both: the new certificate, and the issuer's certificate (the chain to the fleet CA). */
export const CertificateResponseSchema = Type.Object({
  certificate: Type.String(),
  issuer: Type.String(),
  serial: Type.String(),
  notBefore: Type.String(),
  notAfter: Type.String(),
});
export type CertificateResponse = Static<typeof CertificateResponseSchema>;

/** The bytes a host's SSH host key signs to enrol with a CSR (its DER). */
export function enrolProofBytes(hostname: string, csrDer: Uint8Array): Uint8Array {
  const b = canonicalBytes({ kind: 'nixfleet-enrol-csr', hostname, csrSha256: sha256Hex(csrDer) });
  if (!b.ok) throw new Error(`bug: enrol proof not canonicalisable (${b.error.message})`);
  return b.value;
}

// ---- bootstrap tokens ------------------------------------------------------------------------

export const TOKEN_PREFIX = 'nfet1';

/** What a bootstrap token says; `nonce`: 32 hex digits, the single-use key. */
export const TokenClaimsSchema = Type.Object(
  {
    kind: Type.Literal('nixfleet-enrol-token'),
    hostname: Hostname(),
    nonce: Type.String({ pattern: '^[0-9a-f]{32}$', errorMessage: 'must be 32 lower-case hex digits' }),
    issuedAt: Timestamp({ maxLength: 64 }),
    expiresAt: Timestamp({ maxLength: 64 }),
    issuedBy: Type.String({ maxLength: 256 }),
  },
  { additionalProperties: false },
);
export type TokenClaims = Static<typeof TokenClaimsSchema>;
const claimsValidator = compile(TokenClaimsSchema);

export type TokenErrorCode = 'TOKEN_INVALID' | 'TOKEN_EXPIRED' | 'TOKEN_WRONG_HOST';
export type TokenError = { code: TokenErrorCode; message: string };

const b64url = (b: Uint8Array): string => toBase64(b).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
function fromB64url(s: string): Uint8Array | null {
  if (!/^[A-Za-z0-9_-]*$/.test(s)) return null;
  const std = s.replace(/-/g, '+').replace(/_/g, '/');
  return fromBase64(std + '='.repeat((4 - (std.length % 4)) % 4));
}

/** The bytes a token's signature covers (JCS of the claims); the signer is outside (CLI). */
export function tokenClaimBytes(claims: TokenClaims): Uint8Array {
  const b = canonicalBytes(claims);
  if (!b.ok) throw new Error(`bug: token claims not canonicalisable (${b.error.message})`);
  return b.value;
}

/** `nfet1.<claims>.<signature>` from the claims' JCS bytes and their raw 64-byte signature. */
export function encodeToken(claims: TokenClaims, signature: Uint8Array): string {
  return `${TOKEN_PREFIX}.${b64url(tokenClaimBytes(claims))}.${b64url(signature)}`;
}

/** Sign claims with an org key (the CLI's `nixfleet enroll token`; the nonce comes from the caller). */
export function signToken(claims: TokenClaims, key: PrivateKey): string {
  return encodeToken(claims, signBytes(tokenClaimBytes(claims), key));
}

const tokenErr = (code: TokenErrorCode, message: string) => err<TokenError>({ code, message });

/**
 * Check a token (order: form → canonical claims → signature by an active org key → lifetime →
 * hostname). `maxTtlMs` bounds `expiresAt − issuedAt`, so a leaked old token cannot live long.
 */
export function verifyToken(token: string, o: { orgKeys: KeySlot | undefined; hostname: string; nowMs: number; maxTtlMs: number }): Result<TokenClaims, TokenError> {
  const parts = token.split('.');
  if (parts.length !== 3 || parts[0] !== TOKEN_PREFIX) return tokenErr('TOKEN_INVALID', `not a bootstrap token (expected ${TOKEN_PREFIX}.<claims>.<signature>)`);
  const bytes = fromB64url(parts[1]!);
  const sig = fromB64url(parts[2]!);
  if (bytes === null || sig === null || sig.length !== 64) return tokenErr('TOKEN_INVALID', 'the token is not valid base64url or its signature is not 64 bytes');
  const parsed = parseJsonStrict(bytes, { maxBytes: MAX_TOKEN_CHARS });
  if (!parsed.ok) return tokenErr('TOKEN_INVALID', `token claims: ${parsed.error.message}`);
  if (!claimsValidator.check(parsed.value)) return tokenErr('TOKEN_INVALID', `token claims: ${claimsValidator.issues(parsed.value, 5).map((i) => `${i.path} ${i.message}`).join('; ')}`);
  const claims = parsed.value;
  // The signature covers the canonical bytes; other spellings of the same claims are refused.
  if (toBase64(tokenClaimBytes(claims)) !== toBase64(bytes)) return tokenErr('TOKEN_INVALID', 'token claims are not in canonical (JCS) form');
  if (o.orgKeys === undefined) return tokenErr('TOKEN_INVALID', 'this control plane trusts no org key (trust.json orgRootKey): bootstrap tokens are not accepted');
  const signedBy = activeKeys(o.orgKeys, o.nowMs).find((k) => verifySignature(k.key.algorithm, k.key.public, bytes, sig));
  if (signedBy === undefined) return tokenErr('TOKEN_INVALID', 'the token is not signed by an org key this control plane trusts');
  const issued = parseTimestamp(claims.issuedAt);
  const expires = parseTimestamp(claims.expiresAt);
  if (issued === null || expires === null || expires <= issued) return tokenErr('TOKEN_INVALID', 'token lifetime is empty or unreadable');
  if (expires - issued > o.maxTtlMs) return tokenErr('TOKEN_INVALID', `token lifetime ${Math.round((expires - issued) / 1000)} s exceeds the allowed ${Math.round(o.maxTtlMs / 1000)} s`);
  if (issued - o.nowMs > TOKEN_SKEW_MS) return tokenErr('TOKEN_INVALID', `token issued in the future (${claims.issuedAt}); check the clocks`);
  if (o.nowMs >= expires) return tokenErr('TOKEN_EXPIRED', `the token expired at ${claims.expiresAt}`);
  if (claims.hostname !== o.hostname) return tokenErr('TOKEN_WRONG_HOST', `the token is for ${JSON.stringify(claims.hostname)}, not ${JSON.stringify(o.hostname)}`);
  return ok(claims);
}
