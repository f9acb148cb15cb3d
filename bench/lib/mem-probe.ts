/**
 * Loaded into the control plane with `--import` by memory experiments: appends
 * `process.memoryUsage()` (heapUsed, heapTotal, external, arrayBuffers, rss), in bytes, as one
 * JSON line per second to the file named by NIXFLEET_BENCH_MEMLOG. With `--expose-gc`, samples
 * that follow a full GC (`gc: true`) separate live data from garbage not collected yet:
 * - NIXFLEET_BENCH_MEMGC=1: every 10th sample;
 * - NIXFLEET_BENCH_MEMGC=signal: one on each SIGUSR2 (`liveHeapSample`), so that a benchmark can
 *   take it between its measured windows and never charge the process for a GC it forced.
 */
import { appendFileSync } from 'node:fs';

const file = process.env.NIXFLEET_BENCH_MEMLOG;
const mode = process.env.NIXFLEET_BENCH_MEMGC;
const canGc = typeof globalThis.gc === 'function';
if (file !== undefined && file !== '') {
  const t0 = Date.now();
  const sample = (gc: boolean): void => {
    if (gc) globalThis.gc!();
    appendFileSync(file, JSON.stringify({ t: Date.now() - t0, gc, ...process.memoryUsage() }) + '\n');
  };
  let n = 0;
  setInterval(() => sample(mode === '1' && canGc && ++n % 10 === 0), 1000).unref();
  if (mode === 'signal' && canGc) process.on('SIGUSR2', () => sample(true));
}
