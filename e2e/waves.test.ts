/**
 * Scenario 2 — waves: the canary wave soaks before the next wave starts, and a disruption budget of
 * 1 (over the whole fleet) is never exceeded — checked by replaying the CP's audit log.
 * Scenario 3 — channel edges: `stable` does not start until `edge` has converged.
 *
 * One signed release, five hosts: edge {edge-canary, edge-1} (canary policy, no soak) gates
 * stable {stable-canary, stable-1, stable-2} (canary policy, 1 min soak on the canary wave).
 */
import * as assert from 'uvu/assert';
import type { RolloutSummary, TraceEvent } from '../protocol/api.ts';
import { Fleet } from './harness.ts';
import { firstSeq, maxInFlight, scenarioSuite } from './scenario.ts';

const { s, register } = scenarioSuite('waves', ['release-cli', 'push', 'control-plane', 'agent']);
let fleet: Fleet | null = null;
const EDGE = ['edge-canary', 'edge-1'];
const STABLE = ['stable-canary', 'stable-1', 'stable-2'];
const ALL = [...EDGE, ...STABLE];
let edgeRollout: RolloutSummary | null = null;
let stableRollout: RolloutSummary | null = null;

s.after(async () => {
  await fleet?.stop();
});

const ms = (iso: string) => Date.parse(iso);
const hostEvents = (events: TraceEvent[], host: string, to: string) => events.filter((e) => e.subject === 'host' && e.hostname === host && e.to === to);

register('one signed release rolls out through both channels and converges', async () => {
  fleet = await Fleet.create({
    name: 'waves',
    hosts: ALL.map((name) => ({ name, channel: name.startsWith('edge') ? 'edge' : 'stable', tags: name.endsWith('canary') ? ['canary'] : [] })),
    description: {
      channels: {
        edge: { rolloutPolicy: 'canary-fast', freshnessWindow: 120, signingIntervalMinutes: 60 },
        stable: { rolloutPolicy: 'canary-soak', freshnessWindow: 120, signingIntervalMinutes: 60 },
      },
      rolloutPolicies: {
        'canary-fast': { strategy: 'canary', waves: [{ selector: { tags: ['canary'] }, soakMinutes: 0 }, { selector: { all: true }, soakMinutes: 0 }], onHealthFailure: 'rollback-and-halt' },
        'canary-soak': { strategy: 'canary', waves: [{ selector: { tags: ['canary'] }, soakMinutes: 1 }, { selector: { all: true }, soakMinutes: 0 }], onHealthFailure: 'rollback-and-halt' },
      },
      channelEdges: [{ gates: 'edge', gated: 'stable', reason: 'edge first' }],
      disruptionBudgets: [{ selector: { all: true }, maxInFlight: 1 }],
    },
    closures: { v1: 'ok' },
  });
  const f = fleet;
  await f.release('v1');
  await f.startCp();
  await f.startAgents();
  await f.waitConverged('v1', ALL, { timeoutMs: 240_000 });
  const rs = await f.waitFor('both rollouts Converged', async (observe) => {
    const r = await f.rollouts();
    observe(r.map((x) => [x.id, x.state]));
    const e = r.find((x) => x.channel === 'edge');
    const st = r.find((x) => x.channel === 'stable');
    return e?.state === 'Converged' && st?.state === 'Converged' ? { e, st } : undefined;
  });
  edgeRollout = rs.e;
  stableRollout = rs.st;
  for (const h of ALL) assert.equal(f.switchLog(h), [`${h}-v1 switch`], `${h} activated once`);
});

register('2. waves: the canary wave soaks before the next wave starts; budget of 1 never exceeded (audit log)', async () => {
  const f = fleet!;
  assert.ok(stableRollout !== null, 'rollout ran');
  const trace = (await f.trace(stableRollout!.id)).events;
  const healthy = hostEvents(trace, 'stable-canary', 'Healthy')[0];
  const soaked = hostEvents(trace, 'stable-canary', 'Soaked')[0];
  assert.ok(healthy !== undefined && soaked !== undefined, 'the canary went Healthy then Soaked');
  assert.ok(ms(soaked!.at) - ms(healthy!.at) >= 60_000, `soaked only after soakMinutes = 1 (Healthy ${healthy!.at}, Soaked ${soaked!.at})`);
  for (const h of ['stable-1', 'stable-2']) {
    const d = hostEvents(trace, h, 'Dispatched')[0];
    assert.ok(d !== undefined, `${h} dispatched`);
    assert.ok(ms(d!.at) >= ms(soaked!.at), `${h} dispatched (${d!.at}) only after the canary soaked (${soaked!.at})`);
  }
  // The same order in the audit log (sequence numbers, no clock involved).
  const audit = await f.audit();
  const soakedSeq = firstSeq(audit, 'stable-canary', 'Soaked');
  assert.ok(soakedSeq !== null, 'audit log records the canary Soaked');
  for (const h of ['stable-1', 'stable-2']) {
    const d = firstSeq(audit, h, 'Dispatched');
    assert.ok(d !== null && d > soakedSeq!, `${h} Dispatched after the canary Soaked in the audit log`);
  }
  const inflight = maxInFlight(audit, ALL);
  assert.ok(inflight.changes >= ALL.length * 3, `the audit log holds the host state changes (${inflight.changes})`);
  assert.is(inflight.max, 1, `at most one host in flight at any point of the audit log (max ${inflight.max} at seq ${inflight.at})`);
});

register('3. channel edges: stable does not start until edge converged', async () => {
  const f = fleet!;
  assert.ok(edgeRollout !== null && stableRollout !== null);
  const edgeTrace = (await f.trace(edgeRollout!.id)).events;
  const stableTrace = (await f.trace(stableRollout!.id)).events;
  const edgeConverged = edgeTrace.find((e) => e.subject === 'rollout' && e.to === 'Converged');
  assert.ok(edgeConverged !== undefined, 'edge rollout converged');
  const firstStable = stableTrace.filter((e) => e.subject === 'host' && e.to === 'Dispatched').map((e) => ms(e.at)).sort((a, b) => a - b)[0];
  assert.ok(firstStable !== undefined);
  assert.ok(firstStable! >= ms(edgeConverged!.at), `first stable dispatch ${new Date(firstStable!).toISOString()} after edge converged ${edgeConverged!.at}`);
  // Audit order: every edge host Converged/Soaked before any stable host was Dispatched.
  const audit = await f.audit();
  const stableFirst = Math.min(...STABLE.map((h) => firstSeq(audit, h, 'Dispatched') ?? Infinity));
  for (const h of EDGE) {
    const done = Math.min(firstSeq(audit, h, 'Converged') ?? Infinity, firstSeq(audit, h, 'Soaked') ?? Infinity);
    assert.ok(done < stableFirst, `${h} done (seq ${done}) before the first stable dispatch (seq ${stableFirst})`);
  }
});

s.run();
