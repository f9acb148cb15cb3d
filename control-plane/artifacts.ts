/**
 * The signed artefacts in force (SPEC §5): fetched from the source, verified with `verifyArtifact`
 * (SPEC §2.3) before anything else, persisted with their newest accepted signedAt so that rollback
 * protection survives restarts. A failure is logged, counted by code and audited once per distinct
 * content, and the last good artefact stays in force. trust.json is re-read on change (key
 * rotation needs no restart).
 */
import { promisify } from 'node:util';
import { gzip as gzipCb } from 'node:zlib';

/** gzip on libuv's thread pool: 27 MB at 100,000 hosts is ≈ 0.4 s of CPU, off the event loop. */
const gzipAsync = promisify(gzipCb);
import { sha256Hex } from '../protocol/crypto.ts';
import type { ArtifactKind, FleetResolved, Revocations, Trust } from '../protocol/schema.ts';
import { verifyArtifact, type AcceptedState } from '../protocol/verify.ts';
import { loadTrust } from './config.ts';
import type { CpMetrics } from './metrics.ts';
import { SliceService } from './slices.ts';
import type { ArtifactSource } from './sources.ts';
import type { AuditInput, Store } from './store/types.ts';
import type { Logger } from './log.ts';

export type InForce = {
  kind: ArtifactKind;
  /** Canonical bytes: exactly what the signature covers and what agents are served. */
  bytes: Uint8Array;
  /** gzip of `bytes`, computed once here rather than per request. */
  gzip: Uint8Array;
  signature: Uint8Array;
  sha256: string;
  signedAt: string;
  fleet: FleetResolved | null;
  revocations: Revocations | null;
  /** `JCS(fleet) = bytes` (protocol/verify.ts `modelIsCanonical`): the slice tree reads host entries from the bytes. */
  modelIsCanonical: boolean;
  /** Where the host entries are in `bytes` (protocol/verify.ts `hostSpans`), when the verifier found them. */
  hostSpans: Uint32Array | null;
};

export type ArtifactManagerOptions = {
  store: Store;
  source: ArtifactSource;
  trustFile: string;
  trust: Trust;
  requireRevocations: boolean;
  maxBytes: number;
  now: () => number;
  metrics: CpMetrics;
  log: Logger;
  /** Called after a new fleet artefact (different sha256) was put in force. */
  onFleetChanged: () => void;
};

const KINDS: readonly ArtifactKind[] = ['fleet', 'revocations'];
const FLEET_ONLY: readonly ArtifactKind[] = ['fleet'];
/** Verification codes that a trust.json change can newly produce for an accepted artefact. */
const TRUST_CODES: readonly string[] = ['BAD_SIGNATURE', 'NO_ACTIVE_KEY', 'REJECTED_BEFORE'];

export class ArtifactManager {
  private trust: Trust;
  private trustText: string | null = null;
  private trustError: string | null = null;
  private readonly inForce = new Map<ArtifactKind, InForce>();
  /** sha256(raw bytes):sha256(signature) of what is in force / what was last refused (with code). */
  private readonly acceptedKey = new Map<ArtifactKind, string>();
  private readonly rejectedKey = new Map<ArtifactKind, string>();
  private readonly lastError = new Map<ArtifactKind, string>();
  private revokedBefore = new Map<string, number>();
  private polling: Promise<void> | null = null;
  /** Signed per-host slices of the fleet in force (issue 19); polled after the artefacts. */
  readonly slices: SliceService;

  constructor(private readonly o: ArtifactManagerOptions) {
    this.trust = o.trust;
    this.slices = new SliceService({ store: o.store, source: o.source, maxBytes: o.maxBytes, now: o.now, metrics: o.metrics, log: o.log });
  }

  /** The trust root in force (as last re-read): the evidence packet carries it (issue 15). */
  currentTrust(): Trust {
    return this.trust;
  }

  get kinds(): readonly ArtifactKind[] {
    return this.o.requireRevocations ? KINDS : FLEET_ONLY;
  }

  fleet(): InForce | null {
    return this.inForce.get('fleet') ?? null;
  }

  revocations(): InForce | null {
    return this.inForce.get('revocations') ?? null;
  }

  inForceOf(kind: ArtifactKind): InForce | null {
    return this.inForce.get(kind) ?? null;
  }

  /** trust.json as last read (issue 16: the org key that signs bootstrap tokens). */
  trustInForce(): Trust {
    return this.trust;
  }

  /** No reason not to be ready (`notReadyReasons()` is empty), without building the reasons. */
  allInForce(): boolean {
    for (const k of this.kinds) if (!this.inForce.has(k)) return false;
    return true;
  }

  /** Why not ready (empty when ready). */
  notReadyReasons(): string[] {
    const out: string[] = [];
    for (const k of this.kinds) {
      if (!this.inForce.has(k)) {
        const e = this.lastError.get(k);
        out.push(`no verified ${k} artefact yet${e !== undefined ? ` (last attempt: ${e})` : ''}`);
      }
    }
    return out;
  }

  /** Certificates for `cn` issued before this time are refused (SPEC §2.3); null = none. */
  revokedBeforeMs(cn: string): number | null {
    return this.revokedBefore.get(cn) ?? null;
  }

  /**
   * Put the artefacts persisted by an earlier run back in force, if they still verify now (they may
   * have gone stale while the CP was down; then the source must provide a fresh one).
   */
  async loadFromStore(): Promise<void> {
    for (const kind of this.kinds) {
      const row = await this.o.store.getArtifact(kind);
      if (row === null) continue;
      const r = verifyArtifact({
        kind,
        bytes: row.bytes,
        signature: row.signature,
        trust: this.trust,
        nowMs: this.o.now(),
        lastAccepted: { signedAt: row.signedAt, sha256: row.sha256 },
        maxBytes: this.o.maxBytes,
      });
      if (r.ok) this.setInForce(kind, r.value.canonical, await gzipAsync(r.value.canonical, { level: 6 }), row.signature, r.value.sha256, r.value.signedAt, r.value.fleet ?? null, r.value.revocations ?? null, r.value.modelIsCanonical, r.value.hostSpans ?? null);
      else {
        this.lastError.set(kind, `stored ${kind} artefact no longer verifies: ${r.error.code}: ${r.error.message}`);
        this.o.log.warn('artifact.stored-invalid', { kind, code: r.error.code, message: r.error.message });
      }
    }
  }

  /** One poll of every kind; concurrent calls share the running poll. */
  poll(): Promise<void> {
    this.polling ??= this.pollAll().finally(() => {
      this.polling = null;
    });
    return this.polling;
  }

  private async pollAll(): Promise<void> {
    await this.reloadTrust();
    await this.slices.fetch();
    for (const kind of this.kinds) await this.pollKind(kind);
    // A no-op when the fleet changed (checked before it was put in force) and the index did not.
    await this.slices.check(this.fleet(), this.trust);
  }

  private async reloadTrust(): Promise<void> {
    const t = loadTrust(this.o.trustFile);
    if (!t.ok) {
      if (this.trustError !== t.error.message) {
        this.trustError = t.error.message;
        this.o.log.error('trust.unusable', { message: t.error.message });
        await this.o.store.apply([{ kind: 'audit', entry: { atMs: this.o.now(), kind: 'trust.unusable', actor: 'cp', subject: 'trust', data: { code: t.error.code, message: t.error.message } } }]);
      }
      return;
    }
    this.trustError = null;
    const text = JSON.stringify(t.value);
    const changed = this.trustText !== null && text !== this.trustText;
    this.trustText = text;
    this.trust = t.value;
    if (!changed) return;
    await this.o.store.apply([{ kind: 'audit', entry: { atMs: this.o.now(), kind: 'trust.reloaded', actor: 'cp', subject: 'trust', data: { ciReleaseKey: t.value.ciReleaseKey } } }]);
    this.o.log.info('trust.reloaded');
    // An artefact in force whose key the new trust no longer accepts (a compromised key removed,
    // a rejectBefore added) stops being served. Freshness is not re-judged here: a stale-but-good
    // artefact stays in force until a newer one arrives.
    for (const [kind, a] of [...this.inForce]) {
      const r = verifyArtifact({ kind, bytes: a.bytes, signature: a.signature, trust: this.trust, nowMs: this.o.now(), lastAccepted: { signedAt: a.signedAt, sha256: a.sha256 }, maxBytes: this.o.maxBytes });
      if (r.ok || !TRUST_CODES.includes(r.error.code)) continue;
      this.inForce.delete(kind);
      this.acceptedKey.delete(kind);
      if (kind === 'revocations') this.revokedBefore = new Map();
      this.lastError.set(kind, `the ${kind} artefact in force is no longer trusted: ${r.error.code}: ${r.error.message}`);
      this.o.metrics.verifyFailures.inc({ kind, code: r.error.code });
      await this.audit(kind, 'artifact.withdrawn', { code: r.error.code, message: r.error.message, sha256: a.sha256 });
      this.o.log.error('artifact.withdrawn', { kind, code: r.error.code });
    }
  }

  private async pollKind(kind: ArtifactKind): Promise<void> {
    const f = await this.o.source.fetch(kind);
    if (f.kind === 'not-modified') return;
    if (f.kind === 'error') {
      // Counted on every poll; audited and logged when the error changes.
      this.o.metrics.verifyFailures.inc({ kind, code: `FETCH_${f.code}` });
      const text = `fetch ${f.code}: ${f.message}`;
      if (this.lastError.get(kind) !== text) {
        this.lastError.set(kind, text);
        await this.audit(kind, 'artifact.fetch-failed', { code: f.code, message: f.message });
        this.o.log.warn('artifact.fetch-failed', { kind, code: f.code, message: f.message });
      }
      return;
    }
    const attemptKey = `${sha256Hex(f.bytes)}:${sha256Hex(f.signature)}`;
    if (this.acceptedKey.get(kind) === attemptKey) {
      this.lastError.delete(kind);
      return; // the artefact in force, unchanged
    }
    const row = await this.o.store.getArtifact(kind);
    const lastAccepted: AcceptedState | null = row === null ? null : { signedAt: row.signedAt, sha256: row.sha256 };
    const nowMs = this.o.now();
    const r = verifyArtifact({ kind, bytes: f.bytes, signature: f.signature, trust: this.trust, nowMs, lastAccepted, maxBytes: this.o.maxBytes });
    if (!r.ok) {
      // Re-verified on every poll (a FUTURE_DATED one may become valid, a new trust.json may
      // accept it) but counted and audited once per distinct content and code.
      const key = `${attemptKey}:${r.error.code}`;
      if (this.rejectedKey.get(kind) === key) return;
      this.rejectedKey.set(kind, key);
      this.lastError.set(kind, `${r.error.code}: ${r.error.message}`);
      this.o.metrics.verifyFailures.inc({ kind, code: r.error.code });
      await this.audit(kind, 'artifact.rejected', { code: r.error.code, message: r.error.message, sha256: sha256Hex(f.bytes) });
      this.o.log.warn('artifact.rejected', { kind, code: r.error.code, message: r.error.message });
      return;
    }
    const v = r.value;
    this.lastError.delete(kind);
    this.rejectedKey.delete(kind);
    this.acceptedKey.set(kind, attemptKey);
    const current = this.inForce.get(kind);
    if (current !== undefined && current.sha256 === v.sha256) return; // the same artefact, other encoding
    await this.o.store.apply([
      { kind: 'artifact.put', row: { kind, signedAt: v.accepted.signedAt, sha256: v.accepted.sha256, bytes: v.canonical, signature: f.signature, acceptedMs: nowMs } },
      {
        kind: 'audit',
        entry: this.auditEntry(kind, 'artifact.accepted', {
          sha256: v.sha256,
          signedAt: v.signedAt,
          keyRole: v.keyRole,
          ciCommit: v.fleet?.meta.ciCommit ?? v.revocations?.meta.ciCommit ?? null,
        }),
      },
    ]);
    this.o.metrics.artifactsAccepted.inc({ kind });
    this.o.log.info('artifact.accepted', { kind, sha256: v.sha256, signedAt: v.signedAt });
    // The slice index is checked against a new fleet before the fleet is in force: the first
    // targets of the release (the reconcile below, the timer, a check-in) already offer slices.
    // It is fetched again first: a release committed between this poll's index fetch and its
    // fleet fetch would otherwise leave the new fleet without its index until the next poll, and
    // every host checking in meanwhile would take the full artefact.
    if (kind === 'fleet') await this.slices.poll({ sha256: v.sha256, fleet: v.fleet ?? null, bytes: v.canonical, modelIsCanonical: v.modelIsCanonical, hostSpans: v.hostSpans ?? null }, this.trust);
    this.setInForce(kind, v.canonical, await gzipAsync(v.canonical, { level: 6 }), f.signature, v.sha256, v.signedAt, v.fleet ?? null, v.revocations ?? null, v.modelIsCanonical, v.hostSpans ?? null);
    if (kind === 'fleet') this.o.onFleetChanged();
  }

  private auditEntry(kind: ArtifactKind, what: string, data: Record<string, unknown>): AuditInput {
    return {
      atMs: this.o.now(),
      kind: what,
      actor: 'cp',
      subject: kind,
      data: { ...data, source: this.o.source.describe, inForce: this.inForce.get(kind)?.sha256 ?? null },
    };
  }

  private async audit(kind: ArtifactKind, what: string, data: Record<string, unknown>): Promise<void> {
    await this.o.store.apply([{ kind: 'audit', entry: this.auditEntry(kind, what, data) }]);
  }

  private setInForce(kind: ArtifactKind, bytes: Uint8Array, gzip: Uint8Array, signature: Uint8Array, sha256: string, signedAt: string, fleet: FleetResolved | null, revocations: Revocations | null, modelIsCanonical: boolean, hostSpans: Uint32Array | null): void {
    this.inForce.set(kind, { kind, bytes, gzip: new Uint8Array(gzip.buffer, gzip.byteOffset, gzip.byteLength), signature, sha256, signedAt, fleet, revocations, modelIsCanonical, hostSpans });
    if (kind === 'revocations' && revocations !== null) {
      const m = new Map<string, number>();
      for (const rv of revocations.revocations) {
        const t = Date.parse(rv.notBefore);
        if (!Number.isFinite(t)) continue;
        m.set(rv.hostname, Math.max(m.get(rv.hostname) ?? -Infinity, t));
      }
      this.revokedBefore = m;
    }
  }
}
