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

/**
 * Issue 19: how long a quiet check-in's time may wait in memory before it is written. A crash loses
 * at most this much of the hosts' last check-in times (`offlineAfterSecs` is 180 s by default).
 */
export const TOUCH_FLUSH_MS = 2000;

export class HostsTable {
  private readonly get_: Database.Statement<[string], HostRecord>;
  private readonly all_: Database.Statement<[], HostRecord>;
  private readonly upsert: Database.Statement<[HostParams & { probesJson: string; lastOutcomeJson: string | null; pendingReboot: number; agentVersion: string | null; certNotAfterMs: number | null }]>;
  private readonly obsUpsert: Database.Statement<[HostParams]>;
  private readonly pendingReboot: Database.Statement<[number, string]>;
  private readonly touchStmt: Database.Statement<[number, string, string, number]>;
  /**
   * Issue 19 (quiet-checkins.ts): check-in times and probe details of quiet check-ins not written
   * yet. Reads of a row see them (the newer check-in wins); `flushTouches` writes them. `probesJson`
   * is the check-in's probes serialised at once: a string of its own, where the array would keep
   * alive, until the write, the strings parsed from the body — slices of the whole body's text
   * (protocol/decode.ts) — and with them the body, about 450 bytes per host moved into V8's old
   * generation and marked by its major GCs (docs/performance.md, session 13).
   */
  private touches = new Map<string, { lastCheckinMs: number; probesJson: string }>();

  private touchTimer: NodeJS.Timeout | null = null;

  /** `inTx`: runs a function in one write transaction (the store's). */
  constructor(
    db: Database.Database,
    private readonly inTx: (fn: () => void) => void = (fn) => fn(),
  ) {
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
    this.touchStmt = db.prepare('UPDATE hosts SET last_checkin_ms = ?, probes_json = ? WHERE hostname = ? AND (last_checkin_ms IS NULL OR last_checkin_ms <= ?)');
  }

  get(hostname: string): HostRow | null {
    const r = this.get_.get(hostname);
    return r === undefined ? null : this.touched(toHostRow(r));
  }

  all(): HostRow[] {
    const rows = this.all_.all().map(toHostRow);
    return this.touches.size === 0 ? rows : rows.map((h) => this.touched(h));
  }

  /** A quiet check-in's time and probe details, written by the next `flushTouches`. */
  touch(hostname: string, lastCheckinMs: number, probes: readonly unknown[]): void {
    // A host already waiting in this batch: its entry is updated, not replaced (nothing new to keep).
    const t = this.touches.get(hostname);
    const probesJson = JSON.stringify(probes);
    if (t !== undefined) {
      t.lastCheckinMs = lastCheckinMs;
      t.probesJson = probesJson;
    } else this.touches.set(hostname, { lastCheckinMs, probesJson });
    this.touchTimer ??= setTimeout(() => this.flushTouches(), TOUCH_FLUSH_MS).unref();
  }

  /** Whether touches wait for `flushTouches` (tests). */
  get touchesPending(): number {
    return this.touches.size;
  }

  /**
   * Write the pending touches in one transaction (at most `TOUCH_FLUSH_MS` after the first, and
   * when the store closes). A host row written after a touch drops it (`put`, `putObservation`);
   * the SQL condition keeps a later check-in's time as a second guard. When the write
   * fails (disk full, a busy lock past its timeout) they stay pending and the next flush tries again.
   */
  flushTouches(): void {
    if (this.touchTimer !== null) clearTimeout(this.touchTimer);
    this.touchTimer = null;
    if (this.touches.size === 0) return;
    const batch = this.touches;
    this.touches = new Map();
    try {
      this.inTx(() => {
        for (const [h, t] of batch) this.touchStmt.run(t.lastCheckinMs, t.probesJson, h, t.lastCheckinMs);
      });
    } catch {
      for (const [h, t] of batch) if (!this.touches.has(h)) this.touches.set(h, t);
      this.touchTimer ??= setTimeout(() => this.flushTouches(), TOUCH_FLUSH_MS).unref();
    }
  }

  private touched(h: HostRow): HostRow {
    const t = this.touches.get(h.hostname);
    if (t === undefined || (h.lastCheckinMs !== null && h.lastCheckinMs > t.lastCheckinMs)) return h;
    return { ...h, lastCheckinMs: t.lastCheckinMs, probesJson: t.probesJson };
  }

  put(h: HostRow): void {
    this.touches.delete(h.hostname); // the row written now is newer than a pending touch
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
    this.touches.delete(hostname);
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
