/**
 * Retention through the running control plane (issue 17; the store rule: store/retention.ts, its
 * contract on both backends: store/store.test.ts): the leader prunes what is older than
 * `retentionDays`, the audit log served afterwards verifies from its anchor, and new entries chain
 * on. Runs on SQLite and on PostgreSQL (scripts/test.ts).
 */
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { sampleFleet } from '../fixtures/artifacts.ts';
import { Client, makeEnv, startCp } from '../fixtures/cp-testing.ts';
import type { AuditResponse } from '../protocol/api.ts';
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

t.run();
