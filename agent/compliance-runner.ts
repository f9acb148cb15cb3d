/**
 * When the agent runs its runtime compliance checks and what it sends (issue 15): the controls of
 * its channel's frameworks (built-ins, plus the fleet's own carried in the signed artefact) — after
 * each activation, before the confirm, and every `complianceIntervalSecs` — each record signed with
 * the host key (JCS + Ed25519, like reports). The newest set waits in `outbox` until a check-in
 * or confirm carried it. The policy comes only from signed bytes the agent verified itself.
 */
import type { Logger } from '../io/log.ts';
import type { SignedEvidence } from '../protocol/compliance-api.ts';
import { CATALOGUE, controlsForFrameworks, mergeCatalogue, type Control } from '../protocol/compliance.ts';
import type { PrivateKey } from '../protocol/crypto.ts';
import { parseFleetResolved, type ComplianceMode, type FleetResolved } from '../protocol/schema.ts';
import { collectEvidence, type CheckIo } from './compliance.ts';
import { signJcs } from './hostkey.ts';
import type { StateStore } from './state.ts';

export type CompliancePolicy = { mode: ComplianceMode; frameworks: readonly string[]; own: readonly Control[] };

/** The policy of `hostname`'s channel in a verified artefact (null: host or channel absent). */
export function policyOf(fleet: Pick<FleetResolved, 'hosts' | 'channels' | 'compliance'>, hostname: string): CompliancePolicy | null {
  const ch = fleet.hosts[hostname]?.channel;
  const c = ch === undefined ? undefined : fleet.channels[ch]?.compliance;
  return c === undefined ? null : { mode: c.mode, frameworks: c.frameworks, own: fleet.compliance?.controls ?? [] };
}

/** The policy in the newest artefact this agent verified and kept (after a restart), or null. */
export function storedPolicy(store: Pick<StateStore, 'loadAccepted' | 'loadArtifact'>, hostname: string): CompliancePolicy | null {
  const a = store.loadAccepted('fleet');
  const art = a === null ? null : store.loadArtifact(a.sha256);
  if (art === null) return null;
  try {
    const f = parseFleetResolved(JSON.parse(new TextDecoder().decode(art.bytes)));
    return f.ok ? policyOf(f.value, hostname) : null;
  } catch {
    return null;
  }
}

export type ComplianceRunnerDeps = {
  hostname: string;
  io: CheckIo | null;
  hostKey: PrivateKey | null;
  intervalSecs: number;
  now: () => number;
  log: Logger;
};

export class ComplianceRunner {
  policy: CompliancePolicy | null = null;
  /** Signed records not yet accepted by the CP (the newest run only). */
  outbox: SignedEvidence[] = [];
  private lastRunMs = -Infinity;
  /** closure|rollout of the activation whose pre-confirm checks already ran. */
  private ranFor: string | null = null;

  constructor(private readonly d: ComplianceRunnerDeps) {}

  /** Whether checks apply at all (a checker, a policy, a mode other than disabled, some controls). */
  private controls(): Control[] {
    const p = this.policy;
    if (this.d.io === null || p === null || p.mode === 'disabled') return [];
    // Signed data, but checked like any input: a malformed fleet control is left out, not run.
    const merged = mergeCatalogue(p.own);
    if (!merged.ok) this.d.log.warn('agent.compliance-controls-refused', { code: merged.error.code, message: `${merged.error.message}; running the built-in ones` });
    return controlsForFrameworks(p.frameworks, merged.ok ? merged.value : CATALOGUE).filter((c) => c.runtime !== null);
  }

  /** Periodic run, when `intervalSecs` have passed since the last one. */
  async maybeRun(closure: string | null, bootId: string): Promise<void> {
    if (this.d.now() - this.lastRunMs < this.d.intervalSecs * 1000) return;
    await this.run(closure, null, bootId);
  }

  /** The run after an activation, once per activation (the confirm window may retry its probes). */
  async afterActivation(closure: string | null, rolloutId: string | null, bootId: string): Promise<void> {
    const key = `${closure}|${rolloutId}`;
    if (this.ranFor === key) return;
    this.ranFor = key;
    await this.run(closure, rolloutId, bootId);
  }

  private async run(closure: string | null, rolloutId: string | null, bootId: string): Promise<void> {
    const controls = this.controls();
    this.lastRunMs = this.d.now();
    if (controls.length === 0) return;
    const records = await collectEvidence(controls, this.d.io!, { hostname: this.d.hostname, closure, bootId, rolloutId, nowIso: () => new Date(this.d.now()).toISOString() });
    const key = this.d.hostKey;
    this.outbox = records.map((record) => ({ record, signature: key === null ? null : signJcs(record, key) }));
    const failing = records.filter((r) => r.result !== 'pass').map((r) => r.control);
    this.d.log.info('agent.compliance-run', { checks: records.length, closure: closure ?? null, failing });
  }

  /** What the next request carries (undefined: nothing new). */
  pending(): SignedEvidence[] | undefined {
    return this.outbox.length === 0 ? undefined : this.outbox;
  }

  /** The CP took (or, refusing the records, will never take) what `pending` returned. */
  delivered(sent: SignedEvidence[] | undefined): void {
    if (sent !== undefined && this.outbox === sent) this.outbox = [];
  }
}
