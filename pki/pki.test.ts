import { X509Certificate, createPrivateKey } from 'node:crypto';
import { once } from 'node:events';
import type { AddressInfo } from 'node:net';
import tls from 'node:tls';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import {
  containsPrivateKeyPem,
  createFleetCa,
  isIssuedBy,
  mintHostCert,
  mintOperatorCert,
  mintServerCert,
  readCertIdentity,
} from './pki.ts';

// Real handshakes below need certificates valid now: base every date on the current second.
const NOW = new Date(Math.floor(Date.now() / 1000) * 1000);
const ca = await createFleetCa({ commonName: 'test fleet CA', validityDays: 30, now: NOW });
const otherCa = await createFleetCa({ commonName: 'other CA', validityDays: 30, now: NOW });

const pki = suite('pki');

pki('fleet CA is a self-signed ECDSA P-256 CA certificate with the given CN and validity', async () => {
  const id = readCertIdentity(ca.certPem);
  assert.is(id.commonName, 'test fleet CA');
  assert.ok(id.isCa);
  assert.is(id.notBefore.toISOString(), NOW.toISOString());
  assert.is(id.notAfter.getTime() - NOW.getTime(), 30 * 86_400_000);
  assert.ok(await isIssuedBy(ca.certPem, ca.certPem));
  assert.ok(containsPrivateKeyPem(ca.keyPem));
  assert.not.ok(containsPrivateKeyPem(ca.certPem));
  const x = new X509Certificate(ca.certPem);
  assert.ok(x.ca);
  assert.is(x.publicKey.asymmetricKeyType, 'ec');
  assert.is(x.publicKey.asymmetricKeyDetails?.namedCurve, 'prime256v1');
});

pki('host certificate: CN = hostname, OU host, issued by the CA, not by another CA', async () => {
  const nb = new Date(NOW.getTime() - 3_600_000 + 678);
  const host = await mintHostCert(ca, 'web1', { notBefore: nb, validityDays: 10 });
  const id = readCertIdentity(host.certPem);
  assert.is(id.commonName, 'web1');
  assert.is(id.organizationalUnit, 'host');
  assert.not.ok(id.isCa);
  assert.is(id.serial, host.serial);
  const want = new Date(NOW.getTime() - 3_600_000).toISOString(); // UTCTime has whole seconds
  assert.is(id.notBefore.toISOString(), want);
  assert.is(host.notBefore.toISOString(), want);
  assert.ok(await isIssuedBy(ca.certPem, host.certPem));
  assert.not.ok(await isIssuedBy(otherCa.certPem, host.certPem));
  const x = new X509Certificate(host.certPem);
  assert.ok(x.checkIssued(new X509Certificate(ca.certPem)));
  assert.ok(x.verify(new X509Certificate(ca.certPem).publicKey));
  assert.is(x.keyUsage?.includes('1.3.6.1.5.5.7.3.2'), true, 'clientAuth');
  assert.is(x.publicKey.asymmetricKeyType, 'ec');
  assert.ok(x.checkPrivateKey(createPrivateKey(host.keyPem)), 'the key belongs to the certificate');
});

pki('operator certificate: OU operator; serials differ', async () => {
  const a = await mintOperatorCert(ca, 'alice');
  const b = await mintOperatorCert(ca, 'alice');
  assert.is(readCertIdentity(a.certPem).organizationalUnit, 'operator');
  assert.is(readCertIdentity(a.certPem).commonName, 'alice');
  assert.is.not(a.serial, b.serial);
});

/** The promise rejects with an Error whose message matches. */
async function rejects(p: Promise<unknown>, re: RegExp): Promise<void> {
  try {
    await p;
  } catch (e) {
    assert.match(String(e), re);
    return;
  }
  assert.unreachable('expected a rejection');
}

pki('names that could confuse identity checks are refused', async () => {
  await rejects(mintHostCert(ca, ''), /not a valid name/);
  await rejects(mintHostCert(ca, 'web1,OU=operator'), /not a valid name/);
  await rejects(mintOperatorCert(ca, 'a b'), /not a valid name/);
  await rejects(mintServerCert(ca, { commonName: 'cp, OU=operator' }), /not a host name/);
});

pki('server certificate carries localhost and 127.0.0.1 in subjectAltName, serverAuth only', async () => {
  const s = await mintServerCert(ca, { hostnames: ['cp.example.org', '10.0.0.1'] });
  const x = new X509Certificate(s.certPem);
  const san = x.subjectAltName ?? '';
  for (const want of ['DNS:cp.example.org', 'DNS:localhost', 'IP Address:127.0.0.1', 'IP Address:10.0.0.1']) {
    assert.ok(san.includes(want), `${want} in ${san}`);
  }
  assert.is(readCertIdentity(s.certPem).commonName, 'cp.example.org');
  assert.equal(x.keyUsage, ['1.3.6.1.5.5.7.3.1']);
});

/** A real mutual-TLS handshake on loopback: the minted certificates must satisfy OpenSSL. */
async function handshake(client: { certPem: string; keyPem: string } | null, caPem: string): Promise<{ ok: boolean; peerCn?: string; peerOu?: string }> {
  const server = await mintServerCert(ca, {});
  const srv = tls.createServer({ cert: server.certPem, key: server.keyPem, ca: [caPem], requestCert: true, rejectUnauthorized: true }, (sock) => {
    const peer = sock.getPeerCertificate();
    sock.end(JSON.stringify({ cn: peer.subject?.CN, ou: peer.subject?.OU }));
  });
  srv.on('tlsClientError', () => {});
  srv.listen(0, '127.0.0.1');
  await once(srv, 'listening');
  const port = (srv.address() as AddressInfo).port;
  try {
    return await new Promise((resolve) => {
      const sock = tls.connect({
        host: '127.0.0.1',
        port,
        ca: [ca.certPem],
        servername: 'localhost',
        ...(client !== null ? { cert: client.certPem, key: client.keyPem } : {}),
      });
      let data = '';
      sock.on('data', (d: Buffer) => (data += d.toString()));
      sock.on('end', () => {
        if (data === '') resolve({ ok: false });
        else {
          const p = JSON.parse(data) as { cn: string; ou: string };
          resolve({ ok: true, peerCn: p.cn, peerOu: p.ou });
        }
      });
      sock.on('error', () => resolve({ ok: false }));
    });
  } finally {
    srv.close();
  }
}

pki('real mTLS handshake: host cert accepted with CN/OU visible, other CA and no cert refused', async () => {
  const host = await mintHostCert(ca, 'web1');
  const good = await handshake(host, ca.certPem);
  assert.equal(good, { ok: true, peerCn: 'web1', peerOu: 'host' });
  const foreign = await mintHostCert(otherCa, 'web1');
  assert.is((await handshake(foreign, ca.certPem)).ok, false);
  assert.is((await handshake(null, ca.certPem)).ok, false);
});

pki.run();
