/**
 * What a check-in reads from SQLite without a query (issue 19: the steady check-in's fast paths)
 * is what the queries read: `checkinReads` (hosts known to have no pending dispatch and no
 * rollback instruction answered from memory) against `pendingDispatchFor` + `rollbackFor`, and
 * `auditHead` (the in-memory chain head) against the last row of `auditAll` — after any sequence
 * of dispatch writes, audit appends, grouped and plain transactions, failed ones included.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { SqliteStore } from './sqlite.ts';
import type { DispatchStatus, Write } from './types.ts';

const dir = mkdtempSync(join(tmpdir(), 'nixfleet-sqlite-props-'));
let n = 0;
const t = suite('sqlite: check-in reads from memory = the queries');

const HOSTS = ['a', 'b'] as const;
const ROLLOUTS = ['r1', 'r2'] as const;
const STATUSES: DispatchStatus[] = ['confirmed', 'cancelled', 'expired', 'failed'];

/** A write every backend refuses (foreign key: no such rollout): the transaction rolls back. */
const failing: Write = { kind: 'rollout-host.put', rolloutId: 'no-such-rollout', hostname: 'a', host: { state: 'Queued', enteredAtMs: 0, closure: 'c', wave: 0, skip: null, rollbackRequested: false } };

const host = fc.constantFrom(...HOSTS);
const rollout = fc.constantFrom(...ROLLOUTS);
// Weighted towards what changes what a check-in reads: new dispatches and finishes (a cancel with a
// rollback reason on a host that had none is the case a stale memory would miss).
const write: fc.Arbitrary<Write> = fc.oneof(
  { weight: 3, arbitrary: fc.record({ r: rollout, h: host, at: fc.nat(1000) }).map(({ r, h, at }): Write => ({ kind: 'dispatch.put', rolloutId: r, hostname: h, channel: 'c', closure: `x${at}`, wave: 0, createdMs: at })) },
  { weight: 1, arbitrary: fc.record({ r: rollout, h: host, at: fc.nat(1000) }).map(({ r, h, at }): Write => ({ kind: 'dispatch.deliver', rolloutId: r, hostname: h, deliveredMs: at, deadlineMs: at + 10 })) },
  {
    weight: 4,
    arbitrary: fc
      .record({ r: rollout, h: host, at: fc.nat(1000), s: fc.constantFrom<DispatchStatus>('cancelled', 'cancelled', ...STATUSES), reason: fc.constantFrom('halted', 'failed-gate', null), only: fc.constantFrom(false, false, true) })
      .map(({ r, h, at, s, reason, only }): Write => ({ kind: 'dispatch.finish', rolloutId: r, hostname: h, status: s, finishedMs: at, rollbackReason: reason, onlyIfPending: only })),
  },
  { weight: 1, arbitrary: fc.record({ r: rollout, h: host }).map(({ r, h }): Write => ({ kind: 'dispatch.clear-rollback', rolloutId: r, hostname: h })) },
  { weight: 1, arbitrary: fc.record({ r: rollout, h: host }).map(({ r, h }): Write => ({ kind: 'dispatch.await-boot', rolloutId: r, hostname: h })) },
  { weight: 1, arbitrary: fc.record({ r: rollout, at: fc.nat(1000) }).map(({ r, at }): Write => ({ kind: 'dispatch.withdraw', rolloutId: r, finishedMs: at, auditIfAny: { atMs: at, kind: 'dispatch.withdrawn', actor: 'cp', subject: r, data: {} } })) },
  { weight: 1, arbitrary: fc.nat(1000).map((at): Write => ({ kind: 'audit', entry: { atMs: at, kind: 'k', actor: 'cp', subject: 's', data: { at } } })) },
);

type Step =
  | { op: 'apply'; writes: Write[]; fail: boolean }
  | { op: 'grouped'; lists: { writes: Write[]; fail: boolean }[]; readsFirst: boolean }
  | { op: 'read'; h: (typeof HOSTS)[number] };

// A failed transaction empties the memory: rarer, or it would hide what a stale memory misses.
const list = fc.record({ writes: fc.array(write, { maxLength: 4 }), fail: fc.constantFrom(false, false, false, true) });
const step: fc.Arbitrary<Step> = fc.oneof(
  list.map((l): Step => ({ op: 'apply', ...l })),
  fc.record({ lists: fc.array(list, { minLength: 1, maxLength: 3 }), readsFirst: fc.boolean() }).map((g): Step => ({ op: 'grouped', ...g })),
  host.map((h): Step => ({ op: 'read', h })),
);

async function agree(store: SqliteStore): Promise<void> {
  for (const h of HOSTS) {
    const fast = store.checkinReads(h);
    assert.equal(fast, { pending: store.pendingDispatchFor(h), rollback: store.rollbackFor(h) }, `checkinReads(${h})`);
  }
  const all = store.auditAll();
  const last = all[all.length - 1];
  assert.equal(store.auditHead(), last === undefined ? null : { seq: last.seq, hash: last.hash }, 'auditHead');
}

t('checkinReads and auditHead agree with the queries after any sequence of writes (failed transactions included)', async () => {
  await fc.assert(
    fc.asyncProperty(fc.array(step, { minLength: 5, maxLength: 30 }), async (steps) => {
      const store = new SqliteStore(':memory:');
      try {
        // Both rollouts exist (the dispatch rows refer to them).
        store.db.exec(`INSERT INTO rollouts (id, channel, target_ref, state, current_wave, wave_count, opened_at_ms, started_at_ms, state_reason, signed_at, artifact_sha256, updated_at_ms)
          VALUES ('r1', 'c', 'x', 'Executing', 0, 1, 0, 0, '', '', '', 0), ('r2', 'c', 'y', 'Executing', 0, 1, 0, 0, '', '', '', 0)`);
        for (const s of steps) {
          if (s.op === 'read') store.checkinReads(s.h);
          else if (s.op === 'apply') {
            try {
              store.apply(s.fail ? [...s.writes, failing] : s.writes);
            } catch {
              // expected for `fail`
            }
          } else {
            // One turn of the event loop: reads (which may open the group) and grouped lists.
            if (s.readsFirst) for (const h of HOSTS) store.checkinReads(h);
            // A failing list throws at once (its savepoint); the others commit together.
            const settled = await Promise.allSettled(s.lists.map(async (l) => store.applyGrouped(l.fail ? [...l.writes, failing] : l.writes)));
            assert.equal(settled.map((x) => x.status), s.lists.map((l) => (l.fail ? 'rejected' : 'fulfilled')));
          }
          await agree(store);
        }
      } finally {
        store.close();
      }
    }),
    { numRuns: 200 },
  );
});

t('a host seen without dispatch rows is answered from memory until a dispatch write names it', () => {
  const store = new SqliteStore(join(dir, `db-${n++}.sqlite`));
  store.db.exec(`INSERT INTO rollouts (id, channel, target_ref, state, current_wave, wave_count, opened_at_ms, started_at_ms, state_reason, signed_at, artifact_sha256, updated_at_ms)
    VALUES ('r1', 'c', 'x', 'Executing', 0, 1, 0, 0, '', '', '', 0)`);
  // Rows written behind the store's back are not seen once the host is known quiet: the memory
  // answers (which is why every dispatch write goes through the store).
  assert.equal(store.checkinReads('a'), { pending: null, rollback: null });
  store.db.exec(`INSERT INTO dispatches (rollout_id, hostname, channel, closure, wave, created_ms, status) VALUES ('r1', 'a', 'c', 'x', 0, 1, 'pending')`);
  assert.is(store.checkinReads('a').pending, null, 'answered from memory');
  store.apply([{ kind: 'dispatch.put', rolloutId: 'r1', hostname: 'a', channel: 'c', closure: 'y', wave: 0, createdMs: 2 }]);
  assert.is(store.checkinReads('a').pending?.closure, 'y', 'a dispatch write for the host: read again');
  store.close();
});

t('a failed group commit: what the group read is forgotten with what it wrote', async () => {
  const store = new SqliteStore(':memory:');
  store.db.exec(`INSERT INTO rollouts (id, channel, target_ref, state, current_wave, wave_count, opened_at_ms, started_at_ms, state_reason, signed_at, artifact_sha256, updated_at_ms)
    VALUES ('r1', 'c', 'x', 'Executing', 0, 1, 0, 0, '', '', '', 0)`);
  store.apply([{ kind: 'dispatch.put', rolloutId: 'r1', hostname: 'a', channel: 'c', closure: 'x', wave: 0, createdMs: 1 }]);
  const rolledBack: unknown[] = [];
  store.onGroupRollback = (e) => rolledBack.push(e);
  // One turn: the dispatch is finished, then a check-in of `a` reads inside that group (nothing
  // pending any more: `a` is quiet) — and the group's COMMIT fails (a foreign key checked only at
  // commit), so the dispatch is pending again.
  store.db.pragma('defer_foreign_keys = ON');
  const finished = store.applyGrouped([{ kind: 'dispatch.finish', rolloutId: 'r1', hostname: 'a', status: 'confirmed', finishedMs: 2, rollbackReason: null, onlyIfPending: true }]);
  assert.equal(store.checkinReads('a'), { pending: null, rollback: null });
  const doomed = store.applyGrouped([failing]);
  const settled = await Promise.allSettled([finished, doomed]);
  assert.equal(settled.map((x) => x.status), ['rejected', 'rejected']);
  assert.is(rolledBack.length, 1);
  assert.is(store.checkinReads('a').pending?.closure, 'x', 'pending again, and read again');
  store.close();
});

t.run();

process.once('beforeExit', () => rmSync(dir, { recursive: true, force: true }));
