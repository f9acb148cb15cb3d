/**
 * In-process CPU of a steady check-in (issue 19, docs/performance.md): strict parse + TypeBox
 * validation + `ControlPlane.checkin` + the JSON answer, no HTTP or TLS, groups of BATCH check-ins
 * per event-loop turn (group commit), after every host's first contact. Prints [wall µs, CPU µs]
 * per check-in for 5 runs. `HOSTS=10000 BATCH=8 ITERS=200000 node --import tsx bench/lib/checkin-inprocess.ts`
 */
import { makeEnv, startCp } from '../../fixtures/cp-testing.ts';
import { sampleFleet, hostName } from '../../fixtures/artifacts.ts';
import { parseJsonStrict } from '../../protocol/jcs.ts';
import { parseCheckinRequest } from '../../protocol/api-parse.ts';
import type { PeerIdentity } from '../../control-plane/identity.ts';

const N = Number(process.env.HOSTS ?? 10000);
const BATCH = Number(process.env.BATCH ?? 8);
const ITERS = Number(process.env.ITERS ?? 200000);
const env = await makeEnv('micro-');
const fleet = sampleFleet({ hosts: N, channels: ['stable', 'beta', 'edge', 'lts'], waves: 5, closures: true });
env.publish(fleet);
const rc = await startCp(env, { maxArtifactBytes: 256 * 2 ** 20 }, { now: () => Date.now() });
const observedAt = new Date().toISOString();
const names = Array.from({ length: N }, (_, i) => hostName(i));
const bodies = names.map((name) => new TextEncoder().encode(JSON.stringify({ hostname: name, currentClosure: fleet.hosts[name]!.closureHash, bootId: `boot-${name}`, agentVersion: 'bench', probes: [{ name: 'http', ok: true, observedAt }], failedUnits: [], lastOutcome: null })));
const peers: PeerIdentity[] = names.map((cn) => ({ cn, role: 'host', serial: 'AB', notBeforeMs: Date.now() - 1000, notAfterMs: Date.now() + 1e9, issuerFingerprint256: null, provenAtMs: null, issuerCommonName: 'x' }));
async function one(i: number): Promise<string> {
  const b = bodies[i]!;
  const p = parseJsonStrict(b, { maxBytes: b.length });
  if (!p.ok) throw new Error('parse');
  const r = parseCheckinRequest(p.value);
  if (!r.ok) throw new Error('validate');
  return JSON.stringify(await rc.cp.api.checkin(peers[i]!, r.value));
}
for (let i = 0; i < N; i += 1000) await Promise.all(Array.from({ length: Math.min(1000, N - i) }, (_, k) => one(i + k)));
console.error('first contact done');
let k = 0;
const run = async (iters: number) => {
  const t0 = performance.now(); const c0 = process.cpuUsage();
  for (let i = 0; i < iters; i += BATCH) {
    await Promise.all(Array.from({ length: BATCH }, () => one((k = (k + 7919) % N))));
  }
  const c = process.cpuUsage(c0);
  return { wallUs: ((performance.now() - t0) * 1000) / iters, cpuUs: (c.user + c.system) / iters };
};
await run(20000);
const rs = [];
for (let r = 0; r < 5; r++) rs.push(await run(ITERS / 5));
console.log(JSON.stringify(rs.map((x) => [Math.round(x.wallUs * 10) / 10, Math.round(x.cpuUs * 10) / 10])));
await rc.stop();
env.cleanup();
