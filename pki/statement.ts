/**
 * Statements signed with a certificate's key (issue 15: operator checkpoints of the audit chain).
 * The operator signs the JCS bytes of what it checkpoints with the private key of its client
 * certificate (ECDSA P-256, or RSA for older certificates; SHA-256) and keeps the certificate with
 * the signature, so that anyone holding the fleet CA can check both offline. node:crypto does the
 * signing and the X.509 parsing; nothing here is hand-rolled.
 */
import { sign, verify, X509Certificate } from 'node:crypto';
import { err, ok, type Result } from '../protocol/result.ts';
import { readCertIdentity, isIssuedBy } from './pki.ts';

export type CertSignature = { certificate: string; value: string };
export type StatementError = { code: 'SIGNATURE_INVALID' | 'SIGNER_NOT_ISSUED' | 'SIGNER_MISMATCH'; message: string };

/** Sign `bytes` with the PEM private key `keyPem`; the signature travels with `certPem`. */
export function signStatement(bytes: Uint8Array, keyPem: string, certPem: string): CertSignature {
  return { certificate: certPem, value: sign('sha256', bytes, keyPem).toString('base64') };
}

/**
 * Check a statement's signature under the certificate it carries, that the certificate names
 * `expected` (CN and OU), and — with the fleet CA — that the CA issued it.
 */
export async function verifyStatement(bytes: Uint8Array, s: CertSignature, expected: { cn: string; ou: string }, caPem: string | null): Promise<Result<{ caChecked: boolean }, StatementError>> {
  let good = false;
  try {
    good = verify('sha256', bytes, new X509Certificate(s.certificate).publicKey, Buffer.from(s.value, 'base64'));
  } catch {
    good = false;
  }
  if (!good) return err({ code: 'SIGNATURE_INVALID', message: 'the signature does not verify under the certificate it carries' });
  const id = readCertIdentity(s.certificate);
  if (id.commonName !== expected.cn || id.organizationalUnit !== expected.ou) {
    return err({ code: 'SIGNER_MISMATCH', message: `signed by CN=${id.commonName ?? '?'}, OU=${id.organizationalUnit ?? '?'}, not CN=${expected.cn}, OU=${expected.ou}` });
  }
  if (caPem === null) return ok({ caChecked: false });
  if (!(await isIssuedBy(caPem, s.certificate))) return err({ code: 'SIGNER_NOT_ISSUED', message: `the signing certificate (CN=${id.commonName}) was not issued by the fleet CA given` });
  return ok({ caChecked: true });
}
