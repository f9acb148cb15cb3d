/**
 * The `nixfleet-control-plane` binary as a real process: refuses to start with a CA key or without
 * mTLS material (exit 1, a message saying why), serves over mTLS, and stops cleanly on SIGTERM.
 */
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { connect as tlsConnect } from 'node:tls';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { sampleFleet } from '../fixtures/artifacts.ts';
import type { ReadyzResponse } from '../protocol/api.ts';
import { Client, makeEnv } from '../fixtures/cp-testing.ts';
import { createFleetCa, mintHostCert, mintServerCert } from '../pki/pki.ts';

const env = await makeEnv();
const BIN = join(import.meta.dirname, '..', 'bin', 'nixfleet-control-plane.js');

function configFile(over: Record<string, unknown>): string {
  const p = join(env.dir, `config-${Math.random().toString(36).slice(2)}.json`);
  writeFileSync(
    p,
    JSON.stringify({
      listenHost: '127.0.0.1',
      listenPort: 0,
      tlsCertFile: env.files.cert,
      tlsKeyFile: env.files.key,
      clientCaFile: env.files.caCert,
      trustFile: env.trustFile,
      dbPath: join(env.dir, 'cp.sqlite'),
      source: { type: 'dir', dir: env.releasesDir },
      logLevel: 'info',
      ...over,
    }),
  );
  return p;
}

/** The CP's logs at info whatever the test runner's NIXFLEET_LOG_LEVEL. */
const SPAWN_ENV = { ...process.env, NIXFLEET_LOG_LEVEL: 'info' };

async function runToExit(args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const p = spawn(process.execPath, [BIN, ...args], { stdio: ['ignore', 'pipe', 'pipe'], env: SPAWN_ENV });
  let stdout = '';
  let stderr = '';
  p.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
  p.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  const [code] = (await once(p, 'exit')) as [number | null];
  return { code, stdout, stderr };
}

const t = suite('main');

t('--help documents serve and the keyless rule', async () => {
  const r = await runToExit(['--help']);
  assert.is(r.code, 0);
  assert.match(r.stdout, /serve \[--config FILE\] \[flags\]/);
  assert.match(r.stdout, /--tls-cert FILE/);
  assert.match(r.stdout, /holds no signing key/);
});

t('usage errors exit 2 and name the problem (the exit code every nixfleet binary uses but nixfleet-release)', async () => {
  const u = await runToExit(['frobnicate']);
  assert.is(u.code, 2);
  assert.match(u.stderr, /unknown command "frobnicate" \(see: nixfleet-control-plane --help\)/);
  const f = await runToExit(['serve', '--no-such-flag', 'x']);
  assert.is(f.code, 2);
  assert.match(f.stderr, /unknown flag --no-such-flag/);
  // Without --config every required setting is a flag; each missing one is named (issue 18).
  const c = await runToExit(['serve']);
  assert.is(c.code, 2);
  for (const f of ['--tls-cert FILE', '--tls-key FILE', '--client-ca FILE', '--trust-file FILE', '--source-dir DIR', '--db PATH']) assert.ok(c.stderr.includes(`missing ${f}`), c.stderr);
  const p = await runToExit(['check-config', '--listen-port', '99999', '--tls-cert', env.files.cert]);
  assert.is(p.code, 2);
  assert.match(p.stderr, /--listen-port must be a port number 0–65535, not "99999"/);
  assert.not.match(p.stderr, /missing --tls-cert/);
  // A flag without its value, a flag given a value it does not take, an argument, an unreadable --config.
  const v = await runToExit(['serve', '--db']);
  assert.is(v.code, 2);
  assert.match(v.stderr, /^nixfleet-control-plane: flag --db needs a value \(see: nixfleet-control-plane --help\)$/m);
  const x = await runToExit(['serve', 'extra']);
  assert.is(x.code, 2);
  assert.match(x.stderr, /unexpected argument "extra"/);
  const e = await runToExit(['check-config', '--tls-cert', '']);
  assert.is(e.code, 2);
  assert.match(e.stderr, /--tls-cert needs a FILE/);
  assert.not.match(e.stderr, /missing --tls-cert/, 'a flag given a bad value is not also missing');
  const m = await runToExit(['check-config', '--config', join(env.dir, 'no-such-config.json')]);
  assert.is(m.code, 2, m.stderr);
  assert.match(m.stderr, /cannot read --config .*no-such-config\.json: ENOENT/);
});

t('refuses to start when pointed at the CA key, or without mTLS material', async () => {
  const caKey = join(env.dir, 'ca.key');
  writeFileSync(caKey, env.ca.keyPem);
  const r1 = await runToExit(['serve', '--config', configFile({ tlsKeyFile: caKey })]);
  assert.is(r1.code, 1);
  assert.match(r1.stderr, /refusing to start \(PRIVATE_KEY_REFUSED\).*CA/);
  const r2 = await runToExit(['serve', '--config', configFile({ clientCaFile: join(env.dir, 'missing.pem') })]);
  assert.is(r2.code, 1);
  assert.match(r2.stderr, /refusing to start \(MTLS_MISSING\)/);
  const r3 = await runToExit(['serve', '--config', configFile({ releaseKeyFile: '/etc/release.key' })]);
  assert.is(r3.code, 1);
  assert.match(r3.stderr, /holds no signing or CA key/);
  const r4 = await runToExit(['check-config', '--config', configFile({})]);
  assert.is(r4.code, 0, r4.stderr);
  // The same configuration as flags only, no file (issue 18).
  const r5 = await runToExit(['check-config', '--tls-cert', env.files.cert, '--tls-key', env.files.key, '--client-ca', env.files.caCert, '--trust-file', env.trustFile, '--source-dir', env.releasesDir, '--db', join(env.dir, 'flags.sqlite')]);
  assert.is(r5.code, 0, r5.stderr);
  assert.match(r5.stdout, /configuration ok/);
  // A flag overrides the file: the file's CA key as tlsKeyFile is refused, the flag's server key is not.
  const r6 = await runToExit(['check-config', '--config', configFile({ tlsKeyFile: caKey }), '--tls-key', env.files.key]);
  assert.is(r6.code, 0, r6.stderr);
  assert.match(r4.stdout, /server certificate .*: serverAuth, key matches, issued by the fleet CA, valid until/);
});

t('check-config (and serve) refuse a client certificate as the server certificate, an expired one, the key of another one, one of another CA', async () => {
  const pem = (name: string, text: string): string => {
    const p = join(env.dir, name);
    writeFileSync(p, text);
    return p;
  };
  const client = await mintHostCert(env.ca, 'web1');
  const r1 = await runToExit(['check-config', '--config', configFile({ tlsCertFile: pem('client.pem', client.certPem), tlsKeyFile: pem('client.key', client.keyPem) })]);
  assert.is(r1.code, 1);
  assert.match(r1.stderr, /refusing to start \(WRONG_PURPOSE\): tlsCertFile .*client\.pem \(CN=web1, OU=host, O=nixfleet\) is not valid for serverAuth: its extended key usage is clientAuth/);
  const old = await mintServerCert(env.ca, { notBefore: new Date(Date.now() - 3 * 86_400_000), validityDays: 1 });
  const r2 = await runToExit(['serve', '--config', configFile({ tlsCertFile: pem('old.pem', old.certPem), tlsKeyFile: pem('old.key', old.keyPem) })]);
  assert.is(r2.code, 1);
  assert.match(r2.stderr, /\(EXPIRED\): tlsCertFile .*old\.pem .* expired on /);
  const r3 = await runToExit(['check-config', '--config', configFile({ tlsKeyFile: pem('other.key', old.keyPem) })]);
  assert.is(r3.code, 1);
  assert.match(r3.stderr, /PRIVATE_KEY_REFUSED|KEY_MISMATCH/);
  const otherCa = await createFleetCa({ commonName: 'another CA' });
  const foreign = await mintServerCert(otherCa, {});
  const r4 = await runToExit(['check-config', '--config', configFile({ tlsCertFile: pem('foreign.pem', foreign.certPem), tlsKeyFile: pem('foreign.key', foreign.keyPem) })]);
  assert.is(r4.code, 1);
  assert.match(r4.stderr, /\(NOT_ISSUED_BY_CA\): .*foreign\.pem .* was not issued by the fleet CA \(CN=test fleet CA[^)]*\); its issuer is CN=another CA/);
});

t('serve: listens over mTLS, becomes ready from the source, logs JSON events, counts and logs a failed handshake, serves /metrics on the loopback listener, stops on SIGTERM', async () => {
  env.publish(sampleFleet({ hosts: 2, waves: 1, closures: true }));
  const p = spawn(process.execPath, [BIN, 'serve', '--config', configFile({ metricsListen: { host: '127.0.0.1', port: 0 } })], { stdio: ['ignore', 'pipe', 'pipe'], env: SPAWN_ENV });
  let stderr = '';
  const ports = await new Promise<{ port: number; metricsPort: number }>((resolve, reject) => {
    p.stderr.on('data', (d: Buffer) => {
      stderr += d.toString();
      const m = /"port":(\d+)[^\n]*"event":"cp.listening"/.exec(stderr);
      const mm = /"port":(\d+)[^\n]*"event":"cp.metrics-listening"/.exec(stderr);
      if (m !== null && mm !== null) resolve({ port: Number(m[1]), metricsPort: Number(mm[1]) });
    });
    p.on('exit', () => reject(new Error(`exited early: ${stderr}`)));
    setTimeout(() => reject(new Error(`no listening lines: ${stderr}`)), 60_000).unref();
  });
  const port = ports.port;
  const lines = (): Record<string, unknown>[] => stderr.split('\n').filter((l) => l.trim() !== '').map((l) => JSON.parse(l) as Record<string, unknown>);
  const op = new Client(`https://localhost:${port}`, env.ca.certPem, await env.operatorCert('alice'));
  try {
    let ready: ReadyzResponse | null = null;
    for (let i = 0; i < 100 && ready?.ready !== true; i++) {
      ready = (await op.call('GET', '/readyz')).body as ReadyzResponse;
      if (ready.ready !== true) await new Promise((r) => setTimeout(r, 50));
    }
    assert.is(ready?.ready, true, stderr);
    assert.is((await op.call('GET', '/v1/hosts')).status, 200);
    // Every line is a JSON object with level, time, program and a stable event name.
    for (const l of lines()) {
      assert.ok(typeof l['event'] === 'string' && typeof l['time'] === 'string' && l['program'] === 'nixfleet-control-plane' && ['info', 'warn', 'error'].includes(String(l['level'])), JSON.stringify(l));
    }
    assert.ok(lines().some((l) => l['event'] === 'audit' && l['kind'] === 'artifact.accepted'), 'a state change is logged at info');
    // A client without a certificate fails the handshake: counted by reason and logged with it.
    await new Promise<void>((resolve) => {
      const s = tlsConnect({ host: '127.0.0.1', port, ca: env.ca.certPem, servername: 'localhost' });
      s.on('error', () => resolve());
      s.on('close', () => resolve());
      s.on('secureConnect', () => s.write('GET /healthz HTTP/1.1\r\nhost: x\r\n\r\n'));
    });
    for (let i = 0; i < 100 && !stderr.includes('tls.handshake-failed'); i++) await new Promise((r) => setTimeout(r, 50));
    const failed = lines().find((l) => l['event'] === 'tls.handshake-failed');
    assert.ok(failed !== undefined, stderr);
    assert.is(failed['reason'], 'no_certificate');
    assert.is(failed['level'], 'warn');
    // The plain-HTTP metrics listener: no client certificate needed there.
    const metrics = await (await fetch(`http://127.0.0.1:${ports.metricsPort}/metrics`)).text();
    assert.match(metrics, /nixfleet_tls_handshake_failures_total\{reason="no_certificate"\} 1/);
    assert.match(metrics, /nixfleet_build_info\{version="[^"]+",node="v\d+/);
    assert.match(metrics, /nixfleet_artifact_age_seconds\{kind="fleet"\} \d/);
    assert.match(metrics, /nixfleet_certificate_expiry_timestamp_seconds\{cert="server"\} \d{10}/);
    assert.match(metrics, /nixfleet_client_certificate_expiry_min_timestamp_seconds\{role="operator"\} \d{10}/);
    assert.match(metrics, /process_cpu_seconds_total/);
    assert.is((await fetch(`http://127.0.0.1:${ports.metricsPort}/readyz`)).status, 200);
    assert.equal(await (await fetch(`http://127.0.0.1:${ports.metricsPort}/healthz`)).json(), { ok: true }, 'a load balancer probes /healthz without a fleet certificate');
    assert.is((await fetch(`http://127.0.0.1:${ports.metricsPort}/v1/hosts`)).status, 404, 'no API on the metrics listener');
  } finally {
    await op.close();
    p.kill('SIGTERM');
    const [code] = (await once(p, 'exit')) as [number | null];
    assert.is(code, 0, stderr);
  }
});

t.after(() => env.cleanup());
t.run();
