/**
 * The agent's TLS identity over its life (issue 16).
 *
 * - First boot ({@link ensureCertificate}): no certificate in `tls.certFile` → generate an ECDSA
 *   P-256 key, send a CSR to the CP's enrolment listener with a proof — the SSH host key's
 *   signature over the CSR (protocol/enrol.ts), or a one-time bootstrap token — and store key and
 *   certificate (0600, directory 0700, atomic writes).
 * - Renewal ({@link RenewingClient}): once `renewAtFraction` (default half) of the lifetime has
 *   passed, before a check-in: a new key, `POST /v1/agent/renew` over the current certificate,
 *   the new pair written beside the old (`*.next`), tried over a new connection, and only then put
 *   in place. A failure keeps the old pair (and is retried later). A certificate that expired
 *   anyway (the agent was off) is replaced by enrolling again with the SSH host key.
 * - A pair left as `*.next` by a crash in the middle of the switch is completed at start.
 * - With several CP replicas (issue 17, `cpUrls`), a {@link Connection} is the fail-over client over
 *   all of them under one identity; the renewal goes to the replica in use, else the next that answers.
 *
 * @peculiar/x509 (pki/x509.ts) is loaded only when a key or CSR is made: an agent whose
 * certificate is managed by hand never loads it.
 */
import { X509Certificate, createPrivateKey, createPublicKey } from 'node:crypto';
import { existsSync, readFileSync, renameSync } from 'node:fs';
import { Agent, request } from 'undici';
import { removeFileDurable, writeFileAtomic } from '../io/atomic-file.ts';
import type { Logger } from '../io/log.ts';
import { type CheckinRequest, type CheckinResponse, type ConfirmRequest, type ReportRequest, type SliceResponse } from '../protocol/api.ts';
import { parseCertificateResponse, parseErrorBody } from '../protocol/api-parse.ts';
import { signBytes, toBase64, type PrivateKey } from '../protocol/crypto.ts';
import { ENROL_ROUTES, enrolProofBytes, type CertificateResponse, type RenewRequest } from '../protocol/enrol.ts';
import { parseJsonStrict } from '../protocol/jcs.ts';
import { err, ok, type Result } from '../protocol/result.ts';
import type { CpClient, HttpError, TlsMaterial } from './client.ts';
import type { Config } from './config.ts';
import { isUnavailable } from './failover.ts';
import type { CpApi } from './loop.ts';

export type CertErrorCode = 'NO_CERTIFICATE' | 'ENROL_FAILED' | 'RENEW_FAILED' | 'UNREADABLE';
export type CertError = { code: CertErrorCode; message: string; retryable: boolean };

const next = (path: string): string => `${path}.next`;

/** notBefore / notAfter of a PEM certificate, or null. */
export function certLifetime(pem: string): { notBeforeMs: number; notAfterMs: number } | null {
  try {
    const c = new X509Certificate(pem);
    return { notBeforeMs: Date.parse(c.validFrom), notAfterMs: Date.parse(c.validTo) };
  } catch {
    return null;
  }
}

function pairMatches(certPem: string, keyPem: string): boolean {
  try {
    const a = createPublicKey(createPrivateKey(keyPem)).export({ type: 'spki', format: 'der' });
    const b = new X509Certificate(certPem).publicKey.export({ type: 'spki', format: 'der' });
    return a.equals(b);
  } catch {
    return false;
  }
}

/** Key first, then certificate: a reader never sees a certificate without its key. */
function writePair(certFile: string, keyFile: string, certPem: string, keyPem: string): void {
  writeFileAtomic(keyFile, keyPem, { mode: 0o600, mkdirMode: 0o700 });
  writeFileAtomic(certFile, certPem, { mode: 0o600, mkdirMode: 0o700 });
}

/** Finish a switch a crash interrupted: a complete, matching `*.next` pair replaces the current one. */
function completePendingSwitch(config: Config, log: Logger): void {
  const { certFile, keyFile } = config.tls;
  if (!existsSync(next(certFile))) {
    if (existsSync(next(keyFile))) removeFileDurable(next(keyFile)); // written, never certified
    return;
  }
  const c = readFileSync(next(certFile), 'utf8');
  // The key is renamed first: its new version is `*.next` still, or already in place.
  const k = existsSync(next(keyFile)) ? readFileSync(next(keyFile), 'utf8') : existsSync(keyFile) ? readFileSync(keyFile, 'utf8') : '';
  if (pairMatches(c, k)) {
    if (existsSync(next(keyFile))) renameSync(next(keyFile), keyFile);
    renameSync(next(certFile), certFile);
    log.info('agent.cert-switch-completed', { certFile });
  } else {
    removeFileDurable(next(certFile));
    if (existsSync(next(keyFile))) removeFileDurable(next(keyFile));
  }
}

async function postJson(url: string, caPem: string, body: unknown, timeoutMs: number): Promise<Result<unknown, CertError>> {
  const dispatcher = new Agent({ connect: { ca: caPem } });
  try {
    const res = await request(url, { method: 'POST', dispatcher, headers: { 'content-type': 'application/json', 'x-nixfleet-protocol': '1' }, body: JSON.stringify(body), signal: AbortSignal.timeout(timeoutMs) });
    const text = Buffer.from(await res.body.arrayBuffer());
    if (text.length > 256 * 1024) return err({ code: 'ENROL_FAILED', message: `${url}: answer too large`, retryable: true });
    const json = parseJsonStrict(text);
    if (res.statusCode !== 200) {
      const e = json.ok ? parseErrorBody(json.value) : null;
      // 4xx: the CP refused this request for a reason that will not change by retrying (except 503 / 429).
      const retryable = res.statusCode >= 500 || res.statusCode === 429;
      return err({ code: 'ENROL_FAILED', message: `${url}: HTTP ${res.statusCode}${e === null ? '' : ` ${e.code}: ${e.message}`}`, retryable });
    }
    return json.ok ? ok(json.value) : err({ code: 'ENROL_FAILED', message: `${url}: answer is not JSON`, retryable: true });
  } catch (e) {
    return err({ code: 'ENROL_FAILED', message: `${url}: ${(e as Error).message}`, retryable: true });
  } finally {
    await dispatcher.close().catch(() => {});
  }
}

/** A fresh key and a CSR for it. */
async function newRequest(hostname: string): Promise<{ keyPem: string; csr: string; der: Uint8Array }> {
  const x = await import('../pki/x509.ts');
  const { keys, keyPem } = await x.generateEcKey();
  const csr = await x.createCsr(hostname, keys);
  const parsed = await x.parseCsr(csr);
  if (!parsed.ok) throw new Error(`bug: our own CSR does not parse (${parsed.error.message})`);
  return { keyPem, csr, der: parsed.value.der };
}

/** Enrol now (new key) with the token when one is configured and `allowToken`, else the SSH host key. */
export async function enrol(config: Config, hostKey: PrivateKey | null, opts: { allowToken: boolean }): Promise<Result<CertificateResponse & { keyPem: string }, CertError>> {
  const e = config.enrol;
  if (e === null) return err({ code: 'NO_CERTIFICATE', message: `no certificate in ${config.tls.certFile} and no enrol configuration`, retryable: false });
  const { keyPem, csr, der } = await newRequest(config.hostname);
  let proof: { kind: 'token'; token: string } | { kind: 'ssh-host-key'; signature: string };
  if (opts.allowToken && e.tokenFile !== null && existsSync(e.tokenFile)) {
    proof = { kind: 'token', token: readFileSync(e.tokenFile, 'utf8').trim() };
  } else if (hostKey !== null) {
    proof = { kind: 'ssh-host-key', signature: toBase64(signBytes(enrolProofBytes(config.hostname, der), hostKey)) };
  } else {
    return err({ code: 'NO_CERTIFICATE', message: 'cannot enrol: no bootstrap token (enrol.tokenFile) and no host key (hostKeyFile)', retryable: false });
  }
  let caPem: string;
  try {
    caPem = readFileSync(config.tls.caFile, 'utf8');
  } catch (x) {
    return err({ code: 'UNREADABLE', message: `cannot read ${config.tls.caFile}: ${(x as Error).message}`, retryable: false });
  }
  const r = await postJson(`${e.url.replace(/\/+$/, '')}${ENROL_ROUTES.enroll}`, caPem, { hostname: config.hostname, csr, proof }, config.requestTimeoutSecs * 1000);
  if (!r.ok) return r;
  const cert = parseCertificateResponse(r.value);
  if (!cert.ok) return err({ code: 'ENROL_FAILED', message: cert.error.message, retryable: true });
  if (!pairMatches(cert.value.certificate, keyPem)) return err({ code: 'ENROL_FAILED', message: 'the certificate the CP sent is not for our key', retryable: true });
  return ok({ ...cert.value, keyPem });
}

/**
 * Make sure a certificate is in place before the agent starts: complete an interrupted switch;
 * with none, enrol (token first, when configured; it is then removed: single use). Retries
 * retryable failures with `sleep` until `attempts` run out.
 */
export async function ensureCertificate(config: Config, hostKey: PrivateKey | null, o: { log: Logger; sleep: (ms: number) => Promise<void>; attempts: number }): Promise<Result<'present' | 'enrolled', CertError>> {
  completePendingSwitch(config, o.log);
  if (existsSync(config.tls.certFile) && existsSync(config.tls.keyFile)) return ok('present');
  for (let i = 1; ; i++) {
    const r = await enrol(config, hostKey, { allowToken: true });
    if (r.ok) {
      writePair(config.tls.certFile, config.tls.keyFile, r.value.certificate, r.value.keyPem);
      const tokenFile = config.enrol?.tokenFile ?? null;
      if (tokenFile !== null && existsSync(tokenFile)) removeFileDurable(tokenFile);
      o.log.info('agent.enrolled', { host: config.hostname, serial: r.value.serial, notAfter: r.value.notAfter });
      return ok('enrolled');
    }
    o.log.warn('agent.enrol-failed', { code: r.error.code, retryable: r.error.retryable, attempt: i, message: r.error.message });
    if (!r.error.retryable || i >= o.attempts) return r;
    await o.sleep(Math.min(60_000, 2_000 * 2 ** Math.min(i, 5)));
  }
}

/** The CP (all its replicas) under one TLS identity. */
export type Connection = {
  api: CpApi;
  /** `POST /v1/agent/renew` over this identity. */
  renew: (body: RenewRequest) => Promise<Result<CertificateResponse, HttpError>>;
  close: () => Promise<void>;
};

/** One plain client (one CP URL) as a {@link Connection}. */
export const singleConnection = (c: CpClient): Connection => ({ api: c, renew: (b) => c.renew(b), close: () => c.close() });

/**
 * The renewal over several replicas' clients (issue 17): `start` (the replica in use) first, then
 * the next ones while a replica is unavailable (network error, 502/503/504); an answer is final.
 */
export async function renewOnReplicas(clients: readonly CpClient[], start: number, body: RenewRequest): Promise<Result<CertificateResponse, HttpError>> {
  let first: Result<CertificateResponse, HttpError> | null = null;
  for (let k = 0; k < clients.length; k++) {
    const r = await clients[(start + k) % clients.length]!.renew(body);
    if (r.ok || !isUnavailable(r.error)) return r;
    first ??= r;
  }
  if (first === null) throw new Error('renewOnReplicas: no control plane client');
  return first;
}

export type RenewingOptions = {
  config: Config;
  hostKey: PrivateKey | null;
  /** The CP under a TLS identity (production: every replica's `CpClient`, behind the fail-over client). */
  connect: (tls: TlsMaterial) => Connection;
  now: () => number;
  log: Logger;
  /** After a failed attempt, wait this long before the next (default 5 minutes). */
  retryAfterMs?: number;
};

/**
 * The CP API over the current certificate, renewed in passing (see the file comment). The loop
 * sees a plain `CpApi`.
 */
export class RenewingClient implements CpApi {
  private inner: Connection;
  /** Issue 19: present exactly when the underlying client fetches slices (the loop checks). */
  readonly fetchSlice?: () => Promise<Result<SliceResponse, HttpError>>;
  private tls: TlsMaterial;
  private nextAttemptMs = 0;

  constructor(
    private readonly o: RenewingOptions,
    tls: TlsMaterial,
  ) {
    this.tls = tls;
    this.inner = o.connect(tls);
    if (this.inner.api.fetchSlice !== undefined) this.fetchSlice = () => this.inner.api.fetchSlice!();
  }

  /** Expiry of the certificate in use (for logs and `once`). */
  certNotAfterMs(): number | null {
    return certLifetime(this.tls.cert)?.notAfterMs ?? null;
  }

  private due(nowMs: number): 'no' | 'renew' | 'expired' {
    if (this.o.config.enrol === null || nowMs < this.nextAttemptMs) return 'no';
    const l = certLifetime(this.tls.cert);
    if (l === null) return 'no';
    if (nowMs >= l.notAfterMs) return 'expired';
    return nowMs >= l.notBeforeMs + this.o.config.enrol.renewAtFraction * (l.notAfterMs - l.notBeforeMs) ? 'renew' : 'no';
  }

  /** A new pair over the current certificate (renew) or by SSH host key (the old one expired). */
  private async obtain(how: 'renew' | 'expired'): Promise<Result<{ certPem: string; keyPem: string; notAfter: string }, CertError>> {
    if (how === 'expired') {
      const r = await enrol(this.o.config, this.o.hostKey, { allowToken: false });
      return r.ok ? ok({ certPem: r.value.certificate, keyPem: r.value.keyPem, notAfter: r.value.notAfter }) : r;
    }
    const { keyPem, csr } = await newRequest(this.o.config.hostname);
    const r = await this.inner.renew({ hostname: this.o.config.hostname, csr });
    if (!r.ok) return err({ code: 'RENEW_FAILED', message: r.error.message, retryable: true });
    if (!pairMatches(r.value.certificate, keyPem)) return err({ code: 'RENEW_FAILED', message: 'the certificate the CP sent is not for our key', retryable: true });
    return ok({ certPem: r.value.certificate, keyPem, notAfter: r.value.notAfter });
  }

  async checkin(body: CheckinRequest): Promise<Result<CheckinResponse, HttpError>> {
    const nowMs = this.o.now();
    const how = this.due(nowMs);
    if (how === 'no') return this.inner.api.checkin(body);
    const { certFile, keyFile } = this.o.config.tls;
    const got = await this.obtain(how);
    if (!got.ok) {
      this.nextAttemptMs = nowMs + (this.o.retryAfterMs ?? 300_000);
      this.o.log.warn('agent.cert-renew-failed', { how, code: got.error.code, message: got.error.message });
      return this.inner.api.checkin(body);
    }
    // Beside the old pair until the new one has worked once.
    writePair(next(certFile), next(keyFile), got.value.certPem, got.value.keyPem);
    const tls = { ...this.tls, cert: got.value.certPem, key: got.value.keyPem };
    const candidate = this.o.connect(tls);
    const r = await candidate.api.checkin(body);
    const works = r.ok || (r.error.code === 'HTTP_STATUS' && r.error.status !== 401 && r.error.status !== 403);
    if (!works) {
      await candidate.close();
      removeFileDurable(next(certFile));
      removeFileDurable(next(keyFile));
      this.nextAttemptMs = nowMs + (this.o.retryAfterMs ?? 300_000);
      this.o.log.warn('agent.cert-unusable', { how, code: r.ok ? null : r.error.code, message: r.ok ? '' : r.error.message });
      return how === 'renew' ? this.inner.api.checkin(body) : r;
    }
    renameSync(next(keyFile), keyFile);
    renameSync(next(certFile), certFile);
    const old = this.inner;
    this.inner = candidate;
    this.tls = tls;
    await old.close();
    this.o.log.info('agent.cert-renewed', { how, notAfter: got.value.notAfter });
    return r;
  }

  fetchArtifact(): ReturnType<CpApi['fetchArtifact']> {
    return this.inner.api.fetchArtifact();
  }
  report(body: ReportRequest): Promise<Result<void, HttpError>> {
    return this.inner.api.report(body);
  }
  confirm(body: ConfirmRequest): ReturnType<CpApi['confirm']> {
    return this.inner.api.confirm(body);
  }
  close(): Promise<void> {
    return this.inner.close();
  }
}
