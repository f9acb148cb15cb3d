/**
 * Scenario 1 — signed round trip: a commit of the fleet description → the CI step resolves,
 * pushes the closures to the signed cache and signs → the CP fetches the release from the forge and
 * verifies it → every agent verifies the same bytes itself, fetches its closure from the cache and
 * activates it → all converge.
 *
 * Scenario 12 — secret hygiene: after that round trip, no private key of any kind (fleet CA,
 * release key, cache key, operator or host keys) is on the CP's disk or in its database; the server
 * TLS key is the only private key there. The CP refuses to start when pointed at a private key.
 */
import { createHash, createPrivateKey } from 'node:crypto';
import { readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import * as assert from 'uvu/assert';
import type { ReadyzResponse } from '../protocol/api.ts';
import { Fleet } from './harness.ts';
import { releaseTool } from './ci.ts';
import { spawnProc, tsxArgs } from './proc.ts';
import { nixfleetCli, scenarioSuite } from './scenario.ts';

const { s, register } = scenarioSuite('roundtrip', ['release-cli', 'push', 'control-plane', 'agent', 'cli']);
let fleet: Fleet | null = null;
const HOSTS = ['web-1', 'web-2', 'db-1'];

s.after(async () => {
  await fleet?.stop();
});

register('1. signed round trip: commit → sign → CP verifies → agents verify → all converge', async () => {
  fleet = await Fleet.create({
    name: 'roundtrip',
    hosts: HOSTS.map((name) => ({ name, channel: 'prod', tags: name.startsWith('db') ? ['db'] : ['web'] })),
    description: {
      channels: { prod: { rolloutPolicy: 'all', freshnessWindow: 120, signingIntervalMinutes: 60 } },
      rolloutPolicies: { all: { strategy: 'all-at-once', waves: [{ selector: { all: true }, soakMinutes: 0 }] } },
    },
    closures: { v1: 'ok' },
  });
  const f = fleet;
  const rel = await f.release('v1', { message: 'fleet: first release' });

  // The committed artefact is canonical, signed by the release key, and names the source commit.
  const verify = await releaseTool(['verify', '--artifact', join(f.forge.work, 'releases/fleet.resolved.json'), '--trust', join(f.cpDir, 'trust.json')]);
  assert.ok(verify.length > 0);
  const committed = JSON.parse(rel.fleetBytes.toString('utf8')) as { meta: { ciCommit: string; signedAt: string }; hosts: Record<string, { closureHash: string }> };
  assert.is(committed.meta.ciCommit, rel.sourceCommit);
  for (const h of HOSTS) assert.is(committed.hosts[h]?.closureHash, f.closure(h, 'v1'));
  assert.is(rel.fleetSig.length, 64, 'raw 64-byte signature');

  await f.startCp();
  const ready = (await f.op.call<ReadyzResponse>('GET', '/readyz')).body as ReadyzResponse;
  const sha = createHash('sha256').update(rel.fleetBytes).digest('hex');
  assert.is(ready.fleet?.sha256, sha, 'CP serves the sha256 of the committed canonical bytes');
  assert.is(ready.fleet?.ciCommit, rel.sourceCommit);
  const served = await f.op.call('GET', '/v1/artifact');
  assert.ok(served.raw.equals(rel.fleetBytes), 'CP serves the exact signed bytes');
  assert.ok((await f.op.call('GET', '/v1/artifact.sig')).raw.equals(rel.fleetSig));
  assert.ok((f.forge.hits.get('releases/fleet.resolved.json') ?? 0) >= 1, 'CP fetched the release from the forge');

  await f.startAgents();
  await f.waitConverged('v1');
  await f.waitFor('the prod rollout to be Converged', async (observe) => {
    const r = await f.rollouts('prod');
    observe(r);
    return r.length === 1 && r[0]!.state === 'Converged' ? r[0] : undefined;
  });

  for (const h of HOSTS) {
    const gens = await f.generations(h);
    assert.is(gens.length, 1, `${h}: one profile generation`);
    assert.ok(gens[0]!.current);
    assert.is(gens[0]!.path, f.host(h).closures['v1']);
    assert.equal(f.switchLog(h), [`${h}-v1 switch`], `${h}: its v1 closure's own switch script ran once`);
    // It came from the signed binary cache (the top-level path had been evicted before the commit).
    const hash = f.closure(h, 'v1').slice(0, 32);
    assert.ok(f.cache.requests.includes(`/${hash}.narinfo`), `${h}: closure fetched from the binary cache`);
  }
  // The confirm made each closure current on the CP; the host's own signed last outcome comes with
  // its next check-in, which may follow the convergence.
  const view = await f.waitFor('every host to report its confirmed outcome in a check-in', async (observe) => {
    const v = await f.hostsView();
    observe(v.map((x) => [x.hostname, x.lastOutcome]));
    return v.every((x) => x.lastOutcome !== null) ? v : undefined;
  });
  for (const v of view) {
    assert.is(v.currentClosure, v.declaredClosure, `${v.hostname}: CP sees it on the declared closure`);
    assert.is(v.rollout?.state, 'Converged');
    assert.is(v.lastOutcome?.outcome, 'confirmed');
  }

  // The operator CLI agrees (exit 0: nothing failed or quarantined).
  const st = await nixfleetCli(f, ['status', '--json']);
  assert.is(st.code, 0, st.stderr);
  const sj = JSON.parse(st.stdout) as { hosts: { hostname: string; status: string; currentClosure: string | null }[]; unhealthy: boolean };
  assert.not.ok(sj.unhealthy);
  for (const h of HOSTS) {
    const row = sj.hosts.find((x) => x.hostname === h);
    assert.is(row?.status, 'converged', `nixfleet status: ${h}`);
    assert.is(row?.currentClosure, f.closure(h, 'v1'));
  }

  // The audit log holds the accepted artefact and the hosts' signed statements; its chain verifies
  // offline with the operator CLI, host signatures checked against the signed fleet.
  const audit = await f.audit();
  assert.ok(audit.some((e) => e.kind === 'artifact.accepted' && JSON.stringify(e.data).includes(sha)), 'artifact.accepted with the sha256 in the audit log');
  const exportFile = join(f.root, 'operator', 'audit.jsonl');
  const exp = await nixfleetCli(f, ['audit', 'export', '--out', exportFile]);
  assert.is(exp.code, 0, exp.stderr);
  const ver = await nixfleetCli(f, ['audit', 'verify', exportFile, '--fleet', join(f.forge.work, 'releases/fleet.resolved.json'), '--json']);
  assert.is(ver.code, 0, ver.stdout + ver.stderr);
  const vj = JSON.parse(ver.stdout) as { ok: boolean; reports: { verified: number } };
  assert.ok(vj.ok);
  assert.ok(vj.reports.verified >= HOSTS.length, 'host reports verified against the hosts keys');
});

/** Every file under dir, recursively. */
function walk(dir: string): string[] {
  const out: string[] = [];
  for (const n of readdirSync(dir)) {
    const p = join(dir, n);
    if (statSync(p).isDirectory()) out.push(...walk(p));
    else out.push(p);
  }
  return out;
}

register('12. secret hygiene: no private key of any kind on the CP disk or in its database', async () => {
  const f = fleet;
  assert.ok(f !== null, 'scenario 1 built the fleet');
  if (f === null) return;
  // Every secret of the fleet, in every spelling we can think of.
  const secrets: { what: string; needle: string }[] = [];
  const pemBody = (pem: string) => pem.split('\n').filter((l) => l !== '' && !l.startsWith('-----')).join('').slice(0, 64);
  secrets.push({ what: 'fleet CA key', needle: pemBody(f.ca.keyPem) });
  secrets.push({ what: 'operator key', needle: pemBody(f.operatorCert.keyPem) });
  const releaseKeyPem = readFileSync(f.ci.keyFile, 'utf8');
  secrets.push({ what: 'release key (PEM)', needle: pemBody(releaseKeyPem) });
  const cacheSecret = readFileSync(f.cacheKey.secretKeyFile, 'utf8').trim();
  secrets.push({ what: 'cache signing key', needle: cacheSecret.split(':')[1]!.slice(0, 40) });
  for (const h of f.hosts) {
    secrets.push({ what: `${h.name} TLS key`, needle: pemBody(h.cert.keyPem) });
    const hkPem = readFileSync(join(h.dir, 'ssh_host_ed25519_key'), 'utf8');
    secrets.push({ what: `${h.name} host key (PEM)`, needle: pemBody(hkPem) });
    const hkRaw = Buffer.from((createPrivateKey(hkPem).export({ format: 'jwk' }) as { d: string }).d, 'base64url');
    secrets.push({ what: `${h.name} host key (raw, hex)`, needle: hkRaw.toString('hex') });
    secrets.push({ what: `${h.name} host key (raw, base64)`, needle: hkRaw.toString('base64').slice(0, 40) });
  }
  const releaseRaw = (createPrivateKey(releaseKeyPem).export({ format: 'jwk' }) as { d: string }).d;
  secrets.push({ what: 'release key (raw, base64url)', needle: releaseRaw });
  secrets.push({ what: 'release key (raw, hex)', needle: Buffer.from(releaseRaw, 'base64url').toString('hex') });
  secrets.push({ what: 'release key (raw, base64)', needle: Buffer.from(releaseRaw, 'base64url').toString('base64').slice(0, 40) });

  // 1. Files on the CP's disk (config, TLS material, trust.json, the SQLite file with WAL/SHM).
  const files = walk(f.cpDir);
  assert.ok(files.some((p) => p.endsWith('cp.sqlite')), 'the CP database exists');
  for (const p of files) {
    const bytes = readFileSync(p);
    const text = bytes.toString('latin1');
    for (const sct of secrets) assert.not.ok(text.includes(sct.needle), `${sct.what} found in ${p}`);
    if (p.endsWith('server.key')) continue; // the CP's own TLS key: the only private key it may hold
    assert.not.match(text, /PRIVATE KEY-----/, `a private key PEM in ${p}`);
  }
  // 2. Every cell of every table of the database, read through SQLite (WAL content included).
  const db = new Database(f.cpDbPath, { readonly: true, fileMustExist: true });
  try {
    const tables = db.prepare(`SELECT name FROM sqlite_master WHERE type = 'table'`).all() as { name: string }[];
    assert.ok(tables.length > 0);
    let cells = 0;
    for (const { name } of tables) {
      for (const row of db.prepare(`SELECT * FROM "${name.replace(/"/g, '""')}"`).raw().iterate() as Iterable<unknown[]>) {
        for (const v of row) {
          const t = Buffer.isBuffer(v) ? v.toString('latin1') + v.toString('hex') + v.toString('base64') : String(v);
          cells++;
          assert.not.match(t, /PRIVATE KEY-----/, `a private key PEM in table ${name}`);
          for (const sct of secrets) assert.not.ok(t.includes(sct.needle), `${sct.what} in table ${name}`);
        }
      }
    }
    assert.ok(cells > 0, 'the database holds data');
  } finally {
    db.close();
  }

  // 3. The CP refuses to start when its configuration points at a private release or CA key.
  const refusals: [string, Record<string, unknown>][] = [
    ['release key as trustFile', { trustFile: f.ci.keyFile }],
    ['CA key as server key', { tlsKeyFile: join(f.root, 'operator', 'ca.key'), tlsCertFile: join(f.root, 'operator', 'ca.pem') }],
    ['CA certificate + key as clientCaFile', { clientCaFile: join(f.root, 'operator', 'ca-bundle.pem') }],
  ];
  writeFileSync(join(f.root, 'operator', 'ca-bundle.pem'), f.ca.certPem + f.ca.keyPem);
  for (const [what, override] of refusals) {
    const cfgFile = join(f.root, `cp-refuse-${refusals.findIndex((r) => r[0] === what)}.json`);
    writeFileSync(cfgFile, JSON.stringify({ ...f.cpConfig(), ...override, dbPath: join(f.root, 'refuse.sqlite'), listenPort: 0 }));
    const p = spawnProc({ name: 'cp-refuse', cmd: process.execPath, args: tsxArgs('control-plane/main.ts', ['serve', '--config', cfgFile]), logFile: join(f.root, 'cp-refuse.log') });
    const code = await Promise.race([p.exited, new Promise<string>((r) => setTimeout(() => r('still running'), 30_000))]);
    if (code === 'still running') process.kill(-p.pid, 'SIGKILL');
    assert.ok(typeof code === 'number' && code !== 0, `CP must refuse to start with ${what} (exit ${String(code)})`);
    assert.match(readFileSync(p.logFile, 'utf8'), 'PRIVATE_KEY_REFUSED', `${what}: refused for the private key`);
  }
});

s.run();
