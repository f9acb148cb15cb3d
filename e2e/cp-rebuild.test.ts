/**
 * Scenario 8 — the CP is rebuilt from empty in the middle of a rollout: stop it, delete its SQLite
 * database (with WAL/SHM), start it again. It re-fetches the signed release, the agents' next
 * check-ins (with their own signed record of what they last confirmed) restore the state, the
 * rollout completes, and no host activates anything a second time; the new audit chain links to
 * the head the agents witnessed before the wipe (issue 15).
 */
import { existsSync, rmSync } from 'node:fs';
import * as assert from 'uvu/assert';
import type { FleetDescription } from '../protocol/schema.ts';
import { Fleet } from './harness.ts';
import { scenarioSuite } from './scenario.ts';

const { s, register } = scenarioSuite('cp-rebuild', ['release-cli', 'push', 'control-plane', 'agent']);
let fleet: Fleet | null = null;
const HOSTS = ['r-1', 'r-2', 'r-3', 'r-4'];

s.after(async () => {
  await fleet?.stop();
});

const policy = (soak: number): Omit<FleetDescription, 'hosts'> => ({
  channels: { prod: { rolloutPolicy: 'staged', freshnessWindow: 120, signingIntervalMinutes: 60 } },
  rolloutPolicies: {
    staged: { strategy: 'staged', waves: [{ selector: { hosts: ['r-1'] }, soakMinutes: soak }, { selector: { all: true }, soakMinutes: 0 }], onHealthFailure: 'halt' },
  },
});

register('8. CP rebuilt from empty mid-rollout → the rollout completes, nobody re-activates', async () => {
  fleet = await Fleet.create({
    name: 'cp-rebuild',
    hosts: HOSTS.map((name) => ({ name, channel: 'prod' })),
    description: policy(0),
    closures: { v1: 'ok', v2: 'ok' },
  });
  const f = fleet;
  await f.release('v1');
  await f.startCp();
  await f.startAgents();
  await f.waitConverged('v1');

  // v2 with a 1-minute soak on the first wave: r-1 activates and soaks while the others wait.
  await f.release('v2', { description: { ...policy(1), hosts: f.description().hosts } });
  const before = await f.waitFor('r-1 on v2 and soaking (Healthy) in the v2 rollout', async (observe) => {
    const r = await f.rolloutFor('prod', 'v2');
    observe(r?.hosts.map((h) => [h.hostname, h.state]));
    return r?.hosts.find((h) => h.hostname === 'r-1')?.state === 'Healthy' ? r : undefined;
  });
  assert.is(f.profileLabel('r-1'), 'v2');
  for (const h of ['r-2', 'r-3', 'r-4']) assert.is(f.profileLabel(h), 'v1', `${h} still waits for wave 1`);

  // Wipe: the database and its WAL/SHM are gone.
  await f.stopCp();
  for (const suffix of ['', '-wal', '-shm']) rmSync(f.cpDbPath + suffix, { force: true });
  assert.not.ok(existsSync(f.cpDbPath));
  await f.startCp();
  const fresh = await f.audit();
  assert.ok(fresh.length > 0 && fresh[0]!.seq === 1, 'a new audit chain: the CP really started from empty');

  await f.waitConverged('v2', HOSTS, { timeoutMs: 180_000 });
  const after = await f.waitFor('the v2 rollout to be Converged after the rebuild', async (observe) => {
    const r = await f.rolloutFor('prod', 'v2');
    observe(r);
    return r?.state === 'Converged' ? r : undefined;
  });
  assert.is(after.id, before.id, 'the rebuilt CP derives the same rollout id from the signed release');
  // Issue 15 audit anchoring: the agents signed the old chain's head into their check-ins after the
  // wipe; the rebuilt CP's new chain links to that witnessed head (audit.relinked) instead of silently starting over.
  const relinked = (await f.audit()).filter((e) => e.kind === 'audit.relinked');
  assert.ok(relinked.length >= 1, 'the new chain names the last witnessed head of the old one');
  const link = relinked[0]!.data as { by: string; witness: { seq: number; hash: string } };
  assert.ok(HOSTS.some((h) => link.by === `host:${h}`) && link.witness.seq > 0, JSON.stringify(link));
  for (const h of HOSTS) {
    assert.equal(f.switchLog(h), [`${h}-v1 switch`, `${h}-v2 switch`], `${h}: v2 activated exactly once`);
    assert.is((await f.generations(h)).length, 2, `${h}: exactly two generations`);
  }
  // r-1 was never handed its target again by the rebuilt CP (no new activation started).
  const audit = await f.audit();
  const r1Starts = audit.filter((e) => e.actor === 'host:r-1' && JSON.stringify(e.data).includes('activation-started'));
  assert.is(r1Starts.length, 0, 'r-1 did not start an activation after the rebuild');
});

register('8b. after the rebuild, the soak restored from the signed record still holds the next wave back', async () => {
  // SPEC §6: the agent's signed last-confirmed record is "used to restore soak state after a CP
  // wipe". r-1 confirmed v2 at `confirmedAt`; its wave soaks 1 minute, so no wave-1 host may be
  // dispatched before confirmedAt + 60 s, wipe or not.
  const f = fleet!;
  const audit = await f.audit();
  const rec = audit.find((e) => e.kind === 'host.confirmed-record' && e.actor === 'host:r-1' && JSON.stringify(e.data).includes(f.closure('r-1', 'v2')));
  assert.ok(rec !== undefined, 'the rebuilt CP received r-1\'s signed confirmed record');
  const confirmedAt = Date.parse((rec!.data as { record: { confirmedAt: string } }).record.confirmedAt);
  const dispatches = audit.filter((e) => {
    const d = e.data as { host?: string; to?: string };
    return e.kind === 'host.state' && d.to === 'Dispatched' && ['r-2', 'r-3', 'r-4'].includes(d.host ?? '');
  });
  assert.is(dispatches.length, 3, 'every wave-1 host dispatched once');
  for (const d of dispatches) {
    const host = (d.data as { host: string }).host;
    assert.ok(Date.parse(d.at) >= confirmedAt + 60_000, `${host} dispatched at ${d.at}, before r-1's soak ended (confirmed ${new Date(confirmedAt).toISOString()} + 1 min)`);
  }
});

s.run();
