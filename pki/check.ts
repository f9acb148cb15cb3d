/**
 * Local checks of a TLS identity before it is used (issue 18): the certificate's extended key
 * usage fits its role (`serverAuth` for the CP's server certificate, `clientAuth` for hosts and
 * operators), it is inside its validity period, the private key belongs to it, and it was issued
 * by the fleet CA. A mistake here otherwise only shows up later as an opaque TLS failure
 * (`INVALID_PURPOSE`, "cannot reach the control plane"). ASN.1 is parsed by Node's
 * X509Certificate, never by us.
 */
import { X509Certificate, createPrivateKey, createPublicKey, type KeyObject } from 'node:crypto';

export type CertPurpose = 'serverAuth' | 'clientAuth';

export type CertProblemCode = 'CERT_UNREADABLE' | 'KEY_UNREADABLE' | 'KEY_MISMATCH' | 'WRONG_PURPOSE' | 'EXPIRED' | 'NOT_YET_VALID' | 'NOT_ISSUED_BY_CA' | 'IS_CA' | 'CA_UNREADABLE';
export type CertProblem = { code: CertProblemCode; message: string };

export type CertCheckInput = {
  /** How messages name the certificate, e.g. "--cert op.pem" or "tlsCertFile /etc/cp.pem". */
  what: string;
  certPem: string;
  /** The private key (PEM) that must belong to the certificate; omitted: not checked. */
  keyPem?: string;
  keyWhat?: string;
  /** PEM text of the fleet CA certificate(s) it must chain to; omitted: not checked. */
  caPem?: string;
  purpose: CertPurpose;
  nowMs: number;
};

export type CertCheck = {
  problems: CertProblem[];
  /** Subject in one line ("CN=web1, OU=host"), validity end, for the summary. */
  subject: string | null;
  notAfterMs: number | null;
};

const EKU_OID: Record<CertPurpose, string> = { serverAuth: '1.3.6.1.5.5.7.3.1', clientAuth: '1.3.6.1.5.5.7.3.2' };

/** PEM text → each certificate in it. */
export function splitPemCertificates(text: string): string[] {
  return text.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g) ?? [];
}

/** Extended key usages as OIDs, or null when the certificate has no EKU extension (any usage). */
function extendedKeyUsage(c: X509Certificate): string[] | null {
  // Node ≥ 23 names it extKeyUsage (keyUsage is the older, deprecated spelling of the same list).
  const v = (c as X509Certificate & { extKeyUsage?: string[] }).extKeyUsage ?? c.keyUsage;
  return v === undefined || v.length === 0 ? null : v;
}

const oneLine = (subject: string): string => subject.split('\n').filter((s) => s !== '').join(', ');

function samePublicKey(a: KeyObject, b: KeyObject): boolean {
  return a.export({ type: 'spki', format: 'der' }).equals(b.export({ type: 'spki', format: 'der' }));
}

/** Every problem of one certificate (an empty list: fit for its purpose now). */
export function checkCertificate(input: CertCheckInput): CertCheck {
  const problems: CertProblem[] = [];
  let cert: X509Certificate;
  try {
    cert = new X509Certificate(input.certPem);
  } catch (e) {
    return { problems: [{ code: 'CERT_UNREADABLE', message: `${input.what}: not a PEM certificate (${e instanceof Error ? e.message : String(e)})` }], subject: null, notAfterMs: null };
  }
  const subject = oneLine(cert.subject);
  const notBefore = Date.parse(cert.validFrom);
  const notAfter = Date.parse(cert.validTo);
  if (cert.ca) problems.push({ code: 'IS_CA', message: `${input.what} (${subject}) is a CA certificate, not a ${input.purpose === 'serverAuth' ? 'server' : 'client'} certificate` });
  const eku = extendedKeyUsage(cert);
  if (eku !== null && !eku.includes(EKU_OID[input.purpose])) {
    const has = eku.map((o) => (o === EKU_OID.serverAuth ? 'serverAuth' : o === EKU_OID.clientAuth ? 'clientAuth' : o)).join(', ');
    const hint = input.purpose === 'serverAuth' ? ' (mint one with: nixfleet mint-server-cert)' : ' (a server certificate cannot identify a client: nixfleet mint-operator-cert / mint-host-cert)';
    problems.push({ code: 'WRONG_PURPOSE', message: `${input.what} (${subject}) is not valid for ${input.purpose}: its extended key usage is ${has}${hint}` });
  }
  if (Number.isFinite(notAfter) && input.nowMs > notAfter) problems.push({ code: 'EXPIRED', message: `${input.what} (${subject}) expired on ${new Date(notAfter).toISOString()}` });
  if (Number.isFinite(notBefore) && input.nowMs < notBefore) problems.push({ code: 'NOT_YET_VALID', message: `${input.what} (${subject}) is not valid before ${new Date(notBefore).toISOString()} (check the clock)` });
  if (input.keyPem !== undefined) {
    const keyWhat = input.keyWhat ?? 'the key';
    try {
      const key = createPrivateKey(input.keyPem);
      if (!samePublicKey(createPublicKey(key), cert.publicKey)) problems.push({ code: 'KEY_MISMATCH', message: `${keyWhat} does not belong to ${input.what} (${subject}): it is the key of another certificate` });
    } catch {
      problems.push({ code: 'KEY_UNREADABLE', message: `${keyWhat}: not a PEM private key` });
    }
  }
  if (input.caPem !== undefined) {
    const cas: X509Certificate[] = [];
    for (const pem of splitPemCertificates(input.caPem)) {
      try {
        cas.push(new X509Certificate(pem));
      } catch {
        /* reported below when none is readable */
      }
    }
    if (cas.length === 0) problems.push({ code: 'CA_UNREADABLE', message: `the fleet CA file holds no readable PEM certificate` });
    else if (!cas.some((ca) => cert.checkIssued(ca) && cert.verify(ca.publicKey))) {
      problems.push({ code: 'NOT_ISSUED_BY_CA', message: `${input.what} (${subject}) was not issued by the fleet CA (${cas.map((c) => oneLine(c.subject)).join('; ')}); its issuer is ${oneLine(cert.issuer)}` });
    }
  }
  return { problems, subject, notAfterMs: Number.isFinite(notAfter) ? notAfter : null };
}
