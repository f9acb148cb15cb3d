/**
 * Peer identity (identity.ts): the issuer OpenSSL found is read once per client certificate
 * (issue 19: Node's detailed chain read is most of a connection's identity cost), and every
 * connection still gets its own certificate's fields.
 */
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { peerIdentity, type PeerSocket } from './identity.ts';

const t = suite('identity');

type Fake = { leaf: string | undefined; issuer: string | 'self' | null; cn: string; serial: string };

/** A socket whose certificate reads are counted: `detailed` counts getPeerCertificate(true). */
function socket(f: Fake): PeerSocket & { detailed: number } {
  const s = {
    authorized: true,
    detailed: 0,
    getPeerCertificate(detailed?: boolean) {
      const cert: Record<string, unknown> = { subject: { CN: f.cn, OU: 'host' }, issuer: { CN: 'ca' }, valid_from: 'Jan  1 00:00:00 2026 GMT', valid_to: 'Jan  1 00:00:00 2027 GMT', serialNumber: f.serial, fingerprint256: f.leaf };
      if (detailed === true) {
        s.detailed++;
        cert['issuerCertificate'] = f.issuer === 'self' ? cert : f.issuer === null ? undefined : { fingerprint256: f.issuer };
      }
      return cert;
    },
  };
  return s as unknown as PeerSocket & { detailed: number };
}

t('the issuer is read in detail once per certificate; each connection has its own fields', () => {
  const a1 = socket({ leaf: 'LEAF:A', issuer: 'ISSUER:1', cn: 'web-1', serial: '0A' });
  const a2 = socket({ leaf: 'LEAF:A', issuer: 'ISSUER:1', cn: 'web-1', serial: '0A' });
  const b = socket({ leaf: 'LEAF:B', issuer: 'ISSUER:2', cn: 'web-2', serial: '0B' });
  assert.is(peerIdentity(a1)?.issuerFingerprint256, 'ISSUER:1');
  assert.is(a1.detailed, 1);
  const again = peerIdentity(a2);
  assert.is(again?.issuerFingerprint256, 'ISSUER:1');
  assert.is(again?.cn, 'web-1');
  assert.is(a2.detailed, 0, 'the same certificate on a new connection: no detailed read');
  const other = peerIdentity(b);
  assert.equal([other?.cn, other?.serial, other?.issuerFingerprint256, b.detailed], ['web-2', '0B', 'ISSUER:2', 1]);
});

t('a self-signed certificate has no known issuer, also when remembered', () => {
  const s1 = socket({ leaf: 'LEAF:SELF', issuer: 'self', cn: 'x', serial: '01' });
  const s2 = socket({ leaf: 'LEAF:SELF', issuer: 'self', cn: 'x', serial: '01' });
  assert.is(peerIdentity(s1)?.issuerFingerprint256, null);
  assert.is(peerIdentity(s2)?.issuerFingerprint256, null);
  assert.is(s2.detailed, 0);
});

t('without a leaf fingerprint nothing is remembered: each connection reads the chain', () => {
  const s1 = socket({ leaf: undefined, issuer: 'ISSUER:3', cn: 'y', serial: '02' });
  const s2 = socket({ leaf: undefined, issuer: 'ISSUER:4', cn: 'y', serial: '02' });
  assert.is(peerIdentity(s1)?.issuerFingerprint256, 'ISSUER:3');
  assert.is(peerIdentity(s2)?.issuerFingerprint256, 'ISSUER:4');
  assert.is(s2.detailed, 1);
});

t('an unauthorised socket has no identity and is not read', () => {
  const s = socket({ leaf: 'LEAF:C', issuer: 'ISSUER:1', cn: 'z', serial: '03' });
  (s as { authorized?: boolean }).authorized = false;
  assert.is(peerIdentity(s), null);
  assert.is(s.detailed, 0);
});

t.run();
