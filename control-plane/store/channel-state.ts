/**
 * SQLite tables of channel-level state: `quarantines`, `pauses`, `last_converged`, `deferrals`, and
 * issue 14's `host_drift` and `rollout_controls` (JSON of `DriftInfo` / `RolloutControls`).
 */
import type Database from 'better-sqlite3';
import type { DriftInfo, RolloutControls } from '../../reconciler/types.ts';
import type { ChannelState, Deferral, PauseInfo, PauseRow, QuarantineRow } from './types.ts';

type QuarantineRecord = { channel: string; closure: string; rollout_id: string | null; hostname: string | null; reason: string; since_ms: number };
type PauseRecord = { channel: string; since_ms: number; reason: string; by_actor: string };

export class ChannelStateTables {
  private readonly quarantineAll: Database.Statement<[], QuarantineRecord>;
  private readonly quarantineInsert: Database.Statement<[QuarantineRow]>;
  private readonly quarantineDeleteChannel: Database.Statement<[string]>;
  private readonly quarantineDeleteOne: Database.Statement<[string, string]>;
  private readonly pauseAll: Database.Statement<[], PauseRecord>;
  private readonly pauseGet: Database.Statement<[string], PauseRecord>;
  private readonly pauseUpsert: Database.Statement<[PauseRow]>;
  private readonly pauseDelete: Database.Statement<[string]>;
  private readonly convergedAll: Database.Statement<[], { channel: string; target_ref: string }>;
  private readonly convergedUpsert: Database.Statement<[string, string]>;
  private readonly convergedDelete: Database.Statement<[string]>;
  private readonly deferralAll: Database.Statement<[], { channel: string; rollout_id: string; reason: string; since_ms: number }>;
  private readonly deferralUpsert: Database.Statement<[Deferral & { channel: string }]>;
  private readonly deferralDelete: Database.Statement<[string]>;
  private readonly driftAll: Database.Statement<[], { hostname: string; drift_json: string }>;
  private readonly driftUpsert: Database.Statement<[string, string]>;
  private readonly driftDelete: Database.Statement<[string]>;
  private readonly controlsAll: Database.Statement<[], { rollout_id: string; controls_json: string }>;
  private readonly controlsUpsert: Database.Statement<[string, string]>;
  private readonly controlsDelete: Database.Statement<[string]>;

  constructor(db: Database.Database) {
    this.quarantineAll = db.prepare('SELECT * FROM quarantines ORDER BY channel, since_ms');
    this.quarantineInsert = db.prepare(`INSERT OR IGNORE INTO quarantines (channel, closure, rollout_id, hostname, reason, since_ms)
      VALUES (@channel, @closure, @rolloutId, @hostname, @reason, @sinceMs)`);
    this.quarantineDeleteChannel = db.prepare('DELETE FROM quarantines WHERE channel = ?');
    this.quarantineDeleteOne = db.prepare('DELETE FROM quarantines WHERE channel = ? AND closure = ?');
    this.pauseAll = db.prepare('SELECT * FROM pauses ORDER BY channel');
    this.pauseGet = db.prepare('SELECT * FROM pauses WHERE channel = ?');
    this.pauseUpsert = db.prepare(`INSERT INTO pauses (channel, since_ms, reason, by_actor) VALUES (@channel, @sinceMs, @reason, @by)
      ON CONFLICT(channel) DO UPDATE SET since_ms = excluded.since_ms, reason = excluded.reason, by_actor = excluded.by_actor`);
    this.pauseDelete = db.prepare('DELETE FROM pauses WHERE channel = ?');
    this.convergedAll = db.prepare('SELECT * FROM last_converged');
    this.convergedUpsert = db.prepare(`INSERT INTO last_converged (channel, target_ref) VALUES (?, ?) ON CONFLICT(channel) DO UPDATE SET target_ref = excluded.target_ref`);
    this.convergedDelete = db.prepare('DELETE FROM last_converged WHERE channel = ?');
    this.deferralAll = db.prepare('SELECT * FROM deferrals');
    this.deferralUpsert = db.prepare(`INSERT INTO deferrals (channel, rollout_id, reason, since_ms) VALUES (@channel, @rolloutId, @reason, @sinceMs)
      ON CONFLICT(channel) DO UPDATE SET rollout_id = excluded.rollout_id, reason = excluded.reason, since_ms = excluded.since_ms`);
    this.deferralDelete = db.prepare('DELETE FROM deferrals WHERE channel = ?');
    this.driftAll = db.prepare('SELECT * FROM host_drift');
    this.driftUpsert = db.prepare('INSERT INTO host_drift (hostname, drift_json) VALUES (?, ?) ON CONFLICT(hostname) DO UPDATE SET drift_json = excluded.drift_json');
    this.driftDelete = db.prepare('DELETE FROM host_drift WHERE hostname = ?');
    this.controlsAll = db.prepare('SELECT * FROM rollout_controls');
    this.controlsUpsert = db.prepare('INSERT INTO rollout_controls (rollout_id, controls_json) VALUES (?, ?) ON CONFLICT(rollout_id) DO UPDATE SET controls_json = excluded.controls_json');
    this.controlsDelete = db.prepare('DELETE FROM rollout_controls WHERE rollout_id = ?');
  }

  /** The channel-level maps of observed state. */
  load(): ChannelState {
    const quarantinedClosures: Record<string, string[]> = {};
    for (const q of this.quarantineAll.all()) (quarantinedClosures[q.channel] ??= []).push(q.closure);
    const pausedChannels: Record<string, PauseInfo> = {};
    for (const p of this.pauseAll.all()) pausedChannels[p.channel] = { sinceMs: p.since_ms, reason: p.reason };
    const lastConverged: Record<string, string> = {};
    for (const c of this.convergedAll.all()) lastConverged[c.channel] = c.target_ref;
    const deferrals: Record<string, Deferral> = {};
    for (const d of this.deferralAll.all()) deferrals[d.channel] = { rolloutId: d.rollout_id, reason: d.reason, sinceMs: d.since_ms };
    const drifted: Record<string, DriftInfo> = {};
    for (const d of this.driftAll.all()) drifted[d.hostname] = JSON.parse(d.drift_json) as DriftInfo;
    const controls: Record<string, RolloutControls> = {};
    for (const c of this.controlsAll.all()) controls[c.rollout_id] = JSON.parse(c.controls_json) as RolloutControls;
    return { quarantinedClosures, pausedChannels, lastConverged, deferrals, drifted, controls };
  }

  quarantines(): QuarantineRow[] {
    return this.quarantineAll.all().map((r) => ({ channel: r.channel, closure: r.closure, rolloutId: r.rollout_id, hostname: r.hostname, reason: r.reason, sinceMs: r.since_ms }));
  }

  putQuarantine(q: QuarantineRow): void {
    this.quarantineInsert.run(q);
  }

  deleteQuarantines(channel: string, closure: string | null): number {
    return closure === null ? this.quarantineDeleteChannel.run(channel).changes : this.quarantineDeleteOne.run(channel, closure).changes;
  }

  getPause(channel: string): PauseRow | null {
    const r = this.pauseGet.get(channel);
    return r === undefined ? null : { channel, sinceMs: r.since_ms, reason: r.reason, by: r.by_actor };
  }

  putPause(p: PauseRow): void {
    this.pauseUpsert.run(p);
  }

  deletePause(channel: string): boolean {
    return this.pauseDelete.run(channel).changes > 0;
  }

  putConverged(channel: string, targetRef: string): void {
    this.convergedUpsert.run(channel, targetRef);
  }

  deleteConverged(channel: string): void {
    this.convergedDelete.run(channel);
  }

  putDeferral(channel: string, d: Deferral): void {
    this.deferralUpsert.run({ channel, rolloutId: d.rolloutId, reason: d.reason, sinceMs: d.sinceMs });
  }

  deleteDeferral(channel: string): void {
    this.deferralDelete.run(channel);
  }

  putDrift(hostname: string, d: DriftInfo): void {
    this.driftUpsert.run(hostname, JSON.stringify(d));
  }

  deleteDrift(hostname: string): void {
    this.driftDelete.run(hostname);
  }

  putControls(rolloutId: string, c: RolloutControls): void {
    this.controlsUpsert.run(rolloutId, JSON.stringify(c));
  }

  deleteControls(rolloutId: string): void {
    this.controlsDelete.run(rolloutId);
  }
}
