/**
 * `GET /v1/certificates` (operator, issue 20): the expiry of the certificates this control plane
 * knows — its own TLS certificate, the fleet CA, and each client certificate it has seen on a full
 * TLS handshake since it started (hosts, operators), the newest notAfter per CN. Held in memory
 * by each replica (the same figures as the `nixfleet_certificate_expiry*` metrics), not stored: a
 * host that has not connected to this replica since its start is not listed.
 */
import { Type, type Static } from '@sinclair/typebox';
import { Nullable } from './vocab.ts';

export const SeenCertificateSchema = Type.Object({
  cn: Type.String(),
  /** `host`, `operator` or `other` (the certificate's OU). */
  role: Type.String(),
  /** RFC 3339. */
  notAfter: Type.String(),
});
export type SeenCertificateView = Static<typeof SeenCertificateSchema>;

export const CertificatesResponseSchema = Type.Object({
  /** This replica's TLS server certificate and the fleet CA: notAfter, RFC 3339, or null when unknown. */
  server: Nullable(Type.String()),
  ca: Nullable(Type.String()),
  /** Sorted by notAfter, soonest first. */
  clients: Type.Array(SeenCertificateSchema),
});
export type CertificatesResponse = Static<typeof CertificatesResponseSchema>;
