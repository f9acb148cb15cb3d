/**
 * Iteration helper for the slices bench (issue 19): times the CP's verify of one artefact + index
 * at N hosts split into its steps, median of `runs`. `node --import tsx bench/lib/slices-pieces.ts [hosts] [runs]`.
 * `SLICES_CACHE=DIR` keeps the artefact and index bytes in DIR (resolve + canonicalise of 100,000
 * hosts takes about a minute on a loaded machine): the first run writes them, later runs read them
 * (the key is minted from a fixed seed, so the signatures are made again in milliseconds).
 */
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { sampleDescription } from '../../fixtures/artifacts.ts';
import { mintReleaseKey, trustFor } from '../../fixtures/keys.ts';
import { sha256Hex, signBytes, verifySignature } from '../../protocol/crypto.ts';
import { canonicalBytes, canonicalBytesOfText } from '../../protocol/jcs.ts';
import { parseFleetResolved } from '../../protocol/schema.ts';
import { buildSliceTree, parseSliceIndex, verifyIndexMatchesArtifact } from '../../protocol/slice.ts';
import { verifyArtifact } from '../../protocol/verify.ts';
import { resolveFleet } from '../../release/resolve.ts';

const hosts = Number(process.argv[2] ?? 100_000);
const runs = Number(process.argv[3] ?? 5);
const must = <T>(r: { ok: true; value: T } | { ok: false; error: { message: string } }): T => {
  if (!r.ok) throw new Error(r.error.message);
  return r.value;
};
const key = mintReleaseKey('ed25519', 1);
const trust = trustFor(key);
const signedAt = '2026-05-01T12:00:00Z';
const nowMs = Date.parse(signedAt) + 60_000;
const cache = process.env['SLICES_CACHE'];
const cached = cache === undefined ? null : join(cache, `slices-${hosts}`);
let bytes: Uint8Array;
let idx: Uint8Array;
if (cached !== null && existsSync(join(cached, 'fleet.resolved.json'))) {
  bytes = new Uint8Array(readFileSync(join(cached, 'fleet.resolved.json')));
  idx = new Uint8Array(readFileSync(join(cached, 'fleet.index.json')));
} else {
  const desc = sampleDescription({ hosts, channels: ['canary', 'stable', 'edge', 'desktops'], waves: 5, closures: true, withPubkeys: true });
  const fleet = must(resolveFleet(desc)).fleet;
  fleet.meta.signedAt = signedAt;
  fleet.meta.signatureAlgorithm = 'ed25519';
  bytes = must(canonicalBytes(fleet));
  idx = must(canonicalBytes(reread(bytes).index));
  if (cached !== null) {
    mkdirSync(cached, { recursive: true });
    writeFileSync(join(cached, 'fleet.resolved.json'), bytes);
    writeFileSync(join(cached, 'fleet.index.json'), idx);
  }
}
const sig = signBytes(bytes, key.privateKey);
const idxSig = signBytes(idx, key.privateKey);
const t: Record<string, number[]> = { verifyArtifact: [], index: [], match: [], total: [], totalCpu: [] };
for (let i = 0; i <= runs; i++) {
  const c0 = process.cpuUsage();
  const t0 = performance.now();
  const v = must(verifyArtifact({ kind: 'fleet', bytes, signature: sig, trust, nowMs, lastAccepted: null, maxBytes: 64 * 2 ** 20 }));
  const t1 = performance.now();
  if (!verifySignature('ed25519', key.publicKeyB64, idx, idxSig)) throw new Error('index signature');
  const index = must(parseSliceIndex(JSON.parse(new TextDecoder().decode(idx))));
  const t2 = performance.now();
  must(verifyIndexMatchesArtifact(index, v.fleet!, v.sha256, v.modelIsCanonical ? v.canonical : undefined, v.hostSpans));
  const t3 = performance.now();
  const c = process.cpuUsage(c0);
  if (i === 0) continue;
  t.totalCpu!.push((c.user + c.system) / 1000);
  t.verifyArtifact!.push(t1 - t0);
  t.index!.push(t2 - t1);
  t.match!.push(t3 - t2);
  t.total!.push(t3 - t0);
}
const med = (xs: number[]): number => Math.round([...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]! * 10) / 10;
console.log(JSON.stringify({ hosts, bytes: bytes.length, ...Object.fromEntries(Object.entries(t).map(([k, v]) => [k, med(v)])) }));

/** As `nixfleet-release sign`: the index from the artefact re-read from its canonical bytes (host entries read from them when the model is their value). */
function reread(bytes: Uint8Array): ReturnType<typeof buildSliceTree> {
  const parsed = must(canonicalBytesOfText(bytes, { integersOnly: true, maxBytes: bytes.length, memberSpansOf: 'hosts' }));
  const fleet = must(parseFleetResolved(parsed.value));
  return fleet === parsed.value ? buildSliceTree(fleet, sha256Hex(bytes), bytes, parsed.memberSpans) : buildSliceTree(fleet, sha256Hex(bytes));
}
