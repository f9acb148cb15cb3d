/**
 * Property: `lib.resolveFleet` (pure Nix, lib/resolve.nix) and `resolveFleetInput`
 * (release/resolve.ts) agree on every description: the same JCS bytes and warnings when both
 * succeed, the same error code and message when either fails. Descriptions are random, mostly
 * valid, with a sprinkling of every invariant violation and of shape errors, sometimes split over
 * two files. All of a run's descriptions go to Nix in one `nix-instantiate` (one process).
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as fc from 'fast-check';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { canonicalize } from '../protocol/jcs.ts';
import { resolveFleetInput } from '../release/resolve.ts';
import { sampleDescription } from '../fixtures/artifacts.ts';
import { nixEvalJson, nixString } from './nix.ts';

type Outcome = { ok: true; canonical: string; warnings: string[] } | { ok: false; code: string; message: string };

function jcs(v: unknown): string {
  const c = canonicalize(v);
  if (!c.ok) throw new Error(`not canonicalizable: ${c.error.message}`);
  return c.value;
}

function viaTs(input: unknown): Outcome {
  const r = resolveFleetInput(input);
  return r.ok ? { ok: true, canonical: jcs(r.value.fleet), warnings: r.value.warnings } : { ok: false, code: r.error.code, message: r.error.message };
}

/** Evaluate every input with lib/resolve.nix in one Nix process. */
function viaNix(inputs: unknown[]): Outcome[] {
  const dir = mkdtempSync(join(tmpdir(), 'nixfleet-mkfleet-'));
  try {
    const file = join(dir, 'inputs.json');
    writeFileSync(file, JSON.stringify(inputs));
    const out = nixEvalJson(`map (import ./lib/resolve.nix) (builtins.fromJSON (builtins.readFile ${nixString(file)}))`) as Array<
      { ok: true; fleet: unknown; warnings: string[] } | { ok: false; error: { code: string; message: string } }
    >;
    return out.map((r) => (r.ok ? { ok: true, canonical: jcs(r.fleet), warnings: r.warnings } : { ok: false, code: r.error.code, message: r.error.message }));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** Objects with their keys inserted in sorted order, so JS iteration order = Nix attrNames order. */
function sortKeys(v: unknown): unknown {
  if (Array.isArray(v)) return v.map(sortKeys);
  if (typeof v === 'object' && v !== null) {
    const out: Record<string, unknown> = {};
    for (const k of Object.keys(v).sort()) out[k] = sortKeys((v as Record<string, unknown>)[k]);
    return out;
  }
  return v;
}

// --- generators --------------------------------------------------------------------------------

const HOSTS = ['a', 'b', 'c', 'db-1', 'web_2', 'x.y'];
const CHANNELS = ['stable', 'beta', 'edge'];
const POLICIES = ['p', 'q', 'canary'];
const TAGS = ['web', 'db', 'canary', 'eu'];

/** Mostly `good`, sometimes `bad` (an invariant or a shape violation). */
const mostly = <T, U>(good: fc.Arbitrary<T>, bad: fc.Arbitrary<U>, weight = 60) => fc.oneof({ weight, arbitrary: good }, { weight: 1, arbitrary: bad });

/** `arb`, plus (one time in `oneIn`) an unknown field. */
const withStray = <T extends object>(arb: fc.Arbitrary<T>, field: string, oneIn: number) =>
  fc.tuple(arb, fc.integer({ min: 1, max: oneIn })).map(([o, n]) => (n === 1 ? { ...o, [field]: 1 } : o));

/** Selectors over the given names, nested up to two levels through `and` / `not`. */
function selectorOver(hosts: string[], channels: string[]): fc.Arbitrary<object> {
  const base = {
    all: mostly(fc.boolean(), fc.constant('yes'), 600),
    hosts: mostly(fc.subarray(hosts), fc.subarray([...hosts, 'ghost']), 200),
    tags: fc.subarray(TAGS),
    tagsAny: fc.subarray(TAGS),
    channel: mostly(fc.oneof(fc.constant(null), fc.constantFrom(...channels)), fc.constant('nochannel'), 200),
  };
  const nested = (inner: fc.Arbitrary<object>) =>
    withStray(fc.record({ ...base, and: fc.array(inner, { maxLength: 2 }), not: inner }, { requiredKeys: [] }), 'bogus', 1000);
  return nested(nested(withStray(fc.record(base, { requiredKeys: [] }), 'bogus', 1000)));
}

/** A consistent-ish description over the given names: mostly valid, now and then one violation. */
function descriptionOver(hosts: string[], channels: string[], policies: string[]) {
  const selector = selectorOver(hosts, channels);
  const hostArb = withStray(
    fc.record(
      {
        system: mostly(fc.constantFrom('x86_64-linux', 'aarch64-darwin'), fc.constantFrom(1, '')),
        channel: mostly(fc.constantFrom(...channels), fc.constantFrom('', null, 'nochannel')),
        tags: fc.subarray(TAGS),
        pubkey: fc.constantFrom(null, 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBCtsn/bZLM3EfzZfnPR7kgBXbqfC9dM2axSscYPsgwH host', 'AAAAC3NzaC1lZDI1NTE5AAAAIBCtsn/bZLM3EfzZfnPR7kgBXbqfC9dM2axSscYPsgwH'),
        closureHash: fc.constantFrom(null, '0c6kzph7l0dcbyhhwvx8mqgx48cswp1m-nixos-system-a-25.05'),
        leaving: mostly(fc.boolean(), fc.constant('no')),
      },
      { requiredKeys: ['system', 'channel'] },
    ),
    'tag',
    300,
  );
  const channelArb = fc.record(
    {
      rolloutPolicy: mostly(fc.constantFrom(...policies), fc.constant('nopolicy')),
      freshnessWindow: mostly(fc.integer({ min: 180, max: 400 }), fc.integer({ min: 0, max: 179 })),
      signingIntervalMinutes: fc.integer({ min: 1, max: 90 }),
      reconcileIntervalMinutes: fc.integer({ min: 1, max: 60 }),
      compliance: fc.record(
        {
          frameworks: mostly(fc.subarray(['cis', 'soc2', 'nis2']), fc.constant(['bogus-framework'])),
          mode: mostly(fc.constantFrom('disabled', 'permissive', 'enforce'), fc.constant('strict')),
        },
        { requiredKeys: [] },
      ),
      // Issue 14 controls (protocol/windows.ts), with a sprinkling of shape errors.
      rebootPolicy: mostly(fc.constantFrom('manual', 'automatic'), fc.constant('sometimes')),
      onDrift: mostly(fc.constantFrom('report', 'redeploy'), fc.constant('ignore')),
      progressDeadlineMinutes: mostly(fc.integer({ min: 1, max: 120 }), fc.constant(0)),
      requireApprovals: mostly(fc.integer({ min: 1, max: 3 }), fc.constant(0)),
      changeWindow: fc.record(
        {
          timeZone: mostly(fc.constantFrom('UTC', 'Europe/Paris', 'America/New_York'), fc.constant('')),
          allow: fc.array(
            fc.record({
              days: fc.subarray(['mon', 'tue', 'wed', 'thu', 'fri', 'sat', 'sun']).chain((d) => mostly(fc.constant(d), fc.constant([...d, 'someday']))),
              start: mostly(fc.constantFrom('00:00', '08:30', '22:00'), fc.constantFrom('8:00', '25:00')),
              end: mostly(fc.constantFrom('06:00', '17:45', '24:00'), fc.constant('24:01')),
            }),
            { maxLength: 2 },
          ),
          freezes: fc.array(
            fc.record({
              from: mostly(fc.constant('2026-12-20T00:00:00Z'), fc.constant('christmas')),
              until: fc.constant('2027-01-04T00:00:00+01:00'),
              reason: fc.constantFrom('', 'year-end freeze'),
            }),
            { maxLength: 1 },
          ),
        },
        { requiredKeys: ['timeZone'] },
      ),
    },
    { requiredKeys: ['rolloutPolicy'] },
  );
  const policyArb = fc.record(
    {
      strategy: fc.constantFrom('canary', 'staged', 'all-at-once'),
      waves: mostly(
        fc.array(fc.record({ selector, soakMinutes: mostly(fc.integer({ min: 0, max: 60 }), fc.constant(-1)) }, { requiredKeys: ['selector'] }), { minLength: 1, maxLength: 3 }),
        fc.constant([]),
      ),
      healthGate: fc.oneof(fc.constant({}), fc.record({ systemdFailedUnits: fc.record({ max: fc.integer({ min: 0, max: 3 }) }) }), fc.constant({ complianceProbes: { required: true } })),
      onHealthFailure: fc.constantFrom('halt', 'rollback-and-halt'),
    },
    { requiredKeys: ['waves'] },
  );
  const edgeArb = (names: string[], unknown: string) =>
    fc.record(
      { gated: mostly(fc.constantFrom(...names), fc.constant(unknown)), gates: mostly(fc.constantFrom(...names), fc.constant(unknown)), reason: fc.constantFrom(null, 'db first') },
      { requiredKeys: ['gated', 'gates'] },
    );
  const record = <T>(names: string[], arb: fc.Arbitrary<T>) => fc.tuple(...names.map(() => arb)).map((vs) => Object.fromEntries(names.map((n, i) => [n, vs[i]])));
  return withStray(
    fc.record(
      {
        hosts: record(hosts, hostArb),
        channels: record(channels, channelArb),
        rolloutPolicies: record(policies, policyArb),
        edges: fc.array(edgeArb(hosts.length > 0 ? hosts : ['a'], 'ghost'), { maxLength: 2 }),
        channelEdges: fc.array(edgeArb(channels, 'nochannel'), { maxLength: 1 }),
        disruptionBudgets: fc.array(
          fc.record(
            {
              selector,
              maxInFlight: mostly(fc.oneof(fc.constant(null), fc.integer({ min: 1, max: 5 })), fc.constant(0)),
              maxInFlightPct: mostly(fc.oneof(fc.constant(null), fc.integer({ min: 1, max: 100 })), fc.constantFrom(0, 101)),
            },
            { requiredKeys: ['selector'] },
          ),
          { maxLength: 2 },
        ),
        // Host, tag and channel pins (issue 14); now and then none or two targets (PIN_TARGET), an unknown one, a duplicate.
        pins: fc.array(
          fc.tuple(
            mostly(
              fc.oneof(
                fc.record({ host: mostly(fc.constantFrom(...(hosts.length > 0 ? hosts : ['a'])), fc.constant('ghost')) }),
                fc.record({ tag: fc.constantFrom('web', 'db', 'canary', 'eu') }),
                fc.record({ channel: mostly(fc.constantFrom(...channels), fc.constant('nochannel')) }),
              ),
              fc.constantFrom({}, { host: hosts[0] ?? 'a', tag: 'web' }),
              15,
            ),
            fc.record(
              {
                commit: fc.constantFrom('0123abc', 'fedcba9'),
                reason: fc.constant('hold'),
                expiresAt: mostly(fc.constantFrom('2026-03-01T00:00:00Z', '2024-02-29T12:00:00+02:00'), fc.constant('2025-02-29T00:00:00Z')),
              },
              { requiredKeys: ['commit', 'reason'] },
            ),
          ).map(([target, rest]) => ({ ...target, ...rest })),
          { maxLength: 3 },
        ).chain((pins) => mostly(fc.constant(pins), fc.constant([...pins, ...pins]), 20)),
      },
      { requiredKeys: ['hosts', 'channels', 'rolloutPolicies'] },
    ),
    'unknownTop',
    300,
  );
}

const descriptionArb = fc
  .tuple(fc.subarray(HOSTS), fc.subarray(CHANNELS, { minLength: 1 }), fc.subarray(POLICIES, { minLength: 1 }))
  .chain(([h, c, p]) => descriptionOver(h, c, p));

/** One description, or (sometimes) two files to merge. */
const inputArb = fc.oneof({ weight: 6, arbitrary: descriptionArb.map((d) => sortKeys(d)) }, { weight: 1, arbitrary: fc.array(descriptionArb, { minLength: 2, maxLength: 2 }).map((ds) => ds.map(sortKeys)) });

function assertSame(input: unknown, ts: Outcome, nix: Outcome): void {
  if (ts.ok !== nix.ok || (ts.ok && nix.ok && (ts.canonical !== nix.canonical || JSON.stringify(ts.warnings) !== JSON.stringify(nix.warnings))) || (!ts.ok && !nix.ok && (ts.code !== nix.code || ts.message !== nix.message))) {
    assert.unreachable(`resolve.ts and lib/resolve.nix disagree on\n${JSON.stringify(input)}\nTS:  ${JSON.stringify(ts)}\nNix: ${JSON.stringify(nix)}`);
  }
}

test('random descriptions: Nix and TypeScript give the same bytes, warnings, or error', () => {
  const seed = Number(process.env['FC_SEED'] ?? Date.now() % 2 ** 31);
  const inputs = fc.sample(inputArb, { numRuns: 600, seed });
  const nix = viaNix(inputs);
  let oks = 0;
  const codes = new Map<string, number>();
  inputs.forEach((input, i) => {
    const ts = viaTs(input);
    if (ts.ok) oks++;
    else codes.set(ts.code, (codes.get(ts.code) ?? 0) + 1);
    try {
      assertSame(input, ts, nix[i]!);
    } catch (e) {
      console.error(`seed ${seed} (rerun with FC_SEED=${seed})`);
      throw e;
    }
  });
  // The generator must reach both outcomes and many checks, or the property says little. Over 200
  // seeds the generator resolved 28..56 of 600 (mean about 43) and reached 13+ error codes; the
  // floors sit well below those tails so the check guards the generator, not the seed.
  const seen = JSON.stringify(Object.fromEntries(codes));
  assert.ok(oks >= 15, `only ${oks} of ${inputs.length} descriptions resolved (errors: ${seen})`);
  assert.ok(codes.size >= 10, `only these error codes were reached: ${seen}`);
});

test('a larger fleet (600 hosts, 4 channels, 5 waves): byte-identical', () => {
  const desc = sampleDescription({ hosts: 600, channels: ['c1', 'c2', 'c3', 'c4'], waves: 5, soakMinutes: 5, withPubkeys: true, closures: true });
  const [nix] = viaNix([desc]);
  assertSame(desc, viaTs(desc), nix!);
  assert.ok(nix!.ok);
});

test.run();
