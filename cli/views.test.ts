import { test } from 'uvu';
import * as assert from 'uvu/assert';
import type { HostView, Quarantine, RolloutDetail, RolloutSummary } from '../protocol/api.ts';
import { makeStyle, stripAnsi } from './output.ts';
import { hostStatus, quarantineSet, renderHosts, renderProgress, renderQuarantines, renderRolloutDetail, renderRolloutList, renderStatus, renderTrace, statusReport, traceRows } from './views.ts';

const NOW = Date.parse('2026-03-01T12:00:00Z');
const plain = makeStyle(false);
const OLD = `${'0'.repeat(32)}-nixos-system-25.05`;
const NEW = `${'1'.repeat(32)}-nixos-system-25.11`;
const BAD = `${'2'.repeat(32)}-nixos-system-25.11`;

function host(hostname: string, over: Partial<HostView> = {}): HostView {
  return {
    hostname,
    channel: 'stable',
    declaredClosure: NEW,
    currentClosure: NEW,
    lastCheckinAt: '2026-03-01T11:59:30Z',
    bootId: 'b',
    online: true,
    pendingReboot: false,
    failedUnits: [],
    probes: [],
    lastOutcome: null,
    rollout: null,
    dispatch: null,
    ...over,
  };
}
const ro = (state: HostView['rollout'] extends infer R ? (R extends { state: infer S } ? S : never) : never, wave = 0, rolloutId = 'stable@abc') => ({ rolloutId, state, since: '2026-03-01T11:50:00Z', wave });

const HOSTS: HostView[] = [
  host('web1', { rollout: ro('Converged') }),
  host('web2', { currentClosure: OLD, rollout: ro('Healthy', 1), lastCheckinAt: '2026-03-01T11:57:00Z' }),
  host('web3', { currentClosure: OLD, rollout: ro('Queued', 2) }),
  host('db1', { channel: 'db', currentClosure: OLD, declaredClosure: BAD, rollout: ro('Failed') }),
  host('db2', { channel: 'db', currentClosure: OLD, declaredClosure: BAD }),
  host('db3', { channel: 'db', currentClosure: OLD, rollout: ro('Queued', 1, 'db@bad') }),
  host('cache1', { channel: 'edge', currentClosure: OLD, pendingReboot: true, lastCheckinAt: '2026-03-01T09:00:00Z' }),
  host('edge1', { channel: 'edge', online: false, lastCheckinAt: '2026-02-28T10:00:00Z' }),
  host('edge2', { channel: 'edge', currentClosure: null, lastCheckinAt: null, online: false }),
];
const summary = (id: string, state: RolloutSummary['state']): RolloutSummary => ({
  id,
  channel: id.split('@')[0]!,
  state,
  currentWave: 0,
  signedAt: '2026-03-01T11:00:00Z',
  artifactSha256: 'f'.repeat(64),
  openedAt: '2026-03-01T11:00:00Z',
  updatedAt: '2026-03-01T11:00:00Z',
  reason: null,
  hostCounts: {},
});
const ROLLOUTS = [summary('stable@abc', 'Executing'), summary('db@bad', 'Halted')];
const QS: Quarantine[] = [{ channel: 'db', closureHash: BAD, rolloutId: 'db@bad', reason: 'db1 rolled back', since: '2026-03-01T11:40:00Z' }];

test('status table is pinned (no colour)', () => {
  const expected = [
    'HOST    CHANNEL  CURRENT                      DECLARED                     STATUS            SEEN',
    'db1     db       00000000-nixos-system-25.05  22222222-nixos-system-25.11  ✗ failed          30 s ago',
    'db2     db       00000000-nixos-system-25.05  22222222-nixos-system-25.11  ✗ quarantined     30 s ago',
    'db3     db       00000000-nixos-system-25.05  11111111-nixos-system-25.11  ‖ held            30 s ago',
    'cache1  edge     00000000-nixos-system-25.05  11111111-nixos-system-25.11  ⟳ pending reboot  3 h ago',
    'edge1   edge     11111111-nixos-system-25.11  = current                    ⚠ stale           26 h ago',
    'edge2   edge     -                            11111111-nixos-system-25.11  ⚠ offline         never',
    'web1    stable   11111111-nixos-system-25.11  = current                    ✓ converged       30 s ago',
    'web2    stable   00000000-nixos-system-25.05  11111111-nixos-system-25.11  → soaking         3 min ago',
    'web3    stable   00000000-nixos-system-25.05  11111111-nixos-system-25.11  … queued          30 s ago',
    '',
    '9 hosts: 1 converged, 1 soaking, 1 queued, 1 held, 1 failed, 1 quarantined, 1 pending reboot, 1 stale, 1 offline',
    '',
  ].join('\n');
  const report = statusReport(HOSTS, QS, ROLLOUTS);
  assert.fixture(renderStatus(report, NOW, plain), expected);
  assert.is(report.unhealthy, true);
  const coloured = renderStatus(report, NOW, makeStyle(true));
  assert.ok(coloured.includes('\x1b[31m✗ failed\x1b[0m'));
  assert.is(stripAnsi(coloured), expected);
});

test('status is healthy when nothing failed or is quarantined (stale and pending reboot are warnings)', () => {
  const r = statusReport(HOSTS.filter((h) => !h.hostname.startsWith('db')), QS, ROLLOUTS);
  assert.is(r.unhealthy, false);
  assert.equal(Object.keys(r.hosts[0]!), ['hostname', 'channel', 'currentClosure', 'declaredClosure', 'status', 'label', 'rolloutId', 'rolloutState', 'hostState', 'wave', 'lastCheckinAt', 'online', 'certNotAfter', 'cert']);
  const web2 = r.hosts.find((h) => h.hostname === 'web2')!;
  assert.equal([web2.rolloutId, web2.rolloutState, web2.hostState, web2.wave], ['stable@abc', 'Executing', 'Healthy', 1]);
  const held = statusReport(HOSTS.filter((h) => h.hostname === 'db3'), [], ROLLOUTS);
  assert.is(held.unhealthy, false, 'held is a warning, the failed host is what fails the gate');
});

test('hostStatus precedence: failure > quarantine > pending reboot > never seen > stale > rollout state', () => {
  const q = quarantineSet(QS);
  assert.is(hostStatus(host('a', { channel: 'db', declaredClosure: BAD, currentClosure: OLD, rollout: ro('Reverted'), pendingReboot: true }), q), 'rolled-back');
  assert.is(hostStatus(host('a', { channel: 'db', declaredClosure: BAD, currentClosure: OLD, pendingReboot: true }), q), 'quarantined');
  assert.is(hostStatus(host('a', { channel: 'db', declaredClosure: BAD, currentClosure: BAD }), q), 'converged', 'already runs it: not held back');
  assert.is(hostStatus(host('a', { channel: 'other', declaredClosure: BAD, currentClosure: OLD }), q), 'queued', 'quarantine is per channel');
  assert.is(hostStatus(host('a', { declaredClosure: null, currentClosure: OLD }), q), 'idle');
  assert.is(hostStatus(host('a', { rollout: ro('ConfirmWindow') }), q), 'confirming');
  assert.is(hostStatus(host('a', { rollout: ro('Queued') }), q, 'Paused'), 'held');
  assert.is(hostStatus(host('a', { rollout: ro('Queued') }), q, 'Executing'), 'queued');
  assert.is(hostStatus(host('a', { rollout: ro('Dispatched') }), q, 'Paused'), 'dispatched', 'in flight is not held');
});

const DETAIL: RolloutDetail = {
  id: 'stable@abc',
  channel: 'stable',
  state: 'Executing',
  currentWave: 1,
  signedAt: '2026-03-01T11:00:00Z',
  artifactSha256: 'f'.repeat(64),
  openedAt: '2026-03-01T11:30:00Z',
  updatedAt: '2026-03-01T11:58:00Z',
  reason: null,
  hostCounts: { Converged: 1, Healthy: 1, Queued: 1 },
  hosts: [
    { hostname: 'web1', wave: 0, state: 'Converged', since: '2026-03-01T11:45:00Z', closureHash: NEW, reason: null },
    { hostname: 'web2', wave: 1, state: 'Healthy', since: '2026-03-01T11:55:00Z', closureHash: NEW, reason: null },
    { hostname: 'web3', wave: 2, state: 'Queued', since: '2026-03-01T11:30:00Z', closureHash: NEW, reason: 'wave 2 waits for wave 1' },
  ],
};

test('trace rows carry each host its wave; rollout-level events have none', () => {
  const rows = traceRows(DETAIL, [
    { at: '2026-03-01T11:30:00.000Z', subject: 'rollout', hostname: null, from: 'Pending', to: 'Executing', reason: 'opened' },
    { at: '2026-03-01T11:31:00.000Z', subject: 'host', hostname: 'web1', from: 'Queued', to: 'Dispatched', reason: 'wave 0 open' },
    { at: '2026-03-01T11:55:00.000Z', subject: 'host', hostname: 'web2', from: 'ConfirmWindow', to: 'Healthy', reason: 'confirmed' },
  ]);
  assert.equal(rows.map((r) => r.wave), [null, 0, 1]);
  assert.fixture(
    renderTrace(DETAIL, rows, NOW, plain),
    [
      'rollout stable@abc: → executing, wave 1 (waves 0–2)',
      'opened 30 min ago, updated 2 min ago; artefact signed 2026-03-01T11:00:00Z, sha256 ffffffffffff…',
      '',
      'TIME                  AGE         WAVE  HOST       TRANSITION               REASON',
      '2026-03-01T11:30:00Z  30 min ago  -     (rollout)  Pending → Executing      opened',
      '2026-03-01T11:31:00Z  29 min ago  0     web1       Queued → Dispatched      wave 0 open',
      '2026-03-01T11:55:00Z  5 min ago   1     web2       ConfirmWindow → Healthy  confirmed',
      '',
    ].join('\n'),
  );
});

test('progress shows each wave with a bar and the current wave marked', () => {
  assert.fixture(
    renderProgress(DETAIL, plain),
    [
      'stable@abc: → executing',
      '  wave 0  [####################] 1/1  1 converged',
      '▸ wave 1  [--------------------] 0/1  1 soaking',
      '  wave 2  [--------------------] 0/1  1 queued',
      '',
    ].join('\n'),
  );
});

test('hosts, rollout list, rollout show and quarantine list renderings are pinned', () => {
  const hs: HostView[] = [
    host('web1', { probes: [{ name: 'http', ok: true, observedAt: '2026-03-01T11:59:30Z' }], lastOutcome: { rolloutId: 'stable@abc', closureHash: NEW, outcome: 'confirmed', at: '2026-03-01T11:50:00Z' } }),
    host('db1', { channel: 'db', failedUnits: ['postgresql.service'], probes: [{ name: 'tcp', ok: false, observedAt: '2026-03-01T11:59:30Z' }] }),
    host('edge2', { channel: 'edge', currentClosure: null, lastCheckinAt: null, online: false }),
  ];
  assert.fixture(
    renderHosts(hs, NOW, plain),
    [
      'HOST   CHANNEL  CHECK-IN    SEEN      CURRENT                      FAILED UNITS        PROBES       LAST OUTCOME',
      'db1    db       online      30 s ago  11111111-nixos-system-25.11  postgresql.service  1/1 failing  -',
      'edge2  edge     never seen  never     -                            -                   -            -',
      'web1   stable   online      30 s ago  11111111-nixos-system-25.11  -                   1 ok         confirmed 10 min ago',
      '',
    ].join('\n'),
  );
  assert.fixture(
    renderRolloutList([{ ...DETAIL, hosts: undefined } as unknown as RolloutDetail, { ...DETAIL, id: 'db@x', channel: 'db', state: 'Halted', reason: 'host db1 failed', openedAt: '2026-03-01T10:00:00Z', hostCounts: { Converged: 1, Failed: 1 } }], NOW, plain),
    [
      'ROLLOUT     CHANNEL  STATE        WAVE  CONVERGED  OPENED      UPDATED    REASON',
      'stable@abc  stable   → executing  1     1/3        30 min ago  2 min ago',
      'db@x        db       ✗ halted     -     1/2        2 h ago     2 min ago  host db1 failed',
      '',
    ].join('\n'),
  );
  assert.fixture(
    renderRolloutDetail(DETAIL, NOW, plain),
    [
      'rollout stable@abc: → executing, wave 1 (waves 0–2)',
      'opened 30 min ago, updated 2 min ago; artefact signed 2026-03-01T11:00:00Z, sha256 ffffffffffff…',
      '',
      'WAVE  HOST  STATE        SINCE       CLOSURE                      REASON',
      '0     web1  ✓ converged  15 min ago  11111111-nixos-system-25.11',
      '1     web2  → soaking    5 min ago   11111111-nixos-system-25.11',
      '2     web3  … queued     30 min ago  11111111-nixos-system-25.11  wave 2 waits for wave 1',
      '',
    ].join('\n'),
  );
  assert.fixture(
    renderQuarantines(QS, NOW, plain),
    [
      `CHANNEL  ${'CLOSURE'.padEnd(BAD.length)}  ROLLOUT  SINCE       REASON`,
      `db       ${BAD}  db@bad   20 min ago  db1 rolled back`,
      '',
    ].join('\n'),
  );
});

test('issue 14 labels: ⟳ pending reboot (in its rollout), ≠ drifted (runs …), ⚓ pinned until …, and a stalled rollout says why', () => {
  const hosts = [
    host('k1', { rollout: ro('PendingReboot') }),
    host('d1', { currentClosure: OLD, rollout: ro('Converged'), drift: { expected: NEW, actual: OLD, since: '2026-03-01T11:00:00Z', rolloutId: 'stable@abc' } }),
    host('p1', { currentClosure: OLD, pin: { commit: 'abc123', reason: 'kernel regression', until: '2026-04-01T00:00:00.000Z' } }),
  ];
  const labels = Object.fromEntries(statusReport(hosts, []).hosts.map((r) => [r.hostname, r.label]));
  assert.is(labels['k1'], '⟳ pending reboot');
  assert.match(labels['d1']!, /^≠ drifted \(runs .+\)$/);
  assert.is(labels['p1'], '⚓ pinned until 2026-04-01T00:00:00.000Z');
  assert.ok(stripAnsi(renderStatus(statusReport(hosts, []), NOW, plain)).includes('⚓ pinned until 2026-04-01'));
  const stalled: RolloutSummary = {
    id: 'stable@abc',
    channel: 'stable',
    state: 'Executing',
    currentWave: 0,
    signedAt: '2026-03-01T10:00:00Z',
    artifactSha256: 'f'.repeat(64),
    openedAt: '2026-03-01T10:00:00Z',
    updatedAt: '2026-03-01T11:00:00Z',
    reason: 'rollout started',
    hostCounts: { Queued: 1 },
    stall: { since: '2026-03-01T11:30:00Z', gate: 'host-edge', hosts: ['web2'], reason: 'no progress for 1800 s' },
  };
  assert.match(stripAnsi(renderRolloutList([stalled], NOW, plain)), /⚠ stalled \(host-edge: web2\): no progress for 1800 s/);
});

test('issue 16: certificate expiry in status: expiring (under 7 days) and expired in the label, the counts and the exit status', () => {
  const iso = (ms: number) => new Date(ms).toISOString();
  const hosts = [
    host('c1', { certNotAfter: iso(NOW + 20 * 86_400_000) }),
    host('c2', { certNotAfter: iso(NOW + 3 * 86_400_000) }),
    host('c3', { certNotAfter: iso(NOW - 60_000) }),
    host('c4'),
  ];
  const r = statusReport(hosts, [], [], NOW);
  const by = Object.fromEntries(r.hosts.map((h) => [h.hostname, h]));
  assert.equal([by['c1']!.cert, by['c2']!.cert, by['c3']!.cert, by['c4']!.cert], ['valid', 'expiring', 'expired', null]);
  assert.match(by['c2']!.label, /· ⚠ certificate expires in 3 d$/);
  assert.match(by['c3']!.label, /· ✗ certificate expired$/);
  assert.not.match(by['c1']!.label, /certificate/);
  assert.equal(r.certs, { valid: 1, expiring: 1, expired: 1 });
  assert.ok(r.unhealthy, 'an expired certificate is unhealthy');
  assert.not.ok(statusReport(hosts.slice(0, 2), [], [], NOW).unhealthy);
  assert.match(stripAnsi(renderStatus(r, NOW, plain)), /; 1 certificate expiring, 1 certificate expired\n$/);
});

test.run();
