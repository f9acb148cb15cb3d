/**
 * Instructions instead of seconds (bench/cp-checkin-ir): a server process run under Valgrind's
 * callgrind, which counts every instruction the process executes (all its threads, JIT code
 * included). A count does not move with what else the machine is doing, where CPU time on this VM
 * moves by 40 % between two runs of the same code (docs/performance.md).
 *
 * The process starts with instrumentation off (Valgrind only translates, ≈ 5× slower than Node,
 * against ≈ 50× with callgrind counting), so that loading a fleet and the first contacts stay
 * short; {@link instrument} turns it on, {@link zero} clears the counters and
 * {@link instructions} reads them (callgrind_control, over Valgrind's gdbserver, which also wakes
 * a process blocked in a system call).
 *
 * V8 runs with `--single-threaded` (no compiler or GC helper threads): their timing otherwise
 * changes which code runs, and the same work counted 3.43 and 3.75 billion instructions in two
 * runs; single-threaded, three runs were within 0.8 %.
 */
import { spawnSync } from 'node:child_process';
import { chmodSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

/** Node flags for a process under callgrind (see above). */
export const CALLGRIND_NODE_ARGS = ['--single-threaded'];

/** Whether `valgrind` and `callgrind_control` are on PATH. */
export function callgrindAvailable(): boolean {
  return ['valgrind', 'callgrind_control'].every((c) => spawnSync('sh', ['-c', `command -v ${c}`], { stdio: 'ignore' }).status === 0);
}

/**
 * A program that runs Node under callgrind, instrumentation off, with the arguments it is given
 * (the `execPath` of `startCp` and `startBareServer`); written into `dir`. `exec` keeps the pid.
 */
export function callgrindWrapper(dir: string, label: string, outDir = dir): string {
  const file = join(dir, `node-under-callgrind-${label}.sh`);
  const out = join(outDir, `callgrind-${label}.%p.out`);
  // --smc-check=all-non-file: V8 writes code into anonymous memory and patches it.
  writeFileSync(file, `#!/bin/sh\nexec valgrind --tool=callgrind --instr-atstart=no --smc-check=all-non-file --callgrind-out-file=${out} --log-file=${out}.log ${JSON.stringify(process.execPath)} "$@"\n`);
  chmodSync(file, 0o755);
  return file;
}

function control(pid: number, args: string[]): string {
  const r = spawnSync('callgrind_control', [...args, String(pid)], { encoding: 'utf8', timeout: 120_000 });
  if (r.status !== 0) throw new Error(`callgrind_control ${args.join(' ')} ${pid}: exit ${r.status}: ${r.stderr || r.stdout}`);
  return r.stdout;
}

/** Turn callgrind's instrumentation on or off in `pid`. */
export function instrument(pid: number, on: boolean): void {
  control(pid, ['-i', on ? 'on' : 'off']);
}

/** Clear the process's counters. */
export function zero(pid: number): void {
  control(pid, ['-z']);
}

/** Write the counts since the last `zero` to a file beside the wrapper's output (callgrind_annotate reads it). */
export function dump(pid: number, label: string): void {
  control(pid, [`--dump=${label}`]);
}

/** Instructions counted since the last `zero`, all threads. */
export function instructions(pid: number): number {
  return parseIrTotals(control(pid, ['-e', 'Ir']));
}

/**
 * The sum of the per-thread totals in `callgrind_control -e Ir`'s output:
 * `  Totals:         Ir` then one `   Th N  1,234,567` line per thread.
 */
export function parseIrTotals(text: string): number {
  const at = text.indexOf('Totals:');
  if (at < 0) throw new Error(`callgrind_control: no totals in ${JSON.stringify(text.slice(0, 300))}`);
  let sum = 0;
  let threads = 0;
  for (const m of text.slice(at).matchAll(/^\s*Th\s+\d+\s+([\d,]+)\s*$/gm)) {
    sum += Number(m[1]!.replaceAll(',', ''));
    threads++;
  }
  if (threads === 0) throw new Error(`callgrind_control: no thread totals in ${JSON.stringify(text.slice(at, at + 300))}`);
  return sum;
}
