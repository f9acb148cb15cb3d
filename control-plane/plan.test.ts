/**
 * The pure decision step, without a database: from observed state before / after (as the
 * reconciler's `applyActions` / `applyHostEvents` return it), the writes as plain data.
 */
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import type { Action, Observed, Rollout, RolloutHost } from '../reconciler/types.ts';
import { planExpiries, planWrites, toHostEvent } from './plan.ts';
import type { Write } from './store/types.ts';

const t = suite('plan');

const origin = { signedAt: '2026-01-01T00:00:00Z', artifactSha256: 'ff' };
const empty = (): Observed => ({ hosts: {}, rollouts: {}, quarantinedClosures: {}, pausedChannels: {}, lastConverged: {}, deferrals: {} });
const rh = (state: RolloutHost['state'], over: Partial<RolloutHost> = {}): RolloutHost => ({ state, enteredAtMs: 1, closure: 'c1', wave: 0, skip: null, rollbackRequested: false, ...over });
const rollout = (hosts: Rollout['hosts'], over: Partial<Rollout> = {}): Rollout => ({
  id: 'stable@abc',
  channel: 'stable',
  targetRef: 'abc',
  state: 'Executing',
  currentWave: 0,
  waveCount: 1,
  openedAtMs: 1,
  startedAtMs: 1,
  stateReason: 'opened',
  hosts,
  history: [],
  ...over,
});
const kinds = (ws: readonly Write[]): string[] => ws.map((w) => w.kind);

t('nothing changed (same references): no writes', () => {
  const o = empty();
  o.rollouts['stable@abc'] = rollout({ web1: rh('Queued') });
  assert.equal(planWrites(o, o, { nowMs: 5, origin, actor: 'cp' }).writes, []);
  // A copy with equal content writes nothing either.
  const copy = structuredClone(o);
  assert.equal(planWrites(o, copy, { nowMs: 5, origin, actor: 'cp' }).writes, []);
});

t('a new rollout: inserted with its origin, its hosts and transitions, each transition audited', () => {
  const before = empty();
  const after = empty();
  const r = rollout({ web1: rh('Queued') });
  r.history.push({ atMs: 5, host: null, from: null, to: 'Executing', wave: 0, reason: 'opened' });
  after.rollouts[r.id] = r;
  const { writes, transitions } = planWrites(before, after, { nowMs: 5, origin, actor: 'cp' });
  assert.equal(kinds(writes), ['rollout.insert', 'rollout-host.put', 'transition', 'audit']);
  const ins = writes[0] as Extract<Write, { kind: 'rollout.insert' }>;
  assert.is(ins.row.signedAt, origin.signedAt);
  assert.is(ins.row.updatedAtMs, 5);
  assert.equal(transitions, [{ rolloutId: 'stable@abc', atMs: 5, hostname: null, from: null, to: 'Executing', wave: 0, reason: 'opened' }]);
  const a = writes[3] as Extract<Write, { kind: 'audit' }>;
  assert.equal(a.entry, { atMs: 5, kind: 'rollout.state', actor: 'cp', subject: 'stable@abc', data: { host: null, from: null, to: 'Executing', wave: 0, reason: 'opened' } });
});

t('host transitions: Dispatched writes a dispatch row; leaving flight ends a pending dispatch only', () => {
  const before = empty();
  before.rollouts['stable@abc'] = rollout({ web1: rh('Queued'), web2: rh('ConfirmWindow'), web3: rh('Dispatched') });
  const after = structuredClone(before);
  const r = after.rollouts['stable@abc']!;
  r.hosts['web1'] = rh('Dispatched', { closure: 'c9', wave: 0 });
  r.hosts['web2'] = rh('Failed');
  r.hosts['web3'] = rh('Queued');
  r.history.push(
    { atMs: 7, host: 'web1', from: 'Queued', to: 'Dispatched', wave: 0, reason: 'wave 0' },
    { atMs: 7, host: 'web2', from: 'ConfirmWindow', to: 'Failed', wave: 0, reason: 'failed' },
    { atMs: 7, host: 'web3', from: 'Dispatched', to: 'Queued', wave: 0, reason: 'budget' },
  );
  const { writes } = planWrites(before, after, { nowMs: 8, origin, actor: 'host:web2' });
  const dispatch = writes.filter((w) => w.kind.startsWith('dispatch.'));
  assert.equal(dispatch, [
    { kind: 'dispatch.put', rolloutId: 'stable@abc', hostname: 'web1', channel: 'stable', closure: 'c9', wave: 0, createdMs: 8 },
    { kind: 'dispatch.finish', rolloutId: 'stable@abc', hostname: 'web2', status: 'failed', finishedMs: 8, rollbackReason: null, onlyIfPending: true },
    { kind: 'dispatch.finish', rolloutId: 'stable@abc', hostname: 'web3', status: 'cancelled', finishedMs: 8, rollbackReason: null, onlyIfPending: true },
  ]);
  const audits = writes.filter((w): w is Extract<Write, { kind: 'audit' }> => w.kind === 'audit');
  assert.equal(audits.map((a) => [a.entry.kind, a.entry.actor]), [['host.state', 'host:web2'], ['host.state', 'host:web2'], ['host.state', 'host:web2']]);
  // Rows of the rollout: only the three hosts that changed; the rollout row itself did not.
  assert.equal(writes.filter((w) => w.kind === 'rollout-host.put').length, 3);
  assert.not.ok(writes.some((w) => w.kind === 'rollout.update'));
});

t('host observations and channel maps: only what differs', () => {
  const before = empty();
  before.hosts['web1'] = { lastCheckinMs: 1, currentClosure: 'a', probes: { observed: true, passing: true }, failedUnits: [], bootId: 'b' };
  before.hosts['web2'] = { lastCheckinMs: 1, currentClosure: 'a', probes: { observed: true, passing: true }, failedUnits: [], bootId: 'b' };
  before.quarantinedClosures['stable'] = ['old'];
  before.lastConverged['stable'] = 't1';
  before.deferrals['beta'] = { rolloutId: 'beta@x', reason: 'gated', sinceMs: 1 };
  const after = structuredClone(before);
  after.hosts['web2'] = { ...after.hosts['web2']!, currentClosure: 'b' };
  after.quarantinedClosures['stable'] = ['new'];
  after.lastConverged['stable'] = 't2';
  after.deferrals = {};
  const actions: Action[] = [{ kind: 'quarantine_closure', channel: 'stable', closure: 'new', host: 'web2', reason: 'failed on web2' }];
  const { writes } = planWrites(before, after, { nowMs: 9, origin, actor: 'cp', actions });
  assert.equal(kinds(writes), ['host.observation', 'quarantine.put', 'quarantine.delete', 'converged.put', 'deferral.delete', 'audit']);
  assert.equal((writes[0] as Extract<Write, { kind: 'host.observation' }>).hostname, 'web2');
  assert.equal((writes[1] as Extract<Write, { kind: 'quarantine.put' }>).row, { channel: 'stable', closure: 'new', rolloutId: null, hostname: 'web2', reason: 'failed on web2', sinceMs: 9 });
  assert.equal((writes[5] as Extract<Write, { kind: 'audit' }>).entry.kind, 'quarantine.added');
});

t('action effects: rollback cancels with its reason, supersede withdraws undelivered targets (audited when any)', () => {
  const o = empty();
  const actions: Action[] = [
    { kind: 'rollback_host', rolloutId: 'r', host: 'web1', closure: 'c', reason: 'health gate' },
    { kind: 'supersede_rollout', rolloutId: 'r', channel: 'stable', byTargetRef: 'new', reason: 'newer target' },
  ];
  const { writes } = planWrites(o, o, { nowMs: 3, origin, actor: 'cp', actions });
  assert.equal(writes, [
    { kind: 'dispatch.finish', rolloutId: 'r', hostname: 'web1', status: 'cancelled', finishedMs: 3, rollbackReason: 'health gate', onlyIfPending: false },
    { kind: 'audit', entry: { atMs: 3, kind: 'host.rollback', actor: 'cp', subject: 'r', data: { host: 'web1', closure: 'c', reason: 'health gate' } } },
    { kind: 'dispatch.withdraw', rolloutId: 'r', finishedMs: 3, auditIfAny: { atMs: 3, kind: 'dispatch.withdrawn', actor: 'cp', subject: 'r', data: { reason: 'newer target' } } },
  ]);
});

t('expiries: each expired dispatch is finished, audited, and becomes a deadline-expired host event', () => {
  const d = { rolloutId: 'r', hostname: 'web1', channel: 'stable', closure: 'c', wave: 0, createdMs: 1, deliveredMs: 2, deadlineMs: 4, status: 'pending' as const, finishedMs: null, rollbackReason: null };
  const { writes, events } = planExpiries([d], 10);
  assert.equal(kinds(writes), ['dispatch.finish', 'audit']);
  assert.equal(events, [{ host: 'web1', event: { kind: 'deadline-expired', rolloutId: 'r' } }]);
});

t('toHostEvent: state-moving report events map to host events; the others are recorded only', () => {
  const rep = (event: Parameters<typeof toHostEvent>[0]['event']) => ({ hostname: 'h', event, rolloutId: 'r', closureHash: null, at: 'x', message: '' });
  assert.equal(toHostEvent(rep('activation-failed')), { kind: 'failed', rolloutId: 'r', reason: 'activation failed' });
  assert.equal(toHostEvent(rep('probe-failed')), { kind: 'probes', probes: { observed: true, passing: false } });
  assert.is(toHostEvent(rep('stale-target')), null);
});

t.run();
