/**
 * The worked example of reconciler/README.md: four hosts, a canary wave and a second wave with a
 * 5-minute soak, a disruption budget of 2, played by the simulator. Returns the rollout's trace
 * as text lines (what `nixfleet rollout trace` shows). `reconciler/example.test.ts` keeps the
 * README honest.
 *
 * Pure module: no I/O.
 */
import { simulate } from './simulate.ts';
import { makeFleet } from './testkit.ts';

export function workedExample(scenario: 'ok' | 'canary-fails' = 'ok'): { rolloutId: string; state: string; trace: string[] } {
  const fleet = makeFleet({
    hosts: { canary: { channel: 'stable' }, web1: { channel: 'stable' }, web2: { channel: 'stable' }, web3: { channel: 'stable' } },
    channels: { stable: { waves: [['canary'], ['web1', 'web2', 'web3']], soakMinutes: [5, 0], onHealthFailure: 'rollback-and-halt' } },
    budgets: [{ selector: { channel: 'stable' }, maxInFlight: 2 }],
  });
  const start = Date.UTC(2026, 0, 1);
  const res = simulate(fleet, {
    startMs: start,
    ...(scenario === 'canary-fails' ? { behaviour: (h: string) => (h === 'canary' ? { activation: 'fail' as const } : {}) } : {}),
  });
  const rollout = Object.values(res.observed.rollouts)[0]!;
  const clock = (ms: number): string => {
    const s = Math.round((ms - start) / 1000);
    return `+${String(Math.floor(s / 60)).padStart(2, '0')}:${String(s % 60).padStart(2, '0')}`;
  };
  const trace = rollout.history.map(
    (x) => `${clock(x.atMs)}  ${(x.host ?? '(rollout)').padEnd(9)} ${String(x.from ?? '-').padEnd(13)} → ${x.to.padEnd(13)} ${x.reason}`,
  );
  return { rolloutId: rollout.id, state: rollout.state, trace };
}
