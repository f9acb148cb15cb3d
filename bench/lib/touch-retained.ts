/**
 * Bytes a quiet check-in's pending touch keeps alive until the store writes it (control-plane/store/
 * hosts.ts, `touch`): 10,000 check-in bodies read by the one-pass decoder, each touched once, the
 * heap after full GCs before and after. Session 13: 657 B per touch when the touch kept the probes
 * array (its strings are slices of the body's text, so the body stayed alive), 194 B with the
 * probes serialised at once.
 *
 * `node --expose-gc --import tsx bench/lib/touch-retained.ts`
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SqliteStore } from '../../control-plane/store/sqlite.ts';
import { decodeCheckinRequest } from '../../protocol/api-parse.ts';
import { fakeClosure, hostName } from '../../fixtures/artifacts.ts';
const N = 10000;
const dir = mkdtempSync(join(tmpdir(), 'nixfleet-touch-retained-'));
const store = new SqliteStore(join(dir, 'db.sqlite'));
const heap = (): number => {
  globalThis.gc!();
  globalThis.gc!();
  return process.memoryUsage().heapUsed;
};
const bodies = Array.from({ length: N }, (_, i) => JSON.stringify({ hostname: hostName(i), currentClosure: fakeClosure(hostName(i), 1), bootId: `boot-${i}-0123456789abcdef`, agentVersion: 'bench', probes: [{ name: 'http', ok: true, observedAt: new Date().toISOString() }], failedUnits: [], lastOutcome: null }));
const h0 = heap();
for (let i = 0; i < N; i++) {
  const req = decodeCheckinRequest(Buffer.from(bodies[i]!).toString('latin1'))!;
  store.touchCheckin!(req.hostname, Date.now(), req.probes);
}
const h1 = heap();
console.log(`retained per pending touch: ${Math.round((h1 - h0) / N)} B (body ${bodies[0]!.length} chars)`);
store.close();
rmSync(dir, { recursive: true, force: true });
