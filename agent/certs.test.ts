/**
 * The agent's certificate lifecycle against a real control plane (issue 16): first-boot
 * enrolment with the SSH host key, files and modes; renewal at half-life (the agent's clock is
 * virtual, the certificates real); the old pair kept when the new one does not work; an
 * interrupted switch completed at start; an expired certificate replaced by enrolling again; with
 * several CP replicas (issue 17) the renewal reaches the one that answers.
 */
import { X509Certificate } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { sampleFleet, sampleRevocations } from '../fixtures/artifacts.ts';
import { enrolmentFor, makeEnv, startCp, type Env, type RunningCp } from '../fixtures/cp-testing.ts';
import { mintHostKey } from '../fixtures/keys.ts';
import { lineLogger } from '../fixtures/logs.ts';
import type { CheckinRequest } from '../protocol/api.ts';
import type { PrivateKey } from '../protocol/crypto.ts';
import { ensureCertificate, RenewingClient, renewOnReplicas, singleConnection, type Connection } from './certs.ts';
import { CpClient, type TlsMaterial } from './client.ts';
import { resolveConfig, type Config } from './config.ts';
import { FailoverClient } from './failover.ts';

const env: Env = await makeEnv('nixfleet-agent-certs-');
const fleet = sampleFleet({ hosts: 2, waves: 1, closures: true, withPubkeys: true });
const HOST = 'host-0000';
const hostKey: PrivateKey = { algorithm: 'ed25519', secretKey: mintHostKey(0).secretKey };
const LIFETIME_SECS = 120;

let cp: RunningCp;
const t = suite('agent certificates');
const logs: string[] = [];
const log = lineLogger((m) => void logs.push(m));

function config(dir: string): Config {
  const r = resolveConfig(
    {
      cpUrl: cp.url,
      tls: { certFile: join(dir, 'tls', 'host.pem'), keyFile: join(dir, 'tls', 'host.key'), caFile: env.files.caCert },
      hostKeyFile: null,
      stateDir: join(dir, 'state'),
      trustFile: env.trustFile,
      enrol: { url: cp.enrolUrl },
    },
    { hostname: HOST, platform: 'nixos' },
  );
  if (!r.ok) throw new Error(r.error.message);
  return r.value;
}
const checkin: CheckinRequest = { hostname: HOST, currentClosure: null, bootId: 'b', probes: [], failedUnits: [], lastOutcome: null };
const material = (c: Config): TlsMaterial => ({ cert: readFileSync(c.tls.certFile, 'utf8'), key: readFileSync(c.tls.keyFile, 'utf8'), ca: readFileSync(c.tls.caFile, 'utf8') });
const serial = (pem: string) => new X509Certificate(pem).serialNumber;
const connect = (c: Config) => (tls: TlsMaterial) => singleConnection(new CpClient({ cpUrl: c.cpUrl, tls, requestTimeoutSecs: 10, maxArtifactBytes: 1 << 20 }));
const noSleep = async () => {};

t.before(async () => {
  env.publish(fleet);
  env.publish(sampleRevocations([]), { kind: 'revocations' });
  cp = await startCp(env, (await enrolmentFor(env, { certValiditySecs: LIFETIME_SECS })).config);
});
t.after(async () => {
  await cp.stop();
  env.cleanup();
});

t('first boot: no certificate → enrol with the SSH host key; key and certificate 0600 in a 0700 directory; the next start finds them', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'nixfleet-certs-'));
  const c = config(dir);
  const r = await ensureCertificate(c, hostKey, { log, sleep: noSleep, attempts: 1 });
  assert.equal(r, { ok: true, value: 'enrolled' });
  assert.is(statSync(c.tls.keyFile).mode & 0o777, 0o600);
  assert.is(statSync(c.tls.certFile).mode & 0o777, 0o600);
  assert.is(statSync(join(dir, 'tls')).mode & 0o777, 0o700);
  const cert = new X509Certificate(readFileSync(c.tls.certFile, 'utf8'));
  assert.is(cert.subject, 'O=nixfleet\nOU=host\nCN=host-0000');
  assert.is(cert.publicKey.asymmetricKeyType, 'ec');
  assert.equal(await ensureCertificate(c, hostKey, { log, sleep: noSleep, attempts: 1 }), { ok: true, value: 'present' });
  // The wrong host key: refused, not retried, nothing written.
  const other = config(mkdtempSync(join(tmpdir(), 'nixfleet-certs-')));
  const bad = await ensureCertificate(other, { algorithm: 'ed25519', secretKey: mintHostKey(1).secretKey }, { log, sleep: noSleep, attempts: 5 });
  assert.is(bad.ok, false);
  if (!bad.ok) assert.match(bad.error.message, /ENROL_PROOF_INVALID/);
  assert.not.ok(existsSync(other.tls.certFile));
});

t('renewal at half-life: a new key and certificate, in place once they worked; the agent never loses contact', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'nixfleet-certs-'));
  const c = config(dir);
  await ensureCertificate(c, hostKey, { log, sleep: noSleep, attempts: 1 });
  const first = material(c);
  let now = Date.now();
  const client = new RenewingClient({ config: c, hostKey, connect: connect(c), now: () => now, log }, first);
  assert.ok((await client.checkin(checkin)).ok);
  assert.is(readFileSync(c.tls.certFile, 'utf8'), first.cert, 'not due yet');
  now += (LIFETIME_SECS / 2 + 1) * 1000;
  assert.ok((await client.checkin(checkin)).ok, 'the check-in that renewed went through');
  const second = material(c);
  assert.is.not(serial(second.cert), serial(first.cert));
  assert.is.not(second.key, first.key, 'a new key each time');
  assert.not.ok(existsSync(`${c.tls.certFile}.next`));
  assert.ok((await client.checkin(checkin)).ok);
  assert.ok((await cp.store.auditAll()).some((e) => e.kind === 'renew.issued' && e.subject === HOST));
  await client.close();
});

t('a new certificate that does not work: the old pair stays, nothing left behind, retried later', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'nixfleet-certs-'));
  const c = config(dir);
  await ensureCertificate(c, hostKey, { log, sleep: noSleep, attempts: 1 });
  const first = material(c);
  let now = Date.now() + (LIFETIME_SECS / 2 + 1) * 1000;
  // Any client for other material than the first points nowhere (a broken new identity).
  const broken = (tls: TlsMaterial) => (tls.cert === first.cert ? connect(c)(tls) : singleConnection(new CpClient({ cpUrl: 'https://127.0.0.1:1', tls, requestTimeoutSecs: 2, maxArtifactBytes: 1024 })));
  const client = new RenewingClient({ config: c, hostKey, connect: broken, now: () => now, log, retryAfterMs: 60_000 }, first);
  assert.ok((await client.checkin(checkin)).ok, 'the check-in still went through, with the old certificate');
  assert.equal(material(c), first);
  assert.not.ok(existsSync(`${c.tls.certFile}.next`));
  assert.not.ok(existsSync(`${c.tls.keyFile}.next`));
  const issued = (await cp.store.auditAll()).filter((e) => e.kind === 'renew.issued').length;
  now += 1000;
  assert.ok((await client.checkin(checkin)).ok);
  assert.is((await cp.store.auditAll()).filter((e) => e.kind === 'renew.issued').length, issued, 'no new attempt before retryAfterMs');
  await client.close();
});

t('an interrupted switch is completed at start; an expired certificate is replaced by enrolling again', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'nixfleet-certs-'));
  const c = config(dir);
  await ensureCertificate(c, hostKey, { log, sleep: noSleep, attempts: 1 });
  const first = material(c);
  // A crash after the new key was put in place, before the certificate: the pending pair wins.
  const otherDir = mkdtempSync(join(tmpdir(), 'nixfleet-certs-'));
  const o = config(otherDir);
  await ensureCertificate(o, hostKey, { log, sleep: noSleep, attempts: 1 });
  const pending = material(o);
  writeFileSync(c.tls.keyFile, pending.key);
  writeFileSync(`${c.tls.certFile}.next`, pending.cert);
  assert.equal(await ensureCertificate(c, hostKey, { log, sleep: noSleep, attempts: 1 }), { ok: true, value: 'present' });
  assert.is(readFileSync(c.tls.certFile, 'utf8'), pending.cert);
  assert.not.ok(existsSync(`${c.tls.certFile}.next`));

  // The agent was off past the expiry: renewal over the old certificate is impossible, enrol again.
  const now = Date.now() + (LIFETIME_SECS + 10) * 1000;
  const client = new RenewingClient({ config: c, hostKey, connect: connect(c), now: () => now, log }, material(c));
  assert.ok((await client.checkin(checkin)).ok);
  assert.is.not(serial(readFileSync(c.tls.certFile, 'utf8')), serial(pending.cert));
  assert.is.not(serial(readFileSync(c.tls.certFile, 'utf8')), serial(first.cert));
  await client.close();
});

t('with several CP replicas (issue 17): the renewal goes to the replica that answers when the first one is down', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'nixfleet-certs-'));
  const c = config(dir);
  await ensureCertificate(c, hostKey, { log, sleep: noSleep, attempts: 1 });
  const first = material(c);
  let now = Date.now();
  // As compose.ts builds it: the first URL refuses connections, the second is the CP.
  const urls = ['https://127.0.0.1:1', c.cpUrl];
  const replicas = (tls: TlsMaterial): Connection => {
    const cs = urls.map((cpUrl) => new CpClient({ cpUrl, tls, requestTimeoutSecs: 10, maxArtifactBytes: 1 << 20 }));
    const api = new FailoverClient(urls.map((url, i) => ({ url, client: cs[i]! })), { now: () => now, log: () => {} });
    return { api, renew: (body) => renewOnReplicas(cs, urls.indexOf(api.currentUrl), body), close: async () => void (await Promise.all(cs.map((x) => x.close()))) };
  };
  const client = new RenewingClient({ config: c, hostKey, connect: replicas, now: () => now, log }, first);
  now += (LIFETIME_SECS / 2 + 1) * 1000;
  const before = (await cp.store.auditAll()).filter((e) => e.kind === 'renew.issued' && e.subject === HOST).length;
  assert.ok((await client.checkin(checkin)).ok, 'the check-in that renewed went through the second replica');
  assert.is.not(serial(material(c).cert), serial(first.cert), 'renewed');
  assert.is((await cp.store.auditAll()).filter((e) => e.kind === 'renew.issued' && e.subject === HOST).length, before + 1);
  // A renewal started on the dead replica (as the current one) still reaches the live one.
  const cs = urls.map((cpUrl) => new CpClient({ cpUrl, tls: material(c), requestTimeoutSecs: 10, maxArtifactBytes: 1 << 20 }));
  const x = await import('../pki/x509.ts');
  const { keys } = await x.generateEcKey();
  const r = await renewOnReplicas(cs, 0, { hostname: HOST, csr: await x.createCsr(HOST, keys) });
  assert.ok(r.ok, r.ok ? '' : r.error.message);
  await Promise.all(cs.map((y) => y.close()));
  await client.close();
});

t.run();
