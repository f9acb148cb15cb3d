import { X509Certificate, createPrivateKey as createKey } from 'node:crypto';
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { createServer } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { TLSSocket } from 'node:tls';
import { Client } from 'undici';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { mintHostCert } from '../../pki/pki.ts';
import { loadBenchPki } from './certs.ts';

const test = suite('bench/lib/certs');
const dir = mkdtempSync(join(tmpdir(), 'bench-certs-'));
const names = ['web-01', 'web-02', 'db-01'];
const pki = await loadBenchPki(names, { cacheDir: dir });
const caX509 = new X509Certificate(pki.ca.certPem);

test.after(() => rmSync(dir, { recursive: true, force: true }));

/** The parts of a certificate that make it a host certificate of this fleet, as Node reads them. */
function shape(pem: string) {
  const c = new X509Certificate(pem);
  return { subject: c.subject.replace(/^CN=.*$/m, 'CN=*'), issuer: c.issuer, ca: c.ca, keyUsage: c.keyUsage, extKeyUsage: c.toLegacyObject().ext_key_usage };
}

test('mints one certificate per name, signed by the bench CA, with the host identity', () => {
  assert.is(pki.minted, true);
  assert.equal(pki.hosts.map((h) => h.name), names);
  for (const h of pki.hosts) {
    const c = new X509Certificate(h.certPem);
    assert.ok(c.verify(caX509.publicKey), `${h.name} signed by the CA`);
    assert.ok(c.checkIssued(caX509), `${h.name} issued by the CA`);
    assert.match(c.subject, new RegExp(`^CN=${h.name}$`, 'm'));
    assert.match(c.subject, /^OU=host$/m);
    assert.is(c.serialNumber.toLowerCase(), h.serial);
    assert.is(c.ca, false);
    assert.ok(c.checkPrivateKey(createKey(pki.hostKeyPem)), 'the shared key belongs to the certificate');
  }
  assert.is(new Set(pki.hosts.map((h) => h.serial)).size, names.length);
});

test('same subject layout, issuer, key usages and CA flag as pki/pki.ts mintHostCert', async () => {
  const ref = await mintHostCert(pki.ca, 'web-01');
  assert.equal(shape(pki.hosts[0]!.certPem), shape(ref.certPem));
  const ours = new X509Certificate(pki.hosts[0]!.certPem).toLegacyObject();
  const theirs = new X509Certificate(ref.certPem).toLegacyObject();
  assert.is(ours.infoAccess, theirs.infoAccess);
  assert.is(ours.subjectaltname, theirs.subjectaltname);
});

test('a second load reads the cache; other names mint a new set', async () => {
  const again = await loadBenchPki(names, { cacheDir: dir });
  assert.is(again.minted, false);
  assert.equal(again.hosts, pki.hosts);
  const other = await loadBenchPki(['x-1'], { cacheDir: dir });
  assert.is(other.minted, true);
  assert.is(readdirSync(dir).filter((f) => f.endsWith('.json')).length, 2);
});

test('a real mTLS handshake with a bench host certificate presents its CN and OU to the server', async () => {
  const server = createServer(
    { cert: pki.server.certPem, key: pki.server.keyPem, ca: pki.ca.certPem, requestCert: true, rejectUnauthorized: true },
    (req, res) => {
      const peer = (req.socket as TLSSocket).getPeerCertificate();
      res.end(`${String(peer.subject.CN)}/${String(peer.subject.OU)}/${peer.serialNumber.toLowerCase() === pki.hosts[1]!.serial}`);
    },
  );
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as { port: number }).port;
  const h = pki.hosts[1]!;
  const client = new Client(`https://127.0.0.1:${port}`, { connect: { ca: pki.ca.certPem, cert: h.certPem, key: pki.hostKeyPem, servername: 'localhost' } });
  try {
    const r = await client.request({ path: '/', method: 'GET' });
    assert.is(await r.body.text(), 'web-02/host/true');
  } finally {
    await client.close();
    server.close();
  }
});

test('the TLS layer refuses a bench host certificate from another CA', async () => {
  const other = await loadBenchPki(['web-01'], { cacheDir: mkdtempSync(join(dir, 'other-')) });
  const server = createServer({ cert: pki.server.certPem, key: pki.server.keyPem, ca: pki.ca.certPem, requestCert: true, rejectUnauthorized: true }, (_q, res) => res.end('no'));
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as { port: number }).port;
  const client = new Client(`https://127.0.0.1:${port}`, { connect: { ca: pki.ca.certPem, cert: other.hosts[0]!.certPem, key: other.hostKeyPem, servername: 'localhost' } });
  try {
    let failed = false;
    try {
      const r = await client.request({ path: '/', method: 'GET' });
      await r.body.text();
    } catch {
      failed = true;
    }
    assert.ok(failed, 'request with a foreign certificate must fail');
  } finally {
    await client.destroy();
    server.close();
  }
});

test.run();
