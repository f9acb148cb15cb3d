/**
 * Audit anchoring on the CP side (issue 15, protocol/audit-witness.ts): a check-in's host-signed
 * witness of the head it was last shown is verified under the host key of the signed fleet and
 * kept; when the witnessed head is not in this CP's chain (a database rebuilt from empty, or a
 * rewritten log) the CP appends one `audit.relinked` entry carrying it, so the new chain names the
 * last witnessed head of the old one instead of silently starting over — unless retention pruned
 * the witnessed entry (kept, not relinked). Operator checkpoints
 * (`nixfleet audit checkpoint`) are accepted only for a head this chain holds.
 */
import type { Checkpoint, CheckpointRequest, SignedHeadWitness, WitnessesResponse } from '../protocol/audit-witness.ts';
import { fromBase64, verifySignature } from '../protocol/crypto.ts';
import { canonicalBytes } from '../protocol/jcs.ts';
import { ApiError } from './errors.ts';
import type { Store, Write } from './store/types.ts';

const iso = (ms: number): string => new Date(ms).toISOString();

export class WitnessKeeper {
  /** Per host, the last witness handled (`seq:hash`): a host repeats it until it is shown a new head. */
  private readonly seen = new Map<string, string>();
  /** Old heads this process already relinked to. */
  private readonly relinked = new Set<string>();

  constructor(private readonly d: { store: Store }) {}

  /**
   * The writes for a check-in's witness (none when absent, repeated, or not verifiable: a witness
   * never fails a check-in — it is evidence for the auditor, not a condition of service).
   */
  async forCheckin(h: string, w: SignedHeadWitness | undefined, hostKey: string | null, nowMs: number): Promise<Write[]> {
    if (w === undefined || w.witness.hostname !== h || hostKey === null || w.signature === null) return [];
    const key = `${w.witness.seq}:${w.witness.hash}`;
    if (this.seen.get(h) === key) return [];
    const bytes = canonicalBytes(w.witness);
    const sig = fromBase64(w.signature);
    if (!bytes.ok || sig === null || sig.length !== 64 || !verifySignature('ed25519', hostKey, bytes.value, sig)) return [];
    this.seen.set(h, key);
    const writes: Write[] = [{ kind: 'witness', row: { by: `host:${h}`, seq: w.witness.seq, hash: w.witness.hash, at: w.witness.at, witness: w.witness, signature: w.signature, receivedMs: nowMs } }];
    const [entry] = await this.d.store.auditPage(w.witness.seq - 1, 1);
    if (entry?.seq === w.witness.seq && entry.hash === w.witness.hash) return writes;
    if (await prunedHead(this.d.store, w.witness)) return writes;
    if (this.relinked.has(key) || (await this.d.store.auditAll()).some((e) => e.kind === 'audit.relinked' && (e.data as { witness?: { seq?: number; hash?: string } }).witness?.hash === w.witness.hash)) return writes;
    this.relinked.add(key);
    writes.push({
      kind: 'audit',
      entry: {
        atMs: nowMs,
        kind: 'audit.relinked',
        actor: 'cp',
        subject: 'audit',
        data: { reason: entry === undefined ? 'the witnessed head is beyond this chain (rebuilt from empty, or its tail cut)' : 'this chain has another entry at the witnessed seq (rewritten, or rebuilt)', by: `host:${h}`, witness: w.witness, signature: w.signature, receivedAt: iso(nowMs) },
      },
    });
    return writes;
  }

  /** `POST /v1/audit/checkpoint`: the operator's head must be one of this chain's entries. */
  async checkpoint(operator: string, head: { seq: number; hash: string }, nowMs: number): Promise<{ seq: number; hash: string; at: string }> {
    const [entry] = await this.d.store.auditPage(head.seq - 1, 1);
    if (entry?.seq !== head.seq || entry.hash !== head.hash) throw new ApiError('INVALID_BODY', `seq ${head.seq} with hash ${head.hash.slice(0, 12)}… is not an entry of this audit chain`);
    const at = iso(nowMs);
    await this.d.store.apply([
      { kind: 'witness', row: { by: `operator:${operator}`, seq: head.seq, hash: head.hash, at, witness: null, signature: null, receivedMs: nowMs } },
      { kind: 'audit', entry: { atMs: nowMs, kind: 'audit.checkpoint', actor: `operator:${operator}`, subject: 'audit', data: { seq: head.seq, hash: head.hash } } },
    ]);
    return { seq: head.seq, hash: head.hash, at };
  }
}

/**
 * Whether a witnessed head is of an entry retention pruned (store/retention.ts): below the anchor
 * (it cannot be checked any more: a host that was offline longer than the retention, not a
 * rebuilt chain), or the anchor itself. A head at the anchor's seq with another hash is not.
 */
async function prunedHead(store: Store, w: { seq: number; hash: string }): Promise<boolean> {
  const anchor = await store.auditAnchor();
  return anchor !== null && (w.seq < anchor.seq || (w.seq === anchor.seq && w.hash === anchor.hash));
}

/** `GET /v1/audit/witnesses`: the chain head and every witness kept (without the receive time). */
export async function witnessesResponse(store: Store): Promise<WitnessesResponse> {
  const ws = await store.witnesses();
  return { head: await store.auditHead(), witnesses: ws.map(({ receivedMs: _r, ...w }) => w) };
}

/** `POST /v1/audit/checkpoint` by operator `cn`. */
export async function operatorCheckpoint(store: Store, cn: string, req: CheckpointRequest, nowMs: number): Promise<Checkpoint> {
  return { by: `operator:${cn}`, ...(await new WitnessKeeper({ store }).checkpoint(cn, req, nowMs)) };
}
