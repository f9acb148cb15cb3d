/**
 * Audit anchoring (issue 15) against the real CP, on both store backends: check-in answers carry
 * the chain head, the host's next check-in its signature over it (kept by the CP), an operator
 * checkpoint is recorded (`nixfleet audit checkpoint`). Then the three attacks on the database the
 * chain alone cannot see — a CP-authored row rewritten with every later hash recomputed, the
 * tail cut, the database wiped and the CP restarted — each still passes `audit verify` without
 * witnesses and fails with them, naming the witness.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { fakeClosure, sampleFleet } from '../fixtures/artifacts.ts';
import { runCli } from '../fixtures/cli-testing.ts';
import { Client, hostKeyOf, makeEnv, startCp, wipeStore, type Env, type RunningCp, operatorCliEnv, witnessingCheckin } from '../fixtures/cp-testing.ts';
import { SqliteStore } from '../control-plane/store/sqlite.ts';
import { PostgresStore } from '../control-plane/store/postgres.ts';
import type { Store } from '../control-plane/store/types.ts';
import type { AuditEntry, CheckinResponse } from '../protocol/api.ts';
import { auditEntryHash } from '../protocol/audit-chain.ts';
import { checkpointStatement, type AuditHead, type HeadWitness, type SignedCheckpoint } from '../protocol/audit-witness.ts';
import { canonicalBytes } from '../protocol/jcs.ts';
import { createFleetCa, mintOperatorCert } from '../pki/pki.ts';
import { signStatement } from '../pki/statement.ts';

const t = suite('audit anchoring: witnessed heads and checkpoints');

type S = { env: Env; cp: RunningCp; cli: (a: string[]) => ReturnType<typeof runCli>; name: string; fleetFile: string; checkin(witness: AuditHead | null): Promise<CheckinResponse>; close(): Promise<void>; restart(): Promise<void> };

async function scenario(): Promise<S> {
  const env = await makeEnv();
  const fleet = sampleFleet({ hosts: 1, waves: 1, closures: true, withPubkeys: true });
  env.publish(fleet);
  let cp = await startCp(env);
  const name = Object.keys(fleet.hosts)[0]!;
  let host = new Client(cp.url, env.ca.certPem, await env.hostCert(name));
  const opEnv = await operatorCliEnv(env, cp.url);
  const s: S = {
    env,
    cp,
    name,
    fleetFile: join(env.releasesDir, 'fleet.resolved.json'),
    cli: (args) => runCli(args, { cwd: env.dir, env: { ...opEnv, NIXFLEET_URL: s.cp.url }, now: env.clock.now }),
    checkin: (head) => witnessingCheckin(env, host, name)(head), // `host` changes on restart
    async close() {
      await host.close().catch(() => {});
      await s.cp.stop();
      env.cleanup();
    },
    async restart() {
      cp = s.cp = await startCp(env);
      await host.close();
      host = new Client(cp.url, env.ca.certPem, await env.hostCert(name));
    },
  };
  return s;
}

/** Witness a head (check-in, then the next check-in signs it), take a checkpoint; returns the witnessed head. */
async function witnessed(s: S): Promise<AuditHead> {
  const first = await s.checkin(null);
  assert.ok(first.auditHead !== undefined && first.auditHead.seq > 0, 'the check-in answer carries the head');
  await s.checkin(first.auditHead!);
  const cp = await s.cli(['audit', 'checkpoint', '--out', join(s.env.dir, 'checkpoint.json')]);
  assert.is(cp.code, 0, cp.stderr);
  assert.match(cp.stdout, /checkpoint: seq \d+, head [0-9a-f]{64}, by operator:alice/);
  return first.auditHead!;
}

async function exportAndVerify(s: S, witnessFiles: string[]): Promise<{ plain: Awaited<ReturnType<typeof runCli>>; anchored: Awaited<ReturnType<typeof runCli>> }> {
  const log = join(s.env.dir, 'audit.jsonl');
  const ws = join(s.env.dir, 'witnesses.json');
  const e = await s.cli(['audit', 'export', '--out', log, '--witnesses', ws]);
  assert.is(e.code, 0, e.stderr);
  const plain = await s.cli(['audit', 'verify', log, '--fleet', s.fleetFile]);
  const anchored = await s.cli(['audit', 'verify', log, '--fleet', s.fleetFile, '--witnesses', [ws, ...witnessFiles].join(','), '--json']);
  return { plain, anchored };
}

/** Raw SQL on the CP's database (the attacker with database access), on either backend. */
async function sqlOn(store: Store, sqlite: string, pgText: string, params: unknown[]): Promise<void> {
  if (store instanceof SqliteStore) store.db.prepare(sqlite).run(...params);
  else if (store instanceof PostgresStore) await store.pool.query(pgText, params);
  else throw new Error('unknown backend');
}

t('intact: the witnessed heads and the checkpoint are in the log (verify passes, counting them)', async () => {
  const s = await scenario();
  try {
    await witnessed(s);
    const { anchored } = await exportAndVerify(s, [join(s.env.dir, 'checkpoint.json')]);
    assert.is(anchored.code, 0, anchored.stdout + anchored.stderr);
    const v = JSON.parse(anchored.stdout) as { witnesses: { matched: number } };
    assert.ok(v.witnesses.matched >= 2, anchored.stdout);
    assert.ok((await s.cp.store.auditAll()).some((e) => e.kind === 'audit.checkpoint' && e.actor === 'operator:alice'));
    // A forged witness (signed by another key) is not kept.
    const before = (await s.cp.store.witnesses()).length;
    const head = (await s.cp.store.auditHead())!;
    const w: HeadWitness = { hostname: s.name, seq: head.seq, hash: head.hash, at: new Date(s.env.clock.ms).toISOString() };
    const host = new Client(s.cp.url, s.env.ca.certPem, await s.env.hostCert(s.name));
    await host.call('POST', '/v1/agent/checkin', { hostname: s.name, currentClosure: null, bootId: 'b', probes: [], failedUnits: [], lastOutcome: null, auditWitness: { witness: w, signature: hostKeyOf(5, 'other').sign(w) } });
    await host.close();
    assert.is((await s.cp.store.witnesses()).length, before, 'a witness that does not verify under the host key is dropped');
  } finally {
    await s.close();
  }
});

t('the checkpoint file is signed with the operator certificate it carries: a changed field, another operator, or a certificate the fleet CA did not issue → WITNESS_SIGNATURE', async () => {
  const s = await scenario();
  try {
    await witnessed(s);
    const cpFile = join(s.env.dir, 'checkpoint.json');
    const c = JSON.parse(readFileSync(cpFile, 'utf8')) as SignedCheckpoint;
    assert.ok(c.signature !== undefined && c.signature.certificate.includes('BEGIN CERTIFICATE'), 'signed, with the certificate');
    const ca = join(s.env.dir, 'operator', 'ca.pem');
    const log = join(s.env.dir, 'audit.jsonl');
    assert.is((await s.cli(['audit', 'export', '--out', log])).code, 0);
    const verifyWith = async (checkpoint: SignedCheckpoint, extra: string[] = ['--fleet-ca', ca]) => {
      const f = join(s.env.dir, 'cp-variant.json');
      writeFileSync(f, JSON.stringify(checkpoint));
      return s.cli(['audit', 'verify', log, '--witnesses', f, ...extra]);
    };
    const good = await verifyWith(c);
    assert.is(good.code, 0, good.stdout + good.stderr);
    const changed = await verifyWith({ ...c, at: new Date(Date.parse(c.at) + 1000).toISOString() });
    assert.is(changed.code, 1);
    assert.match(changed.stderr, /WITNESS_SIGNATURE: .*SIGNATURE_INVALID/);
    const statement = canonicalBytes(checkpointStatement(c));
    assert.ok(statement.ok);
    const mallory = await s.env.operatorCert('mallory');
    const other = await verifyWith({ ...c, signature: signStatement(statement.value, mallory.keyPem, mallory.certPem) });
    assert.is(other.code, 1);
    assert.match(other.stderr, /WITNESS_SIGNATURE: .*SIGNER_MISMATCH/);
    const foreignCa = await createFleetCa({ commonName: 'not the fleet CA' });
    const forged = await mintOperatorCert(foreignCa, 'alice');
    const forgedCp = { ...c, signature: signStatement(statement.value, forged.keyPem, forged.certPem) };
    assert.is((await verifyWith(forgedCp, [])).code, 0, 'without --fleet-ca only the signature and the name are checked');
    const refused = await verifyWith(forgedCp);
    assert.is(refused.code, 1);
    assert.match(refused.stderr, /WITNESS_SIGNATURE: .*SIGNER_NOT_ISSUED/);
  } finally {
    await s.close();
  }
});

t('a CP-authored row rewritten and every later hash recomputed: the chain verifies, the witnesses do not (WITNESS_REWRITTEN)', async () => {
  const s = await scenario();
  try {
    const head = await witnessed(s);
    await s.cp.stop();
    const { openTestStore } = await import('../fixtures/cp-testing.ts');
    const store = await openTestStore(s.cp.config.dbPath);
    const entries: AuditEntry[] = await store.auditAll();
    const victim = entries.find((e) => e.actor === 'cp' && e.seq <= head.seq)!;
    let prev = victim.prevHash;
    for (const e of entries.filter((x) => x.seq >= victim.seq)) {
      const data = e.seq === victim.seq ? { ...(e.data as object), rewritten: true } : e.data;
      const next = { seq: e.seq, at: e.at, kind: e.kind, actor: e.actor, subject: e.subject, data, prevHash: prev };
      const hash = auditEntryHash(next);
      await sqlOn(store, 'UPDATE audit SET data_json = ?, prev_hash = ?, hash = ? WHERE seq = ?', 'UPDATE audit SET data_json = $1, prev_hash = $2, hash = $3 WHERE seq = $4', [JSON.stringify(data), prev, hash, e.seq]);
      prev = hash;
    }
    await store.close();
    s.cp = await startCp(s.env);
    const { plain, anchored } = await exportAndVerify(s, [join(s.env.dir, 'checkpoint.json')]);
    assert.is(plain.code, 0, 'the rewritten chain alone still verifies: ' + plain.stderr);
    assert.is(anchored.code, 1);
    const v = JSON.parse(anchored.stdout) as { ok: boolean; code: string; message: string };
    assert.is(v.code, 'WITNESS_REWRITTEN');
    assert.match(v.message, new RegExp(`host:${s.name}'s witnessed head seq ${head.seq} .*rewritten`));
  } finally {
    await s.close();
  }
});

t('the tail cut behind a witnessed head: WITNESS_TRUNCATED naming the checkpoint', async () => {
  const s = await scenario();
  try {
    const head = await witnessed(s);
    const cpFile = join(s.env.dir, 'checkpoint.json');
    const checkpoint = JSON.parse(readFileSync(cpFile, 'utf8')) as { seq: number };
    await s.cp.stop();
    const { openTestStore } = await import('../fixtures/cp-testing.ts');
    const store = await openTestStore(s.cp.config.dbPath);
    const cut = Math.min(head.seq, checkpoint.seq);
    await sqlOn(store, 'DELETE FROM audit WHERE seq >= ?', 'DELETE FROM audit WHERE seq >= $1', [cut]);
    await sqlOn(store, 'DELETE FROM audit_witness WHERE seq >= ?', 'DELETE FROM audit_witness WHERE seq >= $1', [cut]);
    await store.close();
    s.cp = await startCp(s.env);
    const { plain, anchored } = await exportAndVerify(s, [cpFile]);
    assert.is(plain.code, 0, 'the cut chain alone still verifies: ' + plain.stderr);
    assert.is(anchored.code, 1, anchored.stdout);
    const v = JSON.parse(anchored.stdout) as { code: string; message: string };
    assert.is(v.code, 'WITNESS_TRUNCATED', v.message);
    assert.match(v.message, /operator:alice's witnessed head seq \d+ .*the log ends at seq \d+ \(its tail was cut\)/);
  } finally {
    await s.close();
  }
});

t('the database wiped and the CP restarted: the host re-sends its witness, the new chain relinks to it (WITNESS_REBUILT)', async () => {
  const s = await scenario();
  try {
    const head = await witnessed(s);
    await s.cp.stop();
    await wipeStore(s.cp.config.dbPath);
    await s.restart();
    // The agent signs the head it was shown last (before the wipe) into its next check-in.
    const r = await s.checkin(head);
    assert.ok(r.auditHead !== undefined);
    const relinked = (await s.cp.store.auditAll()).filter((e) => e.kind === 'audit.relinked');
    assert.is(relinked.length, 1, 'one relink entry');
    assert.equal((relinked[0]!.data as { witness: HeadWitness }).witness.hash, head.hash);
    await s.checkin(head); // repeated: no second relink
    assert.is((await s.cp.store.auditAll()).filter((e) => e.kind === 'audit.relinked').length, 1);
    const { plain, anchored } = await exportAndVerify(s, []);
    assert.is(plain.code, 0, 'the new chain alone verifies from genesis: ' + plain.stderr);
    assert.is(anchored.code, 1, anchored.stdout);
    const v = JSON.parse(anchored.stdout) as { code: string; message: string };
    assert.is(v.code, 'WITNESS_REBUILT');
    assert.match(v.message, new RegExp(`host:${s.name}'s witnessed head seq ${head.seq} .*restarted`));
  } finally {
    await s.close();
  }
});

t.run();
