import { readFileSync } from 'node:fs';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { interopDir, withInterop } from '../fixtures/interop.ts';
import { canonicalize, parseJsonStrict } from './jcs.ts';
import { matchesSelector, parseFleetResolved } from './schema.ts';
import { changeWindowAt, localTime, type ChangeWindow } from './windows.ts';

const at = (iso: string): number => Date.parse(iso);
const win = (w: Partial<ChangeWindow>): ChangeWindow => ({ timeZone: 'UTC', allow: [], freezes: [], ...w });

const evalSuite = suite('changeWindowAt: pure evaluation given now');

evalSuite('no window, or no ranges and no freeze: open', () => {
  assert.ok(changeWindowAt(undefined, at('2026-12-01T03:00:00Z')).open);
  assert.ok(changeWindowAt(win({}), at('2026-12-01T03:00:00Z')).open);
});

evalSuite('a weekday range in UTC: open inside, closed outside (end exclusive)', () => {
  const w = win({ allow: [{ days: ['tue'], start: '09:00', end: '17:00' }] }); // 2026-12-01 is a Tuesday
  assert.ok(changeWindowAt(w, at('2026-12-01T09:00:00Z')).open);
  assert.ok(changeWindowAt(w, at('2026-12-01T16:59:00Z')).open);
  assert.not.ok(changeWindowAt(w, at('2026-12-01T17:00:00Z')).open);
  assert.not.ok(changeWindowAt(w, at('2026-12-02T10:00:00Z')).open);
  assert.match(changeWindowAt(w, at('2026-12-02T10:00:00Z')).reason, /outside the change window \(tue 09:00–17:00 UTC\)/);
});

evalSuite('a range that crosses midnight belongs to its start day', () => {
  const w = win({ allow: [{ days: ['tue'], start: '22:00', end: '05:00' }] });
  assert.ok(changeWindowAt(w, at('2026-12-01T23:00:00Z')).open);
  assert.ok(changeWindowAt(w, at('2026-12-02T04:59:00Z')).open); // Wednesday morning
  assert.not.ok(changeWindowAt(w, at('2026-12-01T04:00:00Z')).open); // Tuesday morning: Monday not listed
});

evalSuite('the time zone decides the local day and hour (Europe/Paris is UTC+1 in December)', () => {
  const w = win({ timeZone: 'Europe/Paris', allow: [{ days: ['wed'], start: '00:00', end: '01:00' }] });
  assert.ok(changeWindowAt(w, at('2026-12-01T23:30:00Z')).open); // 00:30 Wednesday in Paris
  assert.not.ok(changeWindowAt(w, at('2026-12-02T00:30:00Z')).open); // 01:30 in Paris
  assert.equal(localTime('Europe/Paris', at('2026-12-01T23:30:00Z')), { day: 2, minute: 30 });
});

evalSuite('a freeze closes the window whatever the ranges; an unknown zone closes it (fail safe)', () => {
  const w = win({ freezes: [{ from: '2026-12-20T00:00:00Z', until: '2027-01-04T00:00:00Z', reason: 'year-end' }] });
  assert.not.ok(changeWindowAt(w, at('2026-12-24T12:00:00Z')).open);
  assert.match(changeWindowAt(w, at('2026-12-24T12:00:00Z')).reason, /change freeze .*year-end/);
  assert.ok(changeWindowAt(w, at('2027-01-04T00:00:00Z')).open);
  assert.not.ok(changeWindowAt(win({ timeZone: 'Mars/Olympus', allow: [{ days: ['mon'], start: '00:00', end: '24:00' }] }), at('2026-12-07T12:00:00Z')).open);
});

const parseSuite = suite('fleet.resolved.json: channel controls and NixFleet v1 spellings');
/** Every test here reads the v1 interop artefact: skipped by name when ../shared is absent. */
const parse = withInterop(parseSuite);

function interopFleet(): Record<string, unknown> {
  const r = parseJsonStrict(readFileSync(`${interopDir()}/signed-artifact.json`, 'utf8'));
  if (!r.ok) throw new Error('interop file does not parse');
  return r.value as Record<string, unknown>;
}

parse('a v1 artefact has no controls: it parses and reads with the defaults (absent fields)', () => {
  const r = parseFleetResolved(interopFleet());
  assert.ok(r.ok);
  for (const ch of Object.values(r.value.channels)) {
    assert.is(ch.rebootPolicy, undefined);
    assert.is(ch.changeWindow, undefined);
  }
});

parse('the controls parse, are kept byte for byte, and an unknown time zone is refused', () => {
  const u = interopFleet();
  const chans = u['channels'] as Record<string, Record<string, unknown>>;
  const name = Object.keys(chans)[0]!;
  chans[name] = { ...chans[name], rebootPolicy: 'automatic', onDrift: 'redeploy', progressDeadlineMinutes: 10, changeWindow: win({ timeZone: 'Europe/Paris' }) };
  const before = canonicalize(chans[name]);
  const r = parseFleetResolved(structuredClone(u));
  if (!r.ok) assert.unreachable(r.error.message);
  else assert.equal(canonicalize(r.value.channels[name]), before);
  chans[name]!['changeWindow'] = win({ timeZone: 'Mars/Olympus' });
  const bad = parseFleetResolved(u);
  assert.not.ok(bad.ok);
  if (!bad.ok) assert.match(bad.error.message, /changeWindow\.timeZone: unknown time zone "Mars\/Olympus"/);
});

parse("NixFleet v1's mkFleet spellings: selector `not: null` / `and: []` and pin `expiresAt: null` parse and read as unset", () => {
  const u = interopFleet();
  const hosts = u['hosts'] as Record<string, Record<string, unknown>>;
  const h = Object.keys(hosts)[0]!;
  hosts[h]!['pin'] = { commit: 'abc', reason: 'r', expiresAt: null };
  u['disruptionBudgets'] = [{ selector: { all: false, hosts: [], tags: [], tagsAny: [], channel: null, and: [], not: null }, maxInFlight: 1, maxInFlightPct: null }];
  const r = parseFleetResolved(u);
  if (!r.ok) assert.unreachable(r.error.message);
  else {
    const sel = r.value.disruptionBudgets[0]!.selector;
    assert.not.ok(matchesSelector(sel, h, r.value.hosts[h]!), 'an empty selector with and: [] / not: null matches nothing');
    assert.ok(matchesSelector({ ...sel, all: true }, h, r.value.hosts[h]!));
    assert.is(r.value.hosts[h]!.pin!.expiresAt, null);
  }
});

evalSuite.run();
parseSuite.run();
