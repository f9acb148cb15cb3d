/**
 * The used-token ledger (issue 16): the nonces of bootstrap tokens already spent, in a signed
 * sidecar file **outside the database**. The database may be wiped and rebuilt from the artefact
 * source and the agents' check-ins (SPEC §5); a used token must not come back to life with it.
 *
 * The file is `{schemaVersion: 1, entries: [{nonce, hostname, expiresAt, usedAt}], signature}`;
 * `signature` is the host-issuance intermediate's ECDSA signature (DER, base64) over the JCS bytes
 * of `{schemaVersion, entries}`. Editing the file (dropping a nonce to replay its token) breaks the
 * signature, and a ledger that does not verify refuses every token (`TOKEN_LEDGER_UNUSABLE`)
 * until an operator looks — rather than silently accepting replays. Entries are pruned a day after
 * their token expired: an expired token is refused on its own.
 *
 * Written atomically (io/atomic-file.ts), re-read before each use (another process may share it),
 * and used one token at a time within this process.
 */
import { createPrivateKey, createPublicKey, sign, verify, type KeyObject } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { writeFileAtomic } from '../io/atomic-file.ts';
import { canonicalBytes, parseJsonStrict } from '../protocol/jcs.ts';
import { err, ok, type Result } from '../protocol/result.ts';
import { parseTimestamp } from '../protocol/vocab.ts';

export type LedgerEntry = { nonce: string; hostname: string; expiresAt: string; usedAt: string };
export type LedgerError = { code: 'TOKEN_REPLAYED' | 'TOKEN_LEDGER_UNUSABLE'; message: string };

const PRUNE_AFTER_EXPIRY_MS = 86_400_000;

const isEntry = (u: unknown): u is LedgerEntry => {
  if (typeof u !== 'object' || u === null) return false;
  const e = u as Record<string, unknown>;
  return typeof e['nonce'] === 'string' && typeof e['hostname'] === 'string' && typeof e['expiresAt'] === 'string' && typeof e['usedAt'] === 'string';
};

export class TokenLedger {
  private readonly key: KeyObject;
  private readonly pub: KeyObject;
  private queue: Promise<unknown> = Promise.resolve();

  constructor(
    private readonly path: string,
    issuerKeyPem: string,
    private readonly now: () => number,
  ) {
    this.key = createPrivateKey(issuerKeyPem);
    this.pub = createPublicKey(this.key);
  }

  private body(entries: LedgerEntry[]): Uint8Array {
    const b = canonicalBytes({ schemaVersion: 1, entries });
    if (!b.ok) throw new Error(`bug: ledger not canonicalisable (${b.error.message})`);
    return b.value;
  }

  /** The entries on disk (none when the file does not exist yet), or why the ledger is unusable. */
  read(): Result<LedgerEntry[], LedgerError> {
    let text: string;
    try {
      text = readFileSync(this.path, 'utf8');
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return ok([]);
      return err({ code: 'TOKEN_LEDGER_UNUSABLE', message: `used-token ledger ${this.path}: cannot read (${(e as NodeJS.ErrnoException).code ?? String(e)})` });
    }
    const parsed = parseJsonStrict(text, { maxBytes: 64 * 1024 * 1024 });
    const v = parsed.ok ? (parsed.value as { schemaVersion?: unknown; entries?: unknown; signature?: unknown }) : null;
    if (v === null || typeof v !== 'object' || v.schemaVersion !== 1 || !Array.isArray(v.entries) || !v.entries.every(isEntry) || typeof v.signature !== 'string') {
      return err({ code: 'TOKEN_LEDGER_UNUSABLE', message: `used-token ledger ${this.path} is malformed; bootstrap tokens are refused until it is repaired` });
    }
    const entries = v.entries;
    if (!verify('sha256', this.body(entries), this.pub, Buffer.from(v.signature, 'base64'))) {
      return err({ code: 'TOKEN_LEDGER_UNUSABLE', message: `used-token ledger ${this.path} does not carry a valid signature of the issuance key (edited?); bootstrap tokens are refused until it is repaired` });
    }
    return ok(entries);
  }

  private write(entries: LedgerEntry[]): void {
    const body = this.body(entries);
    const signature = sign('sha256', body, this.key).toString('base64');
    writeFileAtomic(this.path, JSON.stringify({ schemaVersion: 1, entries, signature }, null, 1) + '\n', { mode: 0o600 });
  }

  /**
   * Spend a token's nonce: `TOKEN_REPLAYED` when it was spent before (by any host), else record
   * it durably before answering (a crash after this point loses the certificate, not the record).
   */
  consume(entry: Omit<LedgerEntry, 'usedAt'>): Promise<Result<void, LedgerError>> {
    const run = async (): Promise<Result<void, LedgerError>> => {
      const current = this.read();
      if (!current.ok) return current;
      const seen = current.value.find((e) => e.nonce === entry.nonce);
      if (seen !== undefined) return err({ code: 'TOKEN_REPLAYED', message: `this bootstrap token was already used (by ${JSON.stringify(seen.hostname)} at ${seen.usedAt}); mint a new one` });
      const nowMs = this.now();
      const kept = current.value.filter((e) => (parseTimestamp(e.expiresAt) ?? Infinity) + PRUNE_AFTER_EXPIRY_MS > nowMs);
      try {
        this.write([...kept, { ...entry, usedAt: new Date(nowMs).toISOString() }]);
      } catch (e) {
        return err({ code: 'TOKEN_LEDGER_UNUSABLE', message: `used-token ledger ${this.path}: cannot write (${(e as NodeJS.ErrnoException).code ?? String(e)})` });
      }
      return ok(undefined);
    };
    const p = this.queue.then(run, run);
    this.queue = p;
    return p;
  }
}
