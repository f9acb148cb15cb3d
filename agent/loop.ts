/**
 * The agent's imperative shell (SPEC §6): the poll loop around the pure activation machine.
 *
 * One cycle: (while an activation is in its confirm window, only tick the machine) flush queued
 * reports → check in → on a rollback instruction, let the machine decide → on a target, fetch the
 * artefact if its sha256 is not cached, verify it ITSELF (own trust.json, own newest accepted
 * signedAt), match the target against the signed bytes, then drive the machine. Polls every
 * `pollIntervalSecs` (or the CP's `nextCheckinSecs`) with ±`pollJitterPct` jitter, backs off
 * exponentially on errors (capped at `maxBackoffFactor` ×) and never comes back before a
 * `Retry-After`.
 *
 * Everything with effects is injected (backend, store, client, probes, clock, sleep, randomness,
 * boot id, trust loader), so the loop runs the same against real Nix and a real CP as against
 * fakes. `compose.ts` (`buildAgent`) is the one place that picks them.
 */
import { NIXFLEET_VERSION } from '../io/version.ts';
import { logBug, type Logger } from '../io/log.ts';
import { basename } from 'node:path';
import type { CheckinRequest, CheckinResponse, ConfirmRequest, LastOutcome as ApiLastOutcome, ProbeResult, ReportRequest, SignedConfirmedRecord, SliceResponse, Target } from '../protocol/api.ts';
import { outcomeStatement } from '../protocol/api.ts';
import type { Channel } from '../protocol/fleet.ts';
import { CHANNEL_CONTROL_DEFAULTS } from '../protocol/windows.ts';
import type { PrivateKey } from '../protocol/crypto.ts';
import type { Result } from '../protocol/result.ts';
import type { Host, Trust } from '../protocol/schema.ts';
import type { ActivationBackend } from './backend.ts';
import type { CheckIo } from './compliance.ts';
import { ComplianceRunner, policyOf, storedPolicy } from './compliance-runner.ts';
import type { HttpError } from './client.ts';
import type { Config } from './config.ts';
import { drive, type DriveDeps } from './drive.ts';
import { nextDelayMs } from './timing.ts';
import { signJcs } from './hostkey.ts';
import {
  afterBoot,
  INITIAL_STATE,
  instructedRollback,
  isQuarantined,
  pruneQuarantine,
  reconfirm,
  recover,
  step,
  type Job,
  type LastOutcome,
  type MachineConfig,
  type MachineState,
  type Step,
} from './machine.ts';
import type { ProbeRunner } from './probes.ts';
import { StateCorrupt, type StateStore } from './state.ts';
import { checkSliceTarget, type SliceTargetError, type SliceTargetErrorCode } from './slice.ts';
import { checkTarget } from './target.ts';
import { ReportQueue, type ReportInput } from './reports.ts';

/** The control-plane calls the loop makes (`CpClient` implements it). */
export interface CpApi {
  checkin(body: CheckinRequest): Promise<Result<CheckinResponse, HttpError>>;
  fetchArtifact(): Promise<Result<{ bytes: Uint8Array; signature: Uint8Array }, HttpError>>;
  /** This host's signed slice (issue 19); optional: without it the loop uses the full artefact. */
  fetchSlice?(): Promise<Result<SliceResponse, HttpError>>;
  report(body: ReportRequest): Promise<Result<void, HttpError>>;
  confirm(body: ConfirmRequest): Promise<{ result: 'ok' | 'gone' | 'error'; message: string }>;
}

/** Everything the loop acts through; `buildAgent` (compose.ts) supplies the real ones. */
export type AgentDeps = {
  config: Config;
  backend: ActivationBackend;
  store: StateStore;
  client: CpApi;
  hostKey: PrivateKey | null;
  loadTrust: () => Result<Trust, { code: string; message: string }>;
  probes: ProbeRunner;
  now: () => number;
  sleep: (ms: number, signal?: AbortSignal) => Promise<void>;
  random: () => number;
  bootId: () => string;
  /** Issue 14: reboot the machine (channel rebootPolicy automatic); absent: never rebooted by the agent. */
  reboot?: () => Promise<{ ok: boolean; message: string }>;
  /** Issue 15: the host as the runtime compliance checks see it; null/absent: no checks. */
  checkIo?: CheckIo | null;
  log: Logger;
  /** Sees every cycle's outcome (agent metrics, agent/metrics.ts); an error thrown by a cycle is `error`. */
  observe?: (o: { outcome: CycleOutcome | { kind: 'error' }; failures: number; phase: string | null; nowMs: number }) => void | Promise<void>;
};

/** What one cycle did, for `once`, logs and tests. */
export type CycleOutcome =
  | { kind: 'ticked'; phase: string }
  | { kind: 'checkin-failed'; error: HttpError }
  | { kind: 'no-target' }
  | { kind: 'busy'; phase: string }
  | { kind: 'refused'; code: SliceTargetErrorCode | 'QUARANTINED' | 'NO_AGENT_SERVICE' | 'TRUST_INVALID' | 'ARTIFACT_FETCH'; message: string }
  | { kind: 'activated'; phase: string; outcome: LastOutcome['outcome'] | null }
  | { kind: 'rollback-instruction'; acted: boolean };


export class NixfleetAgent {
  /** null until `start()` recovered from the persisted record (and again after an internal error). */
  state: MachineState | null = null;
  waitUntilMs: number | null = null;
  failures = 0;
  private readonly reports: ReportQueue;
  private probeResults: ProbeResult[] = [];
  /** Issue 15: the audit head the CP showed last; the next check-in carries our signature over it. */
  private auditHead: CheckinResponse['auditHead'] = undefined;
  /** When each probe last ran (by name), for the background schedule. */
  private readonly probeRanAt = new Map<string, number>();
  /** The deferred closure the agent asked the machine to reboot into (issue 14; once per process). */
  private rebootRequested: string | null = null;
  private readonly now: () => number;
  private readonly sleep: (ms: number, signal?: AbortSignal) => Promise<void>;
  private readonly random: () => number;
  private readonly bootId: () => string;
  private readonly log: Logger;
  readonly machineConfig: MachineConfig;
  readonly compliance: ComplianceRunner;
  /** The rollout of the activation under way (for the evidence of its pre-confirm checks). */
  private activating: string | null = null;

  constructor(private readonly deps: AgentDeps) {
    this.now = deps.now;
    this.sleep = deps.sleep;
    this.random = deps.random;
    this.bootId = deps.bootId;
    this.log = deps.log;
    this.reports = new ReportQueue({ hostname: deps.config.hostname, hostKey: deps.hostKey, send: (b) => deps.client.report(b), now: deps.now, log: deps.log });
    this.machineConfig = {
      confirmDeadlineSecs: deps.config.confirmDeadlineSecs,
      quarantineHours: deps.config.quarantineHours,
      retryIntervalSecs: deps.config.retryIntervalSecs,
      bootId: deps.bootId(),
    };
    this.compliance = new ComplianceRunner({ hostname: deps.config.hostname, io: deps.checkIo ?? null, hostKey: deps.hostKey, intervalSecs: deps.config.complianceIntervalSecs, now: deps.now, log: deps.log });
  }

  private driveDeps(): DriveDeps {
    const { config, backend, store } = this.deps;
    return {
      backend,
      store,
      now: this.now,
      cfg: this.machineConfig,
      runProbes: async () => {
        const r = await this.deps.probes.run(config.probes, this.now);
        this.probeResults = r.results;
        for (const p of config.probes) this.probeRanAt.set(p.name, this.now());
        const running = await backend.running();
        await this.compliance.afterActivation(running === null ? null : basename(running), this.activating, this.bootId());
        return { ok: r.ok, failures: r.failures };
      },
      confirm: async (rolloutId, closureHash) => {
        const body: ConfirmRequest = {
          hostname: config.hostname,
          rolloutId,
          closureHash,
          bootId: this.bootId(),
          probes: this.probeResults,
          failedUnits: await this.failedUnits(),
        };
        const rec = this.signedRecord(rolloutId, closureHash, this.now());
        if (rec !== null) body.confirmed = rec;
        const evidence = this.compliance.pending();
        if (evidence !== undefined) body.compliance = evidence;
        const r = await this.deps.client.confirm(body);
        if (r.result !== 'error' || r.message.includes('EVIDENCE_SIGNATURE_INVALID')) this.compliance.delivered(evidence); // refused evidence: confirm without it
        this.log.info('agent.confirm', { rolloutId, closure: closureHash, result: r.result, message: r.message });
        return r;
      },
      report: (r) => this.report(r),
      saveConfirmed: (rolloutId, closureHash, atMs) => {
        const rec = this.signedRecord(rolloutId, closureHash, atMs) ?? {
          record: { hostname: config.hostname, rolloutId, closureHash, confirmedAt: new Date(atMs).toISOString() },
          signature: '',
        };
        store.saveConfirmed(rec);
      },
      log: this.log,
    };
  }

  private signedRecord(rolloutId: string, closureHash: string, atMs: number): SignedConfirmedRecord | null {
    if (this.deps.hostKey === null) return null;
    const record = { hostname: this.deps.config.hostname, rolloutId, closureHash, confirmedAt: new Date(atMs).toISOString() };
    return { record, signature: signJcs(record, this.deps.hostKey) };
  }

  private async failedUnits(): Promise<string[]> {
    if (this.deps.config.platform !== 'nixos') return [];
    return (await this.deps.probes.failedUnits()) ?? [];
  }

  /** Signs and sends a report; queues it when the CP cannot be reached. Never throws. */
  report(r: ReportInput): Promise<void> {
    return this.reports.report(r);
  }

  private apply(result: { state: MachineState; waitUntilMs: number | null }): void {
    this.state = result.state;
    this.waitUntilMs = result.waitUntilMs;
  }

  private async run(first: Step): Promise<void> {
    try {
      this.apply(await drive(this.driveDeps(), first));
    } catch (e) {
      // A bug or an unreadable state file: forget the in-memory state; the next cycle recovers
      // from the persisted record again.
      this.state = null;
      this.waitUntilMs = null;
      throw e;
    }
  }

  /** Loads the persisted state and finishes or undoes an interrupted activation (§6). */
  async start(): Promise<void> {
    const { store, backend } = this.deps;
    const nowMs = this.now();
    const outcome = store.loadOutcome();
    const persisted = { quarantine: pruneQuarantine(store.loadQuarantine(), nowMs), ...outcome };
    const pending = store.loadPending();
    const running = await backend.running();
    const confirmed = store.loadConfirmed();
    if (pending !== null) this.log.warn('agent.recovering', { closure: pending.closureHash, phase: pending.phase, deadline: new Date(pending.deadlineMs).toISOString() });
    this.state = INITIAL_STATE;
    this.compliance.policy = storedPolicy(this.deps.store, this.deps.config.hostname);
    await this.run(recover(persisted, pending, running, nowMs, confirmed === null ? null : confirmed.record));
  }

  private apiOutcome(): ApiLastOutcome | null {
    const lo = this.state?.lastOutcome ?? null;
    if (lo === null) return null;
    return { rolloutId: lo.rolloutId, closureHash: lo.closureHash, outcome: lo.outcome, at: new Date(lo.atMs).toISOString() };
  }

  /** Runs the probes whose `intervalSecs` has elapsed, so check-ins carry fresh observations (soak). */
  private async backgroundProbes(): Promise<void> {
    const nowMs = this.now();
    const due = this.deps.config.probes.filter((p) => nowMs - (this.probeRanAt.get(p.name) ?? -Infinity) >= p.intervalSecs * 1000);
    if (due.length === 0) return;
    const r = await this.deps.probes.run(due, this.now);
    for (const p of due) this.probeRanAt.set(p.name, nowMs);
    const fresh = new Map(r.results.map((x) => [x.name, x]));
    const kept = this.probeResults.filter((x) => !fresh.has(x.name) && this.deps.config.probes.some((p) => p.name === x.name));
    this.probeResults = [...kept, ...r.results];
  }

  /** One cycle; returns what happened and when to run the next one. */
  async cycle(): Promise<{ outcome: CycleOutcome; delayMs: number }> {
    const observe = this.deps.observe;
    if (observe === undefined) return this.cycleOnce();
    try {
      const r = await this.cycleOnce();
      await observe({ outcome: r.outcome, failures: this.failures, phase: this.state?.phase.tag ?? null, nowMs: this.now() });
      return r;
    } catch (e) {
      await observe({ outcome: { kind: 'error' }, failures: this.failures + 1, phase: null, nowMs: this.now() });
      throw e;
    }
  }

  private async cycleOnce(): Promise<{ outcome: CycleOutcome; delayMs: number }> {
    if (this.state === null) await this.start();
    const cfg = this.deps.config;
    const base = { baseSecs: cfg.pollIntervalSecs, maxFactor: cfg.maxBackoffFactor, jitterPct: cfg.pollJitterPct };
    const state = this.state!;

    if (state.phase.tag !== 'idle') {
      // Inside an activation: only the machine's own timers matter (probe / confirm retries,
      // the deadline). No check-in until it has settled.
      const wait = this.waitUntilMs ?? this.now();
      if (this.now() >= wait) await this.run(step(state, { kind: 'tick' }, this.now(), this.machineConfig));
      const next = this.waitUntilMs === null ? 0 : Math.max(0, this.waitUntilMs - this.now());
      return { outcome: { kind: 'ticked', phase: this.state!.phase.tag }, delayMs: this.state!.phase.tag === 'idle' ? 0 : next };
    }

    await this.reports.flush();
    await this.backgroundProbes();
    const running = await this.deps.backend.running();
    // Issue 14: a new boot that did not come up on the closure deferred to it → roll back (Reverted).
    const booted = afterBoot(state, this.bootId(), running, this.now());
    if (booted.effects.length > 0) {
      this.log.warn('agent.booted-back', { running: running ?? null, deferred: state.deferred ?? null, message: 'booted back into another system than the deferred one: rolling back the boot entry' });
      await this.run(booted);
      await this.reports.flush();
      return { outcome: { kind: 'activated', phase: this.state!.phase.tag, outcome: this.state!.lastOutcome?.outcome ?? null }, delayMs: 0 };
    }
    const runningBase = running === null ? null : basename(running);
    const lastOutcome = this.apiOutcome();
    await this.compliance.maybeRun(runningBase, this.bootId());
    const evidence = this.compliance.pending();
    const body: CheckinRequest = {
      hostname: cfg.hostname,
      currentClosure: runningBase,
      bootId: this.bootId(),
      agentVersion: NIXFLEET_VERSION,
      probes: this.probeResults,
      failedUnits: await this.failedUnits(),
      lastOutcome,
      lastOutcomeSignature: lastOutcome === null || this.deps.hostKey === null ? null : signJcs(outcomeStatement(cfg.hostname, lastOutcome), this.deps.hostKey),
      pendingReboot: state.deferred !== null && state.deferred !== runningBase,
      lastConfirmed: signedOrNull(this.deps.store.loadConfirmed()),
      ...(evidence === undefined ? {} : { compliance: evidence }),
    };
    const head = this.auditHead;
    if (head !== undefined && head.seq > 0 && this.deps.hostKey !== null) {
      const witness = { hostname: cfg.hostname, seq: head.seq, hash: head.hash, at: new Date(this.now()).toISOString() };
      body.auditWitness = { witness, signature: signJcs(witness, this.deps.hostKey) };
    }
    const res = await this.deps.client.checkin(body);
    // Evidence the CP refused (EVIDENCE_SIGNATURE_INVALID) would be refused again: drop it, keep checking in.
    if (res.ok || res.error.errorCode === 'EVIDENCE_SIGNATURE_INVALID') this.compliance.delivered(evidence);
    if (!res.ok) {
      this.failures += 1;
      this.log.warn('agent.checkin-failed', { code: res.error.code, failures: this.failures, message: res.error.message });
      const d = nextDelayMs({ ...base, failures: this.failures, random: this.random(), ...(res.error.retryAfterSecs === undefined ? {} : { retryAfterSecs: res.error.retryAfterSecs }) });
      return { outcome: { kind: 'checkin-failed', error: res.error }, delayMs: d };
    }
    this.failures = 0;
    this.auditHead = res.value.auditHead ?? this.auditHead;
    if (res.value.outcomeRefused !== undefined) this.log.warn('agent.outcome-refused', { code: res.value.outcomeRefused.code, message: res.value.outcomeRefused.message });
    const n = res.value.nextCheckinSecs;
    const delayMs = nextDelayMs({ ...base, baseSecs: Number.isFinite(n) && n > 0 && n <= 86_400 ? n : cfg.pollIntervalSecs, failures: 0, random: this.random() });

    const instr = res.value.rollback ?? null;
    if (instr !== null && instr !== undefined) {
      const s = instructedRollback(this.state!, instr, running, this.now());
      const acted = s.effects.length > 0;
      if (acted) await this.run(s);
      return { outcome: { kind: 'rollback-instruction', acted }, delayMs: acted ? 0 : delayMs };
    }
    const target = res.value.target;
    if (target === null) return { outcome: { kind: 'no-target' }, delayMs };
    return { outcome: await this.handleTarget(target, running), delayMs: this.state!.phase.tag === 'idle' ? delayMs : 0 };
  }

  private async handleTarget(target: Target, running: string | null): Promise<CycleOutcome> {
    const { store, config } = this.deps;
    const state = this.state!;
    const key = `${target.rolloutId}|${target.closureHash}|${target.artifactSha256}`;
    const refuse = async (code: Extract<CycleOutcome, { kind: 'refused' }>['code'], message: string, event: 'verify-failed' | 'stale-target') => {
      await this.reports.reportOnce(`${event}|${code}|${key}`, { event, rolloutId: target.rolloutId, closureHash: target.closureHash, message, details: { code } });
      return { kind: 'refused' as const, code, message };
    };

    const trust = this.deps.loadTrust();
    if (!trust.ok) return refuse('TRUST_INVALID', `trust.json: ${trust.error.message}`, 'verify-failed');

    const nowMs = this.now();
    const refuseChecked = (e: SliceTargetError) => {
      const lastOutcome: LastOutcome = { rolloutId: target.rolloutId, closureHash: target.closureHash, outcome: 'refused', atMs: nowMs };
      this.state = { ...state, lastOutcome };
      store.saveOutcome(lastOutcome, state.deferred);
      return refuse(e.code, e.message, e.code === 'STALE' ? 'stale-target' : 'verify-failed');
    };
    // A signed slice when the CP offers one (issue 19); the full artefact otherwise, or when the
    // offered slice cannot be fetched (a slice that IS fetched must verify: no fallback then).
    const slice = target.slice === true && this.deps.client.fetchSlice !== undefined ? await this.deps.client.fetchSlice() : null;
    if (slice !== null && !slice.ok) this.log.warn('agent.slice-fetch-failed', { code: slice.error.code, message: slice.error.message });
    let host: Host;
    let channel: Channel | null;
    let cpDeadlineMs: number;
    if (slice !== null && slice.ok) {
      const checked = checkSliceTarget({
        target,
        hostname: config.hostname,
        slice: slice.value,
        trust: trust.value,
        nowMs,
        lastAccepted: store.loadAccepted('index'),
        lastAcceptedFleet: store.loadAccepted('fleet'),
      });
      if (!checked.ok) {
        if (checked.error.acceptedAnyway !== undefined) this.acceptNewer(checked.error.acceptedAnyway, 'index');
        return refuseChecked(checked.error);
      }
      this.acceptNewer(checked.value.verified.accepted, 'index');
      this.acceptNewer(checked.value.fleetAccepted); // the index signs the artefact's sha256 and signedAt
      ({ host, channel, cpDeadlineMs } = checked.value);
      const c = checked.value.leaf.channel.settings?.compliance;
      if (c !== undefined) this.compliance.policy = { mode: c.mode, frameworks: c.frameworks, own: checked.value.leaf.controls ?? [] };
    } else {
      let art = store.loadArtifact(target.artifactSha256);
      if (art === null) {
        const f = await this.deps.client.fetchArtifact();
        if (!f.ok) {
          this.log.warn('agent.artifact-fetch-failed', { code: f.error.code, message: f.error.message });
          return { kind: 'refused', code: 'ARTIFACT_FETCH', message: f.error.message };
        }
        art = f.value;
      }
      const checked = checkTarget({
        target,
        hostname: config.hostname,
        bytes: art.bytes,
        signature: art.signature,
        trust: trust.value,
        nowMs,
        lastAccepted: store.loadAccepted('fleet'),
        maxBytes: config.maxArtifactBytes,
      });
      if (!checked.ok) {
        if (checked.error.acceptedAnyway !== undefined) this.acceptNewer(checked.error.acceptedAnyway);
        return refuseChecked(checked.error);
      }
      const { verified } = checked.value;
      ({ host, channel, cpDeadlineMs } = checked.value);
      this.acceptNewer(verified.accepted);
      this.compliance.policy = policyOf(verified.fleet!, config.hostname) ?? this.compliance.policy;
      if (store.loadArtifact(verified.sha256) === null) store.saveArtifact(verified.sha256, verified.canonical, art.signature);
    }

    const job: Job = {
      rolloutId: target.rolloutId,
      closureHash: target.closureHash,
      closurePath: `/nix/store/${target.closureHash}`,
      cpDeadlineMs,
      leaving: host.leaving === true,
    };
    if (running === job.closurePath) {
      await this.run(reconfirm(state, job));
      return { kind: 'activated', phase: this.state!.phase.tag, outcome: this.state!.lastOutcome?.outcome ?? null };
    }
    if (isQuarantined(state, job.closureHash, nowMs) && this.reports.seen(`quarantined|${key}`)) {
      return { kind: 'refused', code: 'QUARANTINED', message: 'closure is quarantined on this host' };
    }
    this.activating = job.rolloutId;
    const s = step(state, { kind: 'target', job }, nowMs, this.machineConfig);
    if (s.refused?.code === 'QUARANTINED') this.reports.mark(`quarantined|${key}`);
    await this.run(s);
    const after = this.state!;
    if (after.deferred === job.closureHash && running !== job.closurePath) await this.rebootIfAutomatic(job, channel);
    if (s.refused !== undefined && s.refused.code !== 'BUSY') return { kind: 'refused', code: s.refused.code, message: s.refused.message };
    const lo = after.lastOutcome;
    if (lo !== null && lo.closureHash === job.closureHash && lo.rolloutId === job.rolloutId && lo.outcome === 'refused') {
      return { kind: 'refused', code: 'NO_AGENT_SERVICE', message: 'closure lacks the agent service' };
    }
    return { kind: 'activated', phase: after.phase.tag, outcome: lo !== null && lo.closureHash === job.closureHash ? lo.outcome : null };
  }

  /**
   * Issue 14, rebootPolicy `automatic`: reboot into the deferred target now — it just passed the
   * signed checks (window open) and the CP handed it over as a dispatch (within the budget: the
   * host holds its slot as PendingReboot). Once per process; a failing command is only logged.
   */
  private async rebootIfAutomatic(job: Job, channel: Channel | null): Promise<void> {
    if ((channel?.rebootPolicy ?? CHANNEL_CONTROL_DEFAULTS.rebootPolicy) !== 'automatic' || this.deps.reboot === undefined) return;
    if (this.rebootRequested === job.closureHash) return;
    this.rebootRequested = job.closureHash;
    await this.reports.flush(); // the deferral reaches the CP before the machine goes down
    this.log.info('agent.reboot', { closure: job.closurePath, rolloutId: job.rolloutId, reason: 'rebootPolicy automatic' });
    const r = await this.deps.reboot();
    if (!r.ok) this.log.error('agent.reboot-failed', { message: r.message });
  }

  /** Persist the newest accepted state of a kind (never move it backwards). */
  private acceptNewer(a: { signedAt: string; sha256: string }, kind: 'fleet' | 'index' = 'fleet'): void {
    const cur = this.deps.store.loadAccepted(kind);
    if (cur === null || Date.parse(a.signedAt) > Date.parse(cur.signedAt)) this.deps.store.saveAccepted(kind, a);
  }

  /**
   * `once`: a single check-in cycle; when it started an activation, keep ticking until the
   * activation has settled (confirmed or rolled back — bounded by the confirm deadline).
   */
  async once(): Promise<CycleOutcome> {
    let r = await this.cycle();
    const first = r.outcome;
    for (let i = 0; i < 100_000 && this.state !== null && this.state.phase.tag !== 'idle'; i++) {
      await this.sleep(r.delayMs);
      r = await this.cycle();
    }
    return first.kind === 'activated' ? { ...first, phase: this.state?.phase.tag ?? 'idle', outcome: this.state?.lastOutcome?.outcome ?? null } : first;
  }

  /** The daemon loop, until `signal` aborts. Errors are logged and backed off, never fatal. */
  async runForever(signal: AbortSignal): Promise<void> {
    while (!signal.aborted) {
      let delayMs: number;
      try {
        const r = await this.cycle();
        delayMs = r.delayMs;
      } catch (e) {
        this.failures += 1;
        // A corrupt state file is an operator matter (named in the message), not a crash.
        if (e instanceof StateCorrupt) this.log.error('agent.state-corrupt', { code: 'STATE_CORRUPT', message: e.message });
        else logBug(this.log, 'agent.cycle-failed', e);
        const c = this.deps.config;
        delayMs = nextDelayMs({ baseSecs: c.pollIntervalSecs, failures: this.failures, maxFactor: c.maxBackoffFactor, jitterPct: c.pollJitterPct, random: this.random() });
      }
      await this.sleep(delayMs, signal);
    }
  }
}

/** An unsigned record (no host key configured) proves nothing: do not send it. */
function signedOrNull(r: SignedConfirmedRecord | null): SignedConfirmedRecord | null {
  return r !== null && r.signature !== '' ? r : null;
}
