/**
 * Scenario 5 — deadline expiry: a closure whose activation breaks the host's network for new
 * connections (toy variant `cutnet` + the net-cut proxy of fixtures/nix/netcut.ts in front of the
 * CP for that host) cannot confirm over a new TLS connection → magic rollback: the host is back on
 * the previous generation, the CP marks it Reverted and halts the rollout, the next wave is
 * untouched.
 */
import { rmSync } from 'node:fs';
import * as assert from 'uvu/assert';
import { networkCutMarker } from '../fixtures/nix.ts';
import { startNetCutProxy, type NetCutProxy } from '../fixtures/nix/netcut.ts';
import { Fleet, readStateJson } from './harness.ts';
import { scenarioSuite } from './scenario.ts';

const { s, register } = scenarioSuite('deadline', ['release-cli', 'push', 'control-plane', 'agent']);
let fleet: Fleet | null = null;
let proxy: NetCutProxy | null = null;
const CUT = 'cut-1';
const REST = 'rest-1';

s.after(async () => {
  await proxy?.close();
  await fleet?.stop();
});

register('5. deadline expiry: a closure that cuts the network → magic rollback to the previous generation', async () => {
  fleet = await Fleet.create({
    name: 'deadline',
    hosts: [
      { name: CUT, channel: 'prod', tags: ['canary'] },
      { name: REST, channel: 'prod' },
    ],
    description: {
      channels: { prod: { rolloutPolicy: 'canary', freshnessWindow: 120, signingIntervalMinutes: 60 } },
      rolloutPolicies: {
        canary: { strategy: 'canary', waves: [{ selector: { tags: ['canary'] }, soakMinutes: 0 }, { selector: { all: true }, soakMinutes: 0 }], onHealthFailure: 'rollback-and-halt' },
      },
    },
    closures: { v1: 'ok', cut: 'cutnet' },
    cp: { confirmDeadlineSecs: 25 },
    agent: { confirmDeadlineSecs: 15 },
  });
  const f = fleet;
  const h = f.host(CUT);
  const marker = networkCutMarker(h.dir);
  proxy = await startNetCutProxy({ targetPort: f.cpPort, targetHost: f.serverHost, markerFile: marker });
  h.cpUrl = `https://127.0.0.1:${proxy.port}`;

  await f.release('v1');
  await f.startCp();
  await f.startAgents();
  await f.waitConverged('v1');
  const refusedBefore = proxy.refused();

  await f.release('cut', { message: 'fleet: a configuration that breaks the network' });
  await f.waitFor(`${CUT} to activate the network-cutting closure`, (observe) => {
    observe(f.switchLog(CUT));
    return f.switchLog(CUT).includes(`${CUT}-cut switch`);
  });
  // Magic rollback: after the agent's confirm window, the previous closure's own switch runs.
  await f.waitFor(`${CUT} to roll back to v1 after its confirm deadline`, (observe) => {
    const log = f.switchLog(CUT);
    observe({ log, profile: f.profileLabel(CUT) });
    const i = log.indexOf(`${CUT}-cut switch`);
    return i >= 0 && log.slice(i + 1).includes(`${CUT}-v1 switch`) && f.profileLabel(CUT) === 'v1';
  }, { timeoutMs: 120_000 });
  assert.ok(proxy.refused() > refusedBefore, 'the agent tried to confirm over new connections, which the cut network refused');
  // v1's script logs its switch before it relinks current-system, and the agent persists the
  // quarantine once the script has returned: wait for the rollback to finish.
  await f.waitFor(`${CUT} to run v1 again with the cut closure quarantined on the host`, (observe) => {
    const q = readStateJson(h, 'quarantine.json') as { closureHash: string }[] | null;
    observe({ running: f.currentLabel(CUT), quarantine: q });
    return f.currentLabel(CUT) === 'v1' && q?.some((e) => e.closureHash === f.closure(CUT, 'cut')) === true;
  });
  // The old configuration is running again: the network works again.
  rmSync(marker, { force: true });

  const gens = await f.generations(CUT);
  assert.is(gens.find((g) => g.current)?.path, h.closures['v1'], 'current generation is v1');
  assert.ok(gens.some((g) => g.path === h.closures['cut']), 'the cut generation was created');

  const r = await f.waitFor('the CP to mark the host Reverted and halt the rollout', async (observe) => {
    const d = await f.rolloutFor('prod', 'cut');
    observe(d);
    const st = d?.hosts.find((x) => x.hostname === CUT)?.state;
    return d?.state === 'Halted' && (st === 'Reverted' || st === 'Failed') ? d : undefined;
  }, { timeoutMs: 120_000 });
  const trace = (await f.trace(r.id)).events;
  assert.not.ok(trace.some((e) => e.subject === 'host' && e.hostname === CUT && e.to === 'Healthy'), 'the CP never saw a confirm for the cut closure');
  assert.not.ok(trace.some((e) => e.subject === 'host' && e.hostname === REST && e.to === 'Dispatched'), `${REST} never dispatched`);
  assert.equal(f.switchLog(REST), [`${REST}-v1 switch`]);
  await f.waitFor('the CP to see the host back on v1', async () => (await f.hostView(CUT)).currentClosure === f.closure(CUT, 'v1'));
});

s.run();
