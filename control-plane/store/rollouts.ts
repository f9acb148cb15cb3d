/** SQLite tables `rollouts`, `rollout_hosts` and `transitions` (the history `rollout trace` shows). */
import type Database from 'better-sqlite3';
import type { HostRolloutState, Rollout, RolloutState, SkipInfo } from '../../reconciler/types.ts';
import type { RolloutHost, RolloutHostRow, RolloutRow, TransitionRow, Write } from './types.ts';

export type RolloutRecord = {
  id: string;
  channel: string;
  target_ref: string;
  state: RolloutState;
  current_wave: number;
  wave_count: number;
  opened_at_ms: number;
  started_at_ms: number | null;
  state_reason: string;
  signed_at: string;
  artifact_sha256: string;
  updated_at_ms: number;
};

export type RolloutHostRecord = {
  rollout_id: string;
  hostname: string;
  state: HostRolloutState;
  entered_at_ms: number;
  closure: string;
  wave: number;
  skip_json: string | null;
  rollback_requested: number;
};

export type TransitionRecord = { at_ms: number; hostname: string | null; from_state: string | null; to_state: string; wave: number; reason: string };

type RolloutHostParams = { rolloutId: string; hostname: string; state: string; enteredAtMs: number; closure: string; wave: number; skipJson: string | null; rollbackRequested: number };

export function toRolloutRow(r: RolloutRecord): RolloutRow {
  return {
    id: r.id,
    channel: r.channel,
    targetRef: r.target_ref,
    state: r.state,
    currentWave: r.current_wave,
    waveCount: r.wave_count,
    openedAtMs: r.opened_at_ms,
    startedAtMs: r.started_at_ms,
    stateReason: r.state_reason,
    signedAt: r.signed_at,
    artifactSha256: r.artifact_sha256,
    updatedAtMs: r.updated_at_ms,
  };
}

export function toRolloutHost(r: RolloutHostRecord): RolloutHost {
  return {
    state: r.state,
    enteredAtMs: r.entered_at_ms,
    closure: r.closure,
    wave: r.wave,
    skip: r.skip_json === null ? null : (JSON.parse(r.skip_json) as SkipInfo),
    rollbackRequested: r.rollback_requested === 1,
  };
}

export const toRolloutHostRow = (r: RolloutHostRecord): RolloutHostRow => ({
  rolloutId: r.rollout_id,
  hostname: r.hostname,
  state: r.state,
  enteredAtMs: r.entered_at_ms,
  closure: r.closure,
  wave: r.wave,
  skipJson: r.skip_json,
});

/** The reconciler's record of a stored rollout (history empty: the reconciler only appends to it). */
export function toRollout(row: RolloutRow, hosts: Record<string, RolloutHost>): Rollout {
  return {
    id: row.id,
    channel: row.channel,
    targetRef: row.targetRef,
    state: row.state,
    currentWave: row.currentWave,
    waveCount: row.waveCount,
    openedAtMs: row.openedAtMs,
    startedAtMs: row.startedAtMs,
    stateReason: row.stateReason,
    hosts,
    history: [],
  };
}

export class RolloutsTable {
  private readonly load_: Database.Statement<[], RolloutRecord>;
  private readonly all_: Database.Statement<[], RolloutRecord>;
  private readonly get_: Database.Statement<[string], RolloutRecord>;
  private readonly insert_: Database.Statement<[RolloutRow]>;
  private readonly update_: Database.Statement<[Extract<Write, { kind: 'rollout.update' }>['row']]>;
  private readonly rhDeleteFor: Database.Statement<[string]>;
  private readonly rhLiveForHost: Database.Statement<[string], RolloutHostRecord>;
  private readonly rhNewestPerHost: Database.Statement<[], RolloutHostRecord>;
  private readonly hostStateCounts_: Database.Statement<[], { state: string; n: number }>;
  private readonly rhAllFor: Database.Statement<[string], RolloutHostRecord>;
  private readonly rhUpsert: Database.Statement<[RolloutHostParams]>;
  private readonly rhCountsByState: Database.Statement<[string], { state: HostRolloutState; n: number }>;
  private readonly transitionInsert: Database.Statement<[TransitionRow]>;
  private readonly transitionsFor: Database.Statement<[string], TransitionRecord>;
  private readonly rolloutCounts: Database.Statement<[], { state: string; n: number }>;

  constructor(db: Database.Database) {
    this.load_ = db.prepare(`SELECT * FROM rollouts r WHERE r.state NOT IN ('Converged', 'Superseded')
        OR r.id = (SELECT id FROM rollouts r2 WHERE r2.channel = r.channel ORDER BY opened_at_ms DESC, id DESC LIMIT 1)`);
    this.all_ = db.prepare('SELECT * FROM rollouts ORDER BY opened_at_ms DESC, id');
    this.get_ = db.prepare('SELECT * FROM rollouts WHERE id = ?');
    // Upsert: a target that comes back after its rollout was superseded reopens the same id.
    this.insert_ = db.prepare(`INSERT INTO rollouts (id, channel, target_ref, state, current_wave, wave_count, opened_at_ms, started_at_ms, state_reason,
        signed_at, artifact_sha256, updated_at_ms)
      VALUES (@id, @channel, @targetRef, @state, @currentWave, @waveCount, @openedAtMs, @startedAtMs, @stateReason, @signedAt, @artifactSha256, @updatedAtMs)
      ON CONFLICT(id) DO UPDATE SET state = excluded.state, current_wave = excluded.current_wave, wave_count = excluded.wave_count,
        opened_at_ms = excluded.opened_at_ms, started_at_ms = excluded.started_at_ms, state_reason = excluded.state_reason,
        signed_at = excluded.signed_at, artifact_sha256 = excluded.artifact_sha256, updated_at_ms = excluded.updated_at_ms`);
    this.update_ = db.prepare(`UPDATE rollouts SET state = @state, current_wave = @currentWave, wave_count = @waveCount, started_at_ms = @startedAtMs,
        opened_at_ms = @openedAtMs, state_reason = @stateReason, updated_at_ms = @updatedAtMs WHERE id = @id`);
    this.rhDeleteFor = db.prepare('DELETE FROM rollout_hosts WHERE rollout_id = ?');
    this.rhLiveForHost = db.prepare(`SELECT rh.* FROM rollout_hosts rh JOIN rollouts r ON r.id = rh.rollout_id
      WHERE rh.hostname = ? AND r.state <> 'Superseded'`);
    this.rhNewestPerHost = db.prepare(`SELECT rh.* FROM rollout_hosts rh JOIN rollouts r ON r.id = rh.rollout_id
      ORDER BY rh.hostname, r.opened_at_ms DESC, r.id DESC`);
    this.hostStateCounts_ = db.prepare(`SELECT rh.state AS state, COUNT(*) AS n FROM rollout_hosts rh WHERE rh.rollout_id IN (
        SELECT r.id FROM rollouts r WHERE r.id = (SELECT r2.id FROM rollouts r2 WHERE r2.channel = r.channel ORDER BY r2.opened_at_ms DESC, r2.id DESC LIMIT 1))
      GROUP BY rh.state`);
    this.rhAllFor = db.prepare('SELECT * FROM rollout_hosts WHERE rollout_id = ?');
    this.rhUpsert = db.prepare(`INSERT INTO rollout_hosts (rollout_id, hostname, state, entered_at_ms, closure, wave, skip_json, rollback_requested)
      VALUES (@rolloutId, @hostname, @state, @enteredAtMs, @closure, @wave, @skipJson, @rollbackRequested)
      ON CONFLICT(rollout_id, hostname) DO UPDATE SET state = excluded.state, entered_at_ms = excluded.entered_at_ms, closure = excluded.closure,
        wave = excluded.wave, skip_json = excluded.skip_json, rollback_requested = excluded.rollback_requested`);
    this.rhCountsByState = db.prepare(`SELECT rh.state AS state, COUNT(*) AS n FROM rollout_hosts rh WHERE rh.rollout_id = ? GROUP BY rh.state`);
    this.transitionInsert = db.prepare(`INSERT INTO transitions (rollout_id, at_ms, hostname, from_state, to_state, wave, reason)
      VALUES (@rolloutId, @atMs, @hostname, @from, @to, @wave, @reason)`);
    this.transitionsFor = db.prepare('SELECT * FROM transitions WHERE rollout_id = ? ORDER BY seq');
    this.rolloutCounts = db.prepare('SELECT state, COUNT(*) AS n FROM rollouts GROUP BY state');
  }

  /** The rollouts the reconciler reads: live ones, plus the newest of each channel whatever its state. */
  loadLive(): Record<string, Rollout> {
    const rollouts: Record<string, Rollout> = {};
    for (const r of this.load_.all()) {
      const hosts: Record<string, RolloutHost> = {};
      for (const h of this.rhAllFor.all(r.id)) hosts[h.hostname] = toRolloutHost(h);
      rollouts[r.id] = toRollout(toRolloutRow(r), hosts);
    }
    return rollouts;
  }

  /** Every rollout holding `hostname` that is not Superseded, with only that host. */
  loadForHost(hostname: string): Record<string, Rollout> {
    const rollouts: Record<string, Rollout> = {};
    for (const rh of this.rhLiveForHost.all(hostname)) {
      const row = this.get(rh.rollout_id);
      if (row !== null) rollouts[row.id] = toRollout(row, { [hostname]: toRolloutHost(rh) });
    }
    return rollouts;
  }

  all(): RolloutRow[] {
    return this.all_.all().map(toRolloutRow);
  }

  get(id: string): RolloutRow | null {
    const r = this.get_.get(id);
    return r === undefined ? null : toRolloutRow(r);
  }

  insert(row: RolloutRow): void {
    this.rhDeleteFor.run(row.id); // rows of an earlier, superseded incarnation of this id
    this.insert_.run(row);
  }

  update(row: Extract<Write, { kind: 'rollout.update' }>['row']): void {
    this.update_.run(row);
  }

  putHost(rolloutId: string, hostname: string, h: RolloutHost): void {
    this.rhUpsert.run({
      rolloutId,
      hostname,
      state: h.state,
      enteredAtMs: h.enteredAtMs,
      closure: h.closure,
      wave: h.wave,
      skipJson: h.skip === null ? null : JSON.stringify(h.skip),
      rollbackRequested: h.rollbackRequested ? 1 : 0,
    });
  }

  insertTransition(row: TransitionRow): void {
    this.transitionInsert.run(row);
  }

  hosts(id: string): RolloutHostRow[] {
    return this.rhAllFor.all(id).map(toRolloutHostRow);
  }

  hostCounts(id: string): Partial<Record<HostRolloutState, number>> {
    const out: Partial<Record<HostRolloutState, number>> = {};
    for (const r of this.rhCountsByState.all(id)) out[r.state] = r.n;
    return out;
  }

  transitions(id: string): TransitionRow[] {
    return this.transitionsFor.all(id).map((r) => ({ rolloutId: id, atMs: r.at_ms, hostname: r.hostname, from: r.from_state, to: r.to_state, wave: r.wave, reason: r.reason }));
  }

  newestRowPerHost(): Map<string, RolloutHostRow> {
    const out = new Map<string, RolloutHostRow>();
    for (const r of this.rhNewestPerHost.iterate()) if (!out.has(r.hostname)) out.set(r.hostname, toRolloutHostRow(r));
    return out;
  }

  hostStateCounts(): Record<string, number> {
    const out: Record<string, number> = {};
    for (const r of this.hostStateCounts_.all()) out[r.state] = r.n;
    return out;
  }

  stateCounts(): Record<string, number> {
    const out: Record<string, number> = {};
    for (const r of this.rolloutCounts.all()) out[r.state] = r.n;
    return out;
  }
}
