/**
 * Signed per-host slices on the control plane (issue 19, protocol/slice.ts): the signed index
 * `fleet.index.json` is read from the same source as the fleet artefact, verified with the same
 * pipeline (protocol/verify.ts kind `index`: trust slots, freshness, rollback and equivocation
 * against the newest accepted index, persisted in the store like the artefacts), and checked
 * against the fleet artefact in force (the tree recomputed from the artefact must give the signed
 * root). Only then are slices served.
 *
 * A missing, bad or non-matching index is logged (once per distinct problem), counted
 * (`nixfleet_artifact_verification_failures_total{kind="index"}`) and audited; the CP then serves
 * no slices and agents fall back to the full artefact, which stays in force untouched.
 */
import { sha256Hex, toBase64 } from '../protocol/crypto.ts';
import type { SliceResponse } from '../protocol/api.ts';
import type { Trust } from '../protocol/schema.ts';
import { hasSlice, sliceFor, verifyIndexMatchesArtifact, type SliceTree } from '../protocol/slice.ts';
import { verifySliceIndex } from '../protocol/verify.ts';
import type { InForce } from './artifacts.ts';
import type { Logger } from './log.ts';
import type { CpMetrics } from './metrics.ts';
import type { ArtifactSource } from './sources.ts';
import type { Store } from './store/types.ts';

/** One host's slice as served: the body and its ETag (changes with the index). */
export type ServedSlice = { body: SliceResponse; etag: string };

export type SliceServiceOptions = {
  store: Store;
  source: ArtifactSource;
  maxBytes: number;
  now: () => number;
  metrics: CpMetrics;
  log: Logger;
};

/** What the check needs of the fleet artefact (in force, or about to be). */
export type FleetInForce = Pick<InForce, 'sha256' | 'fleet' | 'bytes' | 'modelIsCanonical' | 'hostSpans'>;

type Ready = { tree: SliceTree; indexText: string; indexSignature: string; indexSha256: string; artifactSha256: string };

/** The slice index is small (a few hundred bytes); anything much larger is not one. */
const INDEX_MAX_BYTES = 65_536;

export class SliceService {
  private ready: Ready | null = null;
  /** The index bytes + signature last fetched from the source (kept across not-modified polls). */
  private fetched: { bytes: Uint8Array; signature: Uint8Array } | null = null;
  /** What `ready` / the last refusal was computed from, so an unchanged poll does no work. */
  private builtFor: string | null = null;
  private lastProblem: string | null = null;
  private fetchError: { code: string; message: string } | null = null;

  constructor(private readonly o: SliceServiceOptions) {}

  /** Whether a verified slice of the artefact `artifactSha256` is served to `hostname`. */
  offers(artifactSha256: string, hostname: string): boolean {
    const r = this.ready;
    return r !== null && r.artifactSha256 === artifactSha256 && hasSlice(r.tree, hostname);
  }

  /** The slice of `hostname`, or null when no verified index matches the fleet in force. */
  slice(hostname: string): ServedSlice | null {
    const r = this.ready;
    if (r === null) return null;
    const s = sliceFor(r.tree, hostname);
    if (s === null) return null;
    return { body: { leaf: s.leaf, leafIndex: s.leafIndex, proof: s.proof, index: r.indexText, indexSignature: r.indexSignature }, etag: `slice-${r.indexSha256}` };
  }

  /** One poll: fetch the index, then check it against `fleet` (the artefact in force). */
  async poll(fleet: FleetInForce | null, trust: Trust): Promise<void> {
    await this.fetch();
    await this.check(fleet, trust);
  }

  /** Read the index from the source (kept across not-modified answers; dropped on an error). */
  async fetch(): Promise<void> {
    const f = await this.o.source.fetch('index');
    if (f.kind === 'fetched') {
      this.fetched = { bytes: f.bytes, signature: f.signature };
      this.fetchError = null;
    } else if (f.kind === 'error') {
      this.fetched = null;
      this.fetchError = { code: `FETCH_${f.code}`, message: `no slice index: fetch ${f.code}: ${f.message}` };
    }
  }

  /**
   * Verify the last fetched index and match it to `fleet`; a no-op when neither changed. The
   * artefact manager calls it for a newly verified fleet BEFORE putting it in force, so the first
   * targets of a release already offer slices.
   */
  async check(fleet: FleetInForce | null, trust: Trust): Promise<void> {
    if (this.fetchError !== null) {
      this.withdraw(this.fetchError.code, this.fetchError.message);
      return;
    }
    if (fleet === null || fleet.fleet === null || this.fetched === null) {
      this.ready = null;
      this.builtFor = null;
      return;
    }
    const { bytes, signature } = this.fetched;
    const key = `${sha256Hex(bytes)}:${sha256Hex(signature)}:${fleet.sha256}:${sha256Hex(new TextEncoder().encode(JSON.stringify(trust)))}`;
    if (key === this.builtFor) return;
    this.builtFor = key;

    const row = await this.o.store.getArtifact('index');
    const nowMs = this.o.now();
    const v = verifySliceIndex({
      bytes,
      signature,
      trust,
      nowMs,
      lastAccepted: row === null ? null : { signedAt: row.signedAt, sha256: row.sha256 },
      maxBytes: Math.min(this.o.maxBytes, INDEX_MAX_BYTES),
    });
    if (!v.ok) {
      // Re-verified on the next poll (a FUTURE_DATED index may become valid): cheap, it is small.
      this.builtFor = null;
      await this.refuse(v.error.code, v.error.message, sha256Hex(bytes));
      return;
    }
    // The root is recomputed from the verified artefact; its host entries are read from its
    // verified bytes when they are exactly the model's JCS (no serialisation of 100,000 entries),
    // where the verifier found them.
    const match = verifyIndexMatchesArtifact(v.value.index, fleet.fleet, fleet.sha256, fleet.modelIsCanonical ? fleet.bytes : undefined, fleet.hostSpans ?? undefined);
    if (!match.ok) {
      await this.refuse(match.error.code, match.error.message, v.value.sha256);
      return;
    }
    if (row === null || row.sha256 !== v.value.sha256) {
      await this.o.store.apply([
        { kind: 'artifact.put', row: { kind: 'index', signedAt: v.value.signedAt, sha256: v.value.sha256, bytes: v.value.canonical, signature, acceptedMs: nowMs } },
        { kind: 'audit', entry: { atMs: nowMs, kind: 'artifact.accepted', actor: 'cp', subject: 'index', data: { sha256: v.value.sha256, signedAt: v.value.signedAt, keyRole: v.value.keyRole, root: v.value.index.root, leafCount: v.value.index.leafCount, artifactSha256: fleet.sha256 } } },
      ]);
      this.o.metrics.artifactsAccepted.inc({ kind: 'index' });
    }
    this.ready = {
      tree: match.value,
      indexText: new TextDecoder().decode(v.value.canonical),
      indexSignature: toBase64(signature),
      indexSha256: v.value.sha256,
      artifactSha256: fleet.sha256,
    };
    this.lastProblem = null;
    this.o.log.info('slices.accepted', { sha256: v.value.sha256, leafCount: v.value.index.leafCount, artifactSha256: fleet.sha256 });
  }

  /** No slices; counted and logged once per distinct problem. */
  private withdraw(code: string, message: string): boolean {
    this.ready = null;
    this.builtFor = null;
    const text = `${code}: ${message}`;
    if (this.lastProblem === text) return false;
    this.lastProblem = text;
    this.o.metrics.verifyFailures.inc({ kind: 'index', code });
    this.o.log.warn('slices.unavailable', { kind: 'index', code, message });
    return true;
  }

  /** Refused: withdraw, and audit once per distinct problem; a mismatch is not recomputed. */
  private async refuse(code: string, message: string, sha256: string): Promise<void> {
    const builtFor = this.builtFor;
    const fresh = this.withdraw(code, message);
    this.builtFor = builtFor;
    if (!fresh) return;
    await this.o.store.apply([{ kind: 'audit', entry: { atMs: this.o.now(), kind: 'artifact.rejected', actor: 'cp', subject: 'index', data: { code, message, sha256 } } }]);
  }
}
