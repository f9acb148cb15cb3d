/**
 * Agent-side metrics (issue 18), written as a Prometheus text file after every cycle for
 * node_exporter's textfile collector (`metricsFile` in the config; the NixOS module points it at
 * the collector's directory). A file rather than a listening port: the agent opens no port.
 * Names start with `nixfleet_agent_`; monitoring/ uses them (monitoring/metrics.test.ts).
 */
import { Counter, Gauge, Registry } from 'prom-client';
import { writeFileAtomic } from '../io/atomic-file.ts';
import { NIXFLEET_VERSION } from '../io/version.ts';
import type { AgentDeps } from './loop.ts';

type Observation = Parameters<NonNullable<AgentDeps['observe']>>[0];

export class AgentMetrics {
  readonly registry = new Registry();
  private readonly cycles: Counter<'outcome'>;
  private readonly refusals: Counter<'code'>;
  private readonly activations: Counter<'outcome'>;
  private readonly lastCycle: Gauge;
  private readonly lastCheckin: Gauge;
  private readonly failures: Gauge;
  private readonly phase: Gauge<'phase'>;

  constructor(hostname: string) {
    const registers = [this.registry];
    this.registry.setDefaultLabels({ host: hostname });
    new Gauge({ name: 'nixfleet_agent_build_info', help: 'Always 1; the version and Node.js runtime of this agent', labelNames: ['version', 'node'], registers }).set({ version: NIXFLEET_VERSION, node: process.version }, 1);
    this.cycles = new Counter({ name: 'nixfleet_agent_cycles_total', help: 'Check-in cycles by outcome (ticked, checkin-failed, no-target, busy, refused, activated, rollback-instruction, error)', labelNames: ['outcome'], registers });
    this.refusals = new Counter({ name: 'nixfleet_agent_refusals_total', help: 'Targets this agent refused, by code (signature, freshness, rollback, quarantine, agent guard, …)', labelNames: ['code'], registers });
    this.activations = new Counter({ name: 'nixfleet_agent_activations_total', help: 'Activations settled, by outcome (confirmed, rolled-back, activation-deferred, …)', labelNames: ['outcome'], registers });
    this.lastCycle = new Gauge({ name: 'nixfleet_agent_last_cycle_timestamp_seconds', help: 'When the last cycle ended', registers });
    this.lastCheckin = new Gauge({ name: 'nixfleet_agent_last_checkin_success_timestamp_seconds', help: 'When the control plane last answered a check-in', registers });
    this.failures = new Gauge({ name: 'nixfleet_agent_consecutive_failures', help: 'Check-ins or cycles failed in a row (0 after a good one)', registers });
    this.phase = new Gauge({ name: 'nixfleet_agent_phase', help: '1 for the activation phase the agent is in (idle, switching, confirming, …)', labelNames: ['phase'], registers });
  }

  observe(o: Observation): void {
    const kind = o.outcome.kind;
    this.cycles.inc({ outcome: kind });
    this.lastCycle.set(o.nowMs / 1000);
    this.failures.set(o.failures);
    if (kind !== 'checkin-failed' && kind !== 'error' && kind !== 'ticked') this.lastCheckin.set(o.nowMs / 1000);
    if (o.outcome.kind === 'refused') this.refusals.inc({ code: o.outcome.code });
    if (o.outcome.kind === 'activated' && o.outcome.outcome !== null) this.activations.inc({ outcome: o.outcome.outcome });
    if (o.phase !== null) {
      this.phase.reset();
      this.phase.set({ phase: o.phase }, 1);
    }
  }

  text(): Promise<string> {
    return this.registry.metrics();
  }

  /** Rewrite `path` atomically (mode 0644: node_exporter reads it). */
  async writeTo(path: string): Promise<void> {
    writeFileAtomic(path, await this.text(), { mode: 0o644 });
  }
}
