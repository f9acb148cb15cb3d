/**
 * The PostgreSQL `Store` (node-postgres pool): the same contract as SQLite's (types.ts), for
 * several control planes sharing one database. Asynchronous: every method returns a Promise.
 *
 * Writes on this replica run one transaction at a time, in call order (a queue): `apply` is one
 * transaction; `applyGrouped` is the group commit of check-ins — the lists of one event-loop turn
 * share one transaction, each in its own savepoint (a list that fails undoes only itself), and
 * every caller's Promise settles once that transaction committed. The audit chain stays one chain
 * across replicas: a transaction that appends takes the audit advisory lock and reads the head
 * under it (pg-queries.ts).
 */
import { readFileSync } from 'node:fs';
import pg from 'pg';
import type { HostRolloutState, Observed } from '../../reconciler/types.ts';
import type { PostgresConfig } from '../config.ts';
import { toObservation } from './hosts.ts';
import { migratePg } from './pg-migrations.ts';
import * as leader from './pg-leader.ts';
import * as sql from './pg-queries.ts';
import * as ev from './pg-evidence.ts';
import type {
  ApplyResult,
  ArtifactKind,
  ArtifactRow,
  AuditEntry,
  ChannelState,
  DispatchRow,
  EvidenceRow,
  Fence,
  HostObservation,
  HostRow,
  PauseRow,
  QuarantineRow,
  RolloutHostRow,
  RolloutRow,
  Store,
  TransitionRow,
  Write,
} from './types.ts';
import { StoreConflictError } from './types.ts';

/** BIGINT (milliseconds, counts, ids) as a JavaScript number: every value stored fits in 2^53. */
const INT8_OID = 20;
const types = {
  getTypeParser: ((oid: number, format?: 'text' | 'binary') => (oid === INT8_OID ? (v: string) => Number(v) : pg.types.getTypeParser(oid, format ?? 'text'))) as pg.CustomTypesConfig['getTypeParser'],
};

/** node-postgres connection options from the configuration (reads passwordFile and the TLS files). */
export function poolConfig(c: PostgresConfig): pg.PoolConfig {
  const base: pg.PoolConfig =
    'url' in c ? { connectionString: c.url } : { host: c.host, port: c.port ?? 5432, database: c.database, user: c.user };
  if (c.passwordFile !== undefined) base.password = readFileSync(c.passwordFile, 'utf8').replace(/\r?\n$/, '');
  if (c.tls !== undefined) {
    base.ssl = {
      rejectUnauthorized: true,
      ...(c.tls.caFile === undefined ? {} : { ca: readFileSync(c.tls.caFile, 'utf8') }),
      ...(c.tls.certFile === undefined ? {} : { cert: readFileSync(c.tls.certFile, 'utf8') }),
      ...(c.tls.keyFile === undefined ? {} : { key: readFileSync(c.tls.keyFile, 'utf8') }),
    };
  }
  base.max = c.poolSize ?? 10;
  return base;
}

type Settle = { resolve(r: ApplyResult): void; reject(e: unknown): void };
type Group = { lists: { writes: readonly Write[]; settle: Settle }[] };

/** The state of one write transaction: its connection and, once taken, the audit head. */
class Tx {
  head: sql.AuditHead | null = null;
  constructor(readonly c: pg.PoolClient) {}
  async audit(e: Parameters<typeof sql.appendAudit>[2]): Promise<AuditEntry> {
    this.head ??= await sql.lockAuditHead(this.c);
    return sql.appendAudit(this.c, this.head, e);
  }
}

export class PostgresStore implements Store {
  /** The tail of the write queue (one transaction at a time on this replica). */
  private queue: Promise<unknown> = Promise.resolve();
  /** The group collecting this turn's check-ins (queued, not started yet). */
  private group: Group | null = null;
  onGroupRollback: ((e: unknown) => void) | null = null;

  private constructor(readonly pool: pg.Pool) {
    // An idle connection that breaks (server restart) must not crash the process: the pool drops it.
    pool.on('error', () => {});
  }

  /** Connect, migrate (once across replicas) and return the store. */
  static async open(config: PostgresConfig): Promise<PostgresStore> {
    const pc = poolConfig(config);
    const pool = new pg.Pool({ ...pc, types });
    const client = await pool.connect().catch(async (e: unknown) => {
      await pool.end();
      throw e;
    });
    try {
      await migratePg(client);
    } catch (e) {
      client.release();
      await pool.end();
      throw e;
    }
    client.release();
    return new PostgresStore(pool);
  }

  async close(): Promise<void> {
    await this.queue.catch(() => {});
    await this.pool.end();
  }

  // ------------------------------------------------------------------------------------------
  // Transactions

  /** Run `fn` in one transaction, after every write queued before it. */
  tx<T>(fn: (t: Tx) => Promise<T>): Promise<T> {
    const run = this.queue.then(() => this.inTx(fn));
    this.queue = run.catch(() => {});
    return run;
  }

  private async inTx<T>(fn: (t: Tx) => Promise<T>): Promise<T> {
    const c = await this.pool.connect();
    let broken: unknown = undefined;
    try {
      await c.query('BEGIN');
      const value = await fn(new Tx(c));
      await c.query('COMMIT');
      return value;
    } catch (e) {
      broken = await c.query('ROLLBACK').then(
        () => undefined,
        (re: unknown) => re,
      );
      throw e;
    } finally {
      c.release(broken instanceof Error ? broken : undefined);
    }
  }

  apply(writes: readonly Write[]): Promise<ApplyResult> {
    return this.tx((t) => this.applyNow(t, writes));
  }

  readonly shared = true;

  applyFenced(writes: readonly Write[], fence: Fence): Promise<ApplyResult> {
    return this.tx(async (t) => {
      await leader.checkFence(t.c, fence);
      return this.applyNow(t, writes);
    });
  }

  lease(holder: string, leaseMs: number): Promise<number | null> {
    return leader.lease(this.pool, holder, leaseMs);
  }

  releaseLease(holder: string): Promise<void> {
    return leader.release(this.pool, holder);
  }

  leaseHolder(): Promise<{ holder: string; epoch: number } | null> {
    return leader.holder(this.pool);
  }

  applyGrouped(writes: readonly Write[]): Promise<ApplyResult> {
    return new Promise<ApplyResult>((resolve, reject) => {
      if (this.group === null) {
        const g: Group = { lists: [] };
        this.group = g;
        const run = this.queue.then(() => new Promise<void>((r) => setImmediate(r))).then(() => this.commitGroup(g));
        this.queue = run.catch(() => {});
      }
      this.group.lists.push({ writes, settle: { resolve, reject } });
    });
  }

  /** One transaction for the group, a savepoint per list; callers settle after the commit. */
  private async commitGroup(g: Group): Promise<void> {
    if (this.group === g) this.group = null; // later lists start the next group
    const results: (ApplyResult | { failed: unknown })[] = [];
    try {
      await this.inTx(async (t) => {
        for (const l of g.lists) {
          const head = t.head === null ? null : { ...t.head };
          await t.c.query('SAVEPOINT list');
          try {
            results.push(await this.applyNow(t, l.writes));
            await t.c.query('RELEASE SAVEPOINT list');
          } catch (e) {
            await t.c.query('ROLLBACK TO SAVEPOINT list');
            t.head = head;
            results.push({ failed: e });
          }
        }
      });
    } catch (e) {
      this.onGroupRollback?.(e);
      for (const l of g.lists) l.settle.reject(e);
      return;
    }
    let failed = false;
    g.lists.forEach((l, i) => {
      const r = results[i]!;
      if ('failed' in r) {
        failed = true;
        l.settle.reject(r.failed);
      } else l.settle.resolve(r);
    });
    // The caller already merged its decision into the in-memory mirror: it must reload.
    if (failed) this.onGroupRollback?.(new Error('a grouped write list failed'));
  }

  /** Apply a list inside the running transaction. */
  private async applyNow(t: Tx, writes: readonly Write[]): Promise<ApplyResult> {
    const c = t.c;
    const reportIds: number[] = [];
    const inserted = new Set<string>();
    for (const w of writes) {
      switch (w.kind) {
        case 'host.put':
          await sql.putHost(c, w.row);
          break;
        case 'host.observation':
          await sql.putObservation(c, w.hostname, w.observation);
          break;
        case 'host.pending-reboot':
          await c.query('UPDATE hosts SET pending_reboot = $1 WHERE hostname = $2', [w.pending ? 1 : 0, w.hostname]);
          break;
        case 'rollout.insert':
          await sql.insertRollout(c, w.row);
          inserted.add(w.row.id);
          break;
        case 'rollout.update':
          await sql.updateRollout(c, w.row);
          break;
        case 'rollout-host.put':
          if (w.before === undefined || inserted.has(w.rolloutId)) await sql.putRolloutHost(c, w.rolloutId, w.hostname, w.host);
          else if (!(await sql.putRolloutHostIf(c, w.rolloutId, w.hostname, w.host, w.before))) {
            throw new StoreConflictError(`${w.hostname} in ${w.rolloutId} changed meanwhile (another replica)`);
          }
          break;
        case 'transition':
          await sql.insertTransition(c, w.row);
          break;
        case 'dispatch.put':
          await sql.putDispatch(c, w);
          break;
        case 'dispatch.deliver':
          await sql.deliverDispatch(c, w.rolloutId, w.hostname, w.deliveredMs, w.deadlineMs);
          break;
        case 'dispatch.finish':
          await sql.finishDispatch(c, w.rolloutId, w.hostname, w.status, w.finishedMs, w.rollbackReason, w.onlyIfPending);
          break;
        case 'dispatch.await-boot':
          await sql.awaitBoot(c, w.rolloutId, w.hostname);
          break;
        case 'dispatch.clear-rollback':
          await sql.clearRollback(c, w.rolloutId, w.hostname);
          break;
        case 'dispatch.withdraw': {
          const n = await sql.withdrawUndelivered(c, w.rolloutId, w.finishedMs);
          if (n > 0) await t.audit({ ...w.auditIfAny, data: { undelivered: n, ...(w.auditIfAny.data as Record<string, unknown>) } });
          break;
        }
        case 'report': {
          const id = await sql.insertReport(c, w.row);
          reportIds.push(id);
          if (w.audit !== null) await t.audit({ ...w.audit, data: { id, ...w.audit.data } });
          break;
        }
        case 'artifact.put':
          await sql.putArtifact(c, w.row);
          break;
        case 'evidence':
          await ev.putEvidence(c, w.rows);
          break;
        case 'audit':
          await t.audit(w.entry);
          break;
        default:
          await sql.channelWrite(c, w);
      }
    }
    return { reportIds };
  }

  // ------------------------------------------------------------------------------------------
  // Observed state and reads (autocommit on the pool)

  /** One snapshot (a repeatable-read transaction): hosts, rollouts and channel maps agree. */
  async loadObserved(): Promise<Observed> {
    const c = await this.pool.connect();
    try {
      await c.query('BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY');
      const hs = await sql.allHosts(c);
      const rollouts = await sql.loadLiveRollouts(c);
      const channels = await sql.loadChannelState(c);
      await c.query('COMMIT');
      const hosts: Record<string, HostObservation> = {};
      for (const h of hs) hosts[h.hostname] = toObservation(h);
      return { hosts, rollouts, ...channels };
    } catch (e) {
      await c.query('ROLLBACK').catch(() => {});
      throw e;
    } finally {
      c.release();
    }
  }

  async loadHostSlice(hostname: string): Promise<Observed> {
    const h = await sql.getHost(this.pool, hostname);
    const hosts: Record<string, HostObservation> = h === null ? {} : { [hostname]: toObservation(h) };
    return { hosts, rollouts: await sql.loadRolloutsForHost(this.pool, hostname), quarantinedClosures: {}, pausedChannels: {}, lastConverged: {}, deferrals: {} };
  }

  loadChannelState(): Promise<ChannelState> {
    return sql.loadChannelState(this.pool);
  }
  getHost(hostname: string): Promise<HostRow | null> {
    return sql.getHost(this.pool, hostname);
  }
  allHosts(): Promise<HostRow[]> {
    return sql.allHosts(this.pool);
  }
  getRollout(id: string): Promise<RolloutRow | null> {
    return sql.getRollout(this.pool, id);
  }
  allRollouts(): Promise<RolloutRow[]> {
    return sql.allRollouts(this.pool);
  }
  rolloutHosts(id: string): Promise<RolloutHostRow[]> {
    return sql.rolloutHosts(this.pool, id);
  }
  rolloutHostCounts(id: string): Promise<Partial<Record<HostRolloutState, number>>> {
    return sql.rolloutHostCounts(this.pool, id);
  }
  transitions(id: string): Promise<TransitionRow[]> {
    return sql.transitions(this.pool, id);
  }
  newestRolloutRowPerHost(): Promise<Map<string, RolloutHostRow>> {
    return sql.newestRolloutRowPerHost(this.pool);
  }
  hostStateCounts(): Promise<Record<string, number>> {
    return sql.hostStateCounts(this.pool);
  }
  rolloutStateCounts(): Promise<Record<string, number>> {
    return sql.rolloutStateCounts(this.pool);
  }
  async checkinReads(hostname: string): Promise<{ pending: DispatchRow | null; rollback: DispatchRow | null }> {
    const [pending, rollback] = await Promise.all([sql.pendingDispatchFor(this.pool, hostname), sql.rollbackFor(this.pool, hostname)]);
    return { pending, rollback };
  }
  getDispatch(rolloutId: string, hostname: string): Promise<DispatchRow | null> {
    return sql.getDispatch(this.pool, rolloutId, hostname);
  }
  pendingDispatchFor(hostname: string): Promise<DispatchRow | null> {
    return sql.pendingDispatchFor(this.pool, hostname);
  }
  rollbackFor(hostname: string): Promise<DispatchRow | null> {
    return sql.rollbackFor(this.pool, hostname);
  }
  pendingDispatches(): Promise<DispatchRow[]> {
    return sql.pendingDispatches(this.pool);
  }
  expiredDispatches(nowMs: number): Promise<DispatchRow[]> {
    return sql.expiredDispatches(this.pool, nowMs);
  }
  quarantines(): Promise<QuarantineRow[]> {
    return sql.quarantines(this.pool);
  }
  getPause(channel: string): Promise<PauseRow | null> {
    return sql.getPause(this.pool, channel);
  }
  reportCount(): Promise<number> {
    return sql.reportCount(this.pool);
  }
  getArtifact(kind: ArtifactKind): Promise<ArtifactRow | null> {
    return sql.getArtifact(this.pool, kind);
  }
  auditPage(after: number, limit: number): Promise<AuditEntry[]> {
    return sql.auditPage(this.pool, after, limit);
  }
  auditAll(): Promise<AuditEntry[]> {
    return sql.auditAll(this.pool);
  }

  latestEvidence(): Promise<EvidenceRow[]> {
    return ev.latestEvidence(this.pool);
  }

  evidenceHistory(fromMs: number, toMs: number): Promise<EvidenceRow[]> {
    return ev.evidenceHistory(this.pool, fromMs, toMs);
  }
}
