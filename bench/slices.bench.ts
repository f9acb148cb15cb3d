/**
 * Signed per-host slices at 1,000 / 10,000 / 100,000 hosts (issue 19, SPEC §8 second round):
 * - bytes one agent downloads per release, full artefact vs its slice (leaf + audit path + signed
 *   index + signature, as the CP would serve them in one JSON body), and the CP's egress per
 *   release (× hosts); goal: a slice ≤ 4 KB at 100,000 hosts;
 * - resolve + canonicalise + sign the artefact and its index (goal ≤ 5 s at 100,000);
 * - the CP's verification of both (artefact signature and rules, index signature, index matches
 *   the artefact by recomputing the tree; goal ≤ 1 s at 100,000);
 * - the agent's check of one slice (index signature + audit path; goal ≤ 5 ms).
 * Median of a few runs after one warm-up, milliseconds (the agent's check: median of 3 × 101).
 * The load average at the start and end of the bench is in the result: note it with any figure.
 */
import { loadavg } from 'node:os';
import { sampleDescription } from '../fixtures/artifacts.ts';
import { mintReleaseKey, trustFor } from '../fixtures/keys.ts';
import { sha256Hex, signBytes, toBase64, verifySignature } from '../protocol/crypto.ts';
import { canonicalBytes, canonicalBytesOfText } from '../protocol/jcs.ts';
import { parseFleetResolved } from '../protocol/schema.ts';
import { buildSliceTree, parseSliceIndex, sliceFor, verifyIndexMatchesArtifact, verifySlice } from '../protocol/slice.ts';
import { verifyArtifact } from '../protocol/verify.ts';
import { resolveFleet } from '../release/resolve.ts';
import { applyActions, applyHostEvents, emptyObserved } from '../reconciler/apply.ts';
import { indexFleet } from '../reconciler/fleet-index.ts';
import { reconcile } from '../reconciler/reconcile.ts';

/** `SLICE_SIZES=1000,10000` narrows a run while iterating (default: all three). */
const SIZES = (process.env['SLICE_SIZES'] ?? '1000,10000,100000').split(',').map(Number);
const RUNS = 3;
/** Agent checks timed per run (the agent figure is the median of RUNS × AGENT_REPS). */
const AGENT_REPS = 101;

const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const round = (x: number): number => Math.round(x * 1000) / 1000;
const must = <T>(r: { ok: true; value: T } | { ok: false; error: { message: string } }): T => {
  if (!r.ok) throw new Error(r.error.message);
  return r.value;
};

export default async (): Promise<object> => {
  const load0 = loadavg().map((x) => Math.round(x * 100) / 100);
  const key = mintReleaseKey('ed25519', 1);
  const trust = trustFor(key);
  const signedAt = '2026-05-01T12:00:00Z';
  const nowMs = Date.parse(signedAt) + 60_000;
  const rows: object[] = [];
  for (const hosts of SIZES) {
    const desc = sampleDescription({ hosts, channels: ['canary', 'stable', 'edge', 'desktops'], waves: 5, closures: true, withPubkeys: true });
    const sign: number[] = [];
    const cpVerify: number[] = [];
    const agentVerify: number[] = [];
    let artifactBytes = 0;
    let sliceBytes = 0;
    let indexBytes = 0;
    let bytes: Uint8Array = new Uint8Array(0);
    let sig: Uint8Array = new Uint8Array(0);
    let idx: Uint8Array = new Uint8Array(0);
    for (let i = 0; i <= RUNS; i++) {
      const t0 = performance.now();
      const fleet = must(resolveFleet(desc)).fleet;
      fleet.meta.signedAt = signedAt;
      fleet.meta.signatureAlgorithm = 'ed25519';
      bytes = must(canonicalBytes(fleet));
      sig = signBytes(bytes, key.privateKey);
      // As `nixfleet-release sign` does: the index from the artefact re-read from its canonical bytes.
      const tree = reread(bytes);
      idx = must(canonicalBytes(tree.index));
      const idxSig = signBytes(idx, key.privateKey);
      const t1 = performance.now();
      // The CP: both signatures and rules, then the index against the artefact (tree recomputed).
      // 100,000 hosts make a 27 MB artefact: past the 16 MiB default, so the CP's maxArtifactBytes is raised.
      const v = must(verifyArtifact({ kind: 'fleet', bytes, signature: sig, trust, nowMs, lastAccepted: null, maxBytes: 64 * 2 ** 20 }));
      if (!verifySignature('ed25519', key.publicKeyB64, idx, idxSig)) throw new Error('index signature');
      const index = must(parseSliceIndex(JSON.parse(new TextDecoder().decode(idx))));
      const served = must(verifyIndexMatchesArtifact(index, v.fleet!, v.sha256, v.modelIsCanonical ? v.canonical : undefined, v.hostSpans));
      const t2 = performance.now();
      // One agent: the host in the middle of the tree.
      const host = served.hostnames[Math.floor(hosts / 2)]!;
      const slice = sliceFor(served, host)!;
      const body = JSON.stringify({ ...slice, index: new TextDecoder().decode(idx), indexSignature: toBase64(idxSig) });
      // The agent's check is sub-millisecond: timed AGENT_REPS times per run (each a median sample),
      // so that one scheduling hiccup on a shared machine does not become the figure.
      for (let k = 0; k < AGENT_REPS; k++) {
        const t3 = performance.now();
        const agentIdx = JSON.parse(body) as { index: string; indexSignature: string; leaf: string; leafIndex: number; proof: string[] };
        const ib = new TextEncoder().encode(agentIdx.index);
        if (!verifySignature('ed25519', key.publicKeyB64, ib, Buffer.from(agentIdx.indexSignature, 'base64'))) throw new Error('agent: index signature');
        must(verifySlice({ index: must(parseSliceIndex(JSON.parse(agentIdx.index))), slice: { leaf: agentIdx.leaf, leafIndex: agentIdx.leafIndex, proof: agentIdx.proof }, hostname: host }));
        if (i > 0) agentVerify.push(performance.now() - t3);
      }
      artifactBytes = bytes.length;
      sliceBytes = Buffer.byteLength(body);
      indexBytes = idx.length;
      if (i === 0) continue;
      sign.push(t1 - t0);
      cpVerify.push(t2 - t1);
    }
    const held = hosts === SIZES[SIZES.length - 1] ? cpHeldMemory(bytes, sig, idx, trust, nowMs) : undefined;
    rows.push({
      hosts,
      ...(held === undefined ? {} : { cpHeld: held }),
      artifactBytes,
      sliceBytes,
      indexBytes,
      ratio: Math.round(artifactBytes / sliceBytes),
      egressPerReleaseFullMiB: round((artifactBytes * hosts) / 2 ** 20),
      egressPerReleaseSlicesMiB: round((sliceBytes * hosts) / 2 ** 20),
      resolveSignWithIndexMs: round(median(sign)),
      cpVerifyBothMs: round(median(cpVerify)),
      agentSliceVerifyMs: round(median(agentVerify)),
      agentSliceVerifyP99Ms: round([...agentVerify].sort((a, b) => a - b)[Math.floor(agentVerify.length * 0.99)]!),
    });
  }
  return { loadAverage: { start: load0, end: loadavg().map((x) => Math.round(x * 100) / 100) }, runs: RUNS, agentReps: AGENT_REPS, goals: { sliceBytesAt100k: 4096, resolveSignWithIndexMsAt100k: 5000, cpVerifyBothMsAt100k: 1000, agentSliceVerifyMs: 5 }, sizes: rows };
};

const gc = (): void => (globalThis as { gc?: () => void }).gc?.();
const mib = (x: number): number => Math.round((x / 2 ** 20) * 10) / 10;

/**
 * What the CP holds for the largest fleet once loaded (issue 19: CP memory with 100,000 hosts):
 * the verified artefact (canonical bytes and model), the slice tree it serves from, the
 * reconciler's fleet index, and the observed-state mirror after every host checked in once and
 * the first reconcile opened the rollouts. Heap and RSS growth over the bench's own state, after
 * a full GC (needs `--expose-gc`, as `npm run bench` runs modules). The live check-in CPU with a
 * fleet this size loaded is not measured here (cp-load runs 10,000 hosts).
 */
function cpHeldMemory(bytes: Uint8Array, sig: Uint8Array, idx: Uint8Array, trust: Parameters<typeof verifyArtifact>[0]['trust'], nowMs: number): object {
  gc();
  const m0 = process.memoryUsage();
  const v = must(verifyArtifact({ kind: 'fleet', bytes: bytes.slice(), signature: sig, trust, nowMs, lastAccepted: null, maxBytes: 64 * 2 ** 20 }));
  const tree = must(verifyIndexMatchesArtifact(must(parseSliceIndex(JSON.parse(new TextDecoder().decode(idx)))), v.fleet!, v.sha256, v.modelIsCanonical ? v.canonical : undefined, v.hostSpans));
  gc();
  const m1 = process.memoryUsage();
  indexFleet(v.fleet!);
  const names = Object.keys(v.fleet!.hosts);
  let observed = applyHostEvents(emptyObserved(), names.map((host) => ({ host, event: { kind: 'checkin' as const, currentClosure: `old-${host}`, bootId: 'b', probes: { observed: true, passing: true }, failedUnits: [] } })), nowMs);
  observed = applyActions(observed, reconcile(v.fleet!, observed, nowMs), nowMs);
  gc();
  const m2 = process.memoryUsage();
  const held = { v, tree, observed };
  return {
    hosts: names.length,
    // Heap only: the canonical bytes (artifactBytes) live outside the heap, and RSS deltas after a
    // GC mostly show glibc handing back what the bench's earlier runs freed.
    artefactAndTreeHeapMiB: mib(m1.heapUsed - m0.heapUsed),
    plusIndexAndMirrorHeapMiB: mib(m2.heapUsed - m0.heapUsed),
    rollouts: Object.keys(held.observed.rollouts).length,
    totalHeapUsedMiB: mib(m2.heapUsed),
    totalRssMiB: mib(m2.rss),
  };
}

/** As `nixfleet-release sign`: the index from the artefact re-read from its canonical bytes (host entries read from them when the model is their value). */
function reread(bytes: Uint8Array): ReturnType<typeof buildSliceTree> {
  const parsed = must(canonicalBytesOfText(bytes, { integersOnly: true, maxBytes: bytes.length, memberSpansOf: 'hosts' }));
  const fleet = must(parseFleetResolved(parsed.value));
  return fleet === parsed.value ? buildSliceTree(fleet, sha256Hex(bytes), bytes, parsed.memberSpans) : buildSliceTree(fleet, sha256Hex(bytes));
}
