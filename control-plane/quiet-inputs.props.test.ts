/**
 * The quiet path compares a check-in with the host's kept decision inputs without building its own
 * (`sameAsInputs`, quiet-checkins.ts). It must say exactly what building them and comparing would:
 * `decisionInputs(b) !== null && sameInputs(decisionInputs(a), decisionInputs(b))`, for check-ins
 * that differ in any field the decision reads, or only in what it ignores (probe times, hostname).
 */
import fc from 'fast-check';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import type { CheckinRequest } from '../protocol/api.ts';
import { decisionInputs, sameAsInputs, sameInputs } from './quiet-checkins.ts';

const t = suite('quiet check-in inputs');

/** Few values per field, so that two drawn check-ins are often the same in it. */
const fieldArbs = {
  hostname: fc.constantFrom('web-1', 'web-2'),
  currentClosure: fc.constantFrom(null, 'aaaa-system', 'bbbb-system'),
  bootId: fc.constantFrom('boot-1', 'boot-2'),
  agentVersion: fc.constantFrom(undefined, '1.0', '1.1'),
  probes: fc.array(fc.record({ name: fc.constantFrom('http', 'disk'), ok: fc.boolean(), observedAt: fc.constantFrom('2026-12-03T10:00:00Z', '2026-12-03T10:01:00Z') }), { maxLength: 3 }),
  failedUnits: fc.array(fc.constantFrom('a.service', 'b.service'), { maxLength: 3 }),
  lastOutcome: fc.constantFrom(null, { rolloutId: 'r1', closureHash: 'aaaa-system', result: 'confirmed' }, { rolloutId: 'r2', closureHash: 'bbbb-system', result: 'rolled-back' }),
  lastOutcomeSignature: fc.constantFrom(undefined, null, 'sig-1', 'sig-2'),
  pendingReboot: fc.constantFrom(undefined, false, true),
  lastConfirmed: fc.constantFrom(undefined, null, { record: 'c1', signature: 's1' }),
  compliance: fc.constantFrom(undefined, [], [{ control: 'x' }]),
  auditWitness: fc.constantFrom(undefined, { seq: 1, hash: 'h1', signature: 's' }, { seq: 2, hash: 'h2', signature: 's' }),
};

type Loose = { [K in keyof typeof fieldArbs]: unknown };
const checkinArb: fc.Arbitrary<Loose> = fc.record(fieldArbs);
/** As the decoder leaves them: an optional member that was not sent is absent, not undefined. */
const request = (l: Loose): CheckinRequest => Object.fromEntries(Object.entries(l).filter(([, v]) => v !== undefined)) as CheckinRequest;

/** `b` is `a` with some fields taken from `c`: most pairs differ in a few fields or none. */
const pairArb = fc.tuple(checkinArb, checkinArb, fc.array(fc.constantFrom(...(Object.keys(fieldArbs) as (keyof Loose)[])), { maxLength: 3 })).map(([a, c, keys]) => {
  const b: Loose = { ...a, probes: (a.probes as { ok: boolean; observedAt: string }[]).map((p) => ({ ...p, observedAt: '2026-12-03T11:00:00Z' })) };
  for (const k of keys) b[k] = c[k];
  return [a, b] as const;
});

t('sameAsInputs(decisionInputs(a), b) is sameInputs of both, false when b has none', () => {
  let same = 0;
  let differ = 0;
  fc.assert(
    fc.property(pairArb, ([la, lb]) => {
      const a = decisionInputs(request(la));
      fc.pre(a !== null);
      const b = request(lb);
      const inputsB = decisionInputs(b);
      const expected = inputsB !== null && sameInputs(a, inputsB);
      if (expected) same++;
      else differ++;
      assert.is(sameAsInputs(a, b), expected);
    }),
    { numRuns: 3000 },
  );
  // Both answers were checked often (the generator is not degenerate).
  assert.ok(same > 300, `same: ${same}`);
  assert.ok(differ > 300, `differ: ${differ}`);
});

t.run();
