/**
 * kill -9 of the real agent process (`nixfleet-agent run`) between the switch and the confirm,
 * then a restart (SPEC §6): inside the deadline it confirms; after it, it rolls back, running the
 * previous closure's own switch script. Nothing is left half-done (no pending record).
 *
 * The agent is held in its confirm window by an exec probe that passes only once a gate file
 * exists, so the kill lands after `switch-to-configuration` and before any confirm.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { makeEnv, publish, type Env } from '../fixtures/agent-harness.ts';

const test = suite('agent: kill -9 between switch and confirm');
let env: Env;
const children = new Set<ChildProcess>();

test.before(async () => {
  env = await makeEnv([{ name: 'base' }, { name: 'first' }, { name: 'second' }], { cached: ['first', 'second'] });
});
test.after(async () => {
  for (const c of children) c.kill('SIGKILL');
  await env.close();
});

function startAgent(configFile: string): ChildProcess {
  const child = spawn(process.execPath, ['--import', 'tsx', 'agent/main.ts', 'run', '--config', configFile], {
    cwd: process.cwd(),
    stdio: ['ignore', 'ignore', process.env['AGENT_TEST_VERBOSE'] ? 'inherit' : 'ignore'],
  });
  children.add(child);
  child.on('exit', () => children.delete(child));
  return child;
}

async function until(what: string, cond: () => boolean, timeoutMs = 60_000): Promise<void> {
  const start = Date.now();
  while (!cond()) {
    if (Date.now() - start > timeoutMs) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

async function kill9(child: ChildProcess): Promise<void> {
  const exited = new Promise((r) => child.once('exit', r));
  child.kill('SIGKILL');
  await exited;
}

function pending(): { phase: string; closureHash: string } | null {
  const f = join(env.stateDir, 'pending.json');
  return existsSync(f) ? JSON.parse(readFileSync(f, 'utf8')) : null;
}

function writeConfig(name: string, confirmDeadlineSecs: number, gate: string): string {
  const file = join(env.root, `${name}.json`);
  const cfg = env.configJson({ confirmDeadlineSecs, probes: [{ name: 'gate', kind: 'exec', command: ['/bin/sh', '-c', `test -e ${gate}`], timeoutSecs: 5 }] });
  writeFileSync(file, JSON.stringify(cfg));
  return file;
}

test('killed after the switch, restarted inside the deadline: it confirms', async () => {
  const first = env.toys['first']!;
  const gate = join(env.root, 'gate-1');
  const cfg = writeConfig('agent-1', 60, gate);
  const target = publish(env, env.dispatch(first));
  const a = startAgent(cfg);
  await until('the switch and the pending record', () => env.switchLog().includes('first switch') && pending()?.phase === 'switched');
  await kill9(a);
  assert.is(env.cp.confirms.length, 0, 'killed before any confirm');
  assert.is(env.running(), first);

  writeFileSync(gate, '');
  const b = startAgent(cfg);
  await until('the confirm', () => env.cp.confirms.some((c) => c.closureHash === target.closureHash && c.status === 204));
  await until('the pending record to be cleared', () => pending() === null);
  await kill9(b);
  assert.is(env.running(), first);
  assert.is(env.profileTarget(), first);
  assert.equal(env.switchLog(), ['first switch'], 'no second switch, no rollback');
  assert.is(JSON.parse(readFileSync(join(env.stateDir, 'confirmed.json'), 'utf8')).record.closureHash, target.closureHash);
});

test('killed after the switch, restarted after the deadline: it rolls back to the previous closure', async () => {
  const first = env.toys['first']!;
  const second = env.toys['second']!;
  const gate = join(env.root, 'gate-2');
  const cfg = writeConfig('agent-2', 3, gate);
  const target = publish(env, env.dispatch(second));
  const a = startAgent(cfg);
  await until('the switch and the pending record', () => env.switchLog().includes('second switch') && pending()?.phase === 'switched');
  await kill9(a);
  const deadline = (JSON.parse(readFileSync(join(env.stateDir, 'pending.json'), 'utf8')) as { deadlineMs: number }).deadlineMs;
  await until('the deadline to pass', () => Date.now() > deadline + 200, 10_000);

  writeFileSync(gate, ''); // probes would pass now: too late all the same
  const b = startAgent(cfg);
  await until('the rollback report', () => env.cp.reportsOf('rolled-back').some((r) => r.report.closureHash === target.closureHash));
  await until('the pending record to be cleared', () => pending() === null);
  await kill9(b);
  assert.equal(env.switchLog().slice(-2), ['second switch', 'first switch'], 'the previous closure’s own switch ran');
  assert.is(env.running(), first);
  assert.is(env.profileTarget(), first);
  assert.not.ok(env.cp.confirms.some((c) => c.closureHash === target.closureHash && c.status === 204));
  const q = JSON.parse(readFileSync(join(env.stateDir, 'quarantine.json'), 'utf8')) as { closureHash: string }[];
  assert.ok(q.some((e) => e.closureHash === target.closureHash));
});

test.run();
