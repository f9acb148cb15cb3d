/**
 * Artefact sources and verification (SPEC §5): a tampered, wrongly signed, stale, future-dated or
 * older (rollback) artefact leaves the last good one in force, increments the failure counter for
 * its code, writes an audit entry, and the CP keeps serving. Sources: directory, HTTP URL pair with
 * ETag (a local server), git remote + ref (real git). Rollback protection survives a restart.
 * `/metrics` is valid Prometheus text.
 */
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { once } from 'node:events';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { sampleFleet, sampleRevocations, signArtifact, signIndex, writeSigned, writeSignedIndex, type SignedArtifact } from '../fixtures/artifacts.ts';
import type { FleetResolved } from '../protocol/schema.ts';
import { mintReleaseKey, trustFor, writeTrustFile } from '../fixtures/keys.ts';
import { verifyAuditChain } from '../protocol/audit-chain.ts';
import { Client, makeEnv, startCp, stamp, type RunningCp } from '../fixtures/cp-testing.ts';

const MIN = 60_000;

/** Value of one sample in Prometheus text, or 0 when absent. */
function sample(text: string, name: string, labels: Record<string, string> = {}): number {
  for (const line of text.split('\n')) {
    if (line.startsWith('#') || !line.startsWith(name)) continue;
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{([^}]*)\})? (\S+)$/.exec(line);
    if (m === null || m[1] !== name) continue;
    const got: Record<string, string> = {};
    for (const kv of (m[3] ?? '').split(',').filter(Boolean)) {
      const [k, v] = kv.split('=') as [string, string];
      got[k] = JSON.parse(v) as string;
    }
    if (Object.entries(labels).every(([k, v]) => got[k] === v)) return Number(m[4]);
  }
  return 0;
}

async function metricsText(cp: RunningCp): Promise<string> {
  return (await cp.cp.metricsText()).body;
}

const t = suite('artifacts');

t('bad artefacts from the source: last good stays in force, counted by code, audited once, CP keeps serving', async () => {
  const env = await makeEnv();
  const fleet = sampleFleet({ hosts: 3, waves: 1, closures: true });
  const good = env.publish(fleet);
  const cp = await startCp(env);
  const host = new Client(cp.url, env.ca.certPem, await env.hostCert('host-0000'));
  try {
    assert.is(cp.cp.artifacts.fleet()!.sha256, good.sha256);
    env.clock.advance(10 * MIN);
    const other = mintReleaseKey('ed25519', 99);
    const tampered = { ...good, bytes: new TextEncoder().encode(new TextDecoder().decode(good.bytes).replace('host-0001', 'host-0009')) };
    const bad: [string, () => void][] = [
      ['BAD_SIGNATURE', () => writeSigned(env.releasesDir, tampered)],
      ['BAD_SIGNATURE', () => env.publish(fleet, { key: other })], // wrongly signed: another key
      ['STALE', () => env.publish(fleet, { signedAt: stamp(env.clock.ms - 182 * MIN) })],
      ['FUTURE_DATED', () => env.publish(fleet, { signedAt: stamp(env.clock.ms + 5 * MIN) })],
      ['ROLLBACK', () => env.publish(fleet, { signedAt: stamp(env.clock.ms - 11 * MIN) })],
      ['PARSE_ERROR', () => writeFileSync(join(env.releasesDir, 'fleet.resolved.json'), '{"schemaVersion": 1,')],
    ];
    let rejectedAudits = (await cp.store.auditAll()).filter((e) => e.kind === 'artifact.rejected').length;
    for (const [wantCode, write] of bad) {
      const before = sample(await metricsText(cp), 'nixfleet_artifact_verification_failures_total', { kind: 'fleet', code: wantCode });
      write();
      await cp.cp.pollNow();
      assert.is(cp.cp.artifacts.fleet()!.sha256, good.sha256, `${wantCode}: last good stays in force`);
      const after = sample(await metricsText(cp), 'nixfleet_artifact_verification_failures_total', { kind: 'fleet', code: wantCode });
      assert.is(after, before + 1, `${wantCode} counted`);
      const audits = (await cp.store.auditAll()).filter((e) => e.kind === 'artifact.rejected');
      assert.is(audits.length, rejectedAudits + 1, `${wantCode} audited`);
      assert.is((audits[audits.length - 1]!.data as { code: string }).code, wantCode);
      rejectedAudits = audits.length;
      // Polling the same bad content again neither counts nor audits again.
      await cp.cp.pollNow();
      assert.is(sample(await metricsText(cp), 'nixfleet_artifact_verification_failures_total', { kind: 'fleet', code: wantCode }), after);
      assert.is((await cp.store.auditAll()).filter((e) => e.kind === 'artifact.rejected').length, rejectedAudits);
      // And the CP keeps serving the good bytes.
      const served = await host.call('GET', '/v1/artifact');
      assert.is(served.status, 200);
      assert.equal(new Uint8Array(served.raw), good.bytes);
    }
    // A newer good artefact is accepted.
    const newer = env.publish(sampleFleet({ hosts: 3, waves: 1, closures: true, withPubkeys: true }));
    await cp.cp.pollNow();
    assert.is(cp.cp.artifacts.fleet()!.sha256, newer.sha256);
    assert.is(sample(await metricsText(cp), 'nixfleet_artifacts_accepted_total', { kind: 'fleet' }), 2);
    assert.ok(verifyAuditChain((await cp.store.auditAll())).ok);
  } finally {
    await host.close();
    await cp.stop();
    env.cleanup();
  }
});

t('rollback protection survives a restart; the stored artefact is back in force before the source answers', async () => {
  const env = await makeEnv();
  const fleet = sampleFleet({ hosts: 2, waves: 1, closures: true });
  env.publish(fleet, { signedAt: stamp(env.clock.ms - 20 * MIN) });
  let cp = await startCp(env);
  env.clock.advance(MIN);
  const newest = env.publish(fleet);
  await cp.cp.pollNow();
  assert.is(cp.cp.artifacts.fleet()!.sha256, newest.sha256);
  await cp.stop();
  // The source now serves an older (but still fresh) artefact; the restarted CP refuses it.
  env.publish(fleet, { signedAt: stamp(env.clock.ms - 10 * MIN) });
  cp = await startCp(env);
  try {
    assert.is(cp.cp.artifacts.fleet()!.sha256, newest.sha256, 'the persisted artefact is in force');
    assert.is(sample(await metricsText(cp), 'nixfleet_artifact_verification_failures_total', { kind: 'fleet', code: 'ROLLBACK' }), 1);
    assert.ok(cp.cp.readiness().ready);
  } finally {
    await cp.stop();
    env.cleanup();
  }
});

t('trust.json is re-read: rotating the release key needs no restart', async () => {
  const env = await makeEnv();
  const fleet = sampleFleet({ hosts: 2, waves: 1, closures: true });
  env.publish(fleet);
  const cp = await startCp(env);
  try {
    const next = mintReleaseKey('ed25519', 1234);
    env.clock.advance(MIN);
    const signed = env.publish(fleet, { key: next });
    await cp.cp.pollNow();
    assert.is.not(cp.cp.artifacts.fleet()!.sha256, signed.sha256, 'unknown key refused');
    writeTrustFile(env.dir, trustFor({ current: next, previous: env.release }));
    await cp.cp.pollNow();
    assert.is(cp.cp.artifacts.fleet()!.sha256, signed.sha256, 'accepted after the trust change');
    assert.ok((await cp.store.auditAll()).some((e) => e.kind === 'trust.reloaded'));
    // Dropping the key that signed the artefact in force withdraws it: not ready, nothing served.
    writeTrustFile(env.dir, trustFor(env.release));
    await cp.cp.pollNow();
    assert.is(cp.cp.artifacts.fleet(), null);
    assert.is(cp.cp.readiness().ready, false);
    assert.match(cp.cp.readiness().reasons.join(' '), /no verified fleet artefact/);
    assert.ok((await cp.store.auditAll()).some((e) => e.kind === 'artifact.withdrawn'));
    // A broken trust.json keeps the previous trust and is audited once.
    writeFileSync(env.trustFile, '{ not json');
    await cp.cp.pollNow();
    await cp.cp.pollNow();
    assert.is((await cp.store.auditAll()).filter((e) => e.kind === 'trust.unusable').length, 1);
  } finally {
    await cp.stop();
    env.cleanup();
  }
});

t('URL source: ETag / If-None-Match, fleet, revocations and the slice index beside the fleet, size limit', async () => {
  const env = await makeEnv();
  const fleet = sampleFleet({ hosts: 2, waves: 1, closures: true });
  const first = env.publish(fleet) as SignedArtifact<FleetResolved>;
  env.publish(sampleRevocations([]));
  writeSignedIndex(env.releasesDir, signIndex(first, env.release));
  const seen: { path: string; inm: string | undefined; status: number }[] = [];
  const server: Server = createServer((req, res) => {
    const path = join(env.releasesDir, (req.url ?? '/').replace(/^\/releases\//, ''));
    let body: Buffer;
    try {
      body = readFileSync(path);
    } catch {
      res.writeHead(404).end();
      seen.push({ path: req.url ?? '', inm: req.headers['if-none-match'], status: 404 });
      return;
    }
    const etag = `"${createHash('sha256').update(body).digest('hex').slice(0, 16)}"`;
    const status = req.headers['if-none-match'] === etag ? 304 : 200;
    seen.push({ path: req.url ?? '', inm: req.headers['if-none-match'], status });
    if (status === 304) res.writeHead(304, { etag }).end();
    else res.writeHead(200, { etag, 'content-length': body.length }).end(body);
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}/releases`;
  const cp = await startCp(env, {
    revocations: true,
    maxArtifactBytes: 64 * 1024,
    source: { type: 'url', fleetUrl: `${base}/fleet.resolved.json`, revocationsUrl: `${base}/revocations.json` },
  });
  try {
    assert.ok(cp.cp.readiness().ready, JSON.stringify(cp.cp.readiness()));
    // index + sig, fleet + sig, the index again once the new fleet is accepted (unchanged: 304,
    // e36d56a), revocations + sig.
    assert.equal(seen.map((s) => s.status), [200, 200, 200, 200, 304, 304, 200, 200]);
    assert.ok(['/releases/fleet.index.json', '/releases/fleet.index.json.sig'].every((p) => seen.some((s) => s.path === p)), 'the index and its signature read from the fleet\'s folder');
    assert.ok(cp.cp.artifacts.slices.offers(first.sha256, 'host-0000'), 'the index from the same folder is verified and served');
    await cp.cp.pollNow();
    assert.equal(seen.slice(8).map((s) => s.status), [304, 304, 304, 304, 304, 304], 'unchanged: If-None-Match answered 304');
    assert.ok(seen.slice(8).every((s) => s.inm !== undefined));
    // An oversize artefact is refused before parsing, and counted.
    writeFileSync(join(env.releasesDir, 'fleet.resolved.json'), ' '.repeat(65 * 1024));
    await cp.cp.pollNow();
    assert.is(sample(await metricsText(cp), 'nixfleet_artifact_verification_failures_total', { kind: 'fleet', code: 'FETCH_TOO_LARGE' }), 1);
    assert.ok(cp.cp.readiness().ready);
    // A newer good one is picked up.
    env.clock.advance(MIN);
    const newer = env.publish(fleet);
    await cp.cp.pollNow();
    assert.is(cp.cp.artifacts.fleet()!.sha256, newer.sha256);
  } finally {
    await cp.stop();
    server.close();
    env.cleanup();
  }
});

t('git source: real git remote and ref; a new commit is picked up on the next poll', async () => {
  const env = await makeEnv();
  const repo = join(env.dir, 'repo');
  mkdirSync(join(repo, 'releases'), { recursive: true });
  const g = (...args: string[]) => execFileSync('git', ['-c', 'user.name=ci', '-c', 'user.email=ci@example.org', '-c', 'init.defaultBranch=main', '-C', repo, ...args], { stdio: 'pipe' });
  g('init', '--quiet');
  const fleet = sampleFleet({ hosts: 2, waves: 1, closures: true });
  const first = signArtifact(fleet, env.release, { signedAt: stamp(env.clock.ms) });
  writeSigned(join(repo, 'releases'), first);
  g('add', '-A');
  g('commit', '--quiet', '-m', 'release 1');
  const cp = await startCp(env, { source: { type: 'git', remote: repo, ref: 'main' } });
  try {
    assert.is(cp.cp.artifacts.fleet()?.sha256, first.sha256);
    env.clock.advance(MIN);
    const second = signArtifact(sampleFleet({ hosts: 2, waves: 1, closures: true, withPubkeys: true }), env.release, { signedAt: stamp(env.clock.ms) });
    writeSigned(join(repo, 'releases'), second);
    g('add', '-A');
    g('commit', '--quiet', '-m', 'release 2');
    await cp.cp.pollNow();
    assert.is(cp.cp.artifacts.fleet()?.sha256, second.sha256);
    // A broken ref is a fetch failure, counted; the last good one stays.
    writeFileSync(join(repo, 'releases', 'fleet.resolved.json.sig'), new Uint8Array(64));
    g('commit', '--quiet', '-am', 'bad signature');
    await cp.cp.pollNow();
    assert.is(cp.cp.artifacts.fleet()?.sha256, second.sha256);
    assert.is(sample(await metricsText(cp), 'nixfleet_artifact_verification_failures_total', { kind: 'fleet', code: 'BAD_SIGNATURE' }), 1);
  } finally {
    await cp.stop();
    env.cleanup();
  }
});

t('/metrics is valid Prometheus text with hosts and rollouts by state, check-ins, failures by code, reconcile duration', async () => {
  const env = await makeEnv();
  env.publish(sampleFleet({ hosts: 3, waves: 1, closures: true }));
  const cp = await startCp(env);
  const host = new Client(cp.url, env.ca.certPem, await env.hostCert('host-0000'));
  try {
    await host.call('POST', '/v1/agent/checkin', { hostname: 'host-0000', currentClosure: null, bootId: 'b', probes: [], failedUnits: [], lastOutcome: null });
    await cp.cp.reconcileNow();
    writeFileSync(join(env.releasesDir, 'fleet.resolved.json.sig'), new Uint8Array(64));
    await cp.cp.pollNow();
    const r = await host.call('GET', '/metrics');
    assert.is(r.status, 200);
    assert.match(String(r.headers['content-type']), /^text\/plain; version=0\.0\.4/);
    const text = r.raw.toString('utf8');
    const families = new Map<string, string>();
    for (const line of text.split('\n')) {
      if (line === '') continue;
      const type = /^# TYPE ([a-zA-Z_:][a-zA-Z0-9_:]*) (counter|gauge|histogram|summary|untyped)$/.exec(line);
      if (type !== null) {
        families.set(type[1]!, type[2]!);
        continue;
      }
      if (line.startsWith('# HELP ')) continue;
      assert.match(line, /^[a-zA-Z_:][a-zA-Z0-9_:]*(\{([a-zA-Z_][a-zA-Z0-9_]*="(\\.|[^"\\])*",?)*\})? -?([0-9.e+-]+|NaN|\+Inf|-Inf)$/, `sample line: ${line}`);
    }
    assert.is(families.get('nixfleet_hosts'), 'gauge');
    assert.is(families.get('nixfleet_rollouts'), 'gauge');
    assert.is(families.get('nixfleet_checkins_total'), 'counter');
    assert.is(families.get('nixfleet_artifact_verification_failures_total'), 'counter');
    assert.is(families.get('nixfleet_reconcile_duration_seconds'), 'histogram');
    assert.is(sample(text, 'nixfleet_checkins_total', { result: 'target' }), 1, 'first contact: dispatched in the same answer');
    assert.is(sample(text, 'nixfleet_rollouts', { state: 'Executing' }), 1);
    assert.is(sample(text, 'nixfleet_hosts', { state: 'Dispatched' }) + sample(text, 'nixfleet_hosts', { state: 'Queued' }), 3);
    assert.is(sample(text, 'nixfleet_artifact_verification_failures_total', { kind: 'fleet', code: 'BAD_SIGNATURE' }), 1);
    assert.ok(sample(text, 'nixfleet_reconcile_duration_seconds_count') >= 2);
    assert.is(sample(text, 'nixfleet_ready'), 1);
  } finally {
    await host.close();
    await cp.stop();
    env.cleanup();
  }
});

t.run();
