import { X509Certificate, webcrypto } from 'node:crypto';
import { once } from 'node:events';
import type { AddressInfo } from 'node:net';
import tls from 'node:tls';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { x509 } from './x509-lib.ts';
import { createFleetCa, mintServerCert } from './pki.ts';
import { createCsr, createIssuanceCa, generateEcKey, issueHostCert, parseCsr, signClientCert, type CertKeyPem } from './x509.ts';

const NOW = new Date(Math.floor(Date.now() / 1000) * 1000);
const root = await createFleetCa({ commonName: 'test fleet CA', validityDays: 30, now: NOW });
const server = await mintServerCert(root, {});
const issuance = await createIssuanceCa(root, { now: NOW });

const t = suite('pki/x509');

async function hostCert(name: string): Promise<CertKeyPem> {
  const { keys, keyPem } = await generateEcKey();
  const c = await issueHostCert(issuance, name, keys.publicKey, { now: NOW });
  return { certPem: c.certPem, keyPem };
}

/** A real mutual-TLS handshake: the server trusts the root and the intermediate (as the CP does). */
async function handshake(client: CertKeyPem): Promise<{ ok: boolean; cn?: string; ou?: string }> {
  const srv = tls.createServer({ cert: server.certPem, key: server.keyPem, ca: [root.certPem, issuance.certPem], requestCert: true, rejectUnauthorized: true }, (sock) => {
    const peer = sock.getPeerCertificate();
    sock.end(JSON.stringify({ cn: peer.subject?.CN, ou: peer.subject?.OU }));
  });
  srv.on('tlsClientError', () => {});
  srv.listen(0, '127.0.0.1');
  await once(srv, 'listening');
  const port = (srv.address() as AddressInfo).port;
  try {
    return await new Promise((resolve) => {
      const sock = tls.connect({ host: '127.0.0.1', port, ca: [root.certPem], servername: 'localhost', cert: client.certPem, key: client.keyPem });
      let data = '';
      sock.on('data', (d: Buffer) => (data += d.toString()));
      sock.on('end', () => resolve(data === '' ? { ok: false } : { ok: true, ...(JSON.parse(data) as { cn: string; ou: string }) }));
      sock.on('error', () => resolve({ ok: false }));
    });
  } finally {
    srv.close();
  }
}

t('the issuance intermediate: CA with pathLen 0, clientAuth only, name-constrained, issued by the root', () => {
  const c = new X509Certificate(issuance.certPem);
  assert.ok(c.ca);
  assert.ok(c.checkIssued(new X509Certificate(root.certPem)));
  assert.ok(c.verify(new X509Certificate(root.certPem).publicKey));
  const p = new x509.X509Certificate(issuance.certPem);
  const bc = p.getExtension(x509.BasicConstraintsExtension);
  assert.is(bc?.pathLength, 0);
  assert.equal([...(p.getExtension(x509.ExtendedKeyUsageExtension)?.usages ?? [])].map(String), ['1.3.6.1.5.5.7.3.2'], 'clientAuth only');
  const nc = p.extensions.find((e) => e.type === '2.5.29.30');
  assert.ok(nc?.critical, 'name constraints present and critical');
});

t('a host certificate it issues: O=nixfleet, OU=host, CN=<host>, ECDSA P-256, 30 days, clientAuth; accepted over real mTLS', async () => {
  const h = await hostCert('web1');
  const c = new X509Certificate(h.certPem);
  assert.is(c.subject, 'O=nixfleet\nOU=host\nCN=web1');
  assert.is(c.publicKey.asymmetricKeyType, 'ec');
  assert.is(Date.parse(c.validTo) - Date.parse(c.validFrom), 30 * 86_400_000);
  assert.equal(c.keyUsage, ['1.3.6.1.5.5.7.3.2']);
  assert.equal(await handshake(h), { ok: true, cn: 'web1', ou: 'host' });
});

t('the intermediate cannot mint an operator certificate: its key signing OU=operator fails chain verification', async () => {
  const { keys, keyPem } = await generateEcKey();
  const op = await signClientCert(issuance, 'O=nixfleet, OU=operator, CN=alice', keys.publicKey, { now: NOW });
  assert.is((await handshake({ certPem: op.certPem, keyPem })).ok, false, 'name constraints refuse OU=operator');
  // Even a subject that starts like a host but reorders the RDNs is outside the permitted subtree.
  const odd = await signClientCert(issuance, 'CN=web1, OU=host, O=nixfleet', keys.publicKey, { now: NOW });
  assert.is((await handshake({ certPem: odd.certPem, keyPem })).ok, false);
  // The same key signed by the root (an operator-minted certificate) is accepted: the handshake harness is not what fails.
  const byRoot = await signClientCert(root, 'O=nixfleet, OU=operator, CN=alice', keys.publicKey, { now: NOW });
  assert.equal(await handshake({ certPem: byRoot.certPem, keyPem }), { ok: true, cn: 'alice', ou: 'operator' });
});

t('the intermediate cannot mint a CA: a certificate below a pathLen-0 CA that is itself a CA does not verify', async () => {
  // (Another subject than its issuer's: a self-issued certificate would not count towards the path length, RFC 5280 §4.2.1.9.)
  const sub = await createIssuanceCa(issuance, { now: NOW, commonName: 'sub issuance' });
  const { keys, keyPem } = await generateEcKey();
  const leaf = await issueHostCert(sub, 'web1', keys.publicKey, { now: NOW });
  const chain = `${leaf.certPem}\n${sub.certPem}`;
  assert.is((await handshake({ certPem: chain, keyPem })).ok, false);
});

t('CSR: round trip; the hostname is the CN; the key is the one that signed it', async () => {
  const { keys } = await generateEcKey();
  const pem = await createCsr('web1', keys);
  const r = await parseCsr(pem);
  assert.ok(r.ok);
  if (!r.ok) return;
  assert.is(r.value.hostname, 'web1');
  const spki = new Uint8Array(await webcrypto.subtle.exportKey('spki', keys.publicKey));
  assert.equal(new Uint8Array(r.value.publicKey.rawData), spki);
});

t('CSR: garbage, wrong key type, bad signature, bad subject are refused with their codes', async () => {
  const code = async (pem: string) => {
    const r = await parseCsr(pem);
    return r.ok ? 'ok' : r.error.code;
  };
  assert.is(await code('hello'), 'CSR_UNREADABLE');
  assert.is(await code('-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n-----END CERTIFICATE REQUEST-----\n'), 'CSR_UNREADABLE');
  const rsa = (await webcrypto.subtle.generateKey({ name: 'RSASSA-PKCS1-v1_5', modulusLength: 2048, publicExponent: new Uint8Array([1, 0, 1]), hash: 'SHA-256' }, true, ['sign', 'verify'])) as webcrypto.CryptoKeyPair;
  const rsaCsr = await x509.Pkcs10CertificateRequestGenerator.create({ name: 'CN=web1', keys: rsa, signingAlgorithm: { name: 'RSASSA-PKCS1-v1_5', hash: 'SHA-256' } });
  assert.is(await code(rsaCsr.toString('pem')), 'CSR_KEY_TYPE');
  const p384 = (await webcrypto.subtle.generateKey({ name: 'ECDSA', namedCurve: 'P-384' }, true, ['sign', 'verify'])) as webcrypto.CryptoKeyPair;
  const p384Csr = await x509.Pkcs10CertificateRequestGenerator.create({ name: 'CN=web1', keys: p384, signingAlgorithm: { name: 'ECDSA', hash: 'SHA-384' } });
  assert.is(await code(p384Csr.toString('pem')), 'CSR_KEY_TYPE');
  const { keys } = await generateEcKey();
  const twoRdns = await x509.Pkcs10CertificateRequestGenerator.create({ name: 'CN=web1, OU=operator', keys, signingAlgorithm: { name: 'ECDSA', hash: 'SHA-256' } });
  assert.is(await code(twoRdns.toString('pem')), 'CSR_SUBJECT');
  const badName = await x509.Pkcs10CertificateRequestGenerator.create({ name: 'CN=web 1', keys, signingAlgorithm: { name: 'ECDSA', hash: 'SHA-256' } });
  assert.is(await code(badName.toString('pem')), 'CSR_SUBJECT');
  // Signed by another key than the one it carries: flip a byte of the signature.
  const good = new x509.Pkcs10CertificateRequest(await createCsr('web1', keys));
  const der = new Uint8Array(good.rawData);
  der[der.length - 3] = der[der.length - 3]! ^ 0x01;
  assert.is(await code(x509.PemConverter.encode(der, 'CERTIFICATE REQUEST')), 'CSR_SIGNATURE_INVALID');
});

t.run();
