/**
 * Small measurement helpers for the benchmarks: percentiles, and CPU / memory of another process
 * read from Linux `/proc` (the process under test runs in its own child, so `process.cpuUsage()`
 * of the bench would not see it).
 */
import { readFileSync } from 'node:fs';

/** Nearest-rank percentile (p in [0, 100]) of already sorted values; NaN when empty. */
export function percentileSorted(sorted: ArrayLike<number>, p: number): number {
  if (sorted.length === 0) return Number.NaN;
  const rank = Math.ceil((p / 100) * sorted.length);
  return sorted[Math.min(sorted.length - 1, Math.max(0, rank - 1))]!;
}

export type Summary = { count: number; min: number; p50: number; p90: number; p99: number; max: number; mean: number };

/** Summary of a sample (milliseconds or whatever unit it is in), rounded to 3 decimals. */
export function summarize(values: ArrayLike<number>): Summary {
  const sorted = Float64Array.from(values as ArrayLike<number>).sort();
  let sum = 0;
  for (const v of sorted) sum += v;
  const r = (x: number): number => Math.round(x * 1000) / 1000;
  return {
    count: sorted.length,
    min: r(sorted[0] ?? Number.NaN),
    p50: r(percentileSorted(sorted, 50)),
    p90: r(percentileSorted(sorted, 90)),
    p99: r(percentileSorted(sorted, 99)),
    max: r(sorted[sorted.length - 1] ?? Number.NaN),
    mean: r(sorted.length > 0 ? sum / sorted.length : Number.NaN),
  };
}

/** Clock ticks per second for /proc/<pid>/stat times (USER_HZ; 100 on every Linux we run on). */
const USER_HZ = 100;

/** User + system CPU time of a process, milliseconds (Linux /proc; 10 ms resolution). */
export function procCpuMs(pid: number, thread?: number, part: 'all' | 'system' = 'all'): number {
  const stat = readFileSync(thread === undefined ? `/proc/${pid}/stat` : `/proc/${pid}/task/${thread}/stat`, 'utf8');
  // Fields after the command name, which is in parentheses and may contain spaces.
  const rest = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  // rest[0] is field 3 (state); utime is field 14, stime field 15.
  const utime = Number(rest[11]);
  const stime = Number(rest[12]);
  return ((part === 'system' ? stime : utime + stime) * 1000) / USER_HZ;
}

/** Resident set size now and its peak (VmHWM), bytes. */
export function procMemory(pid: number): { rssBytes: number; peakRssBytes: number } {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kb = (name: string): number => {
    const m = new RegExp(`^${name}:\\s+(\\d+) kB`, 'm').exec(status);
    return m === null ? Number.NaN : Number(m[1]) * 1024;
  };
  return { rssBytes: kb('VmRSS'), peakRssBytes: kb('VmHWM') };
}

/** Measures CPU of a process over a window: call `stop()` at the end. */
export function cpuWindow(pid: number): { stop(): { cpuMs: number; wallMs: number; cores: number } } {
  const cpu0 = procCpuMs(pid);
  const t0 = performance.now();
  return {
    stop() {
      const cpuMs = procCpuMs(pid) - cpu0;
      const wallMs = performance.now() - t0;
      return { cpuMs, wallMs: Math.round(wallMs), cores: Math.round((cpuMs / wallMs) * 100) / 100 };
    },
  };
}

export const MiB = 1024 * 1024;

/** Bytes → MiB with one decimal. */
export function toMiB(bytes: number): number {
  return Math.round((bytes / MiB) * 10) / 10;
}
