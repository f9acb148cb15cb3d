/**
 * The dashboard's view of the CP's audit log (SPEC §5 audit): entries are taken page by page in
 * ascending `seq`, each checked against the chain rule (protocol/audit-chain.ts, the same rule as
 * `nixfleet audit verify`) as it arrives, so a refresh costs only the entries written since the last
 * one. Pure: entries in, state out; the fetching is in source.ts.
 *
 * From the verified entries it keeps what no other read route serves: the release in force (the
 * newest `artifact.accepted` of the fleet: signedAt, ciCommit, key slot, sha256), and per host its
 * history (state transitions across rollouts) and its signed statements (reports, confirmed
 * records) with the CP's verdict on each signature. Per host, only the newest `MAX_PER_HOST` are kept.
 */
import type { AuditEntry } from '../../protocol/api.ts';
import { GENESIS_HASH, auditEntryHash } from '../../protocol/audit-chain.ts';

export const MAX_PER_HOST = 200;

export type ChainState = {
  /** Entries checked so far, from `firstSeq`. */
  entries: number;
  /** 1, or where the kept log starts after the CP's retention pruned older entries (its first prevHash is then taken as given). */
  firstSeq: number;
  lastSeq: number;
  lastHash: string;
  /** The first entry that broke the chain; nothing after it is trusted (or read). */
  broken: { seq: number; reason: string } | null;
};

export type ReleaseInForce = { sha256: string; signedAt: string; ciCommit: string | null; keyRole: string; acceptedAt: string; seq: number };

export type HostTransition = { seq: number; at: string; rolloutId: string; from: string | null; to: string; wave: number | null; reason: string };

export type SignedStatement = {
  seq: number;
  at: string;
  /** `report <event>` or `confirmed record`. */
  what: string;
  rolloutId: string | null;
  closureHash: string | null;
  message: string;
  /** The CP's verdict on the host signature: verified, unsigned-no-pubkey or invalid. */
  verdict: string;
  signature: string | null;
};

export type HostRecord = { transitions: HostTransition[]; statements: SignedStatement[] };

export type Feed = {
  chain: ChainState;
  release: ReleaseInForce | null;
  hosts: Map<string, HostRecord>;
};

export function emptyFeed(): Feed {
  return { chain: { entries: 0, firstSeq: 1, lastSeq: 0, lastHash: GENESIS_HASH, broken: null }, release: null, hosts: new Map() };
}

const obj = (u: unknown): Record<string, unknown> | null => (typeof u === 'object' && u !== null && !Array.isArray(u) ? (u as Record<string, unknown>) : null);
const str = (u: unknown): string | null => (typeof u === 'string' ? u : null);

function hostRecord(feed: Feed, host: string): HostRecord {
  let r = feed.hosts.get(host);
  if (r === undefined) {
    r = { transitions: [], statements: [] };
    feed.hosts.set(host, r);
  }
  return r;
}

function keepNewest<T>(list: T[], item: T): void {
  list.push(item);
  if (list.length > MAX_PER_HOST) list.splice(0, list.length - MAX_PER_HOST);
}

/**
 * Check `entries` (the next page, ascending) against the chain and fold them into `feed` (mutated).
 * Stops at the first bad entry and records it in `chain.broken`; later calls then add nothing.
 */
export function applyEntries(feed: Feed, entries: readonly AuditEntry[]): void {
  const chain = feed.chain;
  for (const e of entries) {
    if (chain.broken !== null) return;
    if (chain.entries === 0 && e.seq > 1) {
      // Retention pruned the start (the CP's audit anchor): chain from the first kept entry.
      chain.firstSeq = e.seq;
      chain.lastSeq = e.seq - 1;
      chain.lastHash = e.prevHash;
    }
    const expect = chain.lastSeq + 1;
    if (e.seq !== expect) {
      chain.broken = { seq: e.seq, reason: `expected seq ${expect}, found ${e.seq} (entry missing or reordered)` };
      return;
    }
    if (e.prevHash !== chain.lastHash) {
      chain.broken = { seq: e.seq, reason: 'prevHash does not match the previous entry' };
      return;
    }
    let h: string;
    try {
      h = auditEntryHash(e);
    } catch (x) {
      chain.broken = { seq: e.seq, reason: String(x) };
      return;
    }
    if (h !== e.hash) {
      chain.broken = { seq: e.seq, reason: 'hash does not match the entry (edited)' };
      return;
    }
    chain.entries += 1;
    chain.lastSeq = e.seq;
    chain.lastHash = e.hash;
    index(feed, e);
  }
}

/** What one verified entry tells the pages. */
function index(feed: Feed, e: AuditEntry): void {
  const d = obj(e.data);
  if (d === null) return;
  if (e.kind === 'artifact.accepted' && e.subject === 'fleet') {
    const sha256 = str(d['sha256']);
    const signedAt = str(d['signedAt']);
    if (sha256 !== null && signedAt !== null) {
      feed.release = { sha256, signedAt, ciCommit: str(d['ciCommit']), keyRole: str(d['keyRole']) ?? 'unknown', acceptedAt: e.at, seq: e.seq };
    }
    return;
  }
  if (e.kind === 'host.state') {
    const host = str(d['host']);
    const to = str(d['to']);
    if (host === null || to === null) return;
    const wave = d['wave'];
    keepNewest(hostRecord(feed, host).transitions, {
      seq: e.seq,
      at: e.at,
      rolloutId: e.subject,
      from: str(d['from']),
      to,
      wave: typeof wave === 'number' ? wave : null,
      reason: str(d['reason']) ?? '',
    });
    return;
  }
  // Signed host statements: `report` / `report.invalid` ({report, signature, verdict}) and
  // `host.confirmed-record` ({record, signature, verdict}), as cli/audit.ts reads them.
  const report = obj(d['report']);
  const record = obj(d['record']);
  const statement = report ?? record;
  if (statement === null || !('signature' in d)) return;
  const host = str(statement['hostname']);
  if (host === null) return;
  keepNewest(hostRecord(feed, host).statements, {
    seq: e.seq,
    at: e.at,
    what: report !== null ? `report ${str(report['event']) ?? '?'}` : 'confirmed record',
    rolloutId: str(statement['rolloutId']),
    closureHash: str(statement['closureHash']),
    message: report !== null ? (str(report['message']) ?? '') : `confirmed at ${str(statement['confirmedAt']) ?? '?'}`,
    verdict: str(d['verdict']) ?? 'unknown',
    signature: str(d['signature']),
  });
}
