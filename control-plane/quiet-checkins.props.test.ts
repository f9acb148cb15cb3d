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
import { Client, confirmedRecord, hostKeyOf, makeEnv, report, startCp, type Env, type RunningCp } from '../fixtures/cp-testing.ts';
import type { CheckinResponse, Target } from '../protocol/api.ts';
import type { FleetResolved } from '../protocol/schema.ts';
import type { Store } from './store/types.ts';

const t = suite('quiet check-ins');
const HOSTS = 3;

type Op =
  | { kind: 'checkin'; i: number }
  | { kind: 'advance'; ms: number }
  | { kind: 'pass' }
  | { kind: 'health'; i: number }
  | { kind: 'reboot'; i: number }
  | { kind: 'release' }
  | { kind: 'activate'; i: number; fail: boolean };

const opArb: fc.Arbitrary<Op> = fc.oneof(
  { arbitrary: fc.record({ kind: fc.constant('checkin' as const), i: fc.nat(HOSTS - 1) }), weight: 8 },
  { arbitrary: fc.record({ kind: fc.constant('advance' as const), ms: fc.constantFrom(1_000, 20_000, 61_000, 200_000) }), weight: 3 },
  { arbitrary: fc.constant({ kind: 'pass' as const }), weight: 2 },
  { arbitrary: fc.record({ kind: fc.constant('health' as const), i: fc.nat(HOSTS - 1) }), weight: 1 },
  { arbitrary: fc.record({ kind: fc.constant('reboot' as const), i: fc.nat(HOSTS - 1) }), weight: 1 },
  { arbitrary: fc.constant({ kind: 'release' as const }), weight: 1 },
  { arbitrary: fc.record({ kind: fc.constant('activate' as const), i: fc.nat(HOSTS - 1), fail: fc.boolean() }), weight: 3 },
);

type AgentState = { name: string; current: string; boot: number; healthy: boolean; target: Target | null };

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
      const cps: RunningCp[] = [await startCp(env, { dbPath: join(env.dir, 'quiet.db') }), await startCp(env, { dbPath: join(env.dir, 'full.db'), quietCheckins: false })];
      const names = Object.keys(fleet.hosts).sort();
      const clients = await Promise.all(cps.map(async (cp) => Promise.all(names.map(async (n) => new Client(cp.url, env.ca.certPem, await env.hostCert(n))))));
      const agents: AgentState[] = names.map((name) => ({ name, current: fakeClosure(name, 0), boot: 1, healthy: true, target: null }));
      let generation = 1;
      /** The same call on both CPs: the same status and body. */
      const both = async (label: string, call: (c: Client) => Promise<{ status: number; body: unknown }>, i: number): Promise<{ status: number; body: unknown }> => {
        const [a, b] = [await call(clients[0]![i]!), await call(clients[1]![i]!)];
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
                lastOutcome: null,
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
              if (op.fail) await send('activation-failed');
              else {
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
    { numRuns: 12 },
  );
  assert.ok(quietTaken > 0, 'quiet check-ins happened');
});

t.run();
