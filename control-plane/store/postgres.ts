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
import { isConnectionError, Listener, notify } from './pg-notify.ts';
import { anchorPg, prunedAnything, prunedEntry, prunePg, type AuditAnchor, type PruneResult } from './retention.ts';
import * as sql from './pg-queries.ts';
import * as ev from './pg-evidence.ts';
import { auditHeadPg, putWitnessPg, witnessesPg, type WitnessRow } from './witness.ts';
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
import { StoreConflictError, StoreUnavailableError } from './types.ts';

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
  // A server that does not answer (host down, firewall) fails a request within seconds, not never.
  base.connectionTimeoutMillis = 5000;
  return base;
}

const ignore = (): void => {};

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

  private listener: Listener | null = null;

  private constructor(
    readonly pool: pg.Pool,
    private readonly clientConfig: pg.ClientConfig,
  ) {
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
    return new PostgresStore(pool, { ...pc, types });
  }

  async close(): Promise<void> {
    await this.listener?.close();
    await this.queue.catch(() => {});
    await this.pool.end();
  }

  // ------------------------------------------------------------------------------------------
  // Transactions

  /** Connection failures (the server restarting) become `StoreUnavailableError`; the rest pass. */
  private r<T>(p: Promise<T>): Promise<T> {
    return p.catch((e: unknown) => {
      throw isConnectionError(e) ? new StoreUnavailableError(`database unreachable: ${e instanceof Error ? e.message : String(e)}`) : e;
    });
  }

  /** Run `fn` in one transaction, after every write queued before it. */
  tx<T>(fn: (t: Tx) => Promise<T>): Promise<T> {
    const run = this.queue.then(() => this.inTx(fn));
    this.queue = run.catch(() => {});
    return run;
  }

  private async inTx<T>(fn: (t: Tx) => Promise<T>): Promise<T> {
    return this.r(this.inTxNow(fn));
  }

  /** A pooled connection; a connection error while it is checked out fails its query, never the process. */
  private async connect(): Promise<pg.PoolClient> {
    const c = await this.pool.connect();
    c.on('error', ignore);
    return c;
  }

  private release(c: pg.PoolClient, broken?: Error): void {
    c.off('error', ignore);
    c.release(broken);
  }

  private async inTxNow<T>(fn: (t: Tx) => Promise<T>): Promise<T> {
    const c = await this.connect();
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
      this.release(c, broken instanceof Error ? broken : undefined);
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
    return this.r(leader.lease(this.pool, holder, leaseMs));
  }

  releaseLease(holder: string): Promise<void> {
    return this.r(leader.release(this.pool, holder));
  }

  leaseHolder(): Promise<{ holder: string; epoch: number } | null> {
    return this.r(leader.holder(this.pool));
  }

  auditAnchor(): Promise<AuditAnchor | null> {
    return this.r(anchorPg(this.pool));
  }

  prune(cutoffMs: number, nowMs: number, fence: Fence): Promise<PruneResult> {
    return this.tx(async (t) => {
      await leader.checkFence(t.c, fence);
      t.head = await sql.lockAuditHead(t.c); // the chain's lock first: nobody appends meanwhile
      const r = await prunePg(t.c, cutoffMs, nowMs);
      if (prunedAnything(r)) await t.audit(prunedEntry(r, nowMs));
      return r;
    });
  }

  notifyLeader(from: string): Promise<void> {
    return this.r(notify(this.pool, from));
  }

  async listenForWakeups(onWake: (from: string) => void): Promise<void> {
    if (this.listener !== null) throw new Error('listenForWakeups: already listening');
    const l = new Listener(this.clientConfig, onWake);
    this.listener = l;
    await l.start();
  }

  wakeupListener(): { listening: boolean; reconnects: number } {
    return { listening: this.listening, reconnects: this.listenerReconnects };
  }

  /** Whether the LISTEN session is up now. */
  get listening(): boolean {
    return this.listener?.listening ?? false;
  }

  /** The LISTEN session's reconnections (metrics). */
  get listenerReconnects(): number {
    return this.listener?.reconnects ?? 0;
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
        case 'witness':
          await putWitnessPg(c, w.row);
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
  loadObserved(): Promise<Observed> {
    return this.r(this.loadObservedNow());
  }

  private async loadObservedNow(): Promise<Observed> {
    const c = await this.connect();
    let broken: Error | undefined;
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
      await c.query('ROLLBACK').catch((re: unknown) => (broken = re instanceof Error ? re : new Error(String(re))));
      throw e;
    } finally {
      this.release(c, broken);
    }
  }

  loadHostSlice(hostname: string): Promise<Observed> {
    return this.r(this.loadHostSliceNow(hostname));
  }

  private async loadHostSliceNow(hostname: string): Promise<Observed> {
    const h = await sql.getHost(this.pool, hostname);
    const hosts: Record<string, HostObservation> = h === null ? {} : { [hostname]: toObservation(h) };
    return { hosts, rollouts: await sql.loadRolloutsForHost(this.pool, hostname), quarantinedClosures: {}, pausedChannels: {}, lastConverged: {}, deferrals: {} };
  }

  loadChannelState(): Promise<ChannelState> {
    return this.r(sql.loadChannelState(this.pool));
  }
  getHost(hostname: string): Promise<HostRow | null> {
    return this.r(sql.getHost(this.pool, hostname));
  }
  allHosts(): Promise<HostRow[]> {
    return this.r(sql.allHosts(this.pool));
  }
  getRollout(id: string): Promise<RolloutRow | null> {
    return this.r(sql.getRollout(this.pool, id));
  }
  allRollouts(): Promise<RolloutRow[]> {
    return this.r(sql.allRollouts(this.pool));
  }
  rolloutHosts(id: string): Promise<RolloutHostRow[]> {
    return this.r(sql.rolloutHosts(this.pool, id));
  }
  rolloutHostCounts(id: string): Promise<Partial<Record<HostRolloutState, number>>> {
    return this.r(sql.rolloutHostCounts(this.pool, id));
  }
  transitions(id: string): Promise<TransitionRow[]> {
    return this.r(sql.transitions(this.pool, id));
  }
  newestRolloutRowPerHost(): Promise<Map<string, RolloutHostRow>> {
    return this.r(sql.newestRolloutRowPerHost(this.pool));
  }
  hostStateCounts(): Promise<Record<string, number>> {
    return this.r(sql.hostStateCounts(this.pool));
  }
  rolloutStateCounts(): Promise<Record<string, number>> {
    return this.r(sql.rolloutStateCounts(this.pool));
  }
  checkinReads(hostname: string): Promise<{ pending: DispatchRow | null; rollback: DispatchRow | null }> {
    return this.r(this.checkinReadsNow(hostname));
  }

  private async checkinReadsNow(hostname: string): Promise<{ pending: DispatchRow | null; rollback: DispatchRow | null }> {
    const [pending, rollback] = await Promise.all([sql.pendingDispatchFor(this.pool, hostname), sql.rollbackFor(this.pool, hostname)]);
    return { pending, rollback };
  }
  getDispatch(rolloutId: string, hostname: string): Promise<DispatchRow | null> {
    return this.r(sql.getDispatch(this.pool, rolloutId, hostname));
  }
  pendingDispatchFor(hostname: string): Promise<DispatchRow | null> {
    return this.r(sql.pendingDispatchFor(this.pool, hostname));
  }
  rollbackFor(hostname: string): Promise<DispatchRow | null> {
    return this.r(sql.rollbackFor(this.pool, hostname));
  }
  pendingDispatches(): Promise<DispatchRow[]> {
    return this.r(sql.pendingDispatches(this.pool));
  }
  expiredDispatches(nowMs: number): Promise<DispatchRow[]> {
    return this.r(sql.expiredDispatches(this.pool, nowMs));
  }
  quarantines(): Promise<QuarantineRow[]> {
    return this.r(sql.quarantines(this.pool));
  }
  getPause(channel: string): Promise<PauseRow | null> {
    return this.r(sql.getPause(this.pool, channel));
  }
  reportCount(): Promise<number> {
    return this.r(sql.reportCount(this.pool));
  }
  getArtifact(kind: ArtifactKind): Promise<ArtifactRow | null> {
    return this.r(sql.getArtifact(this.pool, kind));
  }

  artifactHistory(kind: ArtifactKind): Promise<ArtifactRow[]> {
    return this.r(sql.artifactHistory(this.pool, kind));
  }

  auditHead = (): Promise<{ seq: number; hash: string } | null> => this.r(auditHeadPg(this.pool));
  witnesses = (): Promise<WitnessRow[]> => this.r(witnessesPg(this.pool));
  auditPage(after: number, limit: number): Promise<AuditEntry[]> {
    return this.r(sql.auditPage(this.pool, after, limit));
  }
  auditAll(): Promise<AuditEntry[]> {
    return this.r(sql.auditAll(this.pool));
  }

  latestEvidence(): Promise<EvidenceRow[]> {
    return ev.latestEvidence(this.pool);
  }

  evidenceHistory(fromMs: number, toMs: number): Promise<EvidenceRow[]> {
    return ev.evidenceHistory(this.pool, fromMs, toMs);
  }
}
