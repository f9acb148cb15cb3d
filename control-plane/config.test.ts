import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { createFleetCa, mintServerCert } from '../pki/pki.ts';
import { createIssuanceCa } from '../pki/x509.ts';
import { mintReleaseKey, trustFor, writeKeyFile, writeTrustFile } from '../fixtures/keys.ts';
import { DEFAULTS, loadStartupMaterial, resolveConfig, storeConfig, type Config } from './config.ts';

const dir = mkdtempSync(join(tmpdir(), 'nixfleet-cp-config-'));
const ca = await createFleetCa({ commonName: 'fleet CA' });
const server = await mintServerCert(ca, {});
const release = mintReleaseKey('ed25519', 1);
const files = {
  caCert: join(dir, 'ca.pem'),
  caKey: join(dir, 'ca.key'),
  caBundleWithKey: join(dir, 'ca-and-key.pem'),
  cert: join(dir, 'server.pem'),
  key: join(dir, 'server.key'),
  trust: writeTrustFile(dir, trustFor(release)),
  releaseKey: writeKeyFile(dir, release),
};
writeFileSync(files.caCert, ca.certPem);
writeFileSync(files.caKey, ca.keyPem);
writeFileSync(files.caBundleWithKey, ca.certPem + ca.keyPem);
writeFileSync(files.cert, server.certPem);
writeFileSync(files.key, server.keyPem);

const base = {
  tlsCertFile: files.cert,
  tlsKeyFile: files.key,
  clientCaFile: files.caCert,
  trustFile: files.trust,
  dbPath: join(dir, 'cp.db'),
  source: { type: 'dir', dir: join(dir, 'releases') },
};

function config(over: Record<string, unknown> = {}): Config {
  const r = resolveConfig({ ...base, ...over });
  if (!r.ok) throw new Error(r.error.message);
  return r.value;
}

const t = suite('config');

t('defaults are frozen and filled in', () => {
  assert.ok(Object.isFrozen(DEFAULTS));
  const c = config();
  assert.is(c.pollIntervalSecs, 60);
  assert.is(c.reconcileIntervalSecs, 10);
  assert.is(c.confirmDeadlineSecs, 120);
  assert.is(c.offlineAfterSecs, 180);
  assert.is(c.keepAliveSecs, 10);
  assert.equal(c.source, { type: 'dir', dir: join(dir, 'releases') });
});

t('keepAliveSecs: a positive integer of seconds (idle keep-alive of agent connections)', () => {
  assert.is(config({ keepAliveSecs: 5 }).keepAliveSecs, 5);
  for (const bad of [0, -1, 1.5, '5']) {
    const r = resolveConfig({ ...base, keepAliveSecs: bad });
    assert.ok(!r.ok && r.error.message.includes('keepAliveSecs'), String(bad));
  }
});

t('every bad field is reported at once; unknown key-ish settings hint at the keyless rule', () => {
  const r = resolveConfig({ pollIntervalSecs: -1, releaseKeyFile: '/x', source: { type: 'ftp' } });
  assert.is(r.ok, false);
  if (r.ok) return;
  assert.is(r.error.code, 'CONFIG_INVALID');
  for (const want of ['tlsCertFile', 'tlsKeyFile', 'clientCaFile', 'trustFile', 'dbPath', 'pollIntervalSecs', 'source.type', 'releaseKeyFile: unknown setting (the control plane holds no signing or CA key)']) {
    assert.ok(r.error.message.includes(want), `${want} in ${r.error.message}`);
  }
  assert.is(resolveConfig('nope').ok, false);
});

t('source shapes: url needs http(s), git defaults ref and path, revocations url required when enforced', () => {
  assert.is(resolveConfig({ ...base, source: { type: 'url', fleetUrl: 'file:///x' } }).ok, false);
  const g = config({ source: { type: 'git', remote: '/srv/repo.git' } });
  assert.equal(g.source, { type: 'git', remote: '/srv/repo.git', ref: 'main', path: 'releases' });
  assert.is(resolveConfig({ ...base, source: { type: 'git', remote: '--upload-pack=x' } }).ok, false);
  assert.is(resolveConfig({ ...base, revocations: true, source: { type: 'url', fleetUrl: 'https://x/f.json' } }).ok, false);
  assert.is(config({ listenPort: 0 }).listenPort, 0);
});

t('good mTLS material and trust load', () => {
  const m = loadStartupMaterial(config());
  assert.ok(m.ok, m.ok ? '' : m.error.message);
  if (m.ok) assert.is(m.value.trust.ciReleaseKey.current?.public, release.publicKeyB64);
});

function refused(over: Record<string, unknown>, code: string, pattern: RegExp): void {
  const m = loadStartupMaterial(config(over));
  assert.is(m.ok, false);
  if (m.ok) return;
  assert.is(m.error.code, code, m.error.message);
  assert.match(m.error.message, pattern);
}

t('missing mTLS material refuses to start with the reason', () => {
  refused({ clientCaFile: join(dir, 'absent.pem') }, 'MTLS_MISSING', /clientCaFile|fleet CA certificate.*cannot read/);
  refused({ tlsCertFile: join(dir, 'absent.pem') }, 'MTLS_MISSING', /server certificate/);
  refused({ tlsKeyFile: join(dir, 'absent.key') }, 'MTLS_MISSING', /server key/);
  refused({ clientCaFile: files.cert }, 'MTLS_MISSING', /not a CA certificate/);
});

t('a CA key anywhere is refused', () => {
  refused({ clientCaFile: files.caBundleWithKey }, 'PRIVATE_KEY_REFUSED', /fleet CA key must stay with the operator/);
  refused({ tlsCertFile: files.caCert, tlsKeyFile: files.caKey }, 'PRIVATE_KEY_REFUSED', /is a CA certificate/);
  refused({ tlsKeyFile: files.caKey }, 'PRIVATE_KEY_REFUSED', /fleet CA's private key/);
});

t('a release signing key is refused as trust file and as TLS key', () => {
  refused({ trustFile: files.releaseKey }, 'PRIVATE_KEY_REFUSED', /holds a private key/);
  refused({ tlsKeyFile: files.releaseKey }, 'PRIVATE_KEY_REFUSED', /does not belong to the server certificate/);
});

t('a broken trust file is a clear error', () => {
  const p = join(dir, 'bad-trust.json');
  writeFileSync(p, '{"schemaVersion": 1, "schemaVersion": 1}');
  refused({ trustFile: p }, 'TRUST_INVALID', /trustFile/);
});

t('store: SQLite at dbPath by default; PostgreSQL by URL or parameters; bad shapes refused', () => {
  assert.equal(storeConfig(config()), { sqlite: { path: join(dir, 'cp.db') } });
  assert.equal(storeConfig(config({ store: { sqlite: { path: '/var/lib/x.sqlite' } } })), { sqlite: { path: '/var/lib/x.sqlite' } });
  const byUrl = config({ store: { postgres: { url: 'postgres://cp@db.example/nixfleet', passwordFile: '/run/secrets/pg' } } });
  assert.equal(storeConfig(byUrl), { postgres: { url: 'postgres://cp@db.example/nixfleet', passwordFile: '/run/secrets/pg' } });
  const byParams = config({ store: { postgres: { host: '/run/postgresql', database: 'nixfleet', user: 'nixfleet', tls: { caFile: '/etc/ca.pem' } } } });
  assert.equal(storeConfig(byParams), { postgres: { host: '/run/postgresql', database: 'nixfleet', user: 'nixfleet', tls: { caFile: '/etc/ca.pem' } } });
  for (const bad of [
    { postgres: { url: 'mysql://x' } },
    { postgres: { host: 'db' } },
    { postgres: { url: 'postgres://x', password: 'hunter2' } },
    { sqlite: {} },
    { mongodb: {} },
  ]) {
    const r = resolveConfig({ ...base, store: bad });
    assert.is(r.ok, false, JSON.stringify(bad));
    if (!r.ok) assert.match(r.error.message, /\$\.store/);
  }
});

t('issue 16 enrolment: the constrained issuance intermediate is accepted; the root CA key, a release key, an unconstrained CA or a foreign intermediate are refused', async () => {
  const issuance = await createIssuanceCa(ca);
  const w = (name: string, text: string) => {
    const p = join(dir, name);
    writeFileSync(p, text);
    return p;
  };
  const enrolment = (certPem: string, keyPem: string, tag: string) => ({
    enrolment: { issuerCertFile: w(`iss-${tag}.pem`, certPem), issuerKeyFile: w(`iss-${tag}.key`, keyPem), listenPort: 0, usedTokensFile: join(dir, 'used.json') },
  });
  const good = loadStartupMaterial(config(enrolment(issuance.certPem, issuance.keyPem, 'good')));
  assert.ok(good.ok, good.ok ? '' : good.error.message);
  if (good.ok) {
    assert.ok(good.value.issuer !== null);
    assert.ok(good.value.tls.ca.includes(issuance.certPem.trim()), 'the intermediate joins the TLS trust store');
    assert.is(good.value.pins.host.size, 2, 'hosts: the fleet CA and the intermediate');
    assert.is(good.value.pins.operator.size, 1, 'operators: the fleet CA only');
  }
  const refused = (over: Record<string, unknown>) => {
    const r = loadStartupMaterial(config(over));
    return r.ok ? 'ok' : r.error.code;
  };
  assert.is(refused(enrolment(ca.certPem, ca.keyPem, 'root')), 'PRIVATE_KEY_REFUSED', 'the fleet root CA key');
  assert.is(refused(enrolment(issuance.certPem, ca.keyPem, 'rootkey')), 'PRIVATE_KEY_REFUSED', 'the root key beside the intermediate certificate');
  assert.is(refused(enrolment(issuance.certPem, readFileSync(files.releaseKey, 'utf8'), 'release')), 'PRIVATE_KEY_REFUSED', 'a release key');
  // A CA without the constraints (here a general-purpose root): refused before anything else is checked.
  const other = await createFleetCa({ commonName: 'unconstrained' });
  assert.is(refused(enrolment(other.certPem, other.keyPem, 'unconstrained')), 'PRIVATE_KEY_REFUSED');
  const foreign = await createIssuanceCa(other);
  assert.is(refused(enrolment(foreign.certPem, foreign.keyPem, 'foreign')), 'CONFIG_INVALID', 'not issued by the fleet CA');
});

t.after(() => rmSync(dir, { recursive: true, force: true }));
t.run();
