/**
 * Issue 14 — a kernel update with real processes and real Nix: the toy closure's "kernel" differs
 * from the booted one, so the agent activates it for the next boot (`switch-to-configuration
 * boot`) and reports `activation-deferred`; the CP holds the host PendingReboot past the confirm
 * deadline (no Reverted, no halt, the next wave waits). A simulated reboot (the booted-system and
 * current-system links now point at the new closure, the agent restarts) makes the agent confirm
 * over a new connection, and the rollout converges.
 *
 * Then `rebootPolicy: automatic`: the next kernel update makes the agent run its reboot command
 * (a recorder here), and the simulated machine comes back up on the OLD system (new boot id, the
 * booted-system link unchanged): the agent puts the boot entry back on what runs, reports
 * `rolled-back` (signed) and the CP marks the host Reverted; the rollout halts.
 */
import { existsSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import * as assert from 'uvu/assert';
import { Fleet, holdFor } from './harness.ts';
import { scenarioSuite } from './scenario.ts';

const { s, register } = scenarioSuite('reboot', ['release-cli', 'push', 'control-plane', 'agent']);
let fleet: Fleet | null = null;
const CANARY = 'kern-canary';
const REST = 'kern-1';

s.after(async () => {
  await fleet?.stop();
});

function relink(link: string, target: string): void {
  rmSync(link, { force: true });
  symlinkSync(target, link);
}

register('kernel update: deferred to the boot → PendingReboot → simulated reboot → confirmed → converged', async () => {
  fleet = await Fleet.create({
    name: 'reboot',
    hosts: [
      { name: CANARY, channel: 'prod', tags: ['canary'] },
      { name: REST, channel: 'prod' },
    ],
    description: {
      channels: { prod: { rolloutPolicy: 'canary', freshnessWindow: 120, signingIntervalMinutes: 60, rebootPolicy: 'manual' } },
      rolloutPolicies: { canary: { strategy: 'canary', waves: [{ selector: { tags: ['canary'] }, soakMinutes: 0 }, { selector: { all: true }, soakMinutes: 0 }], onHealthFailure: 'halt' } },
    },
    closures: { v1: 'ok', kern: { variant: 'ok', kernel: 'B' }, kern2: { variant: 'ok', kernel: 'C' } },
    cp: { confirmDeadlineSecs: 25 },
  });
  const f = fleet;
  await f.release('v1');
  await f.startCp();
  await f.startAgents();
  await f.waitConverged('v1');
  // Each host booted into v1.
  for (const n of [CANARY, REST]) relink(join(f.host(n).dir, 'booted-system'), f.host(n).closures['v1']!);

  await f.release('kern', { message: 'fleet: kernel update' });
  await f.waitFor(`${CANARY} to activate the kernel update for the next boot`, (observe) => {
    observe(f.switchLog(CANARY));
    return f.switchLog(CANARY).includes(`${CANARY}-kern boot`);
  });
  await f.waitFor(`${CANARY} PendingReboot on the CP`, async (observe) => {
    const v = (await f.hostsView()).find((h) => h.hostname === CANARY);
    observe(v?.rollout);
    return v?.rollout?.state === 'PendingReboot';
  });
  // Past the CP's confirm deadline (25 s) the host stays PendingReboot and the rollout runs on:
  // no deadline expiry, no halt, no rollback, and the next wave waits for the reboot.
  await holdFor(`${CANARY} PendingReboot past the confirm deadline`, 30_000, async () => {
    const v = (await f.hostsView()).find((x) => x.hostname === CANARY);
    if (v?.rollout?.state !== 'PendingReboot') return `state ${v?.rollout?.state}`;
    if (f.switchLog(REST).some((l) => l.startsWith(`${REST}-kern`))) return `${REST} activated before the canary rebooted`;
    return null;
  });
  const held = (await f.hostsView()).find((x) => x.hostname === CANARY)!;
  assert.ok(held.pendingReboot, 'the agent says so in its check-ins');
  const rollout = (await f.rollouts('prod')).find((r) => r.state !== 'Superseded' && r.state !== 'Converged');
  assert.is(rollout?.state, 'Executing', 'not halted');
  assert.equal(f.switchLog(CANARY), [`${CANARY}-v1 switch`, `${CANARY}-kern boot`], 'no live switch, no rollback');

  // The reboot: the machine comes up on the new closure; the agent starts again.
  await f.stopAgent(CANARY);
  const h = f.host(CANARY);
  relink(join(h.dir, 'booted-system'), h.closures['kern']!);
  relink(join(h.dir, 'current-system'), h.closures['kern']!);
  await f.startAgent(CANARY);
  await f.waitFor(`${CANARY} confirmed after the boot`, async (observe) => {
    const v = (await f.hostsView()).find((x) => x.hostname === CANARY);
    observe(v?.rollout);
    return v?.rollout?.state === 'Healthy' || v?.rollout?.state === 'Soaked' || v?.rollout?.state === 'Converged';
  });
  // The second wave has the same new kernel: it defers too; reboot it the same way.
  await f.waitFor(`${REST} to activate the kernel update for the next boot`, () => f.switchLog(REST).includes(`${REST}-kern boot`));
  await f.stopAgent(REST);
  const r = f.host(REST);
  relink(join(r.dir, 'booted-system'), r.closures['kern']!);
  relink(join(r.dir, 'current-system'), r.closures['kern']!);
  await f.startAgent(REST);
  await f.waitConverged('kern', [CANARY, REST], { timeoutMs: 120_000 });
  await f.waitFor('the rollout Converged', async (observe) => {
    const rs = await f.rollouts();
    observe(rs.map((x) => [x.id, x.state]));
    return rs.some((x) => x.channel === 'prod' && x.id === rollout!.id && x.state === 'Converged');
  });

  // rebootPolicy automatic: the agent reboots by itself (the recorded reboot command) …
  assert.not.ok(existsSync(join(h.dir, 'reboots')), 'manual: the agent never rebooted');
  const description = f.description();
  description.channels['prod'] = { ...description.channels['prod']!, rebootPolicy: 'automatic' };
  await f.release('kern2', { description, message: 'fleet: kernel update, automatic reboot' });
  // The recorder's file exists from its open, before its line is written: wait for the line.
  await f.waitFor(`${CANARY} to run its reboot command`, (observe) => {
    const rec = existsSync(join(h.dir, 'reboots')) ? readFileSync(join(h.dir, 'reboots'), 'utf8') : null;
    observe({ reboots: rec, switchLog: f.switchLog(CANARY) });
    return rec !== null && rec.endsWith('\n');
  });
  assert.equal(readFileSync(join(h.dir, 'reboots'), 'utf8'), 'reboot\n');
  assert.ok(f.switchLog(CANARY).includes(`${CANARY}-kern2 boot`), 'activated for the next boot first');
  // … and the machine comes back up on the old system (the boot loader fell back to kern).
  await f.stopAgent(CANARY);
  writeFileSync(join(h.dir, 'boot_id'), 'boot-2\n');
  await f.startAgent(CANARY);
  await f.waitFor(`${CANARY} Reverted after booting back into the old system`, async (observe) => {
    const v = (await f.hostsView()).find((x) => x.hostname === CANARY);
    observe(v?.rollout);
    return v?.rollout?.state === 'Reverted';
  });
  assert.equal(f.switchLog(CANARY).slice(-1), [`${CANARY}-kern boot`], 'the boot entry is back on what runs');
  // onHealthFailure halt: the reconcile pass after the Reverted report halts the rollout.
  await f.waitFor('the kern2 rollout Halted', async (observe) => {
    const rs = await f.rollouts('prod');
    observe(rs.map((x) => [x.id, x.state]));
    return rs.some((x) => x.state === 'Halted');
  });
  assert.ok(!f.switchLog(REST).some((l) => l.startsWith(`${REST}-kern2`)), 'the next wave never got it');
});

s.run();
