/**
 * Peer identity from the verified client certificate (SPEC §5): CN, OU, serial, notBefore.
 *
 * The TLS layer (`requestCert` + `rejectUnauthorized` against the fleet CA) has already refused
 * clients without a certificate from the fleet CA; here we only read the subject. Reading
 * `getPeerCertificate()` per request is not free, so the identity is cached per TLS socket
 * (keep-alive connections reuse it).
 */
import type { TLSSocket } from 'node:tls';

export type PeerRole = 'host' | 'operator';

export type PeerIdentity = {
  /** Subject CN: the hostname for hosts, the operator's name for operators. */
  readonly cn: string;
  /** Subject OU, when it is one of the roles we know; otherwise null (no role → 403). */
  readonly role: PeerRole | null;
  /** Upper-case hex as OpenSSL prints it. */
  readonly serial: string;
  readonly notBeforeMs: number;
};

/** The minimum of a socket we need; the real one is a `TLSSocket`. */
export type PeerSocket = Pick<TLSSocket, 'getPeerCertificate'> & { authorized?: boolean };

const cache = new WeakMap<object, PeerIdentity | null>();

function single(v: string | string[] | undefined): string | null {
  if (typeof v === 'string') return v;
  // Several CN or OU attributes are ambiguous: no identity.
  return null;
}

/** Identity of a TLS peer, or null when it presented no (authorised) certificate. */
export function peerIdentity(socket: PeerSocket | null | undefined): PeerIdentity | null {
  if (socket === null || socket === undefined || typeof socket.getPeerCertificate !== 'function') return null;
  const cached = cache.get(socket);
  if (cached !== undefined) return cached;
  let id: PeerIdentity | null = null;
  if (socket.authorized === true) {
    const cert = socket.getPeerCertificate(false);
    if (cert !== null && typeof cert === 'object' && cert.subject !== undefined) {
      const cn = single(cert.subject.CN as string | string[] | undefined);
      const ou = single(cert.subject.OU as string | string[] | undefined);
      const notBeforeMs = Date.parse(cert.valid_from);
      if (cn !== null && cn.length > 0 && Number.isFinite(notBeforeMs)) {
        id = {
          cn,
          role: ou === 'host' || ou === 'operator' ? ou : null,
          serial: String(cert.serialNumber ?? '').toUpperCase(),
          notBeforeMs,
        };
      }
    }
  }
  cache.set(socket, id);
  return id;
}
