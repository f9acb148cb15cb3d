/**
 * The dispatch phase of one tick: after every channel's rollout-level phases, each Executing or
 * Converged rollout (gating channels first) walks its Queued hosts in name order; the first gate
 * that blocks (gates.ts, SPEC §4 order) is reported, a host every gate passes is dispatched and
 * takes its budget slots at once, so the next host sees them.
 *
 * Pure module: no I/O, no clock, no randomness.
 */
import { firstBlock } from './gates.ts';
import { emitSkip, setState, type Plan, type Tick } from './tick.ts';
import type { Action } from './types.ts';

/**
 * Dispatches every Queued host of the rollout that passes every gate. Reports blocks: a
 * `skip_host` per host for a block with a skip code (debounced), one `wave_blocked` `budget` per
 * full budget with the number of hosts it holds, and the first host edge that points to a later
 * wave as `wave_blocked` `host-edge-deadlock`. A paused channel reports but dispatches nothing.
 */
export function dispatchEligible(t: Tick, plan: Plan, out: Action[]): void {
  const { ch, id } = plan;
  const blockedBy = new Map<number, number>(); // budget index → hosts blocked
  let deadlock: string | null = null;
  const n = ch.members.length;
  // Most Queued hosts are in a later wave than the open one. When no gate before wave order can
  // hold such a host (no quarantine, a started rollout, no operator release) and it has no pin,
  // its first block is wave order, which is not reported: skip the gate chain (at 100,000 hosts,
  // ≈ 90,000 calls per tick).
  const open = Math.min(plan.currentWave, plan.minIncompleteWave);
  const laterWaveBlocked = plan.quarantine.size === 0 && plan.state !== 'Pending' && plan.controls?.released === undefined;
  const waveAt = ch.waveAt;
  const pinUntilAt = ch.pinUntilAt;
  for (let i = 0; i < n; i++) {
    if (plan.states[i] !== 'Queued') continue;
    if (laterWaveBlocked && waveAt[i]! > open && pinUntilAt[i] === undefined) continue;
    const block = firstBlock(t, plan, i);
    if (block !== null) {
      switch (block.gate) {
        case 'pin':
        case 'quarantine':
        case 'online':
        case 'compliance':
          emitSkip(out, plan, i, block.code, block.reason);
          break;
        case 'host-edge':
          emitSkip(out, plan, i, block.code, block.reason);
          deadlock ??= block.deadlock;
          break;
        case 'budget':
          blockedBy.set(block.budget, (blockedBy.get(block.budget) ?? 0) + 1);
          break;
        case 'channel-edge': // the rollout would still be Pending (rollout_deferred)
        case 'wave-order': // not its turn
          break;
      }
      continue;
    }
    if (!plan.canDispatch) continue;
    const w = ch.waveAt[i]!;
    setState(t, plan, i, 'Dispatched');
    out.push({ kind: 'dispatch_host', rolloutId: id, channel: ch.name, host: ch.members[i]!, closure: ch.closureAt[i]!, wave: w, reason: `wave ${w} of ${ch.waveCount}: every gate passed` });
  }
  for (const [b, count] of [...blockedBy].sort((a, c) => a[0] - c[0])) {
    const bi = t.idx.budgets[b]!;
    out.push({
      kind: 'wave_blocked',
      rolloutId: id,
      wave: plan.currentWave,
      code: 'budget',
      hosts: count,
      reason: `disruption ${bi.label} full: ${t.budgetCount[b]}/${bi.limit} in flight (of ${bi.matching} matching hosts); ${count} hosts wait`,
    });
  }
  if (deadlock !== null) {
    out.push({ kind: 'wave_blocked', rolloutId: id, wave: plan.currentWave, code: 'host-edge-deadlock', hosts: 1, reason: `host edge contradicts wave order: ${deadlock}` });
  }
}
