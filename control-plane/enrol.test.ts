/**
 * Enrolment and renewal over the real listeners (issue 16): the enrolment listener (HTTPS, no
 * client certificate) and the mTLS listener with the certificates it issues. Proofs by SSH host
 * key and by bootstrap token, every refusal with its code and an audit entry, bad input refused
 * with nothing stored, a used token refused after the database was wiped, issuer pinning per role.
 */
import { readFileSync, existsSync } from 'node:fs';
import { X509Certificate, randomBytes, webcrypto } from 'node:crypto';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { sampleFleet, sampleRevocations } from '../fixtures/artifacts.ts';
import { Client, enrolmentFor, makeEnv, startCp, stamp, wipeStore, type Env, type RunningCp } from '../fixtures/cp-testing.ts';
import { mintHostKey, mintReleaseKey, trustFor, writeTrustFile } from '../fixtures/keys.ts';
import type { CheckinRequest, ErrorBody } from '../protocol/api.ts';
import { signBytes, toBase64 } from '../protocol/crypto.ts';
import { enrolProofBytes, signToken, type CertificateResponse, type TokenClaims } from '../protocol/enrol.ts';
import { createCsr, createIssuanceCa, generateEcKey, issueHostCert, parseCsr, signClientCert } from '../pki/x509.ts';
import { x509 } from '../pki/x509-lib.ts';

const env: Env = await makeEnv('nixfleet-enrol-');
const org = mintReleaseKey('ed25519', 99);
writeTrustFile(env.dir, trustFor(env.release, { orgRootKey: { current: org.trustKey } }));
const fleet = sampleFleet({ hosts: 4, waves: 1, closures: true, withPubkeys: true });
const H = ['host-0000', 'host-0001', 'host-0002', 'host-0003'] as const;
// host-0003 has no declared SSH host key: it can only enrol with a token.
fleet.hosts[H[3]]!.pubkey = null;

const code = (b: unknown): string => (b as ErrorBody).error.code;
const checkin = (hostname: string): CheckinRequest => ({ hostname, currentClosure: null, bootId: 'boot-1', probes: [], failedUnits: [], lastOutcome: null });

let cp: RunningCp;
let over: Record<string, unknown>;
const clients: Client[] = [];
const track = (c: Client): Client => (clients.push(c), c);
const enrolClient = () => track(new Client(cp.enrolUrl!, env.ca.certPem, null));
/**
 * The CP issues certificates at its (test) clock, which these tests move ahead of the real one; the
 * TLS handshake judges validity by the real clock. A client with such a certificate waits (real
 * time) until it is valid before its first request, as a host would not see it before then.
 */
class ValidClient extends Client {
  constructor(
    base: string,
    caPem: string,
    private readonly notBeforeMs: number,
    cert: { certPem: string; keyPem: string },
  ) {
    super(base, caPem, cert);
  }
  override async call(...args: Parameters<Client['call']>): ReturnType<Client['call']> {
    const wait = this.notBeforeMs - Date.now() + 50;
    if (wait > 0) await new Promise((r) => setTimeout(r, wait));
    return super.call(...args);
  }
}
const mtls = (cert: { certPem: string; keyPem: string }) => track(new ValidClient(cp.url, env.ca.certPem, Date.parse(new X509Certificate(cert.certPem).validFrom), cert));

async function sshRequest(host: string, seed: number) {
  const { keys, keyPem } = await generateEcKey();
  const csr = await createCsr(host, keys);
  const der = (await parseCsr(csr)) as { ok: true; value: { der: Uint8Array } };
  const hk = mintHostKey(seed);
  const signature = toBase64(signBytes(enrolProofBytes(host, der.value.der), { algorithm: 'ed25519', secretKey: hk.secretKey }));
  return { body: { hostname: host, csr, proof: { kind: 'ssh-host-key', signature } }, keyPem };
}

function token(over: Partial<TokenClaims> = {}): string {
  const now = env.clock.ms;
  const claims: TokenClaims = { kind: 'nixfleet-enrol-token', hostname: H[3], nonce: randomBytes(16).toString('hex'), issuedAt: new Date(now - 1000).toISOString(), expiresAt: new Date(now + 3_600_000).toISOString(), issuedBy: 'alice', ...over };
  return signToken(claims, org.privateKey);
}

async function tokenRequest(host: string, tok: string) {
  const { keys, keyPem } = await generateEcKey();
  return { body: { hostname: host, csr: await createCsr(host, keys), proof: { kind: 'token', token: tok } }, keyPem };
}

async function audits(kind: string): Promise<{ subject: string; data: Record<string, unknown> }[]> {
  return ((await cp.store.auditAll()) as { kind: string; subject: string; data: Record<string, unknown> }[]).filter((e) => e.kind === kind);
}

const t = suite('enrolment');

t.before(async () => {
  env.publish(fleet);
  env.publish(sampleRevocations([]), { kind: 'revocations' });
  over = { ...(await enrolmentFor(env)).config, revocations: true };
  cp = await startCp(env, over);
});

t.after(async () => {
  for (const c of clients) await c.close();
  await cp.stop();
  env.cleanup();
});

t('SSH host key: a host with nothing but the fleet CA and its declared key enrols, then checks in over mTLS as itself', async () => {
  const req = await sshRequest(H[0], 0);
  const r = await enrolClient().call('POST', '/v1/enroll', req.body);
  assert.is(r.status, 200, JSON.stringify(r.body));
  const cert = r.body as CertificateResponse;
  assert.is(Date.parse(cert.notAfter) - Date.parse(cert.notBefore), 30 * 86_400_000);
  const me = mtls({ certPem: cert.certificate, keyPem: req.keyPem });
  assert.is((await me.call('POST', '/v1/agent/checkin', checkin(H[0]))).status, 200);
  // A certificate it issued for host-0000 cannot act as host-0001.
  const as1 = await me.call('POST', '/v1/agent/checkin', checkin(H[1]));
  assert.is(as1.status, 403);
  assert.is(code(as1.body), 'IDENTITY_MISMATCH');
  assert.ok((await audits('enrol.issued')).some((a) => a.subject === H[0] && a.data['via'] === 'ssh-host-key'));
  // The CP records the expiry of the certificate the host presented: the hosts view and the metric.
  const op = mtls(await env.operatorCert('alice'));
  const view = ((await op.call('GET', '/v1/hosts')).body as { hosts: { hostname: string; certNotAfter?: string }[] }).hosts.find((h) => h.hostname === H[0]);
  assert.is(view?.certNotAfter, cert.notAfter);
  assert.match((await op.call('GET', '/metrics')).raw.toString(), /nixfleet_host_certificates\{state="valid"\} 1/);
});

t('SSH host key: a CSR signed by a key the fleet does not declare for the host is refused and audited', async () => {
  const req = await sshRequest(H[1], 2); // host-0002's key, for host-0001
  const r = await enrolClient().call('POST', '/v1/enroll', req.body);
  assert.is(r.status, 403);
  assert.is(code(r.body), 'ENROL_PROOF_INVALID');
  assert.ok((await audits('enrol.refused')).some((a) => a.subject === H[1] && a.data['code'] === 'ENROL_PROOF_INVALID'));
  const none = await sshRequest(H[3], 3);
  const r3 = await enrolClient().call('POST', '/v1/enroll', none.body);
  assert.is(code(r3.body), 'NO_HOST_KEY');
});

t('token: enrols a host with no declared key once; replayed, for another host, expired, forged: refused with codes and audit entries', async () => {
  const tok = token();
  const first = await tokenRequest(H[3], tok);
  const r = await enrolClient().call('POST', '/v1/enroll', first.body);
  assert.is(r.status, 200, JSON.stringify(r.body));
  assert.is((await mtls({ certPem: (r.body as CertificateResponse).certificate, keyPem: first.keyPem }).call('POST', '/v1/agent/checkin', checkin(H[3]))).status, 200);
  const replay = await enrolClient().call('POST', '/v1/enroll', (await tokenRequest(H[3], tok)).body);
  assert.is(replay.status, 409);
  assert.is(code(replay.body), 'TOKEN_REPLAYED');
  const other = await enrolClient().call('POST', '/v1/enroll', (await tokenRequest(H[2], token())).body);
  assert.is(code(other.body), 'TOKEN_WRONG_HOST');
  const expired = await enrolClient().call('POST', '/v1/enroll', (await tokenRequest(H[3], token({ issuedAt: new Date(env.clock.ms - 7_200_000).toISOString(), expiresAt: new Date(env.clock.ms - 3_600_000).toISOString() }))).body);
  assert.is(code(expired.body), 'TOKEN_EXPIRED');
  const forged = signToken({ kind: 'nixfleet-enrol-token', hostname: H[3], nonce: 'ab'.repeat(16), issuedAt: new Date(env.clock.ms).toISOString(), expiresAt: new Date(env.clock.ms + 60_000).toISOString(), issuedBy: 'mallory' }, mintReleaseKey('ed25519', 5).privateKey);
  const f = await enrolClient().call('POST', '/v1/enroll', (await tokenRequest(H[3], forged)).body);
  assert.is(code(f.body), 'TOKEN_INVALID');
  const refused = (await audits('enrol.refused')).map((a) => a.data['code']);
  for (const c of ['TOKEN_REPLAYED', 'TOKEN_WRONG_HOST', 'TOKEN_EXPIRED', 'TOKEN_INVALID']) assert.ok(refused.includes(c), c);

  // After a database wipe the used token is still refused: the ledger is outside the database.
  await cp.stop();
  await wipeStore(cp.config.dbPath);
  cp = await startCp(env, over);
  assert.is((await cp.store.auditAll()).filter((e) => e.kind === 'enrol.issued').length, 0, 'the database is empty');
  const again = await enrolClient().call('POST', '/v1/enroll', (await tokenRequest(H[3], tok)).body);
  assert.is(again.status, 409);
  assert.is(code(again.body), 'TOKEN_REPLAYED');
  assert.is((await audits('enrol.refused')).length, 1);
});

t('bad input on /v1/enroll: 4xx with a code, nothing stored', async () => {
  const ledgerFile = (over['enrolment'] as { usedTokensFile: string }).usedTokensFile;
  const ledger = (): string => (existsSync(ledgerFile) ? readFileSync(ledgerFile, 'utf8') : '');
  assert.ok(ledger() !== '', 'the ledger exists (a token was spent earlier)');
  const before = { audit: (await cp.store.auditAll()).length, ledger: ledger() };
  const good = await tokenRequest(H[3], token());
  const { keys } = await generateEcKey();
  const rsa = (await webcrypto.subtle.generateKey({ name: 'RSASSA-PKCS1-v1_5', modulusLength: 2048, publicExponent: new Uint8Array([1, 0, 1]), hash: 'SHA-256' }, true, ['sign', 'verify'])) as webcrypto.CryptoKeyPair;
  const rsaCsr = (await x509.Pkcs10CertificateRequestGenerator.create({ name: `CN=${H[3]}`, keys: rsa, signingAlgorithm: { name: 'RSASSA-PKCS1-v1_5', hash: 'SHA-256' } })).toString('pem');
  const cases: [string, unknown, number, string][] = [
    ['garbage CSR', { ...good.body, csr: 'not a csr' }, 400, 'CSR_UNREADABLE'],
    ['wrong key type', { ...good.body, csr: rsaCsr }, 400, 'CSR_KEY_TYPE'],
    ['a CSR naming another host', { ...good.body, csr: await createCsr(H[2], keys) }, 400, 'CSR_HOST_MISMATCH'],
    ['oversize CSR field', { ...good.body, csr: 'x'.repeat(5000) }, 400, 'INVALID_BODY'],
    ['oversize body', { ...good.body, pad: 'x'.repeat(70_000) }, 413, 'BODY_TOO_LARGE'],
    ['no proof', { hostname: H[3], csr: good.body.csr }, 400, 'INVALID_BODY'],
    ['not JSON', '{"hostname":', 400, 'MALFORMED_JSON'],
    ['unknown host', { ...good.body, hostname: 'nobody', csr: await createCsr('nobody', keys) }, 404, 'UNKNOWN_HOST'],
  ];
  for (const [what, body, status, c] of cases) {
    const r = await enrolClient().call('POST', '/v1/enroll', body);
    assert.is(r.status, status, what);
    assert.is(code(r.body), c, what);
  }
  assert.is((await cp.store.auditAll()).length, before.audit, 'nothing audited');
  assert.is(ledger(), before.ledger, 'no token spent');
  // The enrolment listener serves nothing else.
  assert.is((await enrolClient().call('GET', '/v1/hosts')).status, 404);
});

t('revocation race: a certificate renewed after the revocation notBefore, before the CP loaded it, is still revoked', async () => {
  const t0 = env.clock.ms;
  const req = await sshRequest(H[2], 2);
  const first = (await enrolClient().call('POST', '/v1/enroll', req.body)).body as CertificateResponse;
  assert.is(Date.parse(first.notBefore), t0);
  // The host renews two seconds later, while the CP knows no revocation yet.
  env.clock.advance(2_000);
  const { keys, keyPem } = await generateEcKey();
  const r = await mtls({ certPem: first.certificate, keyPem: req.keyPem }).call('POST', '/v1/agent/renew', { hostname: H[2], csr: await createCsr(H[2], keys) });
  assert.is(r.status, 200, JSON.stringify(r.body));
  const renewed = r.body as CertificateResponse;
  assert.is(Date.parse(renewed.notBefore), t0 + 2_000);
  assert.match(new X509Certificate(renewed.certificate).subjectAltName ?? '', `URI:urn:nixfleet:proven-at-ms:${t0}`);
  const me = mtls({ certPem: renewed.certificate, keyPem });
  assert.is((await me.call('POST', '/v1/agent/checkin', checkin(H[2]))).status, 200);
  // Then the revocation arrives, notBefore one second after the enrolment: before the renewal.
  env.publish(sampleRevocations([{ hostname: H[2], notBefore: stamp(t0 + 1_000), reason: 'stolen', revokedBy: 'alice' }]), { kind: 'revocations' });
  await cp.cp.pollNow();
  const after = await me.call('POST', '/v1/agent/checkin', checkin(H[2]));
  assert.is(after.status, 401, 'the renewed certificate inherits the moment its identity was proven');
  assert.is(code(after.body), 'CERT_REVOKED');
  // Nor can it renew again (audited), nor can the certificate it renewed.
  const { keys: k2 } = await generateEcKey();
  for (const c of [me, mtls({ certPem: first.certificate, keyPem: req.keyPem })]) {
    const again = await c.call('POST', '/v1/agent/renew', { hostname: H[2], csr: await createCsr(H[2], k2) });
    assert.is(code(again.body), 'CERT_REVOKED');
  }
  assert.ok((await audits('renew.refused')).some((a) => a.subject === H[2] && a.data['serial'] === renewed.serial));
  // A token minted after notBefore re-admits the host: proven anew, not revoked.
  const tok = token({ hostname: H[2], issuedAt: new Date(env.clock.ms).toISOString() });
  const back = await tokenRequest(H[2], tok);
  const re = await enrolClient().call('POST', '/v1/enroll', back.body);
  assert.is(re.status, 200, JSON.stringify(re.body));
  assert.is((await mtls({ certPem: (re.body as CertificateResponse).certificate, keyPem: back.keyPem }).call('POST', '/v1/agent/checkin', checkin(H[2]))).status, 200);
});

t('renewal: a new key over the current certificate; the new certificate works; a revoked host cannot renew (code + audit)', async () => {
  const req = await sshRequest(H[1], 1);
  const first = (await enrolClient().call('POST', '/v1/enroll', req.body)).body as CertificateResponse;
  const me = mtls({ certPem: first.certificate, keyPem: req.keyPem });
  const { keys, keyPem } = await generateEcKey();
  const r = await me.call('POST', '/v1/agent/renew', { hostname: H[1], csr: await createCsr(H[1], keys) });
  assert.is(r.status, 200, JSON.stringify(r.body));
  const renewed = r.body as CertificateResponse;
  assert.is.not(renewed.serial, first.serial);
  assert.is((await mtls({ certPem: renewed.certificate, keyPem }).call('POST', '/v1/agent/checkin', checkin(H[1]))).status, 200);
  // Renewing for another host, or with a CSR for another host: refused.
  assert.is(code((await me.call('POST', '/v1/agent/renew', { hostname: H[2], csr: await createCsr(H[2], keys) })).body), 'IDENTITY_MISMATCH');
  assert.is(code((await me.call('POST', '/v1/agent/renew', { hostname: H[1], csr: await createCsr(H[2], keys) })).body), 'CSR_HOST_MISMATCH');

  env.clock.advance(5_000);
  env.publish(sampleRevocations([{ hostname: H[1], notBefore: stamp(env.clock.ms), reason: 'stolen', revokedBy: 'alice' }]), { kind: 'revocations' });
  await cp.cp.pollNow();
  const { keys: k2 } = await generateEcKey();
  const refused = await mtls({ certPem: renewed.certificate, keyPem }).call('POST', '/v1/agent/renew', { hostname: H[1], csr: await createCsr(H[1], k2) });
  assert.is(refused.status, 401);
  assert.is(code(refused.body), 'CERT_REVOKED');
  assert.ok((await audits('renew.refused')).some((a) => a.subject === H[1] && a.data['code'] === 'CERT_REVOKED'));
  // Nor can it come back with its SSH host key (which may be what was stolen).
  const back = await enrolClient().call('POST', '/v1/enroll', (await sshRequest(H[1], 1)).body);
  assert.is(code(back.body), 'HOST_REVOKED');
});

t('issuer pinning: a host certificate from another intermediate of the fleet CA is refused (401 ISSUER_REFUSED)', async () => {
  const rogue = await createIssuanceCa(env.ca, { commonName: 'rogue intermediate' });
  const { keys, keyPem } = await generateEcKey();
  const leaf = await issueHostCert(rogue, H[2], keys.publicKey);
  // The client sends the intermediate: the TLS layer accepts the chain to the fleet CA...
  const c = mtls({ certPem: `${leaf.certPem}\n${rogue.certPem}`, keyPem });
  const r = await c.call('POST', '/v1/agent/checkin', checkin(H[2]));
  // ...and the role's issuer list does not.
  assert.is(r.status, 401);
  assert.is(code(r.body), 'ISSUER_REFUSED');
  // An operator certificate from the issuance intermediate never gets that far (name constraints, in TLS).
  const { issuer } = await enrolmentFor(env);
  const op = await signClientCert(issuer, 'O=nixfleet, OU=operator, CN=mallory', keys.publicKey);
  let failed = false;
  try {
    await mtls({ certPem: op.certPem, keyPem }).call('GET', '/v1/hosts');
  } catch {
    failed = true;
  }
  assert.ok(failed, 'handshake refused');
  // The operator-minted certificates of the fleet CA keep working.
  assert.is((await mtls(await env.operatorCert('alice')).call('GET', '/v1/hosts')).status, 200);
});

t('a flood of refused enrolments from one source: audited once per burst, the rest counted in a metric', async () => {
  const refusals = async () => (await audits('enrol.refused')).filter((a) => a.data['code'] === 'ENROL_PROOF_INVALID');
  const before = (await refusals()).length;
  const req = await sshRequest(H[1], 2); // host-0002's key, for host-0001
  for (let i = 0; i < 5; i++) {
    const r = await enrolClient().call('POST', '/v1/enroll', req.body);
    assert.is(code(r.body), 'ENROL_PROOF_INVALID', 'each one refused with its code');
  }
  const during = await refusals();
  assert.ok(during.length - before <= 1, `at most one audit entry for the burst, got ${during.length - before}`);
  const unaudited = (text: string) => Number(/nixfleet_enrol_refusals_unaudited_total\{code="ENROL_PROOF_INVALID"\} (\d+)/.exec(text)?.[1] ?? 0);
  const op = mtls(await env.operatorCert('alice'));
  const counted = unaudited((await op.call('GET', '/metrics')).raw.toString());
  assert.is(counted + (during.length - before), 5, 'every refusal is either audited or counted');
  // After the window the next refusal is audited again, with the count of the burst it closes.
  env.clock.advance(61_000);
  await enrolClient().call('POST', '/v1/enroll', req.body);
  const after = await refusals();
  assert.is(after.length, during.length + 1);
  assert.is(after.at(-1)!.data['suppressedBefore'], counted);
  assert.is(typeof after.at(-1)!.data['source'], 'string');
});

t.run();
