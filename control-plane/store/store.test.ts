/**
 * The `Store` contract, on every backend: SQLite (a temp file) and PostgreSQL (one throwaway
 * cluster for this file, a fresh database per test; fixtures/postgres.ts). Only the interface is
 * used here; sqlite.test.ts covers what is SQLite's own (WAL, the synchronous group commit).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { verifyAuditChain } from '../../protocol/audit-chain.ts';
import { checkWitnesses } from '../../protocol/audit-witness.ts';
import type { Observed, Rollout } from '../../reconciler/types.ts';
import { startPostgres, type PgCluster } from '../../fixtures/postgres.ts';
import { planControlWrites, planObservedWrites } from '../plan.ts';
import { PostgresStore } from './postgres.ts';
import { SqliteStore } from './sqlite.ts';
import { EVIDENCE_KEEP_UNCHANGED_MS, NotLeaderError, type EvidenceRow, type HostRow, type RolloutOrigin, type Store, type Write } from './types.ts';

const dir = mkdtempSync(join(tmpdir(), 'nixfleet-store-contract-'));
let cluster: PgCluster | null = null;
let n = 0;

type Backend = { name: string; open(): Promise<{ store: Store; again(): Promise<Store> }> };

const BACKENDS: Backend[] = [
  {
    name: 'sqlite',
    async open() {
      const path = join(dir, `db-${n++}.sqlite`);
      return { store: new SqliteStore(path), again: async () => new SqliteStore(path) };
    },
  },
  {
    name: 'postgres',
    async open() {
      cluster ??= await startPostgres();
      const conn = await cluster.createDatabase(`contract${n++}`);
      const open = () => PostgresStore.open({ host: conn.host, port: conn.port, database: conn.database, user: conn.user });
      return { store: await open(), again: open };
    },
  },
];

const rollout = (id: string, channel: string, hosts: Rollout['hosts'], state: Rollout['state'] = 'Executing'): Rollout => ({
  id,
  channel,
  targetRef: id.split('@')[1]!,
  state,
  currentWave: 0,
  waveCount: 2,
  openedAtMs: 1,
  startedAtMs: 2,
  stateReason: 'opened',
  hosts,
  history: [],
});
const empty = (): Observed => ({ hosts: {}, rollouts: {}, quarantinedClosures: {}, pausedChannels: {}, lastConverged: {}, deferrals: {}, drifted: {}, controls: {} });
const origin: RolloutOrigin = { signedAt: '2026-01-01T00:00:00Z', artifactSha256: 'ff' };
const hostRow = (hostname: string, lastCheckinMs: number): HostRow => ({
  hostname,
  lastCheckinMs,
  currentClosure: 'c',
  bootId: 'b',
  probesObserved: true,
  probesPassing: false,
  failedUnits: ['x.service'],
  complianceFailures: null,
  probesJson: '[]',
  lastOutcomeJson: null,
  pendingReboot: true,
  agentVersion: '1.0',
  certNotAfterMs: 1_900_000_000_000,
});
const audit = (kind: string, atMs = 0): Write => ({ kind: 'audit', entry: { atMs, kind, actor: 'cp', subject: 's', data: { nested: [1, 'x'] } } });
/** A write every backend refuses (foreign key: no such rollout). */
const failing: Write = { kind: 'rollout-host.put', rolloutId: 'no-such-rollout', hostname: 'h', host: { state: 'Queued', enteredAtMs: 0, closure: 'c', wave: 0, skip: null, rollbackRequested: false } };

for (const b of BACKENDS) {
  const t = suite(`store contract: ${b.name}`);

  t('evidence (issue 15): the newest per host and control replaced; the history keeps changes and a daily record, survives a reopen', async () => {
    const { store, again } = await b.open();
    const T = Date.parse('2026-05-01T12:00:00Z');
    const row = (control: string, result: string, atMs: number, observed = 'x'): EvidenceRow => {
      const rec = { schemaVersion: 1, hostname: 'web1', control, result, observed, closure: 'c1', bootId: 'b', rolloutId: null, at: new Date(atMs).toISOString() };
      return { hostname: 'web1', control, result, closure: 'c1', rolloutId: null, at: rec.at, receivedMs: atMs, recordJson: JSON.stringify(rec), signature: null, verdict: 'unsigned-no-pubkey' };
    };
    await store.apply([{ kind: 'evidence', rows: [row('a', 'pass', T), row('b', 'fail', T)] }]);
    await store.apply([{ kind: 'evidence', rows: [row('a', 'pass', T + 1000), row('b', 'pass', T + 1000)] }]); // a unchanged, b changed
    await store.apply([{ kind: 'evidence', rows: [row('a', 'pass', T + 2000, 'y')] }]); // observed changed
    await store.apply([{ kind: 'evidence', rows: [row('a', 'pass', T + 2000 + EVIDENCE_KEEP_UNCHANGED_MS)] }]); // a day later
    const reopened = await again();
    const latest = await reopened.latestEvidence();
    assert.equal(latest.map((e) => [e.control, e.result, e.at]), [
      ['a', 'pass', new Date(T + 2000 + EVIDENCE_KEEP_UNCHANGED_MS).toISOString()],
      ['b', 'pass', new Date(T + 1000).toISOString()],
    ]);
    const history = await reopened.evidenceHistory(T, T + 10 * EVIDENCE_KEEP_UNCHANGED_MS);
    assert.equal(history.map((e) => [e.control, e.receivedMs - T]), [['a', 0], ['b', 0], ['b', 1000], ['a', 2000], ['a', 2000 + EVIDENCE_KEEP_UNCHANGED_MS]]);
    assert.equal(await reopened.evidenceHistory(T + 1, T + 1500), [history[2]!]);
    await store.close();
    await reopened.close();
  });

  t('a planned diff, applied, reads back through loadObserved and the row reads', async () => {
    const { store } = await b.open();
    const before = empty();
    const after = empty();
    after.hosts['web1'] = { lastCheckinMs: 5, currentClosure: 'c1', probes: { observed: true, passing: true }, failedUnits: [], bootId: 'b' };
    const r = rollout('stable@abc', 'stable', {
      web1: { state: 'Dispatched', enteredAtMs: 3, closure: 'c2', wave: 0, skip: null, rollbackRequested: false },
      web2: { state: 'Queued', enteredAtMs: 3, closure: 'c3', wave: 1, skip: { code: 'offline', reason: 'gone', sinceMs: 1 }, rollbackRequested: true },
    });
    r.history.push({ atMs: 3, host: 'web1', from: 'Queued', to: 'Dispatched', wave: 0, reason: 'wave 0' });
    after.rollouts[r.id] = r;
    after.quarantinedClosures['stable'] = ['bad'];
    after.lastConverged['stable'] = 'old';
    after.deferrals['stable'] = { rolloutId: 'stable@abc', reason: 'gated', sinceMs: 4 };
    // Issue 14 state (drift, controls) is stored too.
    after.drifted = { web1: { sinceMs: 4, channel: 'stable', rolloutId: 'stable@abc', expected: 'c2', actual: 'c9' } };
    after.controls = { 'stable@abc': { stall: { sinceMs: 5, gate: 'host-edge', hosts: ['web2'], reason: 'waits' }, windowHold: null, released: { web2: { atMs: 6, reason: 'gone', by: 'operator:alice' } } } };
    // Pauses are the operator's writes (not planned from a diff).
    await store.apply([...planObservedWrites(before, after, 10, origin).writes, { kind: 'pause.put', row: { channel: 'edge', sinceMs: 7, reason: 'maintenance', by: 'operator:alice' } }]);
    after.pausedChannels['edge'] = { sinceMs: 7, reason: 'maintenance' };
    const want = structuredClone(after);
    want.rollouts['stable@abc']!.history = [];
    assert.equal(await store.loadObserved(), want);
    assert.equal(await store.loadChannelState(), { quarantinedClosures: want.quarantinedClosures, pausedChannels: want.pausedChannels, lastConverged: want.lastConverged, deferrals: want.deferrals, drifted: want.drifted, controls: want.controls });
    // Cleared: the drift ends, the controls go.
    await store.apply(planControlWrites(want, { drifted: {}, controls: {} }));
    const cleared = await store.loadChannelState();
    assert.equal([cleared.drifted, cleared.controls], [{}, {}]);
    await store.apply(planControlWrites({ drifted: {}, controls: {} }, want));
    assert.is((await store.transitions('stable@abc')).length, 1);
    assert.is((await store.getRollout('stable@abc'))!.signedAt, origin.signedAt);
    assert.equal(await store.rolloutHostCounts('stable@abc'), { Dispatched: 1, Queued: 1 });
    assert.equal(await store.hostStateCounts(), { Dispatched: 1, Queued: 1 });
    assert.equal(await store.rolloutStateCounts(), { Executing: 1 });
    assert.equal([...(await store.newestRolloutRowPerHost()).keys()].sort(), ['web1', 'web2']);
    assert.is((await store.getPause('edge'))!.reason, 'maintenance');
    await store.apply([{ kind: 'host.put', row: hostRow('web9', 99) }]);
    assert.equal(await store.getHost('web9'), hostRow('web9', 99));
    assert.equal((await store.allHosts()).map((h) => h.hostname), ['web1', 'web9']);
    await store.close();
  });

  t('terminal rollouts are loaded only when newest of their channel', async () => {
    const { store } = await b.open();
    const after = empty();
    after.rollouts['a@1'] = { ...rollout('a@1', 'a', {}, 'Superseded'), openedAtMs: 1 };
    after.rollouts['a@2'] = { ...rollout('a@2', 'a', {}, 'Converged'), openedAtMs: 2 };
    after.rollouts['b@1'] = { ...rollout('b@1', 'b', {}, 'Halted'), openedAtMs: 1 };
    after.rollouts['b@2'] = { ...rollout('b@2', 'b', {}, 'Executing'), openedAtMs: 2 };
    await store.apply(planObservedWrites(empty(), after, 1, origin).writes);
    assert.equal(Object.keys((await store.loadObserved()).rollouts).sort(), ['a@2', 'b@1', 'b@2']);
    assert.equal((await store.allRollouts()).map((r) => r.id), ['a@2', 'b@2', 'a@1', 'b@1']);
    await store.close();
  });

  t('retention: old reports, finished rollouts (not the newest, nothing pending) and audit entries go; the chain verifies from its anchor and goes on', async () => {
    const { store, again } = await b.open();
    const OLD = 1_000;
    const NEW = 1_000_000_000_000;
    const rh = (state: 'Queued' | 'Converged') => ({ h: { state, enteredAtMs: 1, closure: 'c', wave: 0, skip: null, rollbackRequested: false } });
    const after = empty();
    after.rollouts['a@0'] = { ...rollout('a@0', 'a', rh('Queued'), 'Superseded'), openedAtMs: 0 };
    after.rollouts['a@1'] = { ...rollout('a@1', 'a', rh('Converged'), 'Superseded'), openedAtMs: 1 };
    after.rollouts['a@1']!.history.push({ atMs: OLD, host: 'h', from: 'Healthy', to: 'Converged', wave: 0, reason: 'old' });
    after.rollouts['a@2'] = { ...rollout('a@2', 'a', rh('Converged'), 'Converged'), openedAtMs: 2 };
    after.rollouts['b@1'] = { ...rollout('b@1', 'b', rh('Queued'), 'Executing'), openedAtMs: 1 };
    await store.apply(planObservedWrites(empty(), after, OLD, origin).writes);
    await store.apply([
      { kind: 'dispatch.put', rolloutId: 'a@0', hostname: 'h', channel: 'a', closure: 'c', wave: 0, createdMs: OLD }, // still pending: a@0 stays
      { kind: 'dispatch.put', rolloutId: 'a@1', hostname: 'h', channel: 'a', closure: 'c', wave: 0, createdMs: OLD },
      { kind: 'dispatch.finish', rolloutId: 'a@1', hostname: 'h', status: 'confirmed', finishedMs: OLD, rollbackReason: null, onlyIfPending: true },
      { kind: 'report', row: { hostname: 'h', receivedMs: OLD, event: 'confirmed-record', rolloutId: 'a@1', reportJson: '{}', signature: null, verdict: 'verified' }, audit: null },
      { kind: 'report', row: { hostname: 'h', receivedMs: NEW, event: 'activation-started', rolloutId: 'b@1', reportJson: '{}', signature: null, verdict: 'verified' }, audit: null },
      ...[0, 1, 2, 3, 4].map((i) => audit(`old-${i}`, OLD + i)),
      audit('new-0', NEW),
      audit('new-1', NEW + 1),
      // Controls of the pruned rollout, of a kept one, and of one already gone (left by an earlier pruning).
      ...['a@1', 'a@2', 'gone@1'].map((id): Write => ({ kind: 'controls.put', rolloutId: id, controls: { approvals: { alice: { atMs: OLD } } } })),
    ]);
    const entries = await store.auditAll();
    const witness = (by: string, kind: string, receivedMs: number): Write => {
      const e = entries.find((x) => x.kind === kind)!;
      return { kind: 'witness', row: { by, seq: e.seq, hash: e.hash, at: e.at, witness: null, signature: null, receivedMs } };
    };
    // Witnessed heads: two received before the cutoff, one of an old entry received after it (a host back from a long absence), one of a kept entry.
    await store.apply([witness('host:h', 'old-1', OLD + 1), witness('operator:alice', 'old-2', OLD + 2), witness('host:late', 'old-3', NEW), witness('host:h', 'new-1', NEW + 1)]);
    const head = entries.find((e) => e.kind === 'old-4')!;
    const fence = { holder: 'retention-test', epoch: (await store.lease('retention-test', 60_000))! };
    const r = await store.prune(OLD + 1_000, NEW + 2, fence);
    assert.equal(
      { reports: r.reports, rollouts: r.rollouts, transitions: r.transitions, dispatches: r.dispatches, controls: r.controls, audit: r.audit, witnesses: r.witnesses },
      { reports: 1, rollouts: 1, transitions: 1, dispatches: 1, controls: 2, audit: 5, witnesses: 2 },
    );
    assert.equal(Object.keys((await store.loadChannelState()).controls ?? {}), ['a@2'], 'controls go with their rollout (and those of rollouts already gone)');
    assert.equal((await store.witnesses()).map((w) => w.by), ['host:late', 'host:h'], 'witnesses received before the cutoff go');
    assert.equal(r.anchor && { seq: r.anchor.seq, hash: r.anchor.hash }, { seq: head.seq, hash: head.hash }, 'the newest pruned entry anchors the chain');
    assert.equal((await store.allRollouts()).map((x) => x.id).sort(), ['a@0', 'a@2', 'b@1']);
    assert.equal(await store.transitions('a@1'), []);
    assert.is(await store.getDispatch('a@1', 'h'), null);
    assert.is((await store.getDispatch('a@0', 'h'))!.status, 'pending');
    assert.is(await store.reportCount(), 1);
    let kept = await store.auditAll();
    assert.equal(kept.map((e) => e.kind), ['new-0', 'new-1', 'retention.pruned']);
    const anchor = (await store.auditAnchor())!;
    assert.is(anchor.seq, head.seq);
    assert.ok(verifyAuditChain(kept, anchor.hash, anchor.seq + 1).ok, 'the kept log verifies from its anchor');
    assert.not.ok(verifyAuditChain(kept).ok, 'and not from genesis (the anchor is needed)');
    assert.equal((kept[2]!.data as { anchor: unknown }).anchor, { seq: head.seq, hash: head.hash }, 'the pruning is in the chain, with its anchor');
    assert.equal([(kept[2]!.data as { controls: unknown }).controls, (kept[2]!.data as { witnesses: unknown }).witnesses], [2, 2], 'and what it removed');
    const checked = checkWitnesses(kept, await store.witnesses());
    assert.equal(checked.ok && checked.value, { matched: 1, before: 1 }, 'the kept witnesses check against the kept log: one in it, one before it');
    // Everything old: the chain goes on from the anchor, also after reopening.
    await store.prune(NEW + 10, NEW + 20, fence);
    kept = await store.auditAll();
    assert.equal(kept.map((e) => e.kind), ['retention.pruned']);
    await store.close();
    const s2 = await again();
    await s2.apply([audit('after-reopen', NEW + 30)]);
    const a2 = (await s2.auditAnchor())!;
    const all = await s2.auditAll();
    assert.equal(all.map((e) => e.kind), ['retention.pruned', 'after-reopen']);
    assert.ok(verifyAuditChain(all, a2.hash, a2.seq + 1).ok);
    if (s2.shared) {
      let refused: unknown = null;
      await Promise.resolve(s2.prune(NEW, NEW, { holder: 'someone-else', epoch: 99 })).catch((e: unknown) => (refused = e));
      assert.ok(refused instanceof NotLeaderError, 'only the leader prunes (fenced)');
    }
    await s2.close();
  });

  t('dispatch lifecycle: deliver once (deadline fixed), finish only if pending, withdraw audits, expiry query', async () => {
    const { store } = await b.open();
    await store.apply([{ kind: 'dispatch.put', rolloutId: 'r', hostname: 'h', channel: 'c', closure: 'x', wave: 0, createdMs: 100 }]);
    assert.is((await store.checkinReads('h')).pending!.deliveredMs, null);
    await store.apply([
      { kind: 'dispatch.deliver', rolloutId: 'r', hostname: 'h', deliveredMs: 200, deadlineMs: 320 },
      { kind: 'dispatch.deliver', rolloutId: 'r', hostname: 'h', deliveredMs: 250, deadlineMs: 999 },
    ]);
    assert.is((await store.getDispatch('r', 'h'))!.deadlineMs, 320);
    assert.equal(await store.expiredDispatches(319), []);
    assert.is((await store.expiredDispatches(320)).length, 1);
    await store.apply([{ kind: 'dispatch.finish', rolloutId: 'r', hostname: 'h', status: 'cancelled', finishedMs: 300, rollbackReason: 'halted', onlyIfPending: true }]);
    await store.apply([{ kind: 'dispatch.finish', rolloutId: 'r', hostname: 'h', status: 'confirmed', finishedMs: 301, rollbackReason: null, onlyIfPending: true }]);
    assert.is((await store.getDispatch('r', 'h'))!.status, 'cancelled', 'onlyIfPending: the second finish is a no-op');
    assert.is((await store.rollbackFor('h'))!.rollbackReason, 'halted');
    await store.apply([{ kind: 'dispatch.clear-rollback', rolloutId: 'r', hostname: 'h' }]);
    assert.is(await store.rollbackFor('h'), null);
    await store.apply([
      { kind: 'dispatch.put', rolloutId: 'r2', hostname: 'a', channel: 'c', closure: 'x', wave: 0, createdMs: 1 },
      { kind: 'dispatch.put', rolloutId: 'r2', hostname: 'b', channel: 'c', closure: 'x', wave: 0, createdMs: 1 },
      { kind: 'dispatch.withdraw', rolloutId: 'r2', finishedMs: 5, auditIfAny: { atMs: 5, kind: 'dispatch.withdrawn', actor: 'cp', subject: 'r2', data: { why: 'superseded' } } },
    ]);
    assert.equal(await store.pendingDispatches(), []);
    assert.equal((await store.auditAll()).map((e) => e.data), [{ undelivered: 2, why: 'superseded' }]);
    await store.close();
  });

  t('reports get ids and audit entries; artefacts keep bytes and signature', async () => {
    const { store } = await b.open();
    const report = (hostname: string): Write => ({
      kind: 'report',
      row: { hostname, receivedMs: 1, event: 'activated', rolloutId: null, reportJson: '{}', signature: null, verdict: 'unsigned' },
      audit: { atMs: 1, kind: 'report', actor: `host:${hostname}`, subject: hostname, data: { verdict: 'unsigned' } },
    });
    const r = await store.apply([report('a'), report('b')]);
    assert.is(r.reportIds.length, 2);
    assert.is(r.reportIds[1], r.reportIds[0]! + 1);
    assert.is(await store.reportCount(), 2);
    assert.equal((await store.auditAll()).map((e) => (e.data as { id: number }).id), r.reportIds);
    await store.apply([{ kind: 'artifact.put', row: { kind: 'fleet', signedAt: 's', sha256: 'h', bytes: new Uint8Array([1, 2, 3]), signature: new Uint8Array(64).fill(7), acceptedMs: 5 } }]);
    const a = (await store.getArtifact('fleet'))!;
    assert.equal([...a.bytes], [1, 2, 3]);
    assert.is(a.signature.length, 64);
    assert.is(await store.getArtifact('revocations'), null);
    // Issue 15: every accepted artefact stays in the history (first acceptance), not only the newest.
    await store.apply([{ kind: 'artifact.put', row: { kind: 'fleet', signedAt: 't', sha256: 'h2', bytes: new Uint8Array([4]), signature: new Uint8Array(64).fill(8), acceptedMs: 9 } }]);
    await store.apply([{ kind: 'artifact.put', row: { kind: 'fleet', signedAt: 's', sha256: 'h', bytes: new Uint8Array([1, 2, 3]), signature: new Uint8Array(64).fill(7), acceptedMs: 12 } }]);
    const hist = await store.artifactHistory('fleet');
    assert.equal(hist.map((x) => [x.sha256, x.signedAt, x.acceptedMs, [...x.bytes]]), [['h', 's', 5, [1, 2, 3]], ['h2', 't', 9, [4]]]);
    assert.equal(await store.artifactHistory('revocations'), []);
    await store.close();
  });

  t('a failed apply changes nothing (audit head included); the chain verifies after reopening', async () => {
    const { store, again } = await b.open();
    await store.apply([audit('a')]);
    let threw = false;
    try {
      await store.apply([audit('lost'), { kind: 'host.put', row: hostRow('lost', 1) }, failing]);
    } catch {
      threw = true;
    }
    assert.ok(threw, 'the foreign-key violation fails the transaction');
    assert.is(await store.getHost('lost'), null);
    await store.apply([audit('b')]);
    await store.close();
    const s2 = await again();
    await s2.apply([audit('c')]);
    const all = await s2.auditAll();
    assert.equal(all.map((e) => [e.seq, e.kind]), [[1, 'a'], [2, 'b'], [3, 'c']]);
    assert.ok(verifyAuditChain(all).ok);
    assert.equal(await s2.auditPage(1, 1), [all[1]]);
    await s2.close();
  });

  t('group commit: lists of one turn commit together; a failing list undoes only itself', async () => {
    const { store } = await b.open();
    const rolledBack: unknown[] = [];
    store.onGroupRollback = (e) => rolledBack.push(e);
    const results = await Promise.allSettled([
      store.applyGrouped([{ kind: 'host.put', row: hostRow('a', 1) }, audit('a')]),
      Promise.resolve().then(() => store.applyGrouped([{ kind: 'host.put', row: hostRow('undone', 1) }, audit('undone'), failing])),
      store.applyGrouped([{ kind: 'host.put', row: hostRow('b', 2) }, audit('b')]),
    ]);
    assert.equal(results.map((r) => r.status), ['fulfilled', 'rejected', 'fulfilled']);
    assert.equal((await store.allHosts()).map((h) => h.hostname), ['a', 'b']);
    const all = await store.auditAll();
    assert.equal(all.map((e) => e.kind), ['a', 'b']);
    assert.ok(verifyAuditChain(all).ok);
    // A later apply runs after the grouped writes queued before it.
    const g = store.applyGrouped([{ kind: 'host.put', row: hostRow('h', 1) }]);
    const p = store.apply([{ kind: 'host.put', row: hostRow('h', 2) }]);
    await Promise.all([g, p]);
    assert.is((await store.getHost('h'))!.lastCheckinMs, 2);
    await store.close();
  });

  if (b.name === 'postgres') {
    t('two replicas on one database: one audit chain, every grouped write kept', async () => {
      const { store: s1, again } = await b.open();
      const s2 = await again();
      const writes: unknown[] = [];
      for (let i = 0; i < 40; i++) {
        const s = i % 2 === 0 ? s1 : s2;
        writes.push(i % 3 === 0 ? s.apply([audit(`a${i}`, i)]) : s.applyGrouped([{ kind: 'host.put', row: hostRow(`h${i}`, i) }, audit(`g${i}`, i)]));
      }
      await Promise.all(writes);
      const all = await s1.auditAll();
      assert.is(all.length, 40);
      assert.ok(verifyAuditChain(all).ok, 'one chain across both replicas');
      assert.is((await s2.allHosts()).length, 40 - Math.ceil(40 / 3));
      await s1.close();
      await s2.close();
    });
  }

  t.run();
}

process.once('beforeExit', () => {
  rmSync(dir, { recursive: true, force: true });
  if (cluster !== null) {
    const c = cluster;
    cluster = null;
    void c.stop();
  }
});
