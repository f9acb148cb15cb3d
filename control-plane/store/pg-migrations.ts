/**
 * The PostgreSQL schema, as numbered migrations side by side with SQLite's (migrations.ts): the same
 * tables and columns (flags as SMALLINT 0/1 and JSON as TEXT, so both backends share the row
 * mappers), plus what several replicas need: `leader` (the lease row: holder, epoch, expiry; see
 * pg-leader.ts). The version lives in `schema_version`; migrations run under an advisory lock so
 * that replicas starting together migrate once.
 */
import type pg from 'pg';
import { witnessTable } from './witness.ts';

export const PG_MIGRATIONS: readonly string[] = [
  // 1: initial schema (= SQLite migration 1) + the leader lease
  `
  CREATE TABLE hosts (
    hostname TEXT PRIMARY KEY,
    last_checkin_ms BIGINT,
    current_closure TEXT,
    boot_id TEXT,
    probes_observed SMALLINT NOT NULL DEFAULT 0,
    probes_passing SMALLINT NOT NULL DEFAULT 0,
    failed_units TEXT NOT NULL DEFAULT '[]',
    compliance_failures TEXT,
    probes_json TEXT NOT NULL DEFAULT '[]',
    last_outcome_json TEXT,
    pending_reboot SMALLINT NOT NULL DEFAULT 0,
    agent_version TEXT
  );
  CREATE TABLE rollouts (
    id TEXT PRIMARY KEY,
    channel TEXT NOT NULL,
    target_ref TEXT NOT NULL,
    state TEXT NOT NULL,
    current_wave INTEGER NOT NULL,
    wave_count INTEGER NOT NULL,
    opened_at_ms BIGINT NOT NULL,
    started_at_ms BIGINT,
    state_reason TEXT NOT NULL,
    signed_at TEXT NOT NULL,
    artifact_sha256 TEXT NOT NULL,
    updated_at_ms BIGINT NOT NULL
  );
  CREATE INDEX rollouts_channel ON rollouts(channel, opened_at_ms);
  CREATE INDEX rollouts_state ON rollouts(state);
  CREATE TABLE rollout_hosts (
    rollout_id TEXT NOT NULL REFERENCES rollouts(id),
    hostname TEXT NOT NULL,
    state TEXT NOT NULL,
    entered_at_ms BIGINT NOT NULL,
    closure TEXT NOT NULL,
    wave INTEGER NOT NULL,
    skip_json TEXT,
    rollback_requested SMALLINT NOT NULL DEFAULT 0,
    PRIMARY KEY (rollout_id, hostname)
  );
  CREATE INDEX rollout_hosts_host ON rollout_hosts(hostname);
  CREATE TABLE transitions (
    seq BIGSERIAL PRIMARY KEY,
    rollout_id TEXT NOT NULL,
    at_ms BIGINT NOT NULL,
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
    created_ms BIGINT NOT NULL,
    delivered_ms BIGINT,
    deadline_ms BIGINT,
    status TEXT NOT NULL,
    finished_ms BIGINT,
    rollback_reason TEXT,
    PRIMARY KEY (rollout_id, hostname)
  );
  CREATE INDEX dispatches_host ON dispatches(hostname, status);
  CREATE INDEX dispatches_deadline ON dispatches(status, deadline_ms);
  CREATE TABLE quarantines (
    channel TEXT NOT NULL,
    closure TEXT NOT NULL,
    rollout_id TEXT,
    hostname TEXT,
    reason TEXT NOT NULL,
    since_ms BIGINT NOT NULL,
    PRIMARY KEY (channel, closure)
  );
  CREATE TABLE pauses (channel TEXT PRIMARY KEY, since_ms BIGINT NOT NULL, reason TEXT NOT NULL, by_actor TEXT NOT NULL);
  CREATE TABLE last_converged (channel TEXT PRIMARY KEY, target_ref TEXT NOT NULL);
  CREATE TABLE deferrals (channel TEXT PRIMARY KEY, rollout_id TEXT NOT NULL, reason TEXT NOT NULL, since_ms BIGINT NOT NULL);
  CREATE TABLE reports (
    id BIGSERIAL PRIMARY KEY,
    hostname TEXT NOT NULL,
    received_ms BIGINT NOT NULL,
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
    bytes BYTEA NOT NULL,
    signature BYTEA NOT NULL,
    accepted_ms BIGINT NOT NULL
  );
  CREATE TABLE audit (
    seq BIGINT PRIMARY KEY,
    at TEXT NOT NULL,
    kind TEXT NOT NULL,
    actor TEXT NOT NULL,
    subject TEXT NOT NULL,
    data_json TEXT NOT NULL,
    prev_hash TEXT NOT NULL,
    hash TEXT NOT NULL
  );
  CREATE TABLE leader (
    id SMALLINT PRIMARY KEY CHECK (id = 1),
    holder TEXT NOT NULL,
    epoch BIGINT NOT NULL,
    expires_at TIMESTAMPTZ NOT NULL
  );
  `,
  // 2: = SQLite migration 2 (issue 14: drift per host, controls per rollout)
  `
  CREATE TABLE host_drift (hostname TEXT PRIMARY KEY, drift_json TEXT NOT NULL);
  CREATE TABLE rollout_controls (rollout_id TEXT PRIMARY KEY, controls_json TEXT NOT NULL);
  `,
  // 3 — retention (issue 17): the audit chain's anchor once its oldest entries are pruned; reports by age.
  `
  CREATE TABLE audit_anchor (
    id SMALLINT PRIMARY KEY CHECK (id = 1),
    seq BIGINT NOT NULL,
    hash TEXT NOT NULL,
    at TEXT NOT NULL,
    pruned_ms BIGINT NOT NULL
  );
  CREATE INDEX IF NOT EXISTS reports_received ON reports (received_ms);
  `,
  // 4: host-signed compliance evidence (issue 15; = SQLite migration 4)
  `
  CREATE TABLE evidence (
    id BIGSERIAL PRIMARY KEY,
    hostname TEXT NOT NULL,
    control TEXT NOT NULL,
    result TEXT NOT NULL,
    closure TEXT,
    rollout_id TEXT,
    at TEXT NOT NULL,
    received_ms BIGINT NOT NULL,
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
    received_ms BIGINT NOT NULL,
    record_json TEXT NOT NULL,
    signature TEXT,
    verdict TEXT NOT NULL,
    PRIMARY KEY (hostname, control)
  );
  `,
  // 5: issue 16 (= SQLite migration 5) — the expiry of the certificate each host presented at its last check-in
  `ALTER TABLE hosts ADD COLUMN cert_not_after_ms BIGINT;`,
  // 6: every accepted artefact (issue 15 evidence packet; = SQLite migration 6)
  `
  CREATE TABLE artifact_history (
    kind TEXT NOT NULL,
    sha256 TEXT NOT NULL,
    signed_at TEXT NOT NULL,
    bytes BYTEA NOT NULL,
    signature BYTEA NOT NULL,
    accepted_ms BIGINT NOT NULL,
    PRIMARY KEY (kind, sha256)
  );
  CREATE INDEX artifact_history_accepted ON artifact_history (kind, accepted_ms);
  INSERT INTO artifact_history (kind, sha256, signed_at, bytes, signature, accepted_ms) SELECT kind, sha256, signed_at, bytes, signature, accepted_ms FROM artifacts;
  `,
  // 7: witnessed audit heads (issue 15; = SQLite migration 7)
  witnessTable('BIGINT'),
];

/** Advisory lock keys (one namespace: 0x6e66 = "nf"). */
export const LOCK_MIGRATE = 0x6e660001;
export const LOCK_AUDIT = 0x6e660002;

/** Bring the schema up to date (once across replicas); refuse a database written by a newer control plane. */
export async function migratePg(client: pg.ClientBase): Promise<void> {
  await client.query('BEGIN');
  try {
    await client.query('SELECT pg_advisory_xact_lock($1)', [LOCK_MIGRATE]);
    await client.query('CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)');
    const r = await client.query<{ version: number }>('SELECT version FROM schema_version');
    const version = r.rows[0]?.version ?? 0;
    if (r.rows.length === 0) await client.query('INSERT INTO schema_version (version) VALUES (0)');
    if (version > PG_MIGRATIONS.length) {
      throw new Error(`database schema version ${version} is newer than this control plane (${PG_MIGRATIONS.length}); refusing to touch it`);
    }
    for (let v = version; v < PG_MIGRATIONS.length; v++) await client.query(PG_MIGRATIONS[v]!);
    await client.query('UPDATE schema_version SET version = $1', [PG_MIGRATIONS.length]);
    await client.query('COMMIT');
  } catch (e) {
    await client.query('ROLLBACK').catch(() => {});
    throw e;
  }
}
