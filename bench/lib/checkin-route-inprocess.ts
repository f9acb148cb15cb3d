/**
 * In-process CPU and allocation of a steady check-in through the control plane's own route
 * (`POST /v1/agent/checkin` below Hono, control-plane/hot-checkin.ts), without TLS or Node's HTTP
 * parser: each request is a stand-in `IncomingMessage` (an EventEmitter with the headers and a
 * socket whose peer certificate is read once, as a kept-alive connection's is) answered into a
 * stand-in `ServerResponse`. Everything from the route's gates to the JSON answer is the product's
 * code: identity cache, protocol header, readiness, revocation, strict parse, validation,
 * `requireSelf`, the quiet check-in or the full decision, the request counter.
 *
 * What the real benchmark (`cp-checkin`) cannot give on a shared 2-core machine: a figure for the
 * CP's own work that moves by a few per cent between runs, not by tens. Prints, per run, [wall µs,
 * CPU µs] per check-in; with `ALLOC=1` the allocation sites (V8's sampling heap profiler, garbage
 * included) in bytes per check-in.
 *
 * `HOSTS=10000 BATCH=8 ITERS=200000 node --expose-gc --import tsx bench/lib/checkin-route-inprocess.ts`
 * (`PROF=FILE.cpuprofile`: a V8 CPU profile of the measured runs).
 */
import { EventEmitter } from 'node:events';
import { writeFileSync } from 'node:fs';
import { Session } from 'node:inspector';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { makeEnv, startCp } from '../../fixtures/cp-testing.ts';
import { sampleFleet, hostName } from '../../fixtures/artifacts.ts';
import { createApp } from '../../control-plane/app.ts';
import { createLogger } from '../../control-plane/log.ts';
import { PROTOCOL_HEADER, PROTOCOL_VERSION, ROUTES } from '../../protocol/api.ts';

const N = Number(process.env['HOSTS'] ?? 10000);
const BATCH = Number(process.env['BATCH'] ?? 8);
const ITERS = Number(process.env['ITERS'] ?? 200000);
const ALLOC = process.env['ALLOC'] === '1';
/** Write a V8 CPU profile of the measured runs (not the first contacts nor the warm-up) here. */
const PROF = process.env['PROF'];

const env = await makeEnv('route-');
const fleet = sampleFleet({ hosts: N, channels: ['stable', 'beta', 'edge', 'lts'], waves: 5, closures: true });
env.publish(fleet);
// As main.ts: a logger at info (the request line is at debug), lines dropped. The CP gets it too:
// with a logger, its store is the write-logging one (write-log.ts), as in production.
const log = createLogger({ program: 'bench', level: 'info', write: () => {} });
const rc = await startCp(env, { maxArtifactBytes: 256 * 2 ** 20 }, { now: () => Date.now(), log });
const app = createApp({ service: rc.cp.api, maxBodyBytes: rc.config.maxBodyBytes, retryAfterSecs: rc.config.retryAfterSecs, log });
const route = app.nodeRoute;

const observedAt = new Date().toISOString();
const names = Array.from({ length: N }, (_, i) => hostName(i));
const bodies = names.map((name) => Buffer.from(JSON.stringify({ hostname: name, currentClosure: fleet.hosts[name]!.closureHash, bootId: `boot-${name}`, agentVersion: 'bench', probes: [{ name: 'http', ok: true, observedAt }], failedUnits: [], lastOutcome: null })));
const notBefore = new Date(Date.now() - 86_400_000).toUTCString();
const notAfter = new Date(Date.now() + 365 * 86_400_000).toUTCString();
// One kept-alive connection per host: its certificate is read once (identity.ts caches per socket).
const sockets = names.map((cn, i) => ({
  authorized: true,
  remoteAddress: '127.0.0.1',
  getPeerCertificate: () => ({ subject: { CN: cn, OU: 'host', O: 'nixfleet' }, issuer: { CN: 'bench-ca' }, valid_from: notBefore, valid_to: notAfter, serialNumber: (0x1000 + i).toString(16) }),
}));

class Req extends EventEmitter {
  readonly method = 'POST';
  readonly url = ROUTES.checkin;
  constructor(
    readonly headers: Record<string, string>,
    readonly socket: object,
  ) {
    super();
  }
}

function one(i: number): Promise<number> {
  const body = bodies[i]!;
  return new Promise((resolve, reject) => {
    let status = 0;
    const res = {
      writeHead: (s: number) => void (status = s),
      end: () => resolve(status),
    };
    const req = new Req({ 'content-type': 'application/json', 'content-length': String(body.length), [PROTOCOL_HEADER.toLowerCase()]: PROTOCOL_VERSION }, sockets[i]!);
    if (!route(req as unknown as IncomingMessage, res as unknown as ServerResponse)) return reject(new Error('the route handed the request to Hono'));
    req.emit('data', body);
    req.emit('end');
  });
}

for (let i = 0; i < N; i += 1000) {
  const st = await Promise.all(Array.from({ length: Math.min(1000, N - i) }, (_, k) => one(i + k)));
  if (st.some((s) => s !== 200)) throw new Error(`first contact: status ${st.find((s) => s !== 200)}`);
}
let k = 0;
let bad = 0;
const run = async (iters: number): Promise<{ wallUs: number; cpuUs: number }> => {
  const t0 = performance.now();
  const c0 = process.cpuUsage();
  for (let i = 0; i < iters; i += BATCH) {
    const st = await Promise.all(Array.from({ length: BATCH }, () => one((k = (k + 7919) % N))));
    for (const s of st) if (s !== 200) bad++;
  }
  const c = process.cpuUsage(c0);
  return { wallUs: ((performance.now() - t0) * 1000) / iters, cpuUs: (c.user + c.system) / iters };
};
await run(20000);

type Node = { callFrame: { functionName: string; url: string; lineNumber: number }; selfSize: number; children: Node[] };
const post = <T>(s: Session, method: string, params?: object): Promise<T> => new Promise((res, rej) => s.post(method, params ?? {}, (e, r) => (e ? rej(e) : res(r as T))));

if (ALLOC) {
  const s = new Session();
  s.connect();
  await post(s, 'HeapProfiler.startSampling', { samplingInterval: 256, includeObjectsCollectedByMajorGC: true, includeObjectsCollectedByMinorGC: true });
  const iters = ITERS / 5;
  await run(iters);
  const { profile } = await post<{ profile: { head: Node } }>(s, 'HeapProfiler.stopSampling');
  s.disconnect();
  // Self bytes by function and by the stack's first frame in our own code.
  const byFn = new Map<string, number>();
  const byOurs = new Map<string, number>();
  let total = 0;
  const name = (n: Node): string => `${n.callFrame.functionName || '(anon)'} ${n.callFrame.url.split('/').pop()}:${n.callFrame.lineNumber + 1}`;
  const walk = (n: Node, ours: string | null): void => {
    const here = /\/(control-plane|protocol|reconciler|io)\//.test(n.callFrame.url) ? name(n) : ours;
    if (n.selfSize > 0) {
      total += n.selfSize;
      byFn.set(name(n), (byFn.get(name(n)) ?? 0) + n.selfSize);
      const o = here ?? '(outside our code)';
      byOurs.set(o, (byOurs.get(o) ?? 0) + n.selfSize);
    }
    for (const c of n.children) walk(c, here);
  };
  walk(profile.head, null);
  const top = (m: Map<string, number>): [string, number][] => [...m].sort((a, b) => b[1] - a[1]).slice(0, 25).map(([f, b]) => [f, Math.round(b / iters)]);
  console.log(JSON.stringify({ bytesPerCheckin: Math.round(total / iters), bySelf: top(byFn), byOwnFrame: top(byOurs) }, null, 1));
} else {
  const rs: { wallUs: number; cpuUs: number }[] = [];
  const s = PROF === undefined ? null : new Session();
  if (s !== null) {
    s.connect();
    await post(s, 'Profiler.enable');
    await post(s, 'Profiler.start');
  }
  for (let r = 0; r < 5; r++) rs.push(await run(ITERS / 5));
  if (s !== null) {
    const { profile } = await post<{ profile: object }>(s, 'Profiler.stop');
    s.disconnect();
    writeFileSync(PROF!, JSON.stringify(profile));
  }
  const quiet = /^nixfleet_checkins_quiet_total (\d+)/m.exec((await rc.cp.metrics.text()).body);
  console.log(JSON.stringify({ perCheckin: rs.map((x) => [Math.round(x.wallUs * 10) / 10, Math.round(x.cpuUs * 10) / 10]), quietCheckins: quiet === null ? null : Number(quiet[1]), notOk: bad }));
}
await rc.stop();
env.cleanup();
