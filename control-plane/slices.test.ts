/**
 * Signed slices on the control plane (issue 19): with a good signed index beside the fleet the CP
 * serves each host its own slice at GET /v1/agent/slice (ETag / 304) and offers it in the
 * check-in target; a missing, tampered, wrongly signed, non-matching or older index is counted by
 * code and audited, no slice is served (404 NO_SLICE), no target offers one, and the fleet
 * artefact stays in force.
 */
import { rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { fakeClosure, sampleFleet, signIndex, writeSignedIndex, type SignedArtifact } from '../fixtures/artifacts.ts';
import { mintReleaseKey } from '../fixtures/keys.ts';
import { Client, makeEnv, startCp, stamp, type Env, type RunningCp } from '../fixtures/cp-testing.ts';
import type { ArtifactSource } from './sources.ts';
import type { CheckinResponse, ErrorBody } from '../protocol/api.ts';
import { parseSliceResponse } from '../protocol/api-parse.ts';
import { fromBase64, verifySignature } from '../protocol/crypto.ts';
import type { FleetResolved } from '../protocol/schema.ts';
import { SLICE_INDEX_FILE, verifySlice } from '../protocol/slice.ts';
import { verifySliceIndex } from '../protocol/verify.ts';
import { trustFor } from '../fixtures/keys.ts';

const MIN = 60_000;

function failures(text: string, code: string): number {
  const line = text.split('\n').find((l) => l.startsWith('nixfleet_artifact_verification_failures_total{') && l.includes('kind="index"') && l.includes(`code="${code}"`));
  return line === undefined ? 0 : Number(line.split(' ').pop());
}

async function setup(): Promise<{ env: Env; fleet: FleetResolved; signed: SignedArtifact<FleetResolved>; cp: RunningCp; host: Client }> {
  const env = await makeEnv();
  const fleet = sampleFleet({ hosts: 5, waves: 2, closures: true, withPubkeys: true });
  const signed = env.publish(fleet) as SignedArtifact<FleetResolved>;
  writeSignedIndex(env.releasesDir, signIndex(signed, env.release));
  const cp = await startCp(env);
  return { env, fleet, signed, cp, host: new Client(cp.url, env.ca.certPem, await env.hostCert('host-0003')) };
}

const checkin = async (c: Client, name: string): Promise<CheckinResponse> => {
  const r = await c.call('POST', '/v1/agent/checkin', { hostname: name, currentClosure: fakeClosure(name, 0), bootId: 'b', probes: [], failedUnits: [], lastOutcome: null });
  assert.is(r.status, 200, JSON.stringify(r.body));
  return r.body as CheckinResponse;
};

const t = suite('slices on the CP');

t('a good index: each host gets its own slice, which verifies against the signed index; ETag / 304; the target offers it', async () => {
  const { env, signed, cp, host } = await setup();
  try {
    const r = await host.call('GET', '/v1/agent/slice');
    assert.is(r.status, 200, JSON.stringify(r.body));
    const body = parseSliceResponse(r.body);
    assert.ok(body.ok);
    if (!body.ok) return;
    const sig = fromBase64(body.value.indexSignature)!;
    const v = verifySliceIndex({ bytes: new TextEncoder().encode(body.value.index), signature: sig, trust: trustFor(env.release), nowMs: env.clock.ms, lastAccepted: null });
    assert.ok(v.ok, v.ok ? '' : v.error.message);
    if (!v.ok) return;
    assert.is(v.value.index.artifactSha256, signed.sha256);
    const s = verifySlice({ index: v.value.index, slice: body.value, hostname: 'host-0003' });
    assert.ok(s.ok);
    assert.is(s.ok && s.value.host.closureHash, signed.value.hosts['host-0003']!.closureHash);
    assert.not.ok(verifySlice({ index: v.value.index, slice: body.value, hostname: 'host-0002' }).ok, 'it is host-0003\'s, no one else\'s');
    const etag = String(r.headers['etag']);
    assert.is((await host.call('GET', '/v1/agent/slice', undefined, { 'if-none-match': etag })).status, 304);
    assert.ok(verifySignature('ed25519', env.release.publicKeyB64, new TextEncoder().encode(body.value.index), sig));
    assert.is((await cp.store.getArtifact('index'))?.sha256, v.value.sha256, 'the accepted index is persisted (rollback protection)');

    const h0 = new Client(cp.url, env.ca.certPem, await env.hostCert('host-0000'));
    for (const h of Object.keys(signed.value.hosts)) await checkin(new Client(cp.url, env.ca.certPem, await env.hostCert(h)), h);
    await cp.cp.reconcileNow();
    const target = (await checkin(h0, 'host-0000')).target;
    assert.ok(target !== null);
    assert.is(target!.slice, true);
  } finally {
    await cp.stop();
    env.cleanup();
  }
});

t('no index, or a bad one: counted by code, audited, 404 NO_SLICE, no slice offered; the fleet stays in force', async () => {
  const { env, fleet, signed, cp, host } = await setup();
  try {
    const other = mintReleaseKey('ed25519', 42);
    const bad: [string, () => void][] = [
      ['FETCH_NOT_FOUND', () => rmSync(join(env.releasesDir, SLICE_INDEX_FILE))],
      ['BAD_SIGNATURE', () => writeSignedIndex(env.releasesDir, signIndex(signed, other))],
      ['BAD_SIGNATURE', () => {
        const si = signIndex(signed, env.release);
        writeFileSync(join(env.releasesDir, SLICE_INDEX_FILE), new TextDecoder().decode(si.bytes).replace(si.index.root, 'f'.repeat(64)));
        writeFileSync(join(env.releasesDir, SLICE_INDEX_FILE + '.sig'), si.signature);
      }],
      // Same signedAt as the accepted index, other bytes.
      ['EQUIVOCATION', () => writeSignedIndex(env.releasesDir, signIndex(signed, env.release, (i) => ({ ...i, root: '0'.repeat(64) })))],
      // Newer, well signed, but not the tree of the artefact in force.
      ['INDEX_MISMATCH', () => writeSignedIndex(env.releasesDir, signIndex(signed, env.release, (i) => ({ ...i, root: '0'.repeat(64), meta: { ...i.meta, signedAt: stamp(env.clock.ms + 1000) } })))],
      ['INDEX_MISMATCH', () => writeSignedIndex(env.releasesDir, signIndex(signed, env.release, (i) => ({ ...i, artifactSha256: 'a'.repeat(64), meta: { ...i.meta, signedAt: stamp(env.clock.ms + 2000) } })))],
      ['ROLLBACK', () => writeSignedIndex(env.releasesDir, signIndex(signed, env.release, (i) => ({ ...i, meta: { ...i.meta, signedAt: stamp(env.clock.ms - 5 * MIN) } })))],
    ];
    assert.is((await host.call('GET', '/v1/agent/slice')).status, 200);
    for (const [code, write] of bad) {
      const before = failures((await cp.cp.metricsText()).body, code);
      const audits = (await cp.store.auditAll()).filter((e) => e.kind === 'artifact.rejected' && e.subject === 'index').length;
      write();
      await cp.cp.pollNow();
      assert.is(failures((await cp.cp.metricsText()).body, code), before + 1, `${code} counted`);
      const r = await host.call('GET', '/v1/agent/slice');
      assert.is(r.status, 404, code);
      assert.is((r.body as ErrorBody).error.code, 'NO_SLICE');
      assert.is(cp.cp.artifacts.fleet()!.sha256, signed.sha256, `${code}: the fleet stays in force`);
      assert.not.ok(cp.cp.artifacts.slices.offers(signed.sha256, 'host-0000'));
      if (code !== 'FETCH_NOT_FOUND') assert.is((await cp.store.auditAll()).filter((e) => e.kind === 'artifact.rejected' && e.subject === 'index').length, audits + 1, `${code} audited`);
      await cp.cp.pollNow();
      assert.is(failures((await cp.cp.metricsText()).body, code), before + 1, `${code}: polled again, not counted again`);
      // Back to the good index: slices again.
      writeSignedIndex(env.releasesDir, signIndex(signed, env.release));
      await cp.cp.pollNow();
      assert.is((await host.call('GET', '/v1/agent/slice')).status, 200, `${code}: recovered`);
    }
    for (const h of Object.keys(fleet.hosts)) await checkin(new Client(cp.url, env.ca.certPem, await env.hostCert(h)), h);
    await cp.cp.reconcileNow();
    rmSync(join(env.releasesDir, SLICE_INDEX_FILE));
    await cp.cp.pollNow();
    const target = (await checkin(new Client(cp.url, env.ca.certPem, await env.hostCert('host-0000')), 'host-0000')).target;
    assert.ok(target !== null);
    assert.is(target!.slice, undefined, 'no slice offered: the v1 target');
    assert.ok(fleet.hosts['host-0000'] !== undefined);
  } finally {
    await cp.stop();
    env.cleanup();
  }
});

t('a release committed between the index fetch and the fleet fetch of one poll: the new fleet is offered with its slices at once', async () => {
  const env = await makeEnv();
  const v1 = sampleFleet({ hosts: 3, waves: 1, closures: true, withPubkeys: true });
  const s1 = env.publish(v1) as SignedArtifact<FleetResolved>;
  writeSignedIndex(env.releasesDir, signIndex(s1, env.release));
  // The commit lands just before the source reads the fleet artefact (after the index was read).
  let land: (() => void) | null = null;
  const wrapSource = (inner: ArtifactSource): ArtifactSource => ({
    describe: inner.describe,
    close: () => inner.close(),
    fetch: (kind) => {
      if (kind === 'fleet' && land !== null) {
        land();
        land = null;
      }
      return inner.fetch(kind);
    },
  });
  const cp = await startCp(env, {}, { wrapSource });
  try {
    const hosts = Object.keys(v1.hosts);
    for (const h of hosts) await checkin(new Client(cp.url, env.ca.certPem, await env.hostCert(h)), h);
    await cp.cp.reconcileNow();
    env.clock.ms += MIN;
    const v2 = structuredClone(v1);
    for (const h of hosts) v2.hosts[h]!.closureHash = fakeClosure(h, 2);
    let s2: SignedArtifact<FleetResolved> | null = null;
    land = () => {
      s2 = env.publish(v2) as SignedArtifact<FleetResolved>;
      writeSignedIndex(env.releasesDir, signIndex(s2, env.release));
    };
    await cp.cp.pollNow();
    assert.ok(s2 !== null, 'the release landed during the poll');
    const sha2 = (s2 as SignedArtifact<FleetResolved>).sha256;
    assert.is(cp.cp.artifacts.fleet()!.sha256, sha2, 'v2 in force');
    for (const h of hosts) assert.ok(cp.cp.artifacts.slices.offers(sha2, h), `${h}: the v2 slice is offered in the same poll`);
    const host = new Client(cp.url, env.ca.certPem, await env.hostCert(hosts[0]!));
    const r = await host.call('GET', '/v1/agent/slice');
    assert.is(r.status, 200);
    const body = parseSliceResponse(r.body);
    assert.ok(body.ok && JSON.parse(body.value.index).artifactSha256 === sha2, 'the slice is of v2');
  } finally {
    await cp.stop();
    env.cleanup();
  }
});

t.run();
