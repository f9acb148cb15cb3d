/**
 * The SQLite schema, as numbered migrations (`PRAGMA user_version`). Tables: hosts (last check-in),
 * rollouts + rollout_hosts (state with entry times) + transitions (history), dispatches (targets
 * handed out, with confirm deadlines), quarantines, pauses, last_converged, deferrals, reports
 * (with host signatures and verdict), artifacts (last accepted artefact per kind: bytes, signature,
 * signedAt — rollback protection survives restarts), audit (hash chain); since version 2 host_drift
 * and rollout_controls (issue 14: drift, stall, change-window hold, hosts released by an operator),
 * version 3 audit_anchor (retention, issue 17), version 4 evidence + evidence_latest (host-signed
 * compliance evidence, issue 15), version 5 artifact_history (every accepted artefact: the
 * releases in force over a period, for the evidence packet), version 6 audit_witness.
 */
import type Database from 'better-sqlite3';
import { witnessTable } from './witness.ts';

export const MIGRATIONS: readonly string[] = [
  // 1: initial schema
  `
  CREATE TABLE hosts (
    hostname TEXT PRIMARY KEY,
    last_checkin_ms INTEGER,
    current_closure TEXT,
    boot_id TEXT,
    probes_observed INTEGER NOT NULL DEFAULT 0,
    probes_passing INTEGER NOT NULL DEFAULT 0,
    failed_units TEXT NOT NULL DEFAULT '[]',
    compliance_failures TEXT,
    probes_json TEXT NOT NULL DEFAULT '[]',
    last_outcome_json TEXT,
    pending_reboot INTEGER NOT NULL DEFAULT 0,
    agent_version TEXT
  );
  CREATE TABLE rollouts (
    id TEXT PRIMARY KEY,
    channel TEXT NOT NULL,
    target_ref TEXT NOT NULL,
    state TEXT NOT NULL,
    current_wave INTEGER NOT NULL,
    wave_count INTEGER NOT NULL,
    opened_at_ms INTEGER NOT NULL,
    started_at_ms INTEGER,
    state_reason TEXT NOT NULL,
    signed_at TEXT NOT NULL,
    artifact_sha256 TEXT NOT NULL,
    updated_at_ms INTEGER NOT NULL
  );
  CREATE INDEX rollouts_channel ON rollouts(channel, opened_at_ms);
  CREATE INDEX rollouts_state ON rollouts(state);
  CREATE TABLE rollout_hosts (
    rollout_id TEXT NOT NULL REFERENCES rollouts(id),
    hostname TEXT NOT NULL,
    state TEXT NOT NULL,
    entered_at_ms INTEGER NOT NULL,
    closure TEXT NOT NULL,
    wave INTEGER NOT NULL,
    skip_json TEXT,
    rollback_requested INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (rollout_id, hostname)
  ) WITHOUT ROWID;
  CREATE INDEX rollout_hosts_host ON rollout_hosts(hostname);
  CREATE TABLE transitions (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    rollout_id TEXT NOT NULL,
    at_ms INTEGER NOT NULL,
    hostname TEXT,
    from_state TEXT,
    to_state TEXT NOT NULL,
    wave INTEGER NOT NULL,
    reason TEXT NOT NULL
  );
  CREATE INDEX transitions_rollout ON transitions(rollout_id, seq);
  CREATE TABLE dispatches (
    rollout_id TEXT NOT NULL,
    hostname TEXT NOT NULL,
    channel TEXT NOT NULL,
    closure TEXT NOT NULL,
    wave INTEGER NOT NULL,
    created_ms INTEGER NOT NULL,
    delivered_ms INTEGER,
    deadline_ms INTEGER,
    status TEXT NOT NULL, -- pending | confirmed | expired | cancelled | failed
    finished_ms INTEGER,
    rollback_reason TEXT,
    PRIMARY KEY (rollout_id, hostname)
  ) WITHOUT ROWID;
  CREATE INDEX dispatches_host ON dispatches(hostname, status);
  CREATE INDEX dispatches_deadline ON dispatches(status, deadline_ms);
  CREATE TABLE quarantines (
    channel TEXT NOT NULL,
    closure TEXT NOT NULL,
    rollout_id TEXT,
    hostname TEXT,
    reason TEXT NOT NULL,
    since_ms INTEGER NOT NULL,
    PRIMARY KEY (channel, closure)
  ) WITHOUT ROWID;
  CREATE TABLE pauses (
    channel TEXT PRIMARY KEY,
    since_ms INTEGER NOT NULL,
    reason TEXT NOT NULL,
    by_actor TEXT NOT NULL
  );
  CREATE TABLE last_converged (channel TEXT PRIMARY KEY, target_ref TEXT NOT NULL);
  CREATE TABLE deferrals (channel TEXT PRIMARY KEY, rollout_id TEXT NOT NULL, reason TEXT NOT NULL, since_ms INTEGER NOT NULL);
  CREATE TABLE reports (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    hostname TEXT NOT NULL,
    received_ms INTEGER NOT NULL,
    event TEXT NOT NULL,
    rollout_id TEXT,
    report_json TEXT NOT NULL,
    signature TEXT,
    verdict TEXT NOT NULL
  );
  CREATE TABLE artifacts (
    kind TEXT PRIMARY KEY,
    signed_at TEXT NOT NULL,
    sha256 TEXT NOT NULL,
    bytes BLOB NOT NULL,
    signature BLOB NOT NULL,
    accepted_ms INTEGER NOT NULL
  );
  CREATE TABLE audit (
    seq INTEGER PRIMARY KEY,
    at TEXT NOT NULL,
    kind TEXT NOT NULL,
    actor TEXT NOT NULL,
    subject TEXT NOT NULL,
    data_json TEXT NOT NULL,
    prev_hash TEXT NOT NULL,
    hash TEXT NOT NULL
  );
  `,
  // 2: issue 14 state the reconcile loop decides on (survives a restart): drift per host, controls per rollout (JSON)
  `
  CREATE TABLE host_drift (hostname TEXT PRIMARY KEY, drift_json TEXT NOT NULL);
  CREATE TABLE rollout_controls (rollout_id TEXT PRIMARY KEY, controls_json TEXT NOT NULL);
  `,
  // 3 — retention (issue 17): the audit chain's anchor once its oldest entries are pruned; reports by age.
  `
  CREATE TABLE audit_anchor (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    seq INTEGER NOT NULL,
    hash TEXT NOT NULL,
    at TEXT NOT NULL,
    pruned_ms INTEGER NOT NULL
  );
  CREATE INDEX IF NOT EXISTS reports_received ON reports (received_ms);
  `,
  // 4: host-signed compliance evidence (issue 15): the newest record per host and control, and the history
  `
  CREATE TABLE evidence (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    hostname TEXT NOT NULL,
    control TEXT NOT NULL,
    result TEXT NOT NULL,
    closure TEXT,
    rollout_id TEXT,
    at TEXT NOT NULL,
    received_ms INTEGER NOT NULL,
    record_json TEXT NOT NULL,
    signature TEXT,
    verdict TEXT NOT NULL
  );
  CREATE INDEX evidence_received ON evidence (received_ms);
  CREATE TABLE evidence_latest (
    hostname TEXT NOT NULL,
    control TEXT NOT NULL,
    result TEXT NOT NULL,
    closure TEXT,
    rollout_id TEXT,
    at TEXT NOT NULL,
    received_ms INTEGER NOT NULL,
    record_json TEXT NOT NULL,
    signature TEXT,
    verdict TEXT NOT NULL,
    PRIMARY KEY (hostname, control)
  ) WITHOUT ROWID;
  `,
  // 5: issue 16 — the expiry of the certificate each host presented at its last check-in
  `ALTER TABLE hosts ADD COLUMN cert_not_after_ms INTEGER;`,
  // 6: every accepted artefact, not only the newest per kind (issue 15: the evidence packet holds the releases in force over a period)
  `
  CREATE TABLE artifact_history (
    kind TEXT NOT NULL,
    sha256 TEXT NOT NULL,
    signed_at TEXT NOT NULL,
    bytes BLOB NOT NULL,
    signature BLOB NOT NULL,
    accepted_ms INTEGER NOT NULL,
    PRIMARY KEY (kind, sha256)
  ) WITHOUT ROWID;
  CREATE INDEX artifact_history_accepted ON artifact_history (kind, accepted_ms);
  INSERT INTO artifact_history (kind, sha256, signed_at, bytes, signature, accepted_ms) SELECT kind, sha256, signed_at, bytes, signature, accepted_ms FROM artifacts;
  `,
  // 7: witnessed audit heads (issue 15: host-signed heads from check-ins, operator checkpoints)
  witnessTable('INTEGER'),
];

/** Bring the schema up to date; refuse a database written by a newer control plane. */
export function migrate(db: Database.Database): void {
  const version = db.pragma('user_version', { simple: true }) as number;
  if (version > MIGRATIONS.length) {
    throw new Error(`database schema version ${version} is newer than this control plane (${MIGRATIONS.length}); refusing to touch it`);
  }
  for (let v = version; v < MIGRATIONS.length; v++) {
    db.transaction(() => {
      db.exec(MIGRATIONS[v]!);
      db.pragma(`user_version = ${v + 1}`);
    })();
  }
}
