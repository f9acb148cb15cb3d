/**
 * The SQL of the PostgreSQL store (postgres.ts), table family by table family, as functions over a
 * connection or the pool. Rows map through the same mappers as SQLite's (hosts.ts, rollouts.ts,
 * dispatches.ts, audit.ts): the schemas match column for column (pg-migrations.ts).
 */
import type pg from 'pg';
import { auditEntryHash, GENESIS_HASH } from '../../protocol/audit-chain.ts';
import type { DriftInfo, HostRolloutState, Rollout, RolloutControls } from '../../reconciler/types.ts';
import { iso, toAudit, type AuditRecord } from './audit.ts';
import { toDispatch, type DispatchRecord } from './dispatches.ts';
import { toHostRow, type HostRecord } from './hosts.ts';
import { LOCK_AUDIT } from './pg-migrations.ts';
import { toRollout, toRolloutHost, toRolloutHostRow, toRolloutRow, type RolloutHostRecord, type RolloutRecord, type TransitionRecord } from './rollouts.ts';
import type {
  ArtifactKind,
  ArtifactRow,
  AuditEntry,
  AuditInput,
  ChannelState,
  Deferral,
  DispatchRow,
  DispatchStatus,
  HostObservation,
  HostRow,
  PauseInfo,
  PauseRow,
  QuarantineRow,
  ReportRow,
  RolloutHost,
  RolloutHostRow,
  RolloutRow,
  TransitionRow,
  Write,
} from './types.ts';

/** A connection or the pool. */
export type Q = Pick<pg.ClientBase, 'query'>;

const rows = async <R extends pg.QueryResultRow>(q: Q, text: string, values: unknown[] = []): Promise<R[]> => (await q.query<R>(text, values)).rows;
const one = async <R extends pg.QueryResultRow>(q: Q, text: string, values: unknown[] = []): Promise<R | null> => (await q.query<R>(text, values)).rows[0] ?? null;

// ------------------------------------------------------------------------------------------
// hosts

const HOST_COLS = 'hostname, last_checkin_ms, current_closure, boot_id, probes_observed, probes_passing, failed_units, compliance_failures';

export async function putHost(q: Q, h: HostRow): Promise<void> {
  await q.query(
    `INSERT INTO hosts (${HOST_COLS}, probes_json, last_outcome_json, pending_reboot, agent_version, cert_not_after_ms) VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12,$13)
     ON CONFLICT (hostname) DO UPDATE SET last_checkin_ms = excluded.last_checkin_ms, current_closure = excluded.current_closure,
       boot_id = excluded.boot_id, probes_observed = excluded.probes_observed, probes_passing = excluded.probes_passing,
       failed_units = excluded.failed_units, compliance_failures = excluded.compliance_failures, probes_json = excluded.probes_json,
       last_outcome_json = excluded.last_outcome_json, pending_reboot = excluded.pending_reboot, agent_version = excluded.agent_version,
       cert_not_after_ms = excluded.cert_not_after_ms`,
    [
      h.hostname,
      h.lastCheckinMs,
      h.currentClosure,
      h.bootId,
      h.probesObserved ? 1 : 0,
      h.probesPassing ? 1 : 0,
      JSON.stringify(h.failedUnits),
      h.complianceFailures === null ? null : JSON.stringify(h.complianceFailures),
      h.probesJson,
      h.lastOutcomeJson,
      h.pendingReboot ? 1 : 0,
      h.agentVersion,
      h.certNotAfterMs,
    ],
  );
}

export async function putObservation(q: Q, hostname: string, o: HostObservation): Promise<void> {
  await q.query(
    `INSERT INTO hosts (${HOST_COLS}) VALUES ($1,$2,$3,$4,$5,$6,$7,$8)
     ON CONFLICT (hostname) DO UPDATE SET last_checkin_ms = excluded.last_checkin_ms, current_closure = excluded.current_closure,
       boot_id = excluded.boot_id, probes_observed = excluded.probes_observed, probes_passing = excluded.probes_passing,
       failed_units = excluded.failed_units, compliance_failures = excluded.compliance_failures`,
    [
      hostname,
      o.lastCheckinMs,
      o.currentClosure,
      o.bootId,
      o.probes.observed ? 1 : 0,
      o.probes.passing ? 1 : 0,
      JSON.stringify(o.failedUnits),
      o.complianceFailures === undefined ? null : JSON.stringify(o.complianceFailures),
    ],
  );
}

export const getHost = async (q: Q, hostname: string): Promise<HostRow | null> => {
  const r = await one<HostRecord>(q, 'SELECT * FROM hosts WHERE hostname = $1', [hostname]);
  return r === null ? null : toHostRow(r);
};
export const allHosts = async (q: Q): Promise<HostRow[]> => (await rows<HostRecord>(q, 'SELECT * FROM hosts ORDER BY hostname')).map(toHostRow);

// ------------------------------------------------------------------------------------------
// rollouts, rollout_hosts, transitions

export async function insertRollout(q: Q, r: RolloutRow): Promise<void> {
  await q.query('DELETE FROM rollout_hosts WHERE rollout_id = $1', [r.id]); // an earlier, superseded incarnation of this id
  await q.query(
    `INSERT INTO rollouts (id, channel, target_ref, state, current_wave, wave_count, opened_at_ms, started_at_ms, state_reason, signed_at, artifact_sha256, updated_at_ms)
     VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12)
     ON CONFLICT (id) DO UPDATE SET state = excluded.state, current_wave = excluded.current_wave, wave_count = excluded.wave_count,
       opened_at_ms = excluded.opened_at_ms, started_at_ms = excluded.started_at_ms, state_reason = excluded.state_reason,
       signed_at = excluded.signed_at, artifact_sha256 = excluded.artifact_sha256, updated_at_ms = excluded.updated_at_ms`,
    [r.id, r.channel, r.targetRef, r.state, r.currentWave, r.waveCount, r.openedAtMs, r.startedAtMs, r.stateReason, r.signedAt, r.artifactSha256, r.updatedAtMs],
  );
}

export async function updateRollout(q: Q, r: Extract<Write, { kind: 'rollout.update' }>['row']): Promise<void> {
  await q.query(
    `UPDATE rollouts SET state = $2, current_wave = $3, wave_count = $4, started_at_ms = $5, opened_at_ms = $6, state_reason = $7, updated_at_ms = $8 WHERE id = $1`,
    [r.id, r.state, r.currentWave, r.waveCount, r.startedAtMs, r.openedAtMs, r.stateReason, r.updatedAtMs],
  );
}

export async function putRolloutHost(q: Q, rolloutId: string, hostname: string, h: RolloutHost): Promise<void> {
  await q.query(
    `INSERT INTO rollout_hosts (rollout_id, hostname, state, entered_at_ms, closure, wave, skip_json, rollback_requested) VALUES ($1,$2,$3,$4,$5,$6,$7,$8)
     ON CONFLICT (rollout_id, hostname) DO UPDATE SET state = excluded.state, entered_at_ms = excluded.entered_at_ms, closure = excluded.closure,
       wave = excluded.wave, skip_json = excluded.skip_json, rollback_requested = excluded.rollback_requested`,
    [rolloutId, hostname, h.state, h.enteredAtMs, h.closure, h.wave, h.skip === null ? null : JSON.stringify(h.skip), h.rollbackRequested ? 1 : 0],
  );
}

/** Update the row only if it is still `before` (null: insert only if absent); false when it was not. */
export async function putRolloutHostIf(q: Q, rolloutId: string, hostname: string, h: RolloutHost, before: RolloutHost | null): Promise<boolean> {
  const skip = h.skip === null ? null : JSON.stringify(h.skip);
  if (before === null) {
    const r = await q.query(
      `INSERT INTO rollout_hosts (rollout_id, hostname, state, entered_at_ms, closure, wave, skip_json, rollback_requested) VALUES ($1,$2,$3,$4,$5,$6,$7,$8) ON CONFLICT DO NOTHING`,
      [rolloutId, hostname, h.state, h.enteredAtMs, h.closure, h.wave, skip, h.rollbackRequested ? 1 : 0],
    );
    return r.rowCount === 1;
  }
  const r = await q.query(
    `UPDATE rollout_hosts SET state = $3, entered_at_ms = $4, closure = $5, wave = $6, skip_json = $7, rollback_requested = $8
     WHERE rollout_id = $1 AND hostname = $2 AND state = $9 AND entered_at_ms = $10`,
    [rolloutId, hostname, h.state, h.enteredAtMs, h.closure, h.wave, skip, h.rollbackRequested ? 1 : 0, before.state, before.enteredAtMs],
  );
  return r.rowCount === 1;
}

export async function insertTransition(q: Q, t: TransitionRow): Promise<void> {
  await q.query(`INSERT INTO transitions (rollout_id, at_ms, hostname, from_state, to_state, wave, reason) VALUES ($1,$2,$3,$4,$5,$6,$7)`, [
    t.rolloutId,
    t.atMs,
    t.hostname,
    t.from,
    t.to,
    t.wave,
    t.reason,
  ]);
}

/** Live rollouts plus the newest of each channel whatever its state, with their hosts. */
export async function loadLiveRollouts(q: Q): Promise<Record<string, Rollout>> {
  const rs = await rows<RolloutRecord>(
    q,
    `SELECT * FROM rollouts r WHERE r.state NOT IN ('Converged', 'Superseded')
       OR r.id = (SELECT id FROM rollouts r2 WHERE r2.channel = r.channel ORDER BY opened_at_ms DESC, id DESC LIMIT 1)`,
  );
  const hosts = await rows<RolloutHostRecord>(q, 'SELECT * FROM rollout_hosts WHERE rollout_id = ANY($1)', [rs.map((r) => r.id)]);
  const byRollout = new Map<string, Record<string, RolloutHost>>();
  for (const h of hosts) {
    let m = byRollout.get(h.rollout_id);
    if (m === undefined) byRollout.set(h.rollout_id, (m = {}));
    m[h.hostname] = toRolloutHost(h);
  }
  const out: Record<string, Rollout> = {};
  for (const r of rs) out[r.id] = toRollout(toRolloutRow(r), byRollout.get(r.id) ?? {});
  return out;
}

/** Every rollout holding `hostname` that is not Superseded, with only that host. */
export async function loadRolloutsForHost(q: Q, hostname: string): Promise<Record<string, Rollout>> {
  const rs = await rows<RolloutRecord & { rh_state: HostRolloutState; rh_entered_at_ms: number; rh_closure: string; rh_wave: number; rh_skip_json: string | null; rh_rollback_requested: number }>(
    q,
    `SELECT r.*, rh.state AS rh_state, rh.entered_at_ms AS rh_entered_at_ms, rh.closure AS rh_closure, rh.wave AS rh_wave, rh.skip_json AS rh_skip_json,
       rh.rollback_requested AS rh_rollback_requested
     FROM rollout_hosts rh JOIN rollouts r ON r.id = rh.rollout_id WHERE rh.hostname = $1 AND r.state <> 'Superseded'`,
    [hostname],
  );
  const out: Record<string, Rollout> = {};
  for (const r of rs) {
    const host = toRolloutHost({ rollout_id: r.id, hostname, state: r.rh_state, entered_at_ms: r.rh_entered_at_ms, closure: r.rh_closure, wave: r.rh_wave, skip_json: r.rh_skip_json, rollback_requested: r.rh_rollback_requested });
    out[r.id] = toRollout(toRolloutRow(r), { [hostname]: host });
  }
  return out;
}

export const getRollout = async (q: Q, id: string): Promise<RolloutRow | null> => {
  const r = await one<RolloutRecord>(q, 'SELECT * FROM rollouts WHERE id = $1', [id]);
  return r === null ? null : toRolloutRow(r);
};
export const allRollouts = async (q: Q): Promise<RolloutRow[]> => (await rows<RolloutRecord>(q, 'SELECT * FROM rollouts ORDER BY opened_at_ms DESC, id')).map(toRolloutRow);
export const rolloutHosts = async (q: Q, id: string): Promise<RolloutHostRow[]> =>
  (await rows<RolloutHostRecord>(q, 'SELECT * FROM rollout_hosts WHERE rollout_id = $1', [id])).map(toRolloutHostRow);

export async function rolloutHostCounts(q: Q, id: string): Promise<Partial<Record<HostRolloutState, number>>> {
  const out: Partial<Record<HostRolloutState, number>> = {};
  for (const r of await rows<{ state: HostRolloutState; n: number }>(q, 'SELECT state, COUNT(*) AS n FROM rollout_hosts WHERE rollout_id = $1 GROUP BY state', [id])) out[r.state] = r.n;
  return out;
}

export const transitions = async (q: Q, id: string): Promise<TransitionRow[]> =>
  (await rows<TransitionRecord>(q, 'SELECT * FROM transitions WHERE rollout_id = $1 ORDER BY seq', [id])).map((r) => ({
    rolloutId: id,
    atMs: r.at_ms,
    hostname: r.hostname,
    from: r.from_state,
    to: r.to_state,
    wave: r.wave,
    reason: r.reason,
  }));

export async function newestRolloutRowPerHost(q: Q): Promise<Map<string, RolloutHostRow>> {
  const rs = await rows<RolloutHostRecord>(
    q,
    `SELECT DISTINCT ON (rh.hostname) rh.* FROM rollout_hosts rh JOIN rollouts r ON r.id = rh.rollout_id ORDER BY rh.hostname, r.opened_at_ms DESC, r.id DESC`,
  );
  return new Map(rs.map((r) => [r.hostname, toRolloutHostRow(r)]));
}

async function counts(q: Q, text: string): Promise<Record<string, number>> {
  const out: Record<string, number> = {};
  for (const r of await rows<{ state: string; n: number }>(q, text)) out[r.state] = r.n;
  return out;
}
export const hostStateCounts = (q: Q): Promise<Record<string, number>> =>
  counts(
    q,
    `SELECT rh.state AS state, COUNT(*) AS n FROM rollout_hosts rh WHERE rh.rollout_id IN (
       SELECT r.id FROM rollouts r WHERE r.id = (SELECT r2.id FROM rollouts r2 WHERE r2.channel = r.channel ORDER BY r2.opened_at_ms DESC, r2.id DESC LIMIT 1))
     GROUP BY rh.state`,
  );
export const rolloutStateCounts = (q: Q): Promise<Record<string, number>> => counts(q, 'SELECT state, COUNT(*) AS n FROM rollouts GROUP BY state');

// ------------------------------------------------------------------------------------------
// dispatches

const dispatch = async (q: Q, text: string, values: unknown[]): Promise<DispatchRow | null> => {
  const r = await one<DispatchRecord>(q, text, values);
  return r === null ? null : toDispatch(r);
};
export const getDispatch = (q: Q, rolloutId: string, hostname: string) => dispatch(q, 'SELECT * FROM dispatches WHERE rollout_id = $1 AND hostname = $2', [rolloutId, hostname]);
export const pendingDispatchFor = (q: Q, hostname: string) =>
  dispatch(q, `SELECT * FROM dispatches WHERE hostname = $1 AND status = 'pending' ORDER BY created_ms DESC LIMIT 1`, [hostname]);
export const rollbackFor = (q: Q, hostname: string) =>
  dispatch(q, `SELECT * FROM dispatches WHERE hostname = $1 AND status = 'cancelled' AND rollback_reason IS NOT NULL ORDER BY created_ms DESC LIMIT 1`, [hostname]);
export const pendingDispatches = async (q: Q): Promise<DispatchRow[]> => (await rows<DispatchRecord>(q, `SELECT * FROM dispatches WHERE status = 'pending'`)).map(toDispatch);
export const expiredDispatches = async (q: Q, nowMs: number): Promise<DispatchRow[]> =>
  (await rows<DispatchRecord>(q, `SELECT * FROM dispatches WHERE status = 'pending' AND deadline_ms IS NOT NULL AND deadline_ms <= $1 ORDER BY deadline_ms LIMIT 1000`, [nowMs])).map(
    toDispatch,
  );

export async function putDispatch(q: Q, d: Omit<Extract<Write, { kind: 'dispatch.put' }>, 'kind'>): Promise<void> {
  await q.query(
    `INSERT INTO dispatches (rollout_id, hostname, channel, closure, wave, created_ms, delivered_ms, deadline_ms, status, finished_ms, rollback_reason)
     VALUES ($1,$2,$3,$4,$5,$6, NULL, NULL, 'pending', NULL, NULL)
     ON CONFLICT (rollout_id, hostname) DO UPDATE SET closure = excluded.closure, wave = excluded.wave, created_ms = excluded.created_ms,
       delivered_ms = NULL, deadline_ms = NULL, status = 'pending', finished_ms = NULL, rollback_reason = NULL`,
    [d.rolloutId, d.hostname, d.channel, d.closure, d.wave, d.createdMs],
  );
}

export async function deliverDispatch(q: Q, rolloutId: string, hostname: string, deliveredMs: number, deadlineMs: number): Promise<void> {
  await q.query('UPDATE dispatches SET delivered_ms = $3, deadline_ms = $4 WHERE rollout_id = $1 AND hostname = $2 AND delivered_ms IS NULL', [rolloutId, hostname, deliveredMs, deadlineMs]);
}

export async function finishDispatch(q: Q, rolloutId: string, hostname: string, status: DispatchStatus, finishedMs: number, rollbackReason: string | null, onlyIfPending: boolean): Promise<void> {
  await q.query(
    `UPDATE dispatches SET status = $3, finished_ms = $4, rollback_reason = $5 WHERE rollout_id = $1 AND hostname = $2${onlyIfPending ? ` AND status = 'pending'` : ''}`,
    [rolloutId, hostname, status, finishedMs, rollbackReason],
  );
}

export async function clearRollback(q: Q, rolloutId: string, hostname: string): Promise<void> {
  await q.query('UPDATE dispatches SET rollback_reason = NULL WHERE rollout_id = $1 AND hostname = $2', [rolloutId, hostname]);
}

/** A deferred activation waits for the host's reboot: its pending dispatch has no deadline (issue 14). */
export async function awaitBoot(q: Q, rolloutId: string, hostname: string): Promise<void> {
  await q.query(`UPDATE dispatches SET deadline_ms = NULL WHERE rollout_id = $1 AND hostname = $2 AND status = 'pending'`, [rolloutId, hostname]);
}

export async function withdrawUndelivered(q: Q, rolloutId: string, finishedMs: number): Promise<number> {
  const r = await q.query(`UPDATE dispatches SET status = 'cancelled', finished_ms = $2 WHERE rollout_id = $1 AND status = 'pending' AND delivered_ms IS NULL`, [rolloutId, finishedMs]);
  return r.rowCount ?? 0;
}

// ------------------------------------------------------------------------------------------
// channel state

export async function loadChannelState(q: Q): Promise<ChannelState> {
  // One after the other: `q` may be a single connection (a snapshot transaction).
  const qs = await rows<{ channel: string; closure: string }>(q, 'SELECT channel, closure FROM quarantines ORDER BY channel, since_ms');
  const ps = await rows<{ channel: string; since_ms: number; reason: string }>(q, 'SELECT * FROM pauses ORDER BY channel');
  const cs = await rows<{ channel: string; target_ref: string }>(q, 'SELECT * FROM last_converged');
  const ds = await rows<{ channel: string; rollout_id: string; reason: string; since_ms: number }>(q, 'SELECT * FROM deferrals');
  const quarantinedClosures: Record<string, string[]> = {};
  for (const r of qs) (quarantinedClosures[r.channel] ??= []).push(r.closure);
  const pausedChannels: Record<string, PauseInfo> = {};
  for (const p of ps) pausedChannels[p.channel] = { sinceMs: p.since_ms, reason: p.reason };
  const lastConverged: Record<string, string> = {};
  for (const c of cs) lastConverged[c.channel] = c.target_ref;
  const deferrals: Record<string, Deferral> = {};
  for (const d of ds) deferrals[d.channel] = { rolloutId: d.rollout_id, reason: d.reason, sinceMs: d.since_ms };
  const drifted: Record<string, DriftInfo> = {};
  for (const d of await rows<{ hostname: string; drift_json: string }>(q, 'SELECT * FROM host_drift')) drifted[d.hostname] = JSON.parse(d.drift_json) as DriftInfo;
  const controls: Record<string, RolloutControls> = {};
  for (const c of await rows<{ rollout_id: string; controls_json: string }>(q, 'SELECT * FROM rollout_controls')) controls[c.rollout_id] = JSON.parse(c.controls_json) as RolloutControls;
  return { quarantinedClosures, pausedChannels, lastConverged, deferrals, drifted, controls };
}

export const quarantines = async (q: Q): Promise<QuarantineRow[]> =>
  (await rows<{ channel: string; closure: string; rollout_id: string | null; hostname: string | null; reason: string; since_ms: number }>(q, 'SELECT * FROM quarantines ORDER BY channel, since_ms')).map(
    (r) => ({ channel: r.channel, closure: r.closure, rolloutId: r.rollout_id, hostname: r.hostname, reason: r.reason, sinceMs: r.since_ms }),
  );

export async function getPause(q: Q, channel: string): Promise<PauseRow | null> {
  const r = await one<{ since_ms: number; reason: string; by_actor: string }>(q, 'SELECT * FROM pauses WHERE channel = $1', [channel]);
  return r === null ? null : { channel, sinceMs: r.since_ms, reason: r.reason, by: r.by_actor };
}

/** The channel-level writes (one statement each). */
export async function channelWrite(q: Q, w: Write): Promise<void> {
  switch (w.kind) {
    case 'quarantine.put':
      await q.query(`INSERT INTO quarantines (channel, closure, rollout_id, hostname, reason, since_ms) VALUES ($1,$2,$3,$4,$5,$6) ON CONFLICT DO NOTHING`, [
        w.row.channel,
        w.row.closure,
        w.row.rolloutId,
        w.row.hostname,
        w.row.reason,
        w.row.sinceMs,
      ]);
      return;
    case 'quarantine.delete':
      if (w.closure === null) await q.query('DELETE FROM quarantines WHERE channel = $1', [w.channel]);
      else await q.query('DELETE FROM quarantines WHERE channel = $1 AND closure = $2', [w.channel, w.closure]);
      return;
    case 'pause.put':
      await q.query(
        `INSERT INTO pauses (channel, since_ms, reason, by_actor) VALUES ($1,$2,$3,$4)
         ON CONFLICT (channel) DO UPDATE SET since_ms = excluded.since_ms, reason = excluded.reason, by_actor = excluded.by_actor`,
        [w.row.channel, w.row.sinceMs, w.row.reason, w.row.by],
      );
      return;
    case 'pause.delete':
      await q.query('DELETE FROM pauses WHERE channel = $1', [w.channel]);
      return;
    case 'converged.put':
      await q.query(`INSERT INTO last_converged (channel, target_ref) VALUES ($1,$2) ON CONFLICT (channel) DO UPDATE SET target_ref = excluded.target_ref`, [w.channel, w.targetRef]);
      return;
    case 'converged.delete':
      await q.query('DELETE FROM last_converged WHERE channel = $1', [w.channel]);
      return;
    case 'deferral.put':
      await q.query(
        `INSERT INTO deferrals (channel, rollout_id, reason, since_ms) VALUES ($1,$2,$3,$4)
         ON CONFLICT (channel) DO UPDATE SET rollout_id = excluded.rollout_id, reason = excluded.reason, since_ms = excluded.since_ms`,
        [w.channel, w.deferral.rolloutId, w.deferral.reason, w.deferral.sinceMs],
      );
      return;
    case 'drift.put':
      await q.query('INSERT INTO host_drift (hostname, drift_json) VALUES ($1, $2) ON CONFLICT (hostname) DO UPDATE SET drift_json = excluded.drift_json', [w.hostname, JSON.stringify(w.drift)]);
      return;
    case 'drift.delete':
      await q.query('DELETE FROM host_drift WHERE hostname = $1', [w.hostname]);
      return;
    case 'controls.put':
      await q.query('INSERT INTO rollout_controls (rollout_id, controls_json) VALUES ($1, $2) ON CONFLICT (rollout_id) DO UPDATE SET controls_json = excluded.controls_json', [w.rolloutId, JSON.stringify(w.controls)]);
      return;
    case 'controls.delete':
      await q.query('DELETE FROM rollout_controls WHERE rollout_id = $1', [w.rolloutId]);
      return;
    case 'deferral.delete':
      await q.query('DELETE FROM deferrals WHERE channel = $1', [w.channel]);
      return;
    default:
      throw new Error(`not a channel write: ${w.kind}`);
  }
}

// ------------------------------------------------------------------------------------------
// reports, artifacts

export async function insertReport(q: Q, r: ReportRow): Promise<number> {
  const row = await one<{ id: number }>(
    q,
    `INSERT INTO reports (hostname, received_ms, event, rollout_id, report_json, signature, verdict) VALUES ($1,$2,$3,$4,$5,$6,$7) RETURNING id`,
    [r.hostname, r.receivedMs, r.event, r.rolloutId, r.reportJson, r.signature, r.verdict],
  );
  return row!.id;
}

export const reportCount = async (q: Q): Promise<number> => (await one<{ n: number }>(q, 'SELECT COUNT(*) AS n FROM reports'))?.n ?? 0;

export async function getArtifact(q: Q, kind: ArtifactKind): Promise<ArtifactRow | null> {
  const r = await one<{ signed_at: string; sha256: string; bytes: Buffer; signature: Buffer; accepted_ms: number }>(q, 'SELECT * FROM artifacts WHERE kind = $1', [kind]);
  if (r === null) return null;
  return { kind, signedAt: r.signed_at, sha256: r.sha256, bytes: new Uint8Array(r.bytes), signature: new Uint8Array(r.signature), acceptedMs: r.accepted_ms };
}

/**
 * Rollback protection across replicas: the stored artefact only moves forward (signedAt, RFC 3339
 * UTC as CI stamps it, compares as text); a replica that raced another with an older one keeps the newer.
 */
export async function putArtifact(q: Q, a: ArtifactRow): Promise<void> {
  await q.query(
    `INSERT INTO artifacts (kind, signed_at, sha256, bytes, signature, accepted_ms) VALUES ($1,$2,$3,$4,$5,$6)
     ON CONFLICT (kind) DO UPDATE SET signed_at = excluded.signed_at, sha256 = excluded.sha256, bytes = excluded.bytes,
       signature = excluded.signature, accepted_ms = excluded.accepted_ms
     WHERE artifacts.signed_at <= excluded.signed_at`,
    [a.kind, a.signedAt, a.sha256, Buffer.from(a.bytes), Buffer.from(a.signature), a.acceptedMs],
  );  await q.query(
    `INSERT INTO artifact_history (kind, sha256, signed_at, bytes, signature, accepted_ms) VALUES ($1,$2,$3,$4,$5,$6) ON CONFLICT (kind, sha256) DO NOTHING`,
    [a.kind, a.sha256, a.signedAt, Buffer.from(a.bytes), Buffer.from(a.signature), a.acceptedMs],
  );
}

/** Every artefact of `kind` ever accepted, in the order it was first accepted (issue 15). */
export async function artifactHistory(q: Q, kind: ArtifactKind): Promise<ArtifactRow[]> {
  const r = await q.query<{ signed_at: string; sha256: string; bytes: Buffer; signature: Buffer; accepted_ms: string | number }>(
    'SELECT * FROM artifact_history WHERE kind = $1 ORDER BY accepted_ms, signed_at',
    [kind],
  );
  return r.rows.map((x) => ({ kind, signedAt: x.signed_at, sha256: x.sha256, bytes: new Uint8Array(x.bytes), signature: new Uint8Array(x.signature), acceptedMs: Number(x.accepted_ms) }));
}

// ------------------------------------------------------------------------------------------
// audit: one chain across replicas — each transaction that appends takes the audit lock first
// (held to its commit) and reads the head under it.

export type AuditHead = { seq: number; hash: string };

export async function lockAuditHead(q: Q): Promise<AuditHead> {
  await q.query('SELECT pg_advisory_xact_lock($1)', [LOCK_AUDIT]);
  const last = await one<{ seq: number; hash: string }>(q, 'SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1');
  // After retention pruned every entry, the chain goes on from its anchor (retention.ts).
  return last ?? (await one<{ seq: number; hash: string }>(q, 'SELECT seq, hash FROM audit_anchor WHERE id = 1')) ?? { seq: 0, hash: GENESIS_HASH };
}

export async function appendAudit(q: Q, head: AuditHead, e: AuditInput): Promise<AuditEntry> {
  const data: unknown = e.data === undefined ? null : JSON.parse(JSON.stringify(e.data));
  const entry = { seq: head.seq + 1, at: iso(e.atMs), kind: e.kind, actor: e.actor, subject: e.subject, data, prevHash: head.hash };
  const hash = auditEntryHash(entry);
  await q.query(`INSERT INTO audit (seq, at, kind, actor, subject, data_json, prev_hash, hash) VALUES ($1,$2,$3,$4,$5,$6,$7,$8)`, [
    entry.seq,
    entry.at,
    entry.kind,
    entry.actor,
    entry.subject,
    JSON.stringify(entry.data),
    entry.prevHash,
    hash,
  ]);
  head.seq = entry.seq;
  head.hash = hash;
  return { ...entry, hash };
}

export const auditPage = async (q: Q, after: number, limit: number): Promise<AuditEntry[]> =>
  (await rows<AuditRecord>(q, 'SELECT * FROM audit WHERE seq > $1 ORDER BY seq LIMIT $2', [after, limit])).map(toAudit);
export const auditAll = async (q: Q): Promise<AuditEntry[]> => (await rows<AuditRecord>(q, 'SELECT * FROM audit ORDER BY seq')).map(toAudit);
