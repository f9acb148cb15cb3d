/**
 * Loaded into the control plane with `--import` by memory experiments (not by `npm run bench`):
 * appends `process.memoryUsage()` (heapUsed, heapTotal, external, arrayBuffers, rss), in bytes, as
 * one JSON line per second to the file named by NIXFLEET_BENCH_MEMLOG. With NIXFLEET_BENCH_MEMGC=1
 * and `--expose-gc`, every 10th sample follows a full GC (`gc: true`), separating live data from
 * garbage not collected yet.
 */
import { appendFileSync } from 'node:fs';

const file = process.env.NIXFLEET_BENCH_MEMLOG;
const withGc = process.env.NIXFLEET_BENCH_MEMGC === '1' && typeof globalThis.gc === 'function';
if (file !== undefined && file !== '') {
  const t0 = Date.now();
  let n = 0;
  setInterval(() => {
    const gc = withGc && ++n % 10 === 0;
    if (gc) globalThis.gc!();
    appendFileSync(file, JSON.stringify({ t: Date.now() - t0, gc, ...process.memoryUsage() }) + '\n');
  }, 1000).unref();
}
