/**
 * Keeps reconciler/README.md's worked example honest: the traces printed there are exactly what
 * `workedExample` (the simulator) produces.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { workedExample } from '../fixtures/reconciler-example.ts';

const readme = readFileSync(join(import.meta.dirname, 'README.md'), 'utf8');
const s = suite('README worked example');

s('every host succeeds: the rollout converges, canary first, budget of 2 respected, trace in the README', () => {
  const r = workedExample('ok');
  assert.is(r.state, 'Converged');
  assert.ok(readme.includes(r.trace.join('\n')), 'README trace out of date: regenerate from workedExample("ok")');
  const order = r.trace.filter((l) => l.includes('→ Dispatched')).map((l) => l.split(/\s+/)[1]);
  assert.equal(order, ['canary', 'web1', 'web2', 'web3']);
});

s('the canary fails: halted, rolled back, wave 1 never touched, trace in the README', () => {
  const r = workedExample('canary-fails');
  assert.is(r.state, 'Halted');
  assert.ok(readme.includes(r.trace.join('\n')), 'README trace out of date: regenerate from workedExample("canary-fails")');
  assert.ok(r.trace.every((l) => !/^\S+\s+web\d/.test(l)));
  assert.ok(r.trace.some((l) => l.includes('canary    Failed        → Reverted')));
});

s.run();
