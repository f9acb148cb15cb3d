/**
 * Failed TLS handshakes (a client without a certificate, with one from another CA, an expired
 * one, plain HTTP on the TLS port, a scanner): counted by reason in
 * `nixfleet_tls_handshake_failures_total{reason}` and logged as `tls.handshake-failed` with the
 * same reason and OpenSSL's code — at most one line per reason per `intervalMs`, carrying how many
 * were not logged meanwhile, so a scan cannot flood the log.
 */
import type { Logger } from './log.ts';

/** Bounded set of reasons (a metric label); anything else is `other` (its code is in the log). */
export const TLS_FAILURE_REASONS = ['no_certificate', 'unknown_ca', 'certificate_expired', 'bad_certificate', 'not_tls', 'protocol_version', 'no_shared_cipher', 'reset', 'timeout', 'other'] as const;
export type TlsFailureReason = (typeof TLS_FAILURE_REASONS)[number];

/** The reason of a `tlsClientError` error, from its OpenSSL / errno code. */
export function tlsFailureReason(e: { code?: unknown; message?: unknown }): TlsFailureReason {
  const code = typeof e.code === 'string' ? e.code : '';
  const text = `${code} ${typeof e.message === 'string' ? e.message : ''}`.toUpperCase();
  if (text.includes('PEER_DID_NOT_RETURN_A_CERTIFICATE') || text.includes('NO_CERTIFICATE')) return 'no_certificate';
  if (text.includes('EXPIRED')) return 'certificate_expired';
  if (text.includes('UNKNOWN_CA') || text.includes('UNABLE_TO_GET_ISSUER') || text.includes('SELF_SIGNED') || text.includes('CERTIFICATE_VERIFY_FAILED')) return 'unknown_ca';
  if (text.includes('BAD_CERTIFICATE') || text.includes('UNSUPPORTED_CERTIFICATE') || text.includes('CERTIFICATE_UNKNOWN')) return 'bad_certificate';
  if (text.includes('HTTP_REQUEST') || text.includes('WRONG_VERSION_NUMBER') || text.includes('PACKET_LENGTH_TOO_LONG')) return 'not_tls';
  if (text.includes('UNSUPPORTED_PROTOCOL') || text.includes('VERSION_TOO_LOW') || text.includes('PROTOCOL_VERSION')) return 'protocol_version';
  if (text.includes('NO_SHARED_CIPHER') || text.includes('HANDSHAKE_FAILURE')) return 'no_shared_cipher';
  if (code === 'ECONNRESET' || code === 'EPIPE' || text.includes('SOCKET DISCONNECTED')) return 'reset';
  if (code === 'ETIMEDOUT' || text.includes('TIMEOUT')) return 'timeout';
  return 'other';
}

export type TlsFailureDeps = { log: Logger; count: (reason: TlsFailureReason) => void; now?: () => number; intervalMs?: number };

/** The `tlsClientError` handler: count every failure, log the first of each reason per interval. */
export function tlsFailureHandler(d: TlsFailureDeps): (err: Error & { code?: unknown }, remote: string | null) => void {
  const now = d.now ?? Date.now;
  const intervalMs = d.intervalMs ?? 10_000;
  const last = new Map<TlsFailureReason, { atMs: number; suppressed: number }>();
  return (err, remote) => {
    const reason = tlsFailureReason(err);
    d.count(reason);
    const t = now();
    const seen = last.get(reason);
    if (seen !== undefined && t - seen.atMs < intervalMs) {
      seen.suppressed++;
      return;
    }
    last.set(reason, { atMs: t, suppressed: 0 });
    d.log.warn('tls.handshake-failed', { reason, code: typeof err.code === 'string' ? err.code : null, message: err.message, remote, suppressed: seen?.suppressed ?? 0 });
  };
}
