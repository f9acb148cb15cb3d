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
  readonly notAfterMs: number;
  /**
   * SHA-256 fingerprint (OpenSSL's `AA:BB:…` form) of the certificate that issued this one, as
   * OpenSSL found it while verifying the chain; null when unknown. Issue 16: each role accepts
   * exactly its configured issuers (the fleet CA for operators; the fleet CA and the host-issuance
   * intermediate for hosts), not any intermediate the fleet CA ever signed.
   */
  readonly issuerFingerprint256: string | null;
  /**
   * Issue 16: when the identity was last proven (enrolment), from the `urn:nixfleet:proven-at-ms:`
   * URI name the CP writes into the certificates it issues and copies on renewal
   * (pki/x509.ts `PROVEN_AT_URI_PREFIX`); null when absent (operator-minted: notBefore is it).
   */
  readonly provenAtMs: number | null;
  /** Subject CN of the issuer (for `whoami`), null when absent or ambiguous. */
  readonly issuerCommonName: string | null;
};

/** The minimum of a socket we need; the real one is a `TLSSocket`. */
export type PeerSocket = Pick<TLSSocket, 'getPeerCertificate'> & { authorized?: boolean };

const cache = new WeakMap<object, PeerIdentity | null>();

function single(v: string | string[] | undefined): string | null {
  if (typeof v === 'string') return v;
  // Several CN or OU attributes are ambiguous: no identity.
  return null;
}

// Same text as pki/x509.ts PROVEN_AT_URI_PREFIX (not imported: this file stays free of the PKI library).
const PROVEN_AT = /(?:^|, )URI:urn:nixfleet:proven-at-ms:(\d{1,15})(?:,|$)/;

function provenAt(san: string | undefined): number | null {
  const m = typeof san === 'string' ? PROVEN_AT.exec(san) : null;
  return m === null ? null : Number(m[1]);
}

/**
 * The time a revocation compares with its `notBefore` (SPEC §2.3): the certificate's notBefore,
 * or the earlier moment its identity was proven when it was issued by renewal (issue 16).
 */
export function revocationTimeMs(peer: Pick<PeerIdentity, 'notBeforeMs' | 'provenAtMs'>): number {
  return peer.provenAtMs === null ? peer.notBeforeMs : Math.min(peer.notBeforeMs, peer.provenAtMs);
}

/**
 * The issuer OpenSSL found for each client certificate it verified (leaf SHA-256 fingerprint →
 * issuer fingerprint, null: none known), kept because reading it is most of the cost of a peer's
 * identity: Node's detailed `getPeerCertificate(true)` costs ≈ 0.3 ms a connection against ≈ 0.1
 * ms for the leaf alone (issue 19), and a host opens a connection for each poll. A certificate's
 * bytes fix its signature and so the key that issued it: the entry is the issuing certificate
 * found the first time, which differs from a later chain's only for two issuer certificates with
 * the same name and key (a cross-certificate). Emptied when it reaches `ISSUERS_KEPT` entries.
 */
const issuers = new Map<string, string | null>();
const ISSUERS_KEPT = 1 << 18;

function issuerOf(socket: PeerSocket, leafFingerprint256: string | undefined): string | null {
  const known = typeof leafFingerprint256 === 'string' ? issuers.get(leafFingerprint256) : undefined;
  if (known !== undefined) return known;
  // Detailed: the issuer's certificate too (from the client's chain or the trust store).
  const cert = socket.getPeerCertificate(true);
  const issuer = cert?.issuerCertificate as typeof cert.issuerCertificate | undefined;
  // A self-signed leaf is its own issuer (Node links it to itself); never a known issuer then.
  const found = issuer !== undefined && issuer !== null && issuer !== cert && typeof issuer.fingerprint256 === 'string' ? issuer.fingerprint256 : null;
  if (typeof leafFingerprint256 === 'string' && cert?.fingerprint256 === leafFingerprint256) {
    if (issuers.size >= ISSUERS_KEPT) issuers.clear();
    issuers.set(leafFingerprint256, found);
  }
  return found;
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
      const notAfterMs = Date.parse(cert.valid_to);
      const issuerFingerprint256 = issuerOf(socket, cert.fingerprint256);
      if (cn !== null && cn.length > 0 && Number.isFinite(notBeforeMs) && Number.isFinite(notAfterMs)) {
        id = {
          cn,
          role: ou === 'host' || ou === 'operator' ? ou : null,
          serial: String(cert.serialNumber ?? '').toUpperCase(),
          notBeforeMs,
          notAfterMs,
          issuerFingerprint256,
          provenAtMs: provenAt(cert.subjectaltname),
          issuerCommonName: single(cert.issuer?.CN as string | string[] | undefined),
        };
      }
    }
  }
  cache.set(socket, id);
  return id;
}
