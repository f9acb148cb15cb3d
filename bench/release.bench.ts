/**
 * SPEC §8 release numbers: resolve + canonicalise + sign a generated 10,000-host fleet (goal ≤ 2 s),
 * and verify it as the CP / agents do (goal ≤ 300 ms). Reports the median and max of a few runs
 * after one warm-up, in milliseconds.
 */
import { sampleDescription } from '../fixtures/artifacts.ts';
import { mintReleaseKey, trustFor } from '../fixtures/keys.ts';
import { signBytes } from '../protocol/crypto.ts';
import { canonicalBytes } from '../protocol/jcs.ts';
import { resolveFleet } from '../release/resolve.ts';
import { verifyArtifact } from '../protocol/verify.ts';

const HOSTS = 10_000;
const RUNS = 5;

const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)]!;
};
const round = (x: number): number => Math.round(x * 10) / 10;

export default async (): Promise<object> => {
  const desc = sampleDescription({ hosts: HOSTS, channels: ['canary', 'stable', 'edge', 'desktops'], waves: 5, closures: true, withPubkeys: true });
  const out: Record<string, object | number | string> = { hosts: HOSTS, channels: 4, waves: 5, runs: RUNS };
  for (const algorithm of ['ed25519', 'ecdsa-p256'] as const) {
    const key = mintReleaseKey(algorithm, 1);
    const trust = trustFor(key);
    const signedAt = '2026-05-01T12:00:00Z';
    const nowMs = Date.parse(signedAt) + 60_000;
    const signTimes: number[] = [];
    const verifyTimes: number[] = [];
    let bytesLen = 0;
    for (let i = 0; i <= RUNS; i++) {
      const t0 = performance.now();
      const r = resolveFleet(desc);
      if (!r.ok) throw new Error(r.error.message);
      r.value.fleet.meta.signedAt = signedAt;
      r.value.fleet.meta.signatureAlgorithm = algorithm;
      const bytes = canonicalBytes(r.value.fleet);
      if (!bytes.ok) throw new Error(bytes.error.message);
      const sig = signBytes(bytes.value, key.privateKey);
      const t1 = performance.now();
      const v = verifyArtifact({ kind: 'fleet', bytes: bytes.value, signature: sig, trust, nowMs, lastAccepted: null });
      const t2 = performance.now();
      if (!v.ok) throw new Error(`${v.error.code}: ${v.error.message}`);
      bytesLen = bytes.value.length;
      if (i === 0) continue; // warm-up
      signTimes.push(t1 - t0);
      verifyTimes.push(t2 - t1);
    }
    out[algorithm] = {
      artifactBytes: bytesLen,
      resolveCanonicaliseSignMs: { median: round(median(signTimes)), max: round(Math.max(...signTimes)), goal: 2000 },
      verifyMs: { median: round(median(verifyTimes)), max: round(Math.max(...verifyTimes)), goal: 300 },
    };
  }
  return out;
};
