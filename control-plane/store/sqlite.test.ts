import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import type { Observed, Rollout } from '../../reconciler/types.ts';
import { GENESIS_HASH, verifyAuditChain } from '../../protocol/audit-chain.ts';
import { planObservedWrites } from '../plan.ts';
import { SqliteStore as Store } from './sqlite.ts';
import { MIGRATIONS } from './migrations.ts';
import type { HostRow, RolloutOrigin } from './types.ts';

const dir = mkdtempSync(join(tmpdir(), 'nixfleet-cp-store-'));
let n = 0;
const fresh = (): { store: Store; path: string } => {
  const path = join(dir, `db-${n++}.sqlite`);
  return { store: new Store(path), path };
};

const t = suite('store');

t('issue 16: a version-1 database is upgraded in place (hosts keep their rows, gain the certificate expiry)', () => {
  const path = join(dir, `db-${n++}.sqlite`);
  const v1 = new Database(path);
  v1.exec(MIGRATIONS[0]!);
  v1.pragma('user_version = 1');
  v1.prepare("INSERT INTO hosts (hostname, last_checkin_ms) VALUES ('old', 5)").run();
  v1.close();
  const store = new Store(path);
  assert.is(store.db.pragma('user_version', { simple: true }), MIGRATIONS.length);
  const h = store.getHost('old');
  assert.is(h?.lastCheckinMs, 5);
  assert.is(h?.certNotAfterMs, null);
  store.close();
});

t('WAL mode and schema version; reopening keeps data and the audit head', () => {
  const { store, path } = fresh();
  assert.is(store.db.pragma('journal_mode', { simple: true }), 'wal');
  assert.is(store.db.pragma('user_version', { simple: true }), MIGRATIONS.length);
  store.appendAudit({ atMs: 0, kind: 'x', actor: 'cp', subject: 's', data: { a: 1 } });
  store.close();
  const again = new Store(path);
  const e = again.appendAudit({ atMs: 1000, kind: 'y', actor: 'cp', subject: 's', data: null });
  assert.is(e.seq, 2);
  assert.ok(verifyAuditChain(again.auditAll()).ok);
  again.close();
});

t('audit chain verifies end to end; changing any stored entry breaks it at that entry', () => {
  const { store } = fresh();
  for (let i = 0; i < 5; i++) store.appendAudit({ atMs: i * 1000, kind: 'k', actor: 'cp', subject: `s${i}`, data: { i, nested: { list: [i, 'x'] } } });
  const all = store.auditAll();
  assert.is(all[0]!.prevHash, GENESIS_HASH);
  assert.equal(verifyAuditChain(all), { ok: true, count: 5, lastHash: all[4]!.hash });
  for (const [col, value] of [
    ['data_json', '{"i":99}'],
    ['subject', 'other'],
    ['at', '2030-01-01T00:00:00.000Z'],
    ['kind', 'forged'],
    ['actor', 'operator:mallory'],
  ] as const) {
    for (const seq of [1, 3, 5]) {
      const copy = fresh().store;
      for (const e of all) copy.appendAudit({ atMs: Date.parse(e.at), kind: e.kind, actor: e.actor, subject: e.subject, data: e.data });
      copy.db.prepare(`UPDATE audit SET ${col} = ? WHERE seq = ?`).run(value, seq);
      const r = verifyAuditChain(copy.auditAll());
      assert.equal(r.ok, false);
      if (!r.ok) assert.is(r.seq, seq, `${col} tampered at ${seq}`);
      copy.close();
    }
  }
  // Deleting an entry breaks the chain at the next one.
  store.db.prepare('DELETE FROM audit WHERE seq = 2').run();
  const r = verifyAuditChain(store.auditAll());
  assert.is(r.ok, false);
  if (!r.ok) assert.is(r.seq, 3);
  store.close();
});

t('a rolled-back transaction leaves the audit head where it was', () => {
  const { store } = fresh();
  store.appendAudit({ atMs: 0, kind: 'a', actor: 'cp', subject: 's', data: null });
  assert.throws(() =>
    store.tx(() => {
      store.appendAudit({ atMs: 1, kind: 'b', actor: 'cp', subject: 's', data: null });
      throw new Error('boom');
    }),
  );
  store.appendAudit({ atMs: 2, kind: 'c', actor: 'cp', subject: 's', data: null });
  const all = store.auditAll();
  assert.equal(all.map((e) => e.kind), ['a', 'c']);
  assert.ok(verifyAuditChain(all).ok);
  store.close();
});

function rollout(id: string, channel: string, hosts: Rollout['hosts'], state: Rollout['state'] = 'Executing'): Rollout {
  return { id, channel, targetRef: id.split('@')[1]!, state, currentWave: 0, waveCount: 2, openedAtMs: 1, startedAtMs: 2, stateReason: 'opened', hosts, history: [] };
}

const empty = (): Observed => ({ hosts: {}, rollouts: {}, quarantinedClosures: {}, pausedChannels: {}, lastConverged: {}, deferrals: {}, drifted: {}, controls: {} });

/** What the control plane does with a diff: plan it (pure), apply the list in one transaction. */
const persist = (store: Store, before: Observed, after: Observed, nowMs: number, origin: RolloutOrigin, meta?: Parameters<typeof planObservedWrites>[4]) => {
  const { writes, transitions } = planObservedWrites(before, after, nowMs, origin, meta);
  store.apply(writes);
  return transitions;
};

t('a planned diff, applied: loadObserved and loadHostSlice read it back', () => {
  const { store } = fresh();
  const before = empty();
  const after: Observed = structuredClone(before);
  after.hosts['web1'] = { lastCheckinMs: 5, currentClosure: 'c1', probes: { observed: true, passing: true }, failedUnits: [], bootId: 'b' };
  const r = rollout('stable@abc', 'stable', {
    web1: { state: 'Dispatched', enteredAtMs: 3, closure: 'c2', wave: 0, skip: null, rollbackRequested: false },
    web2: { state: 'Queued', enteredAtMs: 3, closure: 'c3', wave: 1, skip: { code: 'offline', reason: 'gone', sinceMs: 1 }, rollbackRequested: false },
  });
  r.history.push({ atMs: 3, host: 'web1', from: 'Queued', to: 'Dispatched', wave: 0, reason: 'wave 0' });
  after.rollouts[r.id] = r;
  after.quarantinedClosures['stable'] = ['bad'];
  after.lastConverged['stable'] = 'old';
  after.deferrals['stable'] = { rolloutId: 'stable@abc', reason: 'gated', sinceMs: 4 };
  const fresh1 = persist(store, before, after, 10, { signedAt: '2026-01-01T00:00:00Z', artifactSha256: 'ff' }, new Map([['stable\0bad', { rolloutId: 'stable@abc', hostname: 'web1', reason: 'failed on web1', sinceMs: 9 }]]));
  assert.is(fresh1.length, 1);
  const loaded = store.loadObserved();
  const want = structuredClone(after);
  want.rollouts['stable@abc']!.history = [];
  assert.equal(loaded, want);
  assert.is(store.quarantines()[0]!.reason, 'failed on web1');
  assert.is(store.transitions('stable@abc').length, 1);
  const slice = store.loadHostSlice('web2');
  assert.equal(Object.keys(slice.rollouts['stable@abc']!.hosts), ['web2']);
  assert.equal(slice.hosts, {});
  // A second pass that changes one host writes only that and keeps the rest.
  const next = structuredClone(loaded);
  next.rollouts['stable@abc']!.hosts['web1']!.state = 'Activating';
  next.rollouts['stable@abc']!.state = 'Halted';
  delete next.deferrals['stable'];
  next.quarantinedClosures = {};
  persist(store, loaded, next, 11, { signedAt: 'x', artifactSha256: 'y' });
  const again = store.loadObserved();
  assert.is(again.rollouts['stable@abc']!.hosts['web1']!.state, 'Activating');
  assert.is(again.rollouts['stable@abc']!.state, 'Halted');
  assert.equal(again.deferrals, {});
  assert.equal(again.quarantinedClosures, {});
  assert.is(store.getRollout('stable@abc')!.signedAt, '2026-01-01T00:00:00Z');
  store.close();
});

t('terminal rollouts are loaded only when newest of their channel', () => {
  const { store } = fresh();
  const before = empty();
  const after = empty();
  after.rollouts['a@1'] = { ...rollout('a@1', 'a', {}, 'Superseded'), openedAtMs: 1 };
  after.rollouts['a@2'] = { ...rollout('a@2', 'a', {}, 'Converged'), openedAtMs: 2 };
  after.rollouts['b@1'] = { ...rollout('b@1', 'b', {}, 'Halted'), openedAtMs: 1 };
  after.rollouts['b@2'] = { ...rollout('b@2', 'b', {}, 'Executing'), openedAtMs: 2 };
  persist(store, before, after, 1, { signedAt: 's', artifactSha256: 'h' });
  assert.equal(Object.keys(store.loadObserved().rollouts).sort(), ['a@2', 'b@1', 'b@2']);
  store.close();
});

t('dispatch lifecycle: deliver once (deadline fixed), finish, expiry query', () => {
  const { store } = fresh();
  store.putDispatch({ rolloutId: 'r', hostname: 'h', channel: 'c', closure: 'x', wave: 0, createdMs: 100 });
  assert.is(store.pendingDispatchFor('h')!.deliveredMs, null);
  store.deliverDispatch('r', 'h', 200, 320);
  store.deliverDispatch('r', 'h', 250, 999);
  assert.is(store.getDispatch('r', 'h')!.deadlineMs, 320);
  assert.equal(store.expiredDispatches(319), []);
  assert.is(store.expiredDispatches(320).length, 1);
  store.finishDispatch('r', 'h', 'confirmed', 300);
  assert.is(store.pendingDispatchFor('h'), null);
  assert.equal(store.expiredDispatches(10_000), []);
  store.close();
});

t('artefacts persist bytes and signature', () => {
  const { store } = fresh();
  store.putArtifact({ kind: 'fleet', signedAt: 's', sha256: 'h', bytes: new Uint8Array([1, 2, 3]), signature: new Uint8Array(64).fill(7), acceptedMs: 5 });
  const a = store.getArtifact('fleet')!;
  assert.equal([...a.bytes], [1, 2, 3]);
  assert.is(a.signature.length, 64);
  assert.is(store.getArtifact('revocations'), null);
  store.close();
});

const hostRow = (hostname: string, lastCheckinMs: number): HostRow => ({
  hostname,
  lastCheckinMs,
  currentClosure: null,
  bootId: null,
  probesObserved: false,
  probesPassing: false,
  failedUnits: [],
  complianceFailures: null,
  probesJson: '[]',
  lastOutcomeJson: null,
  pendingReboot: false,
  agentVersion: null,
  certNotAfterMs: 1_900_000_000_000,
});

/** What a second connection to the same file sees (committed rows only). */
const committedHosts = (path: string): string[] => {
  const db = new Database(path, { readonly: true, fileMustExist: true });
  try {
    return (db.prepare('SELECT hostname FROM hosts ORDER BY hostname').all() as { hostname: string }[]).map((r) => r.hostname);
  } finally {
    db.close();
  }
};

t('group commit: grouped writes of one turn commit together, once, after the turn', async () => {
  const { store, path } = fresh();
  const a = store.txGrouped(() => store.putHost(hostRow('a', 1)));
  const b = store.txGrouped(() => store.putHost(hostRow('b', 2)));
  assert.equal(store.getHost('a')?.lastCheckinMs, 1, 'the connection sees its own grouped writes at once');
  assert.equal(committedHosts(path), [], 'nothing is committed before the turn ends');
  let settled = false;
  void Promise.all([a.committed, b.committed]).then(() => (settled = true));
  await Promise.resolve();
  assert.not.ok(settled, 'callers wait for the commit');
  await Promise.all([a.committed, b.committed]);
  assert.equal(committedHosts(path), ['a', 'b']);
  assert.not.ok(store.db.inTransaction);
  store.close();
});

t('group commit: a throwing grouped body undoes its own writes only', async () => {
  const { store, path } = fresh();
  const ok = store.txGrouped(() => store.putHost(hostRow('kept', 1)));
  assert.throws(
    () =>
      store.txGrouped(() => {
        store.putHost(hostRow('undone', 1));
        store.appendAudit({ atMs: 0, kind: 'x', actor: 'cp', subject: 's', data: null });
        throw new Error('boom');
      }),
    /boom/,
  );
  const audited = store.txGrouped(() => store.appendAudit({ atMs: 1, kind: 'y', actor: 'cp', subject: 's', data: null }));
  assert.is(audited.value.seq, 1, 'the audit head went back with the undone body');
  await Promise.all([ok.committed, audited.committed]);
  assert.equal(committedHosts(path), ['kept']);
  assert.ok(verifyAuditChain(store.auditAll()).ok);
  store.close();
});

t('group commit: tx and close commit the open group first, in order', async () => {
  const { store, path } = fresh();
  const g = store.txGrouped(() => store.putHost(hostRow('h', 1)));
  store.tx(() => store.putHost(hostRow('h', 2))); // a later plain transaction wins
  await g.committed;
  assert.is(store.getHost('h')?.lastCheckinMs, 2);
  const g2 = store.txGrouped(() => store.putHost(hostRow('late', 3)));
  store.close();
  await g2.committed;
  assert.equal(committedHosts(path), ['h', 'late']);
});

t('group commit: a failed commit rolls the whole group back, rejects every caller, reports it', async () => {
  const { store, path } = fresh();
  const seen: unknown[] = [];
  store.onGroupRollback = (e) => seen.push(e);
  const a = store.txGrouped(() => store.putHost(hostRow('a', 1)));
  // A deferred foreign-key violation only fails at COMMIT.
  const b = store.txGrouped(() => {
    store.db.pragma('defer_foreign_keys = ON');
    store.db.prepare(`INSERT INTO rollout_hosts (rollout_id, hostname, state, entered_at_ms, closure, wave) VALUES ('nope', 'b', 'Queued', 0, 'c', 0)`).run();
  });
  const results = await Promise.allSettled([a.committed, b.committed]);
  assert.equal(results.map((r) => r.status), ['rejected', 'rejected']);
  assert.is(seen.length, 1);
  assert.not.ok(store.db.inTransaction);
  assert.equal(committedHosts(path), []);
  // The store keeps working.
  store.tx(() => store.putHost(hostRow('after', 1)));
  assert.equal(committedHosts(path), ['after']);
  store.close();
});

t('issue 19: a quiet check-in (touchCheckin) is read at once, written in one batch, never over a later check-in, kept when its write fails', () => {
  const { store, path } = fresh();
  store.putHost(hostRow('a', 1));
  store.putHost(hostRow('b', 1));
  store.touchCheckin('a', 10, [{ name: 'http', ok: true, observedAt: '2026-01-01T00:00:10Z' }]);
  store.touchCheckin('b', 10, []);
  assert.is(store.getHost('a')?.lastCheckinMs, 10, 'read at once');
  assert.is(store.getHost('a')?.probesJson, '[{"name":"http","ok":true,"observedAt":"2026-01-01T00:00:10Z"}]');
  assert.equal(store.allHosts().map((h) => h.lastCheckinMs), [10, 10]);
  assert.is(store.loadObserved().hosts['a']?.lastCheckinMs, 10, 'the observed state too');
  const raw = () => store.db.prepare('SELECT hostname, last_checkin_ms AS ms FROM hosts ORDER BY hostname').all();
  assert.equal(raw(), [{ hostname: 'a', ms: 1 }, { hostname: 'b', ms: 1 }], 'not written yet');
  store.putHost(hostRow('b', 20)); // a full check-in after the touch
  assert.is(store.getHost('b')?.lastCheckinMs, 20, 'the later check-in wins');
  // A failed batch (the database locked by another connection past the busy timeout) stays pending.
  store.db.pragma('busy_timeout = 0');
  const other = new Database(path);
  other.exec('BEGIN IMMEDIATE');
  store.hostsT.flushTouches();
  other.exec('ROLLBACK');
  other.close();
  assert.equal(raw()[0], { hostname: 'a', ms: 1 }, 'the batch was not written');
  assert.is(store.getHost('a')?.lastCheckinMs, 10, 'still read after the failed write');
  store.hostsT.flushTouches();
  assert.equal(raw(), [{ hostname: 'a', ms: 10 }, { hostname: 'b', ms: 20 }], 'written; b keeps its later check-in');
  // A full check-in in the same millisecond as a quiet one (seed -1981328183 of
  // quiet-checkins.props): the row written last wins, probes and all.
  store.touchCheckin('b', 20, [{ ok: true }]);
  store.putHost({ ...hostRow('b', 20), probesJson: '[{"ok":false}]' });
  assert.is(store.getHost('b')?.probesJson, '[{"ok":false}]', 'read: the full row');
  store.hostsT.flushTouches();
  assert.is(store.getHost('b')?.probesJson, '[{"ok":false}]', 'written: the full row');
  store.touchCheckin('a', 30, []);
  store.close();
  const again = new Store(path);
  assert.is(again.getHost('a')?.lastCheckinMs, 30, 'close writes what is pending');
  again.close();
});

t.after(() => rmSync(dir, { recursive: true, force: true }));
t.run();
