import { readFileSync } from 'node:fs';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { canonicalize, parseJsonStrict } from './jcs.ts';
import { matchesSelector, parseFleetDescription, parseFleetResolved, parseRevocations, parseTimestamp, parseTrust, type Selector } from './schema.ts';
import { pathToFileURL } from 'node:url';
import { interopDir, withInterop } from '../fixtures/interop.ts';

const INTEROP = (): URL => pathToFileURL(interopDir() + '/');
const readJson = (name: string): unknown => {
  const r = parseJsonStrict(readFileSync(new URL(name, INTEROP())));
  if (!r.ok) throw new Error(r.error.message);
  return r.value;
};
const paths = (r: { ok: boolean; error?: { issues: { path: string }[] } }): string[] => (r.ok ? [] : r.error!.issues.map((i) => i.path));

const interopSuite = suite('interop: NixFleet v1 artefacts');
const interop = withInterop(interopSuite);

for (const name of ['signed-artifact', 'every-nullable']) {
  interop(`${name}.json parses and canonicalises to ${name}.canonical byte for byte`, () => {
    const r = parseFleetResolved(readJson(`${name}.json`));
    assert.ok(r.ok, r.ok ? '' : r.error.message);
    if (!r.ok) return;
    const c = canonicalize(r.value);
    assert.ok(c.ok);
    if (c.ok) assert.is(c.value, readFileSync(new URL(`${name}.canonical`, INTEROP()), 'utf8'));
  });
}

interop('the .canonical files themselves parse and are fixed points', () => {
  for (const name of ['signed-artifact', 'every-nullable']) {
    const text = readFileSync(new URL(`${name}.canonical`, INTEROP()), 'utf8');
    const r = parseFleetResolved(JSON.parse(text));
    assert.ok(r.ok);
    if (r.ok) assert.is((canonicalize(r.value) as { value: string }).value, text);
  }
});

const fleetSuite = suite('parseFleetResolved');
// Every case starts from the v1 interop artefact.
const fleet = withInterop(fleetSuite);

const valid = (): Record<string, unknown> => JSON.parse(readFileSync(new URL('signed-artifact.canonical', INTEROP()), 'utf8'));

fleet('reports every bad field path, not just the first', () => {
  const u = valid() as any;
  u.hosts.h1.system = 5;
  u.hosts.h1.tags = ['ok', 7];
  u.channels.stable.freshnessWindow = 'soon';
  u.channels.stable.compliance.mode = 'strict';
  u.rolloutPolicies.none.waves[0].soakMinutes = -1;
  u.rolloutPolicies.none.strategy = 'yolo';
  u.meta.signedAt = '2026-04-24 10:00';
  u.disruptionBudgets = [{ selector: {}, maxInFlightPct: 150 }];
  const r = parseFleetResolved(u);
  assert.ok(!r.ok);
  assert.equal(paths(r).sort(), [
    '$.channels.stable.compliance.mode',
    '$.channels.stable.freshnessWindow',
    '$.disruptionBudgets[0].maxInFlightPct',
    '$.hosts.h1.system',
    '$.hosts.h1.tags[1]',
    '$.meta.signedAt',
    '$.rolloutPolicies.none.strategy',
    '$.rolloutPolicies.none.waves[0].soakMinutes',
  ]);
  assert.ok(!r.ok && r.error.code === 'SCHEMA_INVALID' && r.error.message.includes('and 3 more'));
});

fleet('keeps unknown fields at every level (they are signed)', () => {
  const u = valid() as any;
  u.futureTop = { x: 1 };
  u.hosts.h1.rack = 'A3';
  u.meta.buildUrl = 'https://ci.example/1';
  u.rolloutPolicies.none.waves[0].selector.regex = 'web.*';
  const r = parseFleetResolved(u);
  assert.ok(r.ok);
  if (!r.ok) return;
  const v = r.value as any;
  assert.equal(v.futureTop, { x: 1 });
  assert.is(v.hosts.h1.rack, 'A3');
  assert.is(v.meta.buildUrl, 'https://ci.example/1');
  assert.is(v.rolloutPolicies.none.waves[0].selector.regex, 'web.*');
});

fleet('reads channel edges in the old before/after spelling as gates/gated', () => {
  const u = valid() as any;
  u.channels.beta = { ...u.channels.stable };
  u.channelEdges = [{ before: 'beta', after: 'stable', reason: 'beta first' }, { gates: 'beta', gated: 'stable' }];
  const r = parseFleetResolved(u);
  assert.ok(r.ok, r.ok ? '' : r.error.message);
  if (r.ok) assert.equal(r.value.channelEdges, [{ gates: 'beta', gated: 'stable', reason: 'beta first' }, { gates: 'beta', gated: 'stable', reason: null }]);
});

fleet('referential integrity: unknown channel, policy, wave host, edge host', () => {
  const u = valid() as any;
  u.hosts.h2 = { ...u.hosts.h1, channel: 'nope' };
  u.channels.other = { ...u.channels.stable, rolloutPolicy: 'missing' };
  u.waves.stable[0].hosts.push('ghost');
  u.edges = [{ gated: 'h1', gates: 'ghost2', reason: null }];
  u.channelEdges = [{ gates: 'stable', gated: 'x', reason: null }];
  assert.equal(paths(parseFleetResolved(u)).sort(), ['$.channelEdges[0].gated', '$.channels.other.rolloutPolicy', '$.edges[0].gates', '$.hosts.h2.channel', '$.waves.stable[0].hosts[1]']);
});

fleet('freshnessWindow < 2 × signingIntervalMinutes is invalid; wrong versions are reported', () => {
  const u = valid() as any;
  u.channels.stable.freshnessWindow = 100;
  u.schemaVersion = 2;
  u.meta.schemaVersion = 2;
  assert.equal(paths(parseFleetResolved(u)).sort(), ['$.channels.stable.freshnessWindow', '$.meta.schemaVersion', '$.schemaVersion']);
});

fleet('never throws on junk', () => {
  for (const j of [null, 1, 'x', [], { hosts: null }, { hosts: { a: null }, channels: [], waves: { s: [null, 1] }, edges: [null], channelEdges: [3], disruptionBudgets: [null], meta: [] }]) {
    const r = parseFleetResolved(j);
    assert.ok(!r.ok && r.error.issues.length > 0);
  }
});

const side = suite('revocations and trust');

side('revocations: valid, defaults, and every bad path', () => {
  const ok = parseRevocations({ schemaVersion: 1, revocations: [{ hostname: 'web1', notBefore: '2026-01-01T00:00:00+02:00' }], meta: { schemaVersion: 1, signedAt: null } });
  assert.ok(ok.ok);
  if (ok.ok) assert.equal(ok.value.revocations[0], { hostname: 'web1', notBefore: '2026-01-01T00:00:00+02:00', reason: null, revokedBy: null });
  const bad = parseRevocations({ schemaVersion: 1, revocations: [{ hostname: '', notBefore: 'yesterday', reason: 3 }], meta: { schemaVersion: 1, signedAt: null, ciCommit: 5 } });
  assert.equal(paths(bad).sort(), ['$.meta.ciCommit', '$.revocations[0].hostname', '$.revocations[0].notBefore', '$.revocations[0].reason']);
});

side('trust.json: key lengths per algorithm, timestamps, cache keys', () => {
  const ed = Buffer.alloc(32, 1).toString('base64');
  const p = Buffer.alloc(64, 2).toString('base64');
  const good = parseTrust({
    schemaVersion: 1,
    ciReleaseKey: { current: { algorithm: 'ed25519', public: ed }, successor: { algorithm: 'ecdsa-p256', public: p }, retireAt: '2026-06-01T00:00:00Z', rejectBefore: '2026-01-01T00:00:00Z' },
    cacheKeys: ['cache.example.org-1:' + ed],
    fleetCaPem: '-----BEGIN CERTIFICATE-----',
  });
  assert.ok(good.ok, good.ok ? '' : good.error.message);
  const bad = parseTrust({
    schemaVersion: 1,
    ciReleaseKey: { current: { algorithm: 'ed25519', public: p }, previous: { algorithm: 'rsa', public: ed }, retireAt: 'never' },
    cacheKeys: ['nocolon'],
  });
  assert.equal(paths(bad).sort(), ['$.cacheKeys[0]', '$.ciReleaseKey.current.public', '$.ciReleaseKey.previous.algorithm', '$.ciReleaseKey.retireAt']);
});

const desc = suite('parseFleetDescription');

desc('refuses unknown fields (typos) and reports them all', () => {
  const r = parseFleetDescription({
    hosts: { a: { system: 'x86_64-linux', channel: 'c', tag: ['x'] } },
    channels: { c: { rolloutPolicy: 'p', freshnesWindow: 3 } },
    rolloutPolicies: { p: { waves: [{ selector: { al: true } }] } },
    extra: 1,
  });
  assert.equal(paths(r).sort(), ['$.channels.c.freshnesWindow', '$.extra', '$.hosts.a.tag', '$.rolloutPolicies.p.waves[0].selector.al']);
});

const sel = suite('matchesSelector and timestamps');

sel('OR over set rules; empty matches nothing; and / not', () => {
  const h = { tags: ['web', 'eu'], channel: 'prod' };
  const S = (s: Partial<Selector>): Selector => ({ all: false, hosts: [], tags: [], tagsAny: [], channel: null, ...s });
  assert.not.ok(matchesSelector(S({}), 'w1', h));
  assert.ok(matchesSelector(S({ all: true }), 'w1', h));
  assert.ok(matchesSelector(S({ hosts: ['w1'] }), 'w1', h));
  assert.ok(matchesSelector(S({ channel: 'prod' }), 'w1', h));
  assert.ok(matchesSelector(S({ tags: ['web', 'eu'] }), 'w1', h));
  assert.not.ok(matchesSelector(S({ tags: ['web', 'us'] }), 'w1', h));
  assert.ok(matchesSelector(S({ tags: ['web', 'us'], tagsAny: ['eu'] }), 'w1', h));
  assert.ok(matchesSelector({ not: { tags: ['db'] } }, 'w1', h));
  assert.not.ok(matchesSelector({ not: { tags: ['web'] } }, 'w1', h));
  assert.not.ok(matchesSelector({ all: true, and: [{ tags: ['us'] }] }, 'w1', h));
  assert.ok(matchesSelector({ tagsAny: ['eu'], and: [{ channel: 'prod' }], not: { hosts: ['w2'] } }, 'w1', h));
});

sel('RFC 3339 timestamps: UTC-only mode, calendar checks', () => {
  assert.is(parseTimestamp('2026-04-24T10:00:00Z', true), Date.UTC(2026, 3, 24, 10));
  assert.is(parseTimestamp('2026-04-24T12:00:00+02:00'), Date.UTC(2026, 3, 24, 10));
  assert.is(parseTimestamp('2026-04-24T12:00:00+02:00', true), null);
  assert.is(parseTimestamp('2026-02-30T00:00:00Z'), null);
  assert.is(parseTimestamp('2026-04-24T24:00:00Z'), null);
  assert.is(parseTimestamp('2026-04-24'), null);
  assert.is(parseTimestamp('2026-04-24T10:00:00.250Z', true), Date.UTC(2026, 3, 24, 10, 0, 0, 250));
});

interopSuite.run();
fleetSuite.run();
side.run();
desc.run();
sel.run();
