/**
 * Issue 16 — enrolment and the certificate lifecycle, with real processes: the CP holds only the
 * host-issuance intermediate (made by `nixfleet pki init-issuance`); two agents start with no
 * certificate at all — `ssh-1` with nothing but the fleet CA and its SSH host key (declared in the
 * signed fleet), `tok-1` with a bootstrap token (`nixfleet enroll token`) and no declared key —,
 * enrol, take part in a rollout, and renew on their own (60-second certificates) without losing
 * contact. Then every refusal the issue lists, each with its code and an audit entry, and a used
 * token still refused after the CP's database was wiped.
 */
import { existsSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import * as assert from 'uvu/assert';
import { Agent, request } from 'undici';
import { mintHostKey, mintReleaseKey } from '../fixtures/keys.ts';
import { signBytes, toBase64 } from '../protocol/crypto.ts';
import { enrolProofBytes, signToken } from '../protocol/enrol.ts';
import { createCsr, generateEcKey, parseCsr } from '../pki/x509.ts';
import { Fleet, freePort } from './harness.ts';
import { run, tsxArgs } from './proc.ts';
import { scenarioSuite } from './scenario.ts';

const { s, register } = scenarioSuite('enrolment', ['release-cli', 'push', 'control-plane', 'agent', 'cli']);
let fleet: Fleet | null = null;
const HOSTS = ['ssh-1', 'tok-1'];
const LIFETIME_SECS = 60;
let enrolUrl = '';
let tokenText = '';
const org = mintReleaseKey('ed25519', 1616);

s.after(async () => {
  await fleet?.stop();
});

async function cli(f: Fleet, args: string[]): Promise<string> {
  const r = await run(process.execPath, tsxArgs('cli/main.ts', args), { env: { HOME: f.root, USER: 'e2e' }, timeoutMs: 60_000 });
  if (r.code !== 0) throw new Error(`nixfleet ${args.join(' ')}: exit ${r.code}\n${r.stderr}`);
  return r.stdout;
}

async function enrolPost(f: Fleet, body: unknown): Promise<{ status: number; code: string | null }> {
  const dispatcher = new Agent({ connect: { ca: f.ca.certPem } });
  try {
    const res = await request(`${enrolUrl}/v1/enroll`, { method: 'POST', dispatcher, headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
    const json = (await res.body.json()) as { error?: { code: string } };
    return { status: res.statusCode, code: json.error?.code ?? null };
  } finally {
    await dispatcher.close();
  }
}

async function tokenBody(host: string, token: string) {
  const { keys } = await generateEcKey();
  return { hostname: host, csr: await createCsr(host, keys), proof: { kind: 'token', token } };
}

register('two hosts with no certificate enrol (SSH host key; bootstrap token) and take part in a rollout', async () => {
  fleet = await Fleet.create({
    name: 'enrol',
    hosts: HOSTS.map((name) => ({ name, channel: 'stable' })),
    description: {
      channels: { stable: { rolloutPolicy: 'all', freshnessWindow: 120, signingIntervalMinutes: 60 } },
      rolloutPolicies: { all: { strategy: 'all-at-once', waves: [{ selector: { all: true }, soakMinutes: 0 }], onHealthFailure: 'halt' } },
    },
    closures: { v1: 'ok', v2: 'ok' },
  });
  const f = fleet;
  // Operator side: the issuance intermediate (the fleet CA key stays in operator/), the org key.
  const opDir = join(f.root, 'operator');
  await cli(f, ['pki', 'init-issuance', '--pki-dir', opDir, '--out-dir', f.cpDir]);
  writeFileSync(join(opDir, 'org.key'), org.pem, { mode: 0o600 });
  f.trust = { ...f.trust, orgRootKey: { current: org.trustKey } };
  writeFileSync(join(f.cpDir, 'trust.json'), JSON.stringify(f.trust, null, 2));
  const enrolPort = await freePort(f.serverHost);
  enrolUrl = `https://${f.serverHost}:${enrolPort}`;
  f.cpOverrides = {
    enrolment: {
      issuerCertFile: join(f.cpDir, 'issuance.pem'),
      issuerKeyFile: join(f.cpDir, 'issuance.key'),
      listenPort: enrolPort,
      usedTokensFile: join(f.cpDir, 'used-tokens.json'),
      certValiditySecs: LIFETIME_SECS,
    },
  };
  // tok-1's SSH host key is not in the fleet yet: it can only come in with a token.
  const description = f.description();
  description.hosts['tok-1']!.pubkey = null;
  await f.release('v1', { description });
  await f.startCp();

  const tokFile = join(f.host('tok-1').dir, 'enrol.token');
  await cli(f, ['enroll', 'token', '--host', 'tok-1', '--ttl', '1h', '--org-key', join(opDir, 'org.key'), '--out', tokFile]);
  tokenText = readFileSync(tokFile, 'utf8').trim();
  for (const h of HOSTS) {
    const hh = f.host(h);
    // Nothing but the fleet CA (and the host key): no certificate, no TLS key.
    rmSync(join(hh.dir, 'host.pem'));
    rmSync(join(hh.dir, 'host.key'));
    hh.configOverrides = {
      tls: { certFile: join(hh.dir, 'tls', 'host.pem'), keyFile: join(hh.dir, 'tls', 'host.key'), caFile: join(hh.dir, 'ca.pem') },
      enrol: { url: enrolUrl, tokenFile: h === 'tok-1' ? tokFile : null },
    };
  }
  await f.startAgents();
  await f.waitConverged('v1', HOSTS, { timeoutMs: 240_000 });
  for (const h of HOSTS) {
    const dir = join(f.host(h).dir, 'tls');
    assert.is(statSync(join(dir, 'host.key')).mode & 0o777, 0o600, `${h} key 0600`);
    assert.is(statSync(join(dir, 'host.pem')).mode & 0o777, 0o600, `${h} certificate 0600`);
  }
  assert.not.ok(existsSync(tokFile), 'the used token file is removed by the agent');
  const issued = (await f.audit()).filter((e) => e.kind === 'enrol.issued');
  assert.equal(issued.map((e) => [e.subject, (e.data as { via: string }).via]).sort(), [['ssh-1', 'ssh-host-key'], ['tok-1', 'token']]);
});

register('renewal happens on its own (60 s certificates) and the agents never lose contact; a second release converges', async () => {
  const f = fleet!;
  await f.waitFor('two renewals per host', async (observe) => {
    const renewed = (await f.audit()).filter((e) => e.kind === 'renew.issued');
    const per = HOSTS.map((h) => renewed.filter((e) => e.subject === h).length);
    observe(per);
    return per.every((n) => n >= 2);
  }, { timeoutMs: 150_000 });
  for (const h of HOSTS) {
    const log = readFileSync(join(f.host(h).dir, 'agent.log'), 'utf8');
    assert.not.match(log, /agent\.checkin-failed|agent\.cert-renew-failed|agent\.cert-unusable/, `${h}: no failed check-in or renewal`);
    assert.ok((await f.hostView(h)).online, `${h} online`);
  }
  assert.ok((await f.metric('nixfleet_certificates_total', { what: 'renew', outcome: 'issued' })) >= 4);
  const description = f.description();
  description.hosts['tok-1']!.pubkey = null;
  await f.release('v2', { description });
  await f.waitConverged('v2', HOSTS, { timeoutMs: 240_000 });
});

register('refused with a code and an audit entry: replayed token, token for another host, expired token, undeclared SSH key, revoked host renewing; bad input stores nothing', async () => {
  const f = fleet!;
  const before = (await f.audit()).length;
  assert.equal(await enrolPost(f, await tokenBody('tok-1', tokenText)), { status: 409, code: 'TOKEN_REPLAYED' });
  const now = Date.now();
  const mint = (host: string, issued: number, expires: number) =>
    signToken({ kind: 'nixfleet-enrol-token', hostname: host, nonce: randomBytes(16).toString('hex'), issuedAt: new Date(issued).toISOString(), expiresAt: new Date(expires).toISOString(), issuedBy: 'e2e' }, org.privateKey);
  assert.equal(await enrolPost(f, await tokenBody('ssh-1', mint('tok-1', now, now + 600_000))), { status: 403, code: 'TOKEN_WRONG_HOST' });
  assert.equal(await enrolPost(f, await tokenBody('tok-1', mint('tok-1', now - 7_200_000, now - 3_600_000))), { status: 403, code: 'TOKEN_EXPIRED' });
  const { keys } = await generateEcKey();
  const csr = await createCsr('ssh-1', keys);
  const der = await parseCsr(csr);
  assert.ok(der.ok);
  const stranger = mintHostKey(77);
  const signature = toBase64(signBytes(enrolProofBytes('ssh-1', der.ok ? der.value.der : new Uint8Array()), { algorithm: 'ed25519', secretKey: stranger.secretKey }));
  assert.equal(await enrolPost(f, { hostname: 'ssh-1', csr, proof: { kind: 'ssh-host-key', signature } }), { status: 403, code: 'ENROL_PROOF_INVALID' });
  const refused = (await f.audit()).slice(before).filter((e) => e.kind === 'enrol.refused').map((e) => (e.data as { code: string }).code);
  assert.equal(refused.sort(), ['ENROL_PROOF_INVALID', 'TOKEN_EXPIRED', 'TOKEN_REPLAYED', 'TOKEN_WRONG_HOST']);

  // Bad input: 4xx with a code, nothing stored.
  const n = (await f.audit()).length;
  assert.equal(await enrolPost(f, { hostname: 'ssh-1', csr: 'garbage', proof: { kind: 'token', token: 'x' } }), { status: 400, code: 'CSR_UNREADABLE' });
  assert.equal(await enrolPost(f, { hostname: 'tok-1', csr, proof: { kind: 'token', token: tokenText } }), { status: 400, code: 'CSR_HOST_MISMATCH' });
  assert.equal(await enrolPost(f, { hostname: 'ssh-1', csr: 'x'.repeat(100_000), proof: { kind: 'token', token: 'x' } }), { status: 413, code: 'BODY_TOO_LARGE' });
  assert.is((await f.audit()).length, n, 'nothing stored');

  // Revoke ssh-1: its next renewal is refused (401 CERT_REVOKED, audited). notBefore lies in the
  // future so that the certificate it holds is covered whatever its notBefore; a certificate renewed
  // between a past notBefore and the CP loading it is covered too (control-plane/enrol.test.ts).
  const description = f.description();
  description.hosts['tok-1']!.pubkey = null;
  await f.release('v2', { description, revocations: [{ hostname: 'ssh-1', notBefore: new Date(Date.now() + 600_000).toISOString().replace(/\.\d{3}Z$/, 'Z'), reason: 'e2e', revokedBy: 'e2e' }] });
  await f.waitFor('the revoked host renewal refused and audited', async (observe) => {
    const r = (await f.audit()).filter((e) => e.kind === 'renew.refused' && e.subject === 'ssh-1');
    observe(r.length);
    return r.some((e) => (e.data as { code: string }).code === 'CERT_REVOKED');
  }, { timeoutMs: 120_000 });
});

register('after a CP database wipe a used token is still refused', async () => {
  const f = fleet!;
  await f.stopCp();
  for (const suffix of ['', '-wal', '-shm']) rmSync(f.cpDbPath + suffix, { force: true });
  await f.startCp();
  assert.is((await f.audit()).filter((e) => e.kind === 'enrol.issued').length, 0, 'the database is empty');
  assert.equal(await enrolPost(f, await tokenBody('tok-1', tokenText)), { status: 409, code: 'TOKEN_REPLAYED' });
  assert.ok((await f.audit()).some((e) => e.kind === 'enrol.refused' && (e.data as { code: string }).code === 'TOKEN_REPLAYED'));
});

s.run();
