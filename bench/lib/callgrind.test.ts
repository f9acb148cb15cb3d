import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { CALLGRIND_NODE_ARGS, callgrindAvailable, callgrindWrapper, instructions, instrument, parseIrTotals, zero } from './callgrind.ts';

const test = suite('bench/lib/callgrind');

// callgrind_control -e Ir, as Valgrind 3.19 prints it.
const SAMPLE = `PID 2296: node --single-threaded /tmp/vg2.js

  Totals:         Ir 
   Th 1  214,202,779 
   Th 2          140 
`;

test('the per-thread totals are summed', () => {
  assert.is(parseIrTotals(SAMPLE), 214_202_919);
});

test('output without totals or threads is refused, not read as zero', () => {
  assert.throws(() => parseIrTotals('PID 1: node\n  No information available.\n'), /no totals/);
  assert.throws(() => parseIrTotals('PID 1: node\n\n  Totals:         Ir \n'), /no thread totals/);
});

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

// Valgrind is on these machines; where it is not, this reports itself skipped, by name.
const valgrind = callgrindAvailable();
const withValgrind = valgrind ? test : test.skip;
if (!valgrind) console.log('skipped: a Node process under callgrind (valgrind is not installed)');

withValgrind('a Node process under the wrapper counts only while instrumented, from zero', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'nixfleet-callgrind-test-'));
  // Busy every 20 ms until killed; prints once it runs.
  const child = spawn(callgrindWrapper(dir, 'test'), [...CALLGRIND_NODE_ARGS, '-e', "setInterval(() => { let s = 0; for (let i = 0; i < 1e5; i++) s += i; globalThis.s = s; }, 20); console.log('up');"], { stdio: ['ignore', 'pipe', 'inherit'] });
  try {
    await new Promise<void>((resolve, reject) => {
      child.stdout!.once('data', () => resolve());
      child.once('exit', (code) => reject(new Error(`exited ${code}`)));
    });
    const pid = child.pid!;
    await sleep(300);
    assert.throws(() => instructions(pid), /no totals/, 'instrumentation off: no counts to read');
    instrument(pid, true);
    await sleep(1500);
    zero(pid);
    await sleep(1500);
    const busy = instructions(pid);
    assert.ok(busy > 1e6, `a loop of 1e5 every 20 ms for 1.5 s: ${busy}`);
    zero(pid);
    assert.ok(instructions(pid) < busy / 10, 'zeroed');
  } finally {
    child.kill('SIGKILL');
    rmSync(dir, { recursive: true, force: true });
  }
});

test.run();
