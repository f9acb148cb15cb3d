/**
 * Enrolment and renewal (issue 16): the control plane issues short-lived host certificates with
 * its host-issuance intermediate, to a host that proves who it is.
 *
 * - `enrol` (no client certificate): the CSR must be a valid ECDSA P-256 request naming the host;
 *   the proof is either the host's SSH host key — the one the **verified, signed fleet** declares
 *   for it — signing the CSR (protocol/enrol.ts `enrolProofBytes`), or a bootstrap token signed by
 *   an org key of trust.json, for this hostname, unexpired, never used before (the ledger survives
 *   a database wipe: enrol-ledger.ts).
 * - `renew` (mutual TLS with the current certificate, which the middleware has checked: issuer,
 *   role, revocation): a CSR for a new key, same hostname.
 *
 * Bad input (unreadable CSR, wrong key type, a CSR naming another host) is refused before anything
 * is stored. A refused proof (bad signature, unknown key, bad / expired / replayed / misdirected
 * token, revoked host) is refused with its code **and** an audit entry (logged as an `audit` event
 * by the store wrapper, write-log.ts, like every audited change). What the intermediate can
 * do for an attacker who holds the CP: mint host identities towards this CP — which it already
 * impersonates — and nothing an agent would run: deployments stay signed by the release key.
 */
import type { EnrolRequest, CertificateResponse, RenewRequest } from '../protocol/enrol.ts';
import { enrolProofBytes, verifyToken } from '../protocol/enrol.ts';
import { fromBase64, parseOpenSshEd25519, toBase64, verifySignature } from '../protocol/crypto.ts';
import { parseTimestamp } from '../protocol/vocab.ts';
import type { ErrorCode } from '../protocol/api.ts';
import { issueHostCert, parseCsr, type CertKeyPem, type ParsedCsr } from '../pki/x509.ts';
import type { ArtifactManager } from './artifacts.ts';
import type { EnrolmentConfig } from './config.ts';
import type { TokenLedger } from './enrol-ledger.ts';
import { ApiError } from './errors.ts';
import { revocationTimeMs, type PeerIdentity } from './identity.ts';
import { RefusalThrottle } from './refusal-throttle.ts';
import type { Store } from './store/types.ts';

export type EnrolDeps = {
  config: EnrolmentConfig;
  issuer: CertKeyPem;
  store: Store;
  artifacts: Pick<ArtifactManager, 'fleet' | 'revokedBeforeMs' | 'trustInForce'>;
  ledger: TokenLedger;
  now: () => number;
  /** Counts issued / refused certificates (metrics). */
  observe?: (what: 'enrol' | 'renew', outcome: string) => void;
  /** Counts enrolment refusals the throttle kept out of the audit log (metrics). */
  observeUnaudited?: (code: string) => void;
};

export class EnrolService {
  private readonly throttle: RefusalThrottle;

  constructor(private readonly d: EnrolDeps) {
    this.throttle = new RefusalThrottle(d.config.refusalAuditWindowSecs * 1000);
  }

  /** Bad input: 4xx, nothing stored, nothing audited. */
  private async csrFor(hostname: string, pem: string): Promise<ParsedCsr> {
    const csr = await parseCsr(pem);
    if (!csr.ok) throw new ApiError(csr.error.code, csr.error.message);
    if (csr.value.hostname !== hostname) throw new ApiError('CSR_HOST_MISMATCH', `the CSR names ${JSON.stringify(csr.value.hostname)}, the request ${JSON.stringify(hostname)}`);
    return csr.value;
  }

  private requireDeclared(hostname: string): string | null {
    const fleet = this.d.artifacts.fleet()?.fleet ?? null;
    const host = fleet?.hosts[hostname];
    if (host === undefined) throw new ApiError('UNKNOWN_HOST', `${JSON.stringify(hostname)} is not a host of the signed fleet in force`);
    return host.pubkey;
  }

  /**
   * A refused proof: counted, audited, then the error. An unauthenticated (enrolment) refusal is
   * audited once per burst per source and code (refusal-throttle.ts): the rest are only counted.
   */
  private async refuse(what: 'enrol' | 'renew', hostname: string, code: ErrorCode, message: string, data: Record<string, unknown>, source: string | null = null): Promise<never> {
    this.d.observe?.(what, code);
    const t = what === 'enrol' ? this.throttle.decide(source ?? 'unknown', code, this.d.now()) : { audit: true as const, suppressedBefore: 0 };
    if (!t.audit) {
      this.d.observeUnaudited?.(code);
      throw new ApiError(code, message);
    }
    const extra = what === 'enrol' ? { source, ...(t.suppressedBefore > 0 ? { suppressedBefore: t.suppressedBefore } : {}) } : {};
    await this.d.store.apply([{ kind: 'audit', entry: { atMs: this.d.now(), kind: `${what}.refused`, actor: what === 'enrol' ? 'unauthenticated' : `host:${hostname}`, subject: hostname, data: { host: hostname, code, message, ...data, ...extra } } }]);
    throw new ApiError(code, message);
  }

  /** `provenAtMs`: when the identity was proven — now for an enrolment, inherited on renewal. */
  private async issue(what: 'enrol' | 'renew', hostname: string, csr: ParsedCsr, data: Record<string, unknown>, provenAtMs: number = this.d.now()): Promise<CertificateResponse> {
    const c = await issueHostCert(this.d.issuer, hostname, csr.publicKey, { now: new Date(this.d.now()), validityDays: this.d.config.certValiditySecs / 86_400, provenAt: new Date(provenAtMs) });
    const out: CertificateResponse = { certificate: c.certPem, issuer: this.d.issuer.certPem, serial: c.serial, notBefore: c.notBefore.toISOString(), notAfter: c.notAfter.toISOString() };
    await this.d.store.apply([{ kind: 'audit', entry: { atMs: this.d.now(), kind: `${what}.issued`, actor: `host:${hostname}`, subject: hostname, data: { host: hostname, serial: c.serial, notAfter: out.notAfter, ...data } } }]);
    this.d.observe?.(what, 'issued');
    return out;
  }

  /** `source`: the client's address, for the refusal throttle (null when unknown). */
  async enrol(req: EnrolRequest, source: string | null = null): Promise<CertificateResponse> {
    const h = req.hostname;
    const refuse = (code: ErrorCode, message: string, data: Record<string, unknown>): Promise<never> => this.refuse('enrol', h, code, message, data, source);
    const csr = await this.csrFor(h, req.csr);
    const declared = this.requireDeclared(h);
    const revokedBefore = this.d.artifacts.revokedBeforeMs(h);
    if (req.proof.kind === 'ssh-host-key') {
      const method = { via: 'ssh-host-key' };
      if (declared === null) return refuse('NO_HOST_KEY', `the signed fleet declares no SSH host key for ${JSON.stringify(h)}: enrol with a bootstrap token (nixfleet enroll token)`, method);
      const key = parseOpenSshEd25519(declared);
      if (!key.ok) return refuse('NO_HOST_KEY', `the SSH host key the fleet declares for ${JSON.stringify(h)} is not an ssh-ed25519 key`, method);
      const sig = fromBase64(req.proof.signature);
      if (sig === null || !verifySignature('ed25519', toBase64(key.value), enrolProofBytes(h, csr.der), sig)) {
        return refuse('ENROL_PROOF_INVALID', `the CSR is not signed by the SSH host key the signed fleet declares for ${JSON.stringify(h)}`, method);
      }
      // A revoked host's SSH key may be what was stolen: only an operator's token re-admits it.
      if (revokedBefore !== null) return refuse('HOST_REVOKED', `${JSON.stringify(h)} is listed in the signed revocations: re-admit it with a bootstrap token minted after the revocation`, method);
      return this.issue('enrol', h, csr, method);
    }
    const claims = verifyToken(req.proof.token, { orgKeys: this.d.artifacts.trustInForce().orgRootKey, hostname: h, nowMs: this.d.now(), maxTtlMs: this.d.config.maxTokenTtlSecs * 1000 });
    if (!claims.ok) return refuse(claims.error.code, claims.error.message, { via: 'token' });
    const method = { via: 'token', nonce: claims.value.nonce, issuedBy: claims.value.issuedBy };
    const issuedMs = parseTimestamp(claims.value.issuedAt) ?? 0;
    if (revokedBefore !== null && issuedMs < revokedBefore) {
      return refuse('HOST_REVOKED', `the token was minted before ${JSON.stringify(h)} was revoked: mint a new one`, method);
    }
    const spent = await this.d.ledger.consume({ nonce: claims.value.nonce, hostname: h, expiresAt: claims.value.expiresAt });
    if (!spent.ok) return refuse(spent.error.code, spent.error.message, method);
    return this.issue('enrol', h, csr, method);
  }

  /** Called after the middleware accepted the current certificate (issuer, OU host, not revoked) and the hostname is the CN. */
  async renew(peer: PeerIdentity, req: RenewRequest): Promise<CertificateResponse> {
    const csr = await this.csrFor(req.hostname, req.csr);
    this.requireDeclared(req.hostname);
    // Issue 16, the revocation race: the new certificate inherits the moment the identity was
    // proven, so a revocation loaded later still covers it; and any revocation known now that
    // covers the current certificate refuses the renewal here too (the /v1 gate checks first).
    const provenAtMs = revocationTimeMs(peer);
    const data = { via: 'renew', previousSerial: peer.serial.toLowerCase(), previousNotAfter: new Date(peer.notAfterMs).toISOString(), provenAt: new Date(provenAtMs).toISOString() };
    const revokedBefore = this.d.artifacts.revokedBeforeMs(req.hostname);
    if (revokedBefore !== null && provenAtMs < revokedBefore) {
      return this.refuse('renew', req.hostname, 'CERT_REVOKED', `${JSON.stringify(req.hostname)} is revoked for certificates proven before ${new Date(revokedBefore).toISOString()}: enrol again with a token minted after it`, data);
    }
    return this.issue('renew', req.hostname, csr, data, provenAtMs);
  }

  /** The middleware refused a revoked certificate on the renewal route: leave a trace. */
  async auditRevokedRenewal(peer: PeerIdentity): Promise<void> {
    this.d.observe?.('renew', 'CERT_REVOKED');
    await this.d.store.apply([
      { kind: 'audit', entry: { atMs: this.d.now(), kind: 'renew.refused', actor: `host:${peer.cn}`, subject: peer.cn, data: { host: peer.cn, code: 'CERT_REVOKED', serial: peer.serial.toLowerCase() } } },
    ]);
  }
}
