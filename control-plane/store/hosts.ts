/** SQLite table `hosts`: the last check-in of each host (observation + the fields only views read). */
import type Database from 'better-sqlite3';
import type { HostObservation, HostRow } from './types.ts';

/** A `hosts` row as SQLite returns it. */
export type HostRecord = {
  hostname: string;
  last_checkin_ms: number | null;
  current_closure: string | null;
  boot_id: string | null;
  probes_observed: number;
  probes_passing: number;
  failed_units: string;
  compliance_failures: string | null;
  probes_json: string;
  last_outcome_json: string | null;
  pending_reboot: number;
  agent_version: string | null;
  cert_not_after_ms: number | null;
};

type HostParams = {
  hostname: string;
  lastCheckinMs: number | null;
  currentClosure: string | null;
  bootId: string | null;
  probesObserved: number;
  probesPassing: number;
  failedUnits: string;
  complianceFailures: string | null;
};

export function toHostRow(r: HostRecord): HostRow {
  return {
    hostname: r.hostname,
    lastCheckinMs: r.last_checkin_ms,
    currentClosure: r.current_closure,
    bootId: r.boot_id,
    probesObserved: r.probes_observed === 1,
    probesPassing: r.probes_passing === 1,
    failedUnits: JSON.parse(r.failed_units) as string[],
    complianceFailures: r.compliance_failures === null ? null : (JSON.parse(r.compliance_failures) as string[]),
    probesJson: r.probes_json,
    lastOutcomeJson: r.last_outcome_json,
    pendingReboot: r.pending_reboot === 1,
    agentVersion: r.agent_version,
    certNotAfterMs: r.cert_not_after_ms ?? null,
  };
}

/** The reconciler's view of a host row. */
export function toObservation(h: HostRow): HostObservation {
  const o: HostObservation = {
    lastCheckinMs: h.lastCheckinMs,
    currentClosure: h.currentClosure,
    probes: { observed: h.probesObserved, passing: h.probesPassing },
    failedUnits: h.failedUnits,
    bootId: h.bootId,
  };
  if (h.complianceFailures !== null) o.complianceFailures = h.complianceFailures;
  return o;
}

export class HostsTable {
  private readonly get_: Database.Statement<[string], HostRecord>;
  private readonly all_: Database.Statement<[], HostRecord>;
  private readonly upsert: Database.Statement<[HostParams & { probesJson: string; lastOutcomeJson: string | null; pendingReboot: number; agentVersion: string | null; certNotAfterMs: number | null }]>;
  private readonly obsUpsert: Database.Statement<[HostParams]>;
  private readonly pendingReboot: Database.Statement<[number, string]>;

  constructor(db: Database.Database) {
    this.get_ = db.prepare('SELECT * FROM hosts WHERE hostname = ?');
    this.all_ = db.prepare('SELECT * FROM hosts ORDER BY hostname');
    this.upsert = db.prepare(`INSERT INTO hosts (hostname, last_checkin_ms, current_closure, boot_id, probes_observed, probes_passing, failed_units,
        compliance_failures, probes_json, last_outcome_json, pending_reboot, agent_version, cert_not_after_ms)
      VALUES (@hostname, @lastCheckinMs, @currentClosure, @bootId, @probesObserved, @probesPassing, @failedUnits, @complianceFailures,
        @probesJson, @lastOutcomeJson, @pendingReboot, @agentVersion, @certNotAfterMs)
      ON CONFLICT(hostname) DO UPDATE SET last_checkin_ms = excluded.last_checkin_ms, current_closure = excluded.current_closure,
        boot_id = excluded.boot_id, probes_observed = excluded.probes_observed, probes_passing = excluded.probes_passing,
        failed_units = excluded.failed_units, compliance_failures = excluded.compliance_failures, probes_json = excluded.probes_json,
        last_outcome_json = excluded.last_outcome_json, pending_reboot = excluded.pending_reboot, agent_version = excluded.agent_version,
        cert_not_after_ms = excluded.cert_not_after_ms`);
    this.obsUpsert = db.prepare(`INSERT INTO hosts (hostname, last_checkin_ms, current_closure, boot_id, probes_observed, probes_passing, failed_units, compliance_failures)
      VALUES (@hostname, @lastCheckinMs, @currentClosure, @bootId, @probesObserved, @probesPassing, @failedUnits, @complianceFailures)
      ON CONFLICT(hostname) DO UPDATE SET last_checkin_ms = excluded.last_checkin_ms, current_closure = excluded.current_closure,
        boot_id = excluded.boot_id, probes_observed = excluded.probes_observed, probes_passing = excluded.probes_passing,
        failed_units = excluded.failed_units, compliance_failures = excluded.compliance_failures`);
    this.pendingReboot = db.prepare('UPDATE hosts SET pending_reboot = ? WHERE hostname = ?');
  }

  get(hostname: string): HostRow | null {
    const r = this.get_.get(hostname);
    return r === undefined ? null : toHostRow(r);
  }

  all(): HostRow[] {
    return this.all_.all().map(toHostRow);
  }

  put(h: HostRow): void {
    this.upsert.run({
      hostname: h.hostname,
      lastCheckinMs: h.lastCheckinMs,
      currentClosure: h.currentClosure,
      bootId: h.bootId,
      probesObserved: h.probesObserved ? 1 : 0,
      probesPassing: h.probesPassing ? 1 : 0,
      failedUnits: JSON.stringify(h.failedUnits),
      complianceFailures: h.complianceFailures === null ? null : JSON.stringify(h.complianceFailures),
      probesJson: h.probesJson,
      lastOutcomeJson: h.lastOutcomeJson,
      pendingReboot: h.pendingReboot ? 1 : 0,
      agentVersion: h.agentVersion,
      certNotAfterMs: h.certNotAfterMs,
    });
  }

  putObservation(hostname: string, o: HostObservation): void {
    this.obsUpsert.run({
      hostname,
      lastCheckinMs: o.lastCheckinMs,
      currentClosure: o.currentClosure,
      bootId: o.bootId,
      probesObserved: o.probes.observed ? 1 : 0,
      probesPassing: o.probes.passing ? 1 : 0,
      failedUnits: JSON.stringify(o.failedUnits),
      complianceFailures: o.complianceFailures === undefined ? null : JSON.stringify(o.complianceFailures),
    });
  }

  setPendingReboot(hostname: string, pending: boolean): void {
    this.pendingReboot.run(pending ? 1 : 0, hostname);
  }
}
