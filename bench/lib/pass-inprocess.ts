/**
 * In-process cost of the control plane's whole reconcile pass (read, reconcile, apply, plan the
 * writes, store, mirror) on a large fleet (issue 19): HOSTS hosts in the signed fleet, LIVE of them
 * make first contact in groups of GROUP (each group waits for the pass its first contacts join, as
 * over HTTP), then PASSES forced passes on the steady state, then PASSES passes each after CHANGED
 * of the live hosts checked in with a new boot id (their observation changed: what a pass sees of a
 * fleet polling every 60 s with a 1 s debounce is ≈ hosts / 60 changes). Prints JSON: first-contact
 * wall and CPU per host, and per-pass wall / CPU medians. `HOSTS=100000 LIVE=2000 node --import tsx bench/lib/pass-inprocess.ts`
 */
import { makeEnv, startCp } from '../../fixtures/cp-testing.ts';
import { sampleFleet, hostName } from '../../fixtures/artifacts.ts';
import { parseCheckinRequest } from '../../protocol/api-parse.ts';
import type { PeerIdentity } from '../../control-plane/identity.ts';

const N = Number(process.env['HOSTS'] ?? 100000);
const LIVE = Number(process.env['LIVE'] ?? 2000);
const GROUP = Number(process.env['GROUP'] ?? 32);
const PASSES = Number(process.env['PASSES'] ?? 10);
const CHANGED = Number(process.env['CHANGED'] ?? 0);
const env = await makeEnv('pass-');
const fleet = sampleFleet({ hosts: N, channels: ['stable', 'beta', 'edge', 'lts'], waves: 5, closures: true });
env.publish(fleet);
const rc = await startCp(env, { maxArtifactBytes: 256 * 2 ** 20, offlineAfterSecs: 86_400 }, { now: () => Date.now() });
const observedAt = new Date().toISOString();
const names = Array.from({ length: LIVE }, (_, i) => hostName(i));
const peers: PeerIdentity[] = names.map((cn) => ({ cn, role: 'host', serial: 'AB', notBeforeMs: Date.now() - 1000, notAfterMs: Date.now() + 1e9, issuerFingerprint256: null, provenAtMs: null, issuerCommonName: 'x' }));
const one = async (i: number, boot = 0): Promise<void> => {
  const name = names[i]!;
  const r = parseCheckinRequest({ hostname: name, currentClosure: fleet.hosts[name]!.closureHash, bootId: `boot-${boot}-${name}`, agentVersion: 'bench', probes: [{ name: 'http', ok: true, observedAt }], failedUnits: [], lastOutcome: null });
  if (!r.ok) throw new Error('validate');
  await rc.cp.api.checkin(peers[i]!, r.value);
};
const cpuMs = (c: NodeJS.CpuUsage): number => (c.user + c.system) / 1000;
const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
await rc.cp.reconcileNow();
let t0 = performance.now();
let c0 = process.cpuUsage();
for (let i = 0; i < LIVE; i += GROUP) await Promise.all(Array.from({ length: Math.min(GROUP, LIVE - i) }, (_, k) => one(i + k)));
const first = { wallMsPerHost: (performance.now() - t0) / LIVE, cpuMsPerHost: cpuMs(process.cpuUsage(c0)) / LIVE };
const wall: number[] = [];
const cpu: number[] = [];
for (let p = 0; p < PASSES; p++) {
  t0 = performance.now();
  c0 = process.cpuUsage();
  await rc.cp.reconcileNow();
  wall.push(performance.now() - t0);
  cpu.push(cpuMs(process.cpuUsage(c0)));
}
const cwall: number[] = [];
const ccpu: number[] = [];
for (let p = 0; CHANGED > 0 && p < PASSES; p++) {
  for (let i = 0; i < CHANGED; i += 256) await Promise.all(Array.from({ length: Math.min(256, CHANGED - i) }, (_, k) => one((p * 977 + i + k) % LIVE, p + 1)));
  t0 = performance.now();
  c0 = process.cpuUsage();
  await rc.cp.reconcileNow();
  cwall.push(performance.now() - t0);
  ccpu.push(cpuMs(process.cpuUsage(c0)));
}
const changedPass = CHANGED > 0 ? { changedHosts: CHANGED, wallMsMedian: median(cwall), cpuMsMedian: median(ccpu), wallMs: cwall.map(Math.round) } : null;
console.log(JSON.stringify({ hosts: N, live: LIVE, group: GROUP, firstContact: first, steadyPass: { wallMsMedian: median(wall), cpuMsMedian: median(cpu), wallMs: wall.map(Math.round) }, changedPass }));
await rc.stop();
env.cleanup();
