/**
 * The leader lease of several control planes on one PostgreSQL (table `leader`, one row): holder,
 * epoch, expiry — on the database's clock, so replicas' clocks do not matter. Taking an expired
 * (or free) lease bumps the epoch; renewing keeps it. A fenced transaction locks the row `FOR
 * SHARE` after checking holder, epoch and expiry: a takeover (an UPDATE of that row) waits until
 * the fenced transaction ends, and a fenced transaction after a takeover finds another epoch.
 */
import type { Q } from './pg-queries.ts';
import { NotLeaderError, type Fence } from './types.ts';

/** Take the lease when free or expired, renew it when held: the epoch when `holder` leads, else null. */
export async function lease(q: Q, holder: string, leaseMs: number): Promise<number | null> {
  const r = await q.query<{ epoch: number; holder: string }>(
    `INSERT INTO leader (id, holder, epoch, expires_at) VALUES (1, $1, 1, clock_timestamp() + $2 * interval '1 millisecond')
     ON CONFLICT (id) DO UPDATE SET
       epoch = CASE WHEN leader.holder = excluded.holder AND leader.expires_at > clock_timestamp() THEN leader.epoch ELSE leader.epoch + 1 END,
       holder = excluded.holder, expires_at = excluded.expires_at
     WHERE leader.holder = excluded.holder OR leader.expires_at <= clock_timestamp()
     RETURNING epoch, holder`,
    [holder, leaseMs],
  );
  return r.rows[0]?.epoch ?? null;
}

export async function release(q: Q, holder: string): Promise<void> {
  await q.query(`UPDATE leader SET expires_at = clock_timestamp() - interval '1 second' WHERE id = 1 AND holder = $1`, [holder]);
}

export async function holder(q: Q): Promise<{ holder: string; epoch: number } | null> {
  const r = await q.query<{ holder: string; epoch: number }>('SELECT holder, epoch FROM leader WHERE id = 1 AND expires_at > clock_timestamp()');
  return r.rows[0] ?? null;
}

/** Inside a transaction: refuse unless `fence` still holds the lease; hold it until commit. */
export async function checkFence(q: Q, fence: Fence): Promise<void> {
  const r = await q.query('SELECT 1 FROM leader WHERE id = 1 AND holder = $1 AND epoch = $2 AND expires_at > clock_timestamp() FOR SHARE', [fence.holder, fence.epoch]);
  if (r.rowCount !== 1) throw new NotLeaderError(`not the leader any more (epoch ${fence.epoch} of ${fence.holder})`);
}
