/**
 * Quiet check-ins (issue 19, quiet-checkins.ts) change nothing that a full decision would not:
 * two control planes on the same signed fleet and the same clock, one with quiet check-ins and one
 * deciding every check-in in full (`quietCheckins: false`), are driven through the real mTLS API by
 * the same random agents — check-ins that repeat themselves, reboots, failing probes, clock jumps
 * past offline, reconcile passes, new releases, activations and failures. Every answer must be the
 * same, and so must what each store holds at the end: host rows, rollouts, dispatches, the audit
 * chain. The quiet path must also have been taken.
 */
import fc from 'fast-check';
import { join } from 'node:path';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { fakeClosure, sampleFleet } from '../fixtures/artifacts.ts';
import { Client, confirmedRecord, hostKeyOf, makeEnv, report, startCp, testBackend, type Env, type RunningCp } from '../fixtures/cp-testing.ts';
import type { CheckinResponse, LastOutcome, Target } from '../protocol/api.ts';
import { outcomeStatement } from '../protocol/outcome.ts';
import type { FleetResolved } from '../protocol/schema.ts';
import type { Store } from './store/types.ts';

const t = suite('quiet check-ins');
/** On PostgreSQL (a store shared by replicas) every check-in is decided in full: none is quiet. */
const quietOn = testBackend === 'sqlite';
const expectQuiet = (n: number): number => (quietOn ? n : 0);
const HOSTS = 3;

type Op =
  | { kind: 'checkin'; i: number }
  | { kind: 'advance'; ms: number }
  | { kind: 'pass' }
  | { kind: 'health'; i: number }
  | { kind: 'reboot'; i: number }
  | { kind: 'release' }
  | { kind: 'activate'; i: number; fail: boolean; reportLost: boolean };

const opArb: fc.Arbitrary<Op> = fc.oneof(
  { arbitrary: fc.record({ kind: fc.constant('checkin' as const), i: fc.nat(HOSTS - 1) }), weight: 8 },
  { arbitrary: fc.record({ kind: fc.constant('advance' as const), ms: fc.constantFrom(1_000, 20_000, 61_000, 200_000) }), weight: 3 },
  { arbitrary: fc.constant({ kind: 'pass' as const }), weight: 3 },
  { arbitrary: fc.record({ kind: fc.constant('health' as const), i: fc.nat(HOSTS - 1) }), weight: 1 },
  { arbitrary: fc.record({ kind: fc.constant('reboot' as const), i: fc.nat(HOSTS - 1) }), weight: 1 },
  { arbitrary: fc.constant({ kind: 'release' as const }), weight: 1 },
  { arbitrary: fc.record({ kind: fc.constant('activate' as const), i: fc.nat(HOSTS - 1), fail: fc.boolean(), reportLost: fc.boolean() }), weight: 4 },
);

type AgentState = { name: string; current: string; boot: number; healthy: boolean; target: Target | null; lastOutcome: { value: LastOutcome; signature: string } | null };

/** What a store holds that a check-in may change, for comparison (ids and times included). */
async function contents(store: Store): Promise<unknown> {
  const rollouts = await store.allRollouts();
  return {
    hosts: await store.allHosts(),
    rollouts,
    rolloutHosts: await Promise.all(rollouts.map((r) => store.rolloutHosts(r.id))),
    dispatches: await store.pendingDispatches(),
    audit: (await store.auditAll()).map((e) => ({ seq: e.seq, kind: e.kind, subject: e.subject, data: e.data, hash: e.hash })),
  };
}

t('a CP with quiet check-ins answers and stores exactly what one deciding every check-in in full does', async () => {
  let quietTaken = 0;
  await fc.assert(
    fc.asyncProperty(fc.array(opArb, { minLength: 10, maxLength: 40 }), async (ops) => {
      const env: Env = await makeEnv();
      let fleet: FleetResolved = sampleFleet({ hosts: HOSTS, waves: 2, soakMinutes: 1, closures: true, withPubkeys: true });
      env.publish(fleet);
      // Passes only where the sequence says (a debounced pass would land between other steps on
      // each CP depending on the machine's speed).
      const over = { reconcileDebounceMs: 86_400_000 };
      const cps: RunningCp[] = [await startCp(env, { ...over, dbPath: join(env.dir, 'quiet.db') }), await startCp(env, { ...over, dbPath: join(env.dir, 'full.db'), quietCheckins: false })];
      const names = Object.keys(fleet.hosts).sort();
      const clients = await Promise.all(cps.map(async (cp) => Promise.all(names.map(async (n) => new Client(cp.url, env.ca.certPem, await env.hostCert(n))))));
      const agents: AgentState[] = names.map((name) => ({ name, current: fakeClosure(name, 0), boot: 1, healthy: true, target: null, lastOutcome: null }));
      let generation = 1;
      /** The same call on both CPs: the same status and body. */
      const both = async (label: string, call: (c: Client) => Promise<{ status: number; body: unknown }>, i: number): Promise<{ status: number; body: unknown }> => {
        const [ra, rb] = [await call(clients[0]![i]!), await call(clients[1]![i]!)];
        const [a, b] = [{ status: ra.status, body: ra.body }, { status: rb.status, body: rb.body }];
        assert.equal(a, b, `${label}: the same answer from both`);
        return a;
      };
      try {
        for (const op of ops) {
          switch (op.kind) {
            case 'checkin': {
              const a = agents[op.i]!;
              const body = {
                hostname: a.name,
                currentClosure: a.current,
                bootId: `boot-${a.boot}`,
                probes: [{ name: 'http', ok: a.healthy, observedAt: new Date(env.clock.ms).toISOString(), message: a.healthy ? 'ok' : 'down' }],
                failedUnits: a.healthy ? [] : ['app.service'],
                lastOutcome: a.lastOutcome?.value ?? null,
                ...(a.lastOutcome !== null ? { lastOutcomeSignature: a.lastOutcome.signature } : {}),
              };
              const r = await both(`checkin ${a.name}`, (c) => c.call('POST', '/v1/agent/checkin', body), op.i);
              assert.is(r.status, 200, JSON.stringify(r.body));
              a.target = (r.body as CheckinResponse).target;
              break;
            }
            case 'advance':
              env.clock.advance(op.ms);
              break;
            case 'pass':
              for (const cp of cps) await cp.cp.reconcileNow();
              break;
            case 'health':
              agents[op.i]!.healthy = !agents[op.i]!.healthy;
              break;
            case 'reboot':
              agents[op.i]!.boot++;
              break;
            case 'release': {
              env.clock.advance(1_000);
              generation++;
              const hosts = Object.fromEntries(Object.entries(fleet.hosts).map(([h, v]) => [h, { ...v, closureHash: fakeClosure(h, generation) }]));
              fleet = { ...fleet, hosts };
              env.publish(fleet);
              for (const cp of cps) await cp.cp.pollNow();
              break;
            }
            case 'activate': {
              const a = agents[op.i]!;
              const target = a.target;
              if (target === null) break;
              const key = hostKeyOf(names.indexOf(a.name), a.name);
              const send = (event: Parameters<typeof report>[1]) => {
                const rep = report(a.name, event, target.rolloutId, target.closureHash, env.clock.ms);
                return both(`${event} ${a.name}`, (c) => c.call('POST', '/v1/agent/report', { report: rep, signature: key.sign(rep) }), op.i);
              };
              await send('activation-started');
              if (op.fail) {
                // The agent keeps its signed last outcome and sends it with every check-in; the
                // report itself may be lost (the outcome in the check-in then moves the host).
                const value: LastOutcome = { rolloutId: target.rolloutId, closureHash: target.closureHash, outcome: 'activation-failed', at: new Date(env.clock.ms).toISOString() };
                a.lastOutcome = { value, signature: key.sign(outcomeStatement(a.name, value)) };
                if (!op.reportLost) await send('activation-failed');
              } else {
                await send('activation-switched');
                a.current = target.closureHash;
                const rec = confirmedRecord(a.name, target.rolloutId, target.closureHash, env.clock.ms);
                const confirm = { hostname: a.name, rolloutId: target.rolloutId, closureHash: target.closureHash, bootId: `boot-${a.boot}`, confirmed: { record: rec, signature: key.sign(rec) } };
                await both(`confirm ${a.name}`, (c) => c.call('POST', '/v1/agent/confirm', confirm), op.i);
              }
              a.target = null;
              break;
            }
          }
        }
        assert.equal(await contents(cps[0]!.store), await contents(cps[1]!.store), 'the same stored state');
        const quiet = async (cp: RunningCp): Promise<number> => Number(/^nixfleet_checkins_quiet_total (\d+)/m.exec((await cp.cp.api.metricsText()).body)?.[1] ?? 0);
        assert.is(await quiet(cps[1]!), 0, 'quietCheckins: false decides every check-in in full');
        quietTaken += await quiet(cps[0]!);
      } finally {
        for (const cs of clients) for (const c of cs) await c.close();
        for (const cp of cps) await cp.stop();
        env.cleanup();
      }
    }),
    { numRuns: 16 },
  );
  if (quietOn) assert.ok(quietTaken > 0, 'quiet check-ins happened');
  else assert.is(quietTaken, 0, 'a shared store decides every check-in in full');
});

t('a quiet host of the next wave is handed its target at the first check-in after the pass that dispatched it; a changed probe verdict or failed unit is decided in full', async () => {
  const env = await makeEnv();
  const fleet = sampleFleet({ hosts: 2, waves: 2, soakMinutes: 0, closures: true, withPubkeys: true });
  env.publish(fleet);
  const cp = await startCp(env, { reconcileDebounceMs: 86_400_000 });
  const names = Object.keys(fleet.hosts).sort();
  const canary = names.find((n) => fleet.waves['stable']![0]!.hosts.includes(n))!;
  const next = names.find((n) => n !== canary)!;
  const clients = new Map(await Promise.all(names.map(async (n) => [n, new Client(cp.url, env.ca.certPem, await env.hostCert(n))] as const)));
  const body = (h: string, current: string) => ({ hostname: h, currentClosure: current, bootId: 'b', probes: [{ name: 'http', ok: true, observedAt: new Date(env.clock.ms).toISOString() }], failedUnits: [], lastOutcome: null });
  const checkin = async (h: string, current = fakeClosure(h, 0)): Promise<CheckinResponse> => {
    const r = await clients.get(h)!.call('POST', '/v1/agent/checkin', body(h, current));
    assert.is(r.status, 200, JSON.stringify(r.body));
    return r.body as CheckinResponse;
  };
  const quiet = async (): Promise<number> => Number(/^nixfleet_checkins_quiet_total (\d+)/m.exec((await cp.cp.api.metricsText()).body)?.[1] ?? 0);
  try {
    for (let k = 0; k < 3; k++) assert.is((await checkin(next)).target, null, 'wave 1 waits');
    assert.is(await quiet(), expectQuiet(1), 'the third check-in was quiet');
    const target = (await checkin(canary)).target!;
    assert.ok(target !== null, 'the canary is dispatched');
    const key = hostKeyOf(names.indexOf(canary), canary);
    for (const event of ['activation-started', 'activation-switched'] as const) {
      const rep = report(canary, event, target.rolloutId, target.closureHash, env.clock.ms);
      assert.is((await clients.get(canary)!.call('POST', '/v1/agent/report', { report: rep, signature: key.sign(rep) })).status, 202);
    }
    const rec = confirmedRecord(canary, target.rolloutId, target.closureHash, env.clock.ms);
    const confirm = { hostname: canary, rolloutId: target.rolloutId, closureHash: target.closureHash, bootId: 'b', confirmed: { record: rec, signature: key.sign(rec) } };
    assert.is((await clients.get(canary)!.call('POST', '/v1/agent/confirm', confirm)).status, 204);
    env.clock.advance(1_000);
    await checkin(canary, target.closureHash); // probes passing on the new closure: the wave is healthy
    await cp.cp.reconcileNow();
    const handed = (await checkin(next)).target;
    assert.is(handed?.closureHash, fleet.hosts[next]!.closureHash, 'wave 1 is handed its target');
    assert.is(await quiet(), expectQuiet(1), 'that check-in was decided in full');
    // The canary at rest: quiet again; then its probes fail: decided in full, and stored.
    await checkin(canary, target.closureHash);
    await checkin(canary, target.closureHash);
    assert.is(await quiet(), expectQuiet(2), 'the canary at rest is quiet');
    const failing = { ...body(canary, target.closureHash), probes: [{ name: 'http', ok: false, observedAt: new Date(env.clock.ms).toISOString() }] };
    assert.is((await clients.get(canary)!.call('POST', '/v1/agent/checkin', failing)).status, 200);
    assert.is(await quiet(), expectQuiet(2), 'a changed probe verdict is decided in full');
    assert.is((await cp.store.getHost(canary))?.probesPassing, false, 'and stored');
    const units = { ...body(canary, target.closureHash), failedUnits: ['app.service'] };
    assert.is((await clients.get(canary)!.call('POST', '/v1/agent/checkin', units)).status, 200);
    assert.equal((await cp.store.getHost(canary))?.failedUnits, ['app.service'], 'failed units are decided in full and stored');
  } finally {
    for (const c of clients.values()) await c.close();
    await cp.stop();
    env.cleanup();
  }
});

t.run();
