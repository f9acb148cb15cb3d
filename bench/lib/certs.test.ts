import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { createServer } from 'node:https';
import type { TLSSocket } from 'node:tls';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import forge from 'node-forge';
import { Client } from 'undici';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { isIssuedBy, mintHostCert, readCertIdentity } from '../../cli/pki.ts';
import { loadBenchPki } from './certs.ts';

const test = suite('bench/lib/certs');
const dir = mkdtempSync(join(tmpdir(), 'bench-certs-'));
const names = ['web-01', 'web-02', 'db-01'];
const pki = loadBenchPki(names, { cacheDir: dir });

test.after(() => rmSync(dir, { recursive: true, force: true }));

test('mints one certificate per name, issued by the bench CA, with the host identity', () => {
  assert.is(pki.minted, true);
  assert.equal(pki.hosts.map((h) => h.name), names);
  for (const h of pki.hosts) {
    assert.ok(isIssuedBy(pki.ca.certPem, h.certPem), h.name);
    const id = readCertIdentity(h.certPem);
    assert.is(id.commonName, h.name);
    assert.is(id.organizationalUnit, 'host');
    assert.is(id.serial, h.serial);
    assert.is(id.isCa, false);
  }
  assert.is(new Set(pki.hosts.map((h) => h.serial)).size, names.length);
});

test('same subject and extensions as cli/pki.ts mintHostCert', () => {
  const ref = forge.pki.certificateFromPem(mintHostCert(pki.ca, 'web-01').certPem);
  const ours = forge.pki.certificateFromPem(pki.hosts[0]!.certPem);
  const subj = (c: forge.pki.Certificate) => c.subject.attributes.map((a) => `${a.shortName}=${String(a.value)}`);
  assert.equal(subj(ours), subj(ref));
  assert.equal(ours.issuer.hash, ref.issuer.hash);
  const exts = (c: forge.pki.Certificate) => (c.extensions as { name: string; critical?: boolean }[]).map((e) => `${e.name}:${e.critical === true}`);
  assert.equal(exts(ours), exts(ref));
  assert.is(ours.siginfo.algorithmOid, ref.siginfo.algorithmOid);
});

test('a second load reads the cache; other names mint a new set', () => {
  const again = loadBenchPki(names, { cacheDir: dir });
  assert.is(again.minted, false);
  assert.equal(again.hosts, pki.hosts);
  const other = loadBenchPki(['x-1'], { cacheDir: dir });
  assert.is(other.minted, true);
  assert.is(readdirSync(dir).filter((f) => f.endsWith('.json')).length, 2);
});

test('a real mTLS handshake with a bench host certificate presents its CN and OU to the server', async () => {
  const server = createServer(
    { cert: pki.server.certPem, key: pki.server.keyPem, ca: pki.ca.certPem, requestCert: true, rejectUnauthorized: true },
    (req, res) => {
      const peer = (req.socket as TLSSocket).getPeerCertificate();
      res.end(`${String(peer.subject.CN)}/${String(peer.subject.OU)}`);
    },
  );
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as { port: number }).port;
  const h = pki.hosts[1]!;
  const client = new Client(`https://127.0.0.1:${port}`, { connect: { ca: pki.ca.certPem, cert: h.certPem, key: pki.hostKeyPem, servername: 'localhost' } });
  try {
    const r = await client.request({ path: '/', method: 'GET' });
    assert.is(await r.body.text(), 'web-02/host');
  } finally {
    await client.close();
    server.close();
  }
});

test.run();
