/**
 * The one validation kit (validate.ts) and the shared vocabularies (vocab.ts): our path style,
 * our messages, the issue order lib/resolve.nix mirrors, projections and defaults.
 */
import { Type } from '@sinclair/typebox';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { parseCheckinRequest, parseReportRequest } from './api-parse.ts';
import { parseFleetDescription } from './description.ts';
import { compile, compileDefaults, compileProjection } from './validate.ts';
import { Enum, isHostname, isStoreBasename, isTimestamp, Nullable, parseTimestamp } from './vocab.ts';

const kit = suite('validate: paths, messages, order');

const Host = Type.Object({ system: Type.String({ minLength: 1 }), tags: Type.Optional(Type.Array(Type.String())), pin: Type.Optional(Nullable(Type.String())) }, { additionalProperties: false });
const Doc = Type.Object({
  hosts: Type.Record(Type.String({ pattern: '^.+$' }), Host, { additionalProperties: false }),
  mode: Type.Optional(Enum(['a', 'b'] as const)),
  n: Type.Optional(Type.Integer({ minimum: 0, maximum: 100 })),
}, { additionalProperties: false });
const doc = compile(Doc);

kit('JSON Pointers become $.a.b[0] paths; odd keys are quoted; record entries in key order', () => {
  const issues = doc.issues({ hosts: { 'web1.example.com': { system: 5 }, 'a/b': { tags: ['x', 1] }, w: { system: 'x', pin: 3 } } });
  assert.equal(issues, [
    { path: '$.hosts["a/b"].system', message: 'is required' },
    { path: '$.hosts["a/b"].tags[1]', message: 'must be a string' },
    { path: '$.hosts.w.pin', message: 'must be a string or null' },
    { path: '$.hosts["web1.example.com"].system', message: 'must be a string' },
  ]);
});

kit('our messages, one per path, unknown fields first then schema order', () => {
  assert.equal(doc.issues({ n: 101, zz: 1, mode: 'c', hosts: { '': {}, h: { bogus: true, system: '' } } }), [
    { path: '$.zz', message: 'unknown field' },
    { path: '$.hosts', message: 'keys must not be empty' },
    { path: '$.hosts.h.bogus', message: 'unknown field' },
    { path: '$.hosts.h.system', message: 'must not be empty' },
    { path: '$.mode', message: 'must be one of a, b' },
    { path: '$.n', message: 'must be between 0 and 100' },
  ]);
  assert.equal(doc.issues([]), [{ path: '$', message: 'must be an object' }]);
  assert.ok(doc.check({ hosts: {} }));
});

kit('a tagged union reports an unknown tag on the tag, a known one by its own fields', () => {
  const U = compile(Type.Array(Type.Union([Type.Object({ kind: Type.Literal('tcp'), port: Type.Integer() }), Type.Object({ kind: Type.Literal('exec'), command: Type.Array(Type.String()) })])));
  assert.equal(U.issues([{ kind: 'ftp' }, { kind: 'tcp' }, { kind: 'exec', command: 'ls' }]), [
    { path: '$[0].kind', message: 'must be one of tcp, exec' },
    { path: '$[1].port', message: 'is required' },
    { path: '$[2].command', message: 'must be an array of strings' },
  ]);
});

kit('projection keeps only the fields the schema names; defaults copy, fill, never mutate', () => {
  const project = compileProjection(Doc);
  const v = { hosts: { h: { system: 'x', extra: 1 } }, other: 2 };
  assert.equal(project(v as never), { hosts: { h: { system: 'x', extra: 1 } } }, 'records are copied as they are');
  const D = Type.Object({ a: Type.Array(Type.String(), { default: [] }), b: Nullable(Type.String(), { default: null }), c: Type.Optional(Type.String()) });
  const fill = compileDefaults(D);
  const input = JSON.parse('{"__proto__": {"polluted": true}, "keep": 1}') as object;
  const out = fill(input) as Record<string, unknown>;
  assert.equal(Object.keys(out).sort(), ['__proto__', 'a', 'b', 'keep']);
  assert.equal(out['a'], []);
  assert.is(out['b'], null);
  assert.not.ok('c' in out);
  assert.is(Object.getPrototypeOf(out), Object.prototype, '__proto__ stays data');
  assert.equal(Object.keys(input).sort(), ['__proto__', 'keep'], 'input untouched');
  assert.is(fill('junk'), 'junk');
});

kit('defaults copy on write: nothing missing gives the value itself, a fill copies only its path', () => {
  const D = Type.Object({ a: Type.Array(Type.String(), { default: [] }), r: Type.Record(Type.String(), Type.Object({ n: Nullable(Type.Integer(), { default: null }) })) });
  const fill = compileDefaults(D);
  const full = { a: ['x'], r: { p: { n: 1 }, q: { n: null } } };
  assert.is(fill(full), full, 'complete: no copy');
  const partial = { a: ['x'], r: { p: { n: 1 }, q: {} } };
  const out = fill(partial) as typeof full;
  assert.is.not(out, partial);
  assert.equal(out, { a: ['x'], r: { p: { n: 1 }, q: { n: null } } });
  assert.is(out.a, partial.a, 'an untouched field is shared');
  assert.is(out.r.p, partial.r.p, 'an untouched record entry is shared');
  assert.equal(partial, { a: ['x'], r: { p: { n: 1 }, q: {} } }, 'input untouched');
});

const api = suite('api-parse on the kit');

const checkin = { hostname: 'web1', currentClosure: null, bootId: 'b', probes: [], failedUnits: [], lastOutcome: null };

api('request bodies: $.report.x paths, unknown fields dropped', () => {
  const r = parseReportRequest({ report: { hostname: 'web 1', event: 'took-over', rolloutId: null, closureHash: 'nope', at: '2026-01-01t00:00:00z', message: '' }, signature: null });
  assert.ok(!r.ok);
  if (!r.ok) {
    assert.equal(r.error.issues.map((i) => i.path), ['$.report.hostname', '$.report.event', '$.report.closureHash', '$.report.at']);
    assert.is(r.error.code, 'INVALID_BODY');
    assert.match(r.error.message, /^invalid request body: \$\.report\.hostname must be a host name/);
  }
  const c = parseCheckinRequest({ ...checkin, futureField: 1, probes: [{ name: 'p', ok: true, observedAt: '2026-01-01T00:00:00Z', x: 2 }] });
  assert.ok(c.ok);
  if (c.ok) assert.equal(c.value, { ...checkin, probes: [{ name: 'p', ok: true, observedAt: '2026-01-01T00:00:00Z' }] });
});

const vocab = suite('vocab: one rule each');

vocab('RFC 3339: upper-case T and Z, calendar and offset ranges, UTC mode', () => {
  assert.ok(isTimestamp('2026-04-24T10:00:00Z'));
  assert.ok(isTimestamp('2024-02-29T23:59:60.5+05:30'));
  for (const bad of ['2026-04-24t10:00:00Z', '2026-04-24T10:00:00z', '2026-02-29T00:00:00Z', '2026-04-24T10:00:00+24:00', '2026-04-24 10:00:00Z', '2026-04-24T10:00Z']) assert.not.ok(isTimestamp(bad), bad);
  assert.not.ok(isTimestamp('2026-04-24T10:00:00+00:00', true));
  assert.is(parseTimestamp('2026-04-24T12:00:00+02:00'), Date.UTC(2026, 3, 24, 10));
});

vocab("store basenames follow Nix's own rule", () => {
  const h = '0c6kzph7l0dcbyhhwvx8mqgx48cswp1m';
  assert.ok(isStoreBasename(`${h}-nixos-system-web1-25.05`));
  assert.ok(isStoreBasename(`${h}-.hidden`));
  assert.ok(isStoreBasename(`${h}-${'a'.repeat(211)}`));
  for (const bad of [`${h.slice(0, 31)}e-x`, `${h}-`, `${h}-.`, `${h}-..`, `${h}-.-x`, `${h}-a b`, `${h}-${'a'.repeat(212)}`, `${h.toUpperCase()}-x`]) assert.not.ok(isStoreBasename(bad), bad);
});

vocab('host names as the PKI mints them', () => {
  for (const good of ['web1', 'web1.example.com', 'a', `a${'b'.repeat(62)}`]) assert.ok(isHostname(good), good);
  for (const bad of ['', '-web', '.web', 'web 1', `a${'b'.repeat(63)}`, 'wéb']) assert.not.ok(isHostname(bad), bad);
});

const desc = suite('fleet description: the message lib/resolve.nix mirrors');

desc('first five issues in walk order (sorted keys, as Nix), then the count', () => {
  // The same description through lib/resolve.nix gives this very message (checked with nix-instantiate).
  const r = parseFleetDescription({
    zeta: 1,
    hosts: { b: { channel: 'c', tag: [] }, a: { system: 1, channel: 'c', pubkey: 3 } },
    channels: { c: { rolloutPolicy: 'p', freshnessWindow: 0 } },
    rolloutPolicies: { p: { waves: [] } },
  });
  assert.ok(!r.ok);
  if (!r.ok)
    assert.is(
      r.error.message,
      'invalid fleet description: $.zeta: unknown field; $.hosts.a.system: must be a string; $.hosts.a.pubkey: must be a string or null; $.hosts.b.tag: unknown field; $.hosts.b.system: is required (and 2 more)',
    );
});

kit.run();
api.run();
vocab.run();
desc.run();
