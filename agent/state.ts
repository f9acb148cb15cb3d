/**
 * The agent's persisted state under `stateDir` (SPEC §6): newest accepted artefact per kind, the
 * pending activation record, quarantine, last outcome, the last confirmed target (signed by the
 * host key), and a cache of fetched artefacts by sha256.
 *
 * Every write is atomic: write a temporary file in the same directory, fsync it, rename it over
 * the target, fsync the directory. A reader sees the old file or the new one, never a torn one,
 * also after a power cut. A file that does not parse is reported (never silently treated as
 * empty): a corrupt pending record must not make the agent forget an activation in progress.
 */
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { removeFileDurable, writeFileAtomic as writeFileAtomicDurable } from '../io/atomic-file.ts';
import type { SignedConfirmedRecord } from '../protocol/api.ts';
import type { AcceptedState, SignedKind } from '../protocol/verify.ts';

/** Kinds with a newest accepted state: the artefacts and the slice index (`accepted-index.json`). */
export type AcceptedKind = SignedKind;
import type { LastOutcome, Outcome, Pending, QuarantineEntry } from './machine.ts';

/** Agent state files are private to root: 0600 files in a 0700 directory. */
export function writeFileAtomic(file: string, data: string | Uint8Array, mode = 0o600): void {
  writeFileAtomicDurable(file, data, { mode, mkdirMode: 0o700 });
}

export { removeFileDurable };

export class StateCorrupt extends Error {
  constructor(
    readonly file: string,
    message: string,
  ) {
    super(`${file}: ${message}`);
  }
}

/** The persisted parts of the agent, as the effect interpreter and the loop use them. */
export interface StateStore {
  loadPending(): Pending | null;
  savePending(p: Pending): void;
  clearPending(): void;
  loadQuarantine(): QuarantineEntry[];
  saveQuarantine(q: QuarantineEntry[]): void;
  loadOutcome(): { lastOutcome: LastOutcome | null; deferred: string | null };
  saveOutcome(lastOutcome: LastOutcome, deferred: string | null): void;
  loadConfirmed(): SignedConfirmedRecord | null;
  saveConfirmed(r: SignedConfirmedRecord): void;
  loadAccepted(kind: AcceptedKind): AcceptedState | null;
  saveAccepted(kind: AcceptedKind, a: AcceptedState): void;
  /** Cached artefact bytes + signature by sha256 (hex of the canonical bytes). */
  loadArtifact(sha256: string): { bytes: Uint8Array; signature: Uint8Array } | null;
  saveArtifact(sha256: string, bytes: Uint8Array, signature: Uint8Array): void;
}

type Json = unknown;

function isObj(v: Json): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}
const isStr = (v: unknown): v is string => typeof v === 'string';
const isNum = (v: unknown): v is number => typeof v === 'number' && Number.isFinite(v);

function parsePending(v: Json): Pending | null {
  if (!isObj(v)) return null;
  const { rolloutId, closureHash, closurePath, previous, deadlineMs, startedAtMs, action, phase, reason } = v;
  if (!isStr(rolloutId) || !isStr(closureHash) || !isStr(closurePath) || !(previous === null || isStr(previous))) return null;
  if (!isNum(deadlineMs) || !isNum(startedAtMs)) return null;
  if (action !== 'switch' && action !== 'boot') return null;
  if (phase !== 'switching' && phase !== 'switched' && phase !== 'rolling-back') return null;
  const p: Pending = { rolloutId, closureHash, closurePath, previous, deadlineMs, startedAtMs, action, phase };
  if (isStr(reason)) p.reason = reason;
  return p;
}

function parseQuarantine(v: Json): QuarantineEntry[] | null {
  if (!Array.isArray(v)) return null;
  const out: QuarantineEntry[] = [];
  for (const e of v) {
    if (!isObj(e) || !isStr(e['closureHash']) || !isStr(e['rolloutId']) || !isNum(e['sinceMs']) || !isNum(e['untilMs']) || !isStr(e['reason'])) return null;
    out.push({ closureHash: e['closureHash'], rolloutId: e['rolloutId'], sinceMs: e['sinceMs'], untilMs: e['untilMs'], reason: e['reason'] });
  }
  return out;
}

const OUTCOMES: ReadonlySet<string> = new Set<Outcome>(['confirmed', 'rolled-back', 'activation-failed', 'activation-deferred', 'refused']);

function parseOutcome(v: Json): { lastOutcome: LastOutcome | null; deferred: string | null } | null {
  if (!isObj(v)) return null;
  const d = v['deferred'];
  if (!(d === null || isStr(d))) return null;
  const lo = v['lastOutcome'];
  if (lo === null) return { lastOutcome: null, deferred: d };
  if (!isObj(lo) || !isStr(lo['rolloutId']) || !isStr(lo['closureHash']) || !isStr(lo['outcome']) || !OUTCOMES.has(lo['outcome']) || !isNum(lo['atMs'])) return null;
  const lastOutcome: LastOutcome = { rolloutId: lo['rolloutId'], closureHash: lo['closureHash'], outcome: lo['outcome'] as LastOutcome['outcome'], atMs: lo['atMs'] };
  const prev = lo['previous'];
  if (prev === null || isStr(prev)) lastOutcome.previous = prev;
  const boot = lo['bootId'];
  if (isStr(boot)) lastOutcome.bootId = boot;
  return { lastOutcome, deferred: d };
}

function parseConfirmed(v: Json): SignedConfirmedRecord | null {
  if (!isObj(v) || !isStr(v['signature']) || !isObj(v['record'])) return null;
  const r = v['record'];
  if (!isStr(r['hostname']) || !isStr(r['rolloutId']) || !isStr(r['closureHash']) || !isStr(r['confirmedAt'])) return null;
  return { record: { hostname: r['hostname'], rolloutId: r['rolloutId'], closureHash: r['closureHash'], confirmedAt: r['confirmedAt'] }, signature: v['signature'] };
}

function parseAccepted(v: Json): AcceptedState | null {
  if (!isObj(v) || !isStr(v['signedAt']) || !isStr(v['sha256'])) return null;
  return { signedAt: v['signedAt'], sha256: v['sha256'] };
}

const SHA256_HEX = /^[0-9a-f]{64}$/;

/** `StateStore` over files in `stateDir` (created 0700). */
export class FileStateStore implements StateStore {
  constructor(readonly dir: string) {
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    mkdirSync(join(dir, 'artifacts'), { recursive: true, mode: 0o700 });
  }

  private read<T>(name: string, parse: (v: Json) => T | null, empty: T): T {
    const file = join(this.dir, name);
    if (!existsSync(file)) return empty;
    let v: Json;
    try {
      v = JSON.parse(readFileSync(file, 'utf8'));
    } catch (e) {
      throw new StateCorrupt(file, `not JSON (${(e as Error).message})`);
    }
    const parsed = parse(v);
    if (parsed === null) throw new StateCorrupt(file, 'unexpected content');
    return parsed;
  }

  private write(name: string, v: unknown): void {
    writeFileAtomic(join(this.dir, name), JSON.stringify(v, null, 2) + '\n');
  }

  loadPending(): Pending | null {
    return this.read<Pending | null>('pending.json', parsePending, null);
  }
  savePending(p: Pending): void {
    this.write('pending.json', p);
  }
  clearPending(): void {
    removeFileDurable(join(this.dir, 'pending.json'));
  }
  loadQuarantine(): QuarantineEntry[] {
    return this.read('quarantine.json', parseQuarantine, []);
  }
  saveQuarantine(q: QuarantineEntry[]): void {
    this.write('quarantine.json', q);
  }
  loadOutcome(): { lastOutcome: LastOutcome | null; deferred: string | null } {
    return this.read('outcome.json', parseOutcome, { lastOutcome: null, deferred: null });
  }
  saveOutcome(lastOutcome: LastOutcome, deferred: string | null): void {
    this.write('outcome.json', { lastOutcome, deferred });
  }
  loadConfirmed(): SignedConfirmedRecord | null {
    return this.read<SignedConfirmedRecord | null>('confirmed.json', parseConfirmed, null);
  }
  saveConfirmed(r: SignedConfirmedRecord): void {
    this.write('confirmed.json', r);
  }
  loadAccepted(kind: AcceptedKind): AcceptedState | null {
    return this.read<AcceptedState | null>(`accepted-${kind}.json`, parseAccepted, null);
  }
  saveAccepted(kind: AcceptedKind, a: AcceptedState): void {
    this.write(`accepted-${kind}.json`, a);
  }
  loadArtifact(sha256: string): { bytes: Uint8Array; signature: Uint8Array } | null {
    if (!SHA256_HEX.test(sha256)) return null;
    const base = join(this.dir, 'artifacts', sha256);
    if (!existsSync(`${base}.json`) || !existsSync(`${base}.sig`)) return null;
    return { bytes: readFileSync(`${base}.json`), signature: readFileSync(`${base}.sig`) };
  }
  saveArtifact(sha256: string, bytes: Uint8Array, signature: Uint8Array): void {
    if (!SHA256_HEX.test(sha256)) throw new Error(`not a sha256: ${sha256}`);
    const base = join(this.dir, 'artifacts', sha256);
    // Signature first: a cached artefact is only used when both files exist.
    writeFileAtomic(`${base}.sig`, signature);
    writeFileAtomic(`${base}.json`, bytes);
    this.pruneArtifacts(sha256);
  }

  /** Keeps the newest few cached artefacts (each can be up to maxArtifactBytes). */
  private pruneArtifacts(keep: string, max = 3): void {
    const dir = join(this.dir, 'artifacts');
    const entries = readdirSync(dir)
      .filter((f) => f.endsWith('.json'))
      .map((f) => ({ sha: f.slice(0, -'.json'.length), mtime: statSync(join(dir, f)).mtimeMs }))
      .filter((e) => e.sha !== keep)
      .sort((a, b) => b.mtime - a.mtime);
    for (const e of entries.slice(max - 1)) {
      rmSync(join(dir, `${e.sha}.json`), { force: true });
      rmSync(join(dir, `${e.sha}.sig`), { force: true });
    }
  }
}
