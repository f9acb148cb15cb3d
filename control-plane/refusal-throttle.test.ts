import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { RefusalThrottle } from './refusal-throttle.ts';

const t = suite('refusal-throttle');

t('one audit per burst per (source, code); the suppressed count goes into the next burst', () => {
  const th = new RefusalThrottle(60_000);
  assert.equal(th.decide('10.0.0.1', 'TOKEN_INVALID', 0), { audit: true, suppressedBefore: 0 });
  for (let i = 1; i <= 5; i++) assert.equal(th.decide('10.0.0.1', 'TOKEN_INVALID', i * 1000), { audit: false });
  // Another code, another source: each audited on its own.
  assert.equal(th.decide('10.0.0.1', 'ENROL_PROOF_INVALID', 6000), { audit: true, suppressedBefore: 0 });
  assert.equal(th.decide('10.0.0.2', 'TOKEN_INVALID', 6000), { audit: true, suppressedBefore: 0 });
  assert.equal(th.decide('10.0.0.1', 'TOKEN_INVALID', 59_999), { audit: false });
  assert.equal(th.decide('10.0.0.1', 'TOKEN_INVALID', 60_000), { audit: true, suppressedBefore: 6 });
  assert.equal(th.decide('10.0.0.1', 'TOKEN_INVALID', 130_000), { audit: true, suppressedBefore: 0 });
});

t('window 0 audits every refusal', () => {
  const th = new RefusalThrottle(0);
  for (let i = 0; i < 3; i++) assert.equal(th.decide('a', 'X', 5), { audit: true, suppressedBefore: 0 });
});

t('memory is bounded: expired pairs go first, then the oldest', () => {
  const th = new RefusalThrottle(1000, 3);
  for (const s of ['a', 'b', 'c']) th.decide(s, 'X', 0);
  th.decide('d', 'X', 500); // full, nothing expired: the oldest (a) goes
  assert.is(th.size, 3);
  assert.equal(th.decide('b', 'X', 600), { audit: false }, 'b is still remembered');
  assert.equal(th.decide('a', 'X', 600), { audit: true, suppressedBefore: 0 }, 'a was forgotten');
  for (let i = 0; i < 100; i++) th.decide(`s${i}`, 'X', 2000 + i);
  assert.is(th.size, 3);
});

t('bad options are refused', () => {
  assert.throws(() => new RefusalThrottle(-1), /windowMs/);
  assert.throws(() => new RefusalThrottle(1, 0), /maxKeys/);
});

t.run();
