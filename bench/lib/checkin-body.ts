/**
 * In-process CPU of reading one steady check-in body (issue 19, docs/performance.md "Session 12"):
 * the one-pass decoder (protocol/decode.ts, what the CP's route runs first), the general path it
 * stands in for (strict parse + compiled check + projection), and `JSON.parse` alone for scale.
 * The three are interleaved, ROUNDS times; prints µs per body for each round as JSON.
 * `ROUNDS=4 ITERS=1000000 node --import tsx bench/lib/checkin-body.ts`
 */
import { decodeCheckinRequest, parseCheckinRequest } from '../../protocol/api-parse.ts';
import { decodeJsonBody, parseJsonBody, validated } from '../../control-plane/middleware.ts';

const ROUNDS = Number(process.env['ROUNDS'] ?? 4);
const ITERS = Number(process.env['ITERS'] ?? 1_000_000);

const observedAt = new Date().toISOString();
const closure = '0123456789abcdfghijklmnpqrsvwxyz-nixos-system-host';
const bodies = Array.from({ length: 1000 }, (_, i) =>
  Buffer.from(JSON.stringify({ hostname: `host-${i}.example.com`, currentClosure: closure, bootId: `boot-host-${i}`, agentVersion: 'bench', probes: [{ name: 'http', ok: true, observedAt }], failedUnits: [], lastOutcome: null })),
);

const ways: Record<string, (b: Buffer) => unknown> = {
  decoder: (b) => decodeJsonBody(decodeCheckinRequest, b, 'application/json'),
  strictCheckProject: (b) => validated(parseCheckinRequest(parseJsonBody(b, 'application/json', false))),
  jsonParseOnly: (b) => JSON.parse(b.toString('utf8')),
};
for (const b of bodies) if (ways['decoder']!(b) === undefined) throw new Error('the decoder left a steady body to the general path');

const out: Record<string, number[]> = Object.fromEntries(Object.keys(ways).map((k) => [k, []]));
for (let r = 0; r < ROUNDS; r++) {
  for (const [name, f] of Object.entries(ways)) {
    const t0 = performance.now();
    for (let i = 0; i < ITERS; i++) f(bodies[i % 1000]!);
    out[name]!.push(Math.round(((performance.now() - t0) * 1000 * 1000) / ITERS) / 1000);
  }
}
console.log(JSON.stringify({ bodyBytes: bodies[0]!.length, usPerBody: out }));
