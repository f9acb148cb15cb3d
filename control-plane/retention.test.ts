/**
 * Retention through the running control plane (issue 17; the store rule: store/retention.ts, its
 * contract on both backends: store/store.test.ts): the leader prunes what is older than
 * `retentionDays`, the audit log served afterwards verifies from its anchor, and new entries chain
 * on. Runs on SQLite and on PostgreSQL (scripts/test.ts).
 */
import { join } from 'node:path';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { fakeClosure, sampleFleet } from '../fixtures/artifacts.ts';
import { runCli } from '../fixtures/cli-testing.ts';
import { Client, makeEnv, operatorCliEnv, startCp, witnessingCheckin } from '../fixtures/cp-testing.ts';
import type { AuditResponse, CheckinResponse } from '../protocol/api.ts';
import type { AuditHead, HeadWitness } from '../protocol/audit-witness.ts';
import { verifyAuditChain } from '../protocol/audit-chain.ts';

const t = suite('retention');
const DAY = 86_400_000;

t('the leader prunes past retentionDays; the served audit log verifies from its anchor and goes on; 0 keeps everything', async () => {
  const env = await makeEnv();
  env.publish(sampleFleet({ hosts: 2, waves: 1, soakMinutes: 0, closures: true }));
  const cp = await startCp(env, { retentionDays: 2 });
  const keep = await startCp(env, { retentionDays: 0, dbPath: `${env.dir}/keep.sqlite` });
  const op = new Client(cp.url, env.ca.certPem, await env.operatorCert());
  try {
    const before = await cp.store.auditAll();
    assert.ok(before.length > 0, 'start-up wrote audit entries (artefact accepted, rollout opened)');
    assert.is((await cp.cp.pruneNow())!.audit, 0, 'nothing is two days old yet');
    env.clock.advance(3 * DAY);
    assert.is(await keep.cp.pruneNow(), null, 'retentionDays 0: retention off');
    const r = (await cp.cp.pruneNow())!;
    assert.is(r.audit, before.length, 'every entry from before is older than two days');
    assert.is(r.anchor?.seq, before.at(-1)!.seq);
    await cp.cp.reconcileNow(); // more entries may follow; the chain goes on from the anchor
    await cp.store.apply([{ kind: 'audit', entry: { atMs: env.clock.ms, kind: 'after-pruning', actor: 'cp', subject: 's', data: null } }]);
    const served = (await op.call('GET', '/v1/audit?after=0&limit=1000')).body as AuditResponse;
    assert.is(served.entries[0]!.kind, 'retention.pruned');
    assert.is(served.entries[0]!.prevHash, r.anchor!.hash, 'the first kept entry chains to the anchor');
    assert.ok(verifyAuditChain(served.entries, r.anchor!.hash, r.anchor!.seq + 1).ok);
  } finally {
    await op.close();
    await cp.stop();
    await keep.stop();
    env.cleanup();
  }
});

t('witnessed heads go with the entries they witness: audit verify --witnesses still passes, and a host back after the retention does not relink the chain', async () => {
  const env = await makeEnv();
  const fleet = sampleFleet({ hosts: 1, waves: 1, soakMinutes: 0, closures: true, withPubkeys: true });
  env.publish(fleet);
  const cp = await startCp(env, { retentionDays: 2 });
  const name = Object.keys(fleet.hosts)[0]!;
  const host = new Client(cp.url, env.ca.certPem, await env.hostCert(name));
  const opEnv = await operatorCliEnv(env, cp.url);
  const cli = (args: string[]) => runCli(args, { cwd: env.dir, env: opEnv, now: env.clock.now });
  const checkin = witnessingCheckin(env, host, name);
  const relinks = async () => (await cp.store.auditAll()).filter((e) => e.kind === 'audit.relinked').length;
  try {
    const old = (await checkin(null)).auditHead!;
    await checkin(old);
    const checkpointFile = join(env.dir, 'checkpoint.json');
    assert.is((await cli(['audit', 'checkpoint', '--out', checkpointFile])).code, 0);
    assert.equal((await cp.store.witnesses()).map((w) => w.by).sort(), [`host:${name}`, 'operator:alice']);
    const shown = (await checkin(old)).auditHead!; // the last head the host is shown before it goes offline
    assert.ok(shown.seq > old.seq, 'the checkpoint moved the head');
    env.clock.advance(3 * 86_400_000);
    const r = (await cp.cp.pruneNow())!;
    assert.is(r.witnesses, 2, 'both witnesses were received before the cutoff');
    assert.ok(r.anchor !== null && r.anchor.seq >= shown.seq, 'and the entries they witness are pruned');
    assert.equal(await cp.store.witnesses(), []);
    // The host was offline since: its next check-in signs the head it was shown three days ago.
    const now = (await checkin(shown)).auditHead!;
    assert.is(await relinks(), 0, 'a witness of a pruned entry is not a rebuilt chain');
    await checkin(now);
    const log = join(env.dir, 'audit.jsonl');
    const ws = join(env.dir, 'witnesses.json');
    const e = await cli(['audit', 'export', '--out', log, '--witnesses', ws]);
    assert.is(e.code, 0, e.stderr);
    const v = await cli(['audit', 'verify', log, '--witnesses', `${ws},${checkpointFile}`, '--json']);
    assert.is(v.code, 0, v.stdout + v.stderr);
    assert.equal((JSON.parse(v.stdout) as { witnesses: unknown }).witnesses, { matched: 1, before: 2 }, "the fresh witness is in the log; the old host witness and the checkpoint file's pruned entry are before it");
  } finally {
    await host.close();
    await cp.stop();
    env.cleanup();
  }
});

t.run();
