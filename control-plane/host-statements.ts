/**
 * Statements a host signs with its SSH host key (the key the signed fleet declares for it,
 * `hosts[h].pubkey`): reports, confirmed records and the last outcome in a check-in (issue 14).
 * Verifies them and turns a check-in's last outcome into the host event it causes, or a refusal
 * (OUTCOME_SIGNATURE_INVALID / OUTCOME_STALE) with its audit entry. Keys are cached per artefact.
 */
import type { LastOutcome, OutcomeRefusal, ReportVerdict, SignedConfirmedRecord } from '../protocol/api.ts';
import { fromBase64, parseOpenSshEd25519, toBase64, verifySignature } from '../protocol/crypto.ts';
import { canonicalBytes } from '../protocol/jcs.ts';
import { outcomeStatement } from '../protocol/outcome.ts';
import { hostTransition } from '../reconciler/apply.ts';
import type { HostEvent, Observed } from '../reconciler/types.ts';
import type { ArtifactManager } from './artifacts.ts';
import type { Logger } from './log.ts';
import type { CpMetrics } from './metrics.ts';
import type { Store, Write } from './store/types.ts';

const OUTCOME_CLOCK_SKEW_MS = 5 * 60_000; // how far a host's clock may lag for its outcome to count as after its dispatch
const iso = (ms: number): string => new Date(ms).toISOString();

export type HostStatementsDeps = { artifacts: ArtifactManager; store: Store; metrics: CpMetrics; log: Logger };

export class HostStatements {
  private hostKeys = new Map<string, string | null>();
  private keysFor: string | null = null;

  constructor(private readonly d: HostStatementsDeps) {}

  /** The host's ed25519 key (base64 raw) from the fleet in force; cached per artefact. */
  hostKey(hostname: string): string | null {
    const a = this.d.artifacts.fleet();
    if (a === null || a.fleet === null) return null;
    if (this.keysFor !== a.sha256) {
      this.hostKeys = new Map();
      this.keysFor = a.sha256;
    }
    let k = this.hostKeys.get(hostname);
    if (k === undefined) {
      const line = a.fleet.hosts[hostname]?.pubkey ?? null;
      const raw = line === null ? null : parseOpenSshEd25519(line);
      k = raw !== null && raw.ok ? toBase64(raw.value) : null;
      if (line !== null && (raw === null || !raw.ok)) this.d.log.warn('host.pubkey-invalid', { host: hostname, code: 'INVALID_PUBKEY' });
      this.hostKeys.set(hostname, k);
    }
    return k;
  }

  /** Verify a host's Ed25519 signature (base64, 64 raw bytes) over the JCS bytes of `value`. */
  verify(hostname: string, value: unknown, signatureB64: string | null): ReportVerdict {
    const key = this.hostKey(hostname);
    if (key === null) return 'unsigned-no-pubkey';
    if (signatureB64 === null) return 'invalid';
    const sig = fromBase64(signatureB64);
    const bytes = canonicalBytes(value);
    if (sig === null || sig.length !== 64 || !bytes.ok) return 'invalid';
    return verifySignature('ed25519', key, bytes.value, sig) ? 'verified' : 'invalid';
  }

  /** The writes that store a host's signed statement of what it confirmed (rebuild evidence), and its verdict. */
  confirmedStatement(h: string, s: SignedConfirmedRecord, nowMs: number, via: string): { verdict: ReportVerdict; writes: Write[] } {
    const verdict = this.verify(h, s.record, s.signature);
    const bytes = canonicalBytes(s.record);
    const reportJson = bytes.ok ? new TextDecoder().decode(bytes.value) : JSON.stringify(s.record);
    return {
      verdict,
      writes: [
        { kind: 'report', row: { hostname: h, receivedMs: nowMs, event: 'confirmed-record', rolloutId: s.record.rolloutId, reportJson, signature: s.signature, verdict }, audit: null },
        { kind: 'audit', entry: { atMs: nowMs, kind: 'host.confirmed-record', actor: `host:${h}`, subject: s.record.rolloutId, data: { via, record: s.record, signature: s.signature, verdict } } },
      ],
    };
  }

  /**
   * The host event a check-in's last outcome causes, null when it would move nothing (so the
   * honest agent repeating its outcome costs no signature check), or why it is refused: the
   * signature must verify under the host key (unless the fleet has none for it), the closure must
   * be the one dispatched, and `at` must not be older than the dispatch (a replayed statement),
   * with `OUTCOME_CLOCK_SKEW_MS` of tolerance for the host's clock.
   */
  async outcomeEvent(h: string, lo: LastOutcome, signature: string | null, slice: Observed): Promise<{ ok: true; event: HostEvent } | { ok: false; code: OutcomeRefusal; message: string } | null> {
    const rh = slice.rollouts[lo.rolloutId]?.hosts[h];
    if (rh === undefined) return null;
    const event: HostEvent | null =
      lo.outcome === 'rolled-back'
        ? { kind: 'rolled-back', rolloutId: lo.rolloutId, reason: 'agent reports it rolled back (signed outcome in a check-in)' }
        : lo.outcome === 'activation-failed'
          ? { kind: 'failed', rolloutId: lo.rolloutId, reason: 'agent reports activation failed (signed outcome in a check-in)' }
          : null;
    if (event === null || hostTransition(rh.state, event) === null) return null;
    const verdict = this.verify(h, outcomeStatement(h, lo), signature);
    if (verdict === 'invalid') {
      return { ok: false, code: 'OUTCOME_SIGNATURE_INVALID', message: `the last outcome's signature does not verify under the host key of ${h} in the signed fleet: ignored` };
    }
    if (lo.closureHash !== rh.closure) return { ok: false, code: 'OUTCOME_STALE', message: `the last outcome is for ${lo.closureHash}, rollout ${lo.rolloutId} dispatched ${rh.closure}: ignored` };
    const d = await this.d.store.getDispatch(lo.rolloutId, h);
    const atMs = Date.parse(lo.at);
    if (d !== null && !(atMs >= d.createdMs - OUTCOME_CLOCK_SKEW_MS)) {
      return { ok: false, code: 'OUTCOME_STALE', message: `the last outcome (${lo.at}) is older than the dispatch of ${lo.rolloutId} to ${h} (${iso(d.createdMs)}): a replayed statement, ignored` };
    }
    return { ok: true, event };
  }

  /** The audit entry of a refused outcome: the claim and its signature, kept for the auditor. */
  refusedOutcome(h: string, lo: LastOutcome, signature: string | null, refused: { code: OutcomeRefusal; message: string }, nowMs: number): Write {
    this.d.metrics.outcomesRefused.inc({ code: refused.code });
    this.d.log.warn('checkin.outcome-refused', { host: h, code: refused.code, rolloutId: lo.rolloutId, outcome: lo.outcome });
    return { kind: 'audit', entry: { atMs: nowMs, kind: 'checkin.outcome-refused', actor: `host:${h}`, subject: lo.rolloutId, data: { code: refused.code, statement: outcomeStatement(h, lo), signature, reason: refused.message } } };
  }
}
