/**
 * Where the signed release files come from (SPEC §2.4, §5): a local directory, an HTTP(S) URL pair
 * with ETag / If-None-Match (undici), or a git remote + ref fetched with the real `git`.
 *
 * A source only fetches bytes, under a size limit, and never interprets them: verification happens
 * in the artefact manager with `verifyArtifact`, before anything else.
 *
 * Besides the two artefacts a source reads the signed slice index `fleet.index.json` + `.sig`
 * (kind `index`, issue 19) from beside the fleet artefact: the same directory, the same git path,
 * or the URL of the same folder as the fleet URL (ETag / If-None-Match as for the others). A source
 * without one answers NOT_FOUND and the CP serves no slices.
 */
import { execFile } from 'node:child_process';
import { mkdirSync, readFileSync, statSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import { Agent, request, type Dispatcher } from 'undici';
import { SLICE_INDEX_FILE } from '../protocol/slice.ts';
import type { SignedKind } from '../protocol/verify.ts';
import type { SourceConfig } from './config.ts';

export type FetchErrorCode = 'FETCH_FAILED' | 'NOT_FOUND' | 'TOO_LARGE';

export type Fetched =
  | { kind: 'fetched'; bytes: Uint8Array; signature: Uint8Array }
  | { kind: 'not-modified' }
  | { kind: 'error'; code: FetchErrorCode; message: string };

export interface ArtifactSource {
  /** Human-readable location, for logs and the audit. */
  readonly describe: string;
  fetch(kind: SignedKind): Promise<Fetched>;
  close(): Promise<void>;
}

export const FILE_NAMES: Readonly<Record<SignedKind, string>> = Object.freeze({
  fleet: 'fleet.resolved.json',
  revocations: 'revocations.json',
  index: SLICE_INDEX_FILE,
});

const SIG_MAX_BYTES = 1024; // a raw signature is 64 bytes; anything much bigger is not one

export type SourceOptions = { maxBytes: number; timeoutMs: number; cacheDir: string; gitBin?: string };

export function createSource(cfg: SourceConfig, opts: SourceOptions): ArtifactSource {
  switch (cfg.type) {
    case 'dir':
      return new DirSource(cfg.dir, opts);
    case 'url':
      return new UrlSource(cfg, opts);
    case 'git':
      return new GitSource(cfg, opts);
  }
}

// ---------------------------------------------------------------------------------------------

class DirSource implements ArtifactSource {
  readonly describe: string;
  constructor(
    private readonly dir: string,
    private readonly opts: SourceOptions,
  ) {
    this.describe = `dir:${dir}`;
  }

  private read(path: string, max: number): { ok: true; bytes: Uint8Array } | { ok: false; code: FetchErrorCode; message: string } {
    try {
      const st = statSync(path);
      if (st.size > max) return { ok: false, code: 'TOO_LARGE', message: `${path} is ${st.size} bytes (limit ${max})` };
      const bytes = readFileSync(path);
      if (bytes.length > max) return { ok: false, code: 'TOO_LARGE', message: `${path} grew past ${max} bytes` };
      return { ok: true, bytes: new Uint8Array(bytes) };
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      return { ok: false, code: code === 'ENOENT' ? 'NOT_FOUND' : 'FETCH_FAILED', message: `${path}: ${code ?? String(e)}` };
    }
  }

  async fetch(kind: SignedKind): Promise<Fetched> {
    const path = join(this.dir, FILE_NAMES[kind]);
    const a = this.read(path, this.opts.maxBytes);
    if (!a.ok) return { kind: 'error', code: a.code, message: a.message };
    const s = this.read(path + '.sig', SIG_MAX_BYTES);
    if (!s.ok) return { kind: 'error', code: s.code, message: s.message };
    return { kind: 'fetched', bytes: a.bytes, signature: s.bytes };
  }

  async close(): Promise<void> {}
}

// ---------------------------------------------------------------------------------------------

/** `name` (and `name.sig`) in the folder of `url`; null when `url` does not parse. */
function siblingUrl(url: string, name: string): { url: string; sig: string } | null {
  try {
    const u = new URL(name, url).toString();
    return { url: u, sig: `${u}.sig` };
  } catch {
    return null;
  }
}

type Cached = { etag: string | null; bytes: Uint8Array };

class UrlSource implements ArtifactSource {
  readonly describe: string;
  private readonly dispatcher: Dispatcher;
  private readonly cache = new Map<string, Cached>();
  private readonly urls: Record<SignedKind, { url: string; sig: string } | null>;

  constructor(
    cfg: Extract<SourceConfig, { type: 'url' }>,
    private readonly opts: SourceOptions,
  ) {
    this.describe = `url:${cfg.fleetUrl}`;
    this.urls = {
      fleet: { url: cfg.fleetUrl, sig: cfg.fleetSigUrl ?? `${cfg.fleetUrl}.sig` },
      revocations: cfg.revocationsUrl === undefined ? null : { url: cfg.revocationsUrl, sig: cfg.revocationsSigUrl ?? `${cfg.revocationsUrl}.sig` },
      index: siblingUrl(cfg.fleetUrl, SLICE_INDEX_FILE),
    };
    const ca = cfg.caFile === undefined ? undefined : readFileSync(cfg.caFile, 'utf8');
    this.dispatcher = new Agent({
      connect: ca === undefined ? {} : { ca },
      headersTimeout: opts.timeoutMs,
      bodyTimeout: opts.timeoutMs,
    });
  }

  /** GET with If-None-Match; returns the cached bytes on 304. */
  private async get(url: string, max: number): Promise<{ ok: true; bytes: Uint8Array; changed: boolean } | { ok: false; code: FetchErrorCode; message: string }> {
    const cached = this.cache.get(url);
    const headers: Record<string, string> = { accept: 'application/json, application/octet-stream' };
    if (cached?.etag) headers['if-none-match'] = cached.etag;
    try {
      // undici does not follow redirects unless asked (no redirect interceptor): what we fetch is what is configured.
      const res = await request(url, { method: 'GET', headers, dispatcher: this.dispatcher, signal: AbortSignal.timeout(this.opts.timeoutMs) });
      if (res.statusCode === 304 && cached !== undefined) {
        await res.body.dump();
        return { ok: true, bytes: cached.bytes, changed: false };
      }
      if (res.statusCode === 404) {
        await res.body.dump();
        return { ok: false, code: 'NOT_FOUND', message: `${url}: 404` };
      }
      if (res.statusCode !== 200) {
        await res.body.dump();
        return { ok: false, code: 'FETCH_FAILED', message: `${url}: HTTP ${res.statusCode}` };
      }
      const len = Number(res.headers['content-length'] ?? NaN);
      if (Number.isFinite(len) && len > max) {
        res.body.destroy();
        return { ok: false, code: 'TOO_LARGE', message: `${url}: ${len} bytes (limit ${max})` };
      }
      // Read under the limit (a server may lie about or omit Content-Length).
      const chunks: Buffer[] = [];
      let total = 0;
      for await (const chunk of res.body) {
        total += (chunk as Buffer).length;
        if (total > max) {
          res.body.destroy();
          return { ok: false, code: 'TOO_LARGE', message: `${url}: more than ${max} bytes` };
        }
        chunks.push(chunk as Buffer);
      }
      const bytes = new Uint8Array(Buffer.concat(chunks));
      const etag = res.headers['etag'];
      this.cache.set(url, { etag: typeof etag === 'string' ? etag : null, bytes });
      return { ok: true, bytes, changed: true };
    } catch (e) {
      return { ok: false, code: 'FETCH_FAILED', message: `${url}: ${e instanceof Error ? e.message : String(e)}` };
    }
  }

  async fetch(kind: SignedKind): Promise<Fetched> {
    const u = this.urls[kind];
    if (u === null) return { kind: 'error', code: 'NOT_FOUND', message: `no URL configured for ${kind}` };
    const a = await this.get(u.url, this.opts.maxBytes);
    if (!a.ok) return { kind: 'error', code: a.code, message: a.message };
    const s = await this.get(u.sig, SIG_MAX_BYTES);
    if (!s.ok) return { kind: 'error', code: s.code, message: s.message };
    if (!a.changed && !s.changed) return { kind: 'not-modified' };
    return { kind: 'fetched', bytes: a.bytes, signature: s.bytes };
  }

  async close(): Promise<void> {
    await this.dispatcher.close();
  }
}

// ---------------------------------------------------------------------------------------------

function git(bin: string, args: string[], cwd: string, timeoutMs: number, maxBuffer: number): Promise<{ code: number; stdout: Buffer; stderr: string }> {
  return new Promise((resolve) => {
    execFile(
      bin,
      args,
      {
        cwd,
        encoding: 'buffer',
        timeout: timeoutMs,
        maxBuffer,
        // No prompts, no user/system config surprises (credential helpers, hooks, pagers).
        env: { ...process.env, GIT_TERMINAL_PROMPT: '0', GIT_CONFIG_NOSYSTEM: '1', GIT_PAGER: 'cat', LC_ALL: 'C' },
      },
      (error, stdout, stderr) => {
        const code = error === null ? 0 : typeof (error as { code?: unknown }).code === 'number' ? ((error as { code: number }).code) : 1;
        resolve({ code, stdout: stdout as Buffer, stderr: (stderr as Buffer).toString('utf8') });
      },
    );
  });
}

class GitSource implements ArtifactSource {
  readonly describe: string;
  private readonly repo: string;
  private readonly bin: string;
  private fetchedCommit: string | null = null;
  private lastFetch: Promise<{ ok: true; commit: string; changed: boolean } | { ok: false; message: string }> | null = null;
  private readonly seen = new Map<SignedKind, string>();

  constructor(
    private readonly cfg: Extract<SourceConfig, { type: 'git' }>,
    private readonly opts: SourceOptions,
  ) {
    this.describe = `git:${cfg.remote}#${cfg.ref}:${cfg.path}`;
    this.repo = opts.cacheDir;
    this.bin = opts.gitBin ?? 'git';
  }

  private async ensureRepo(): Promise<string | null> {
    if (existsSync(join(this.repo, 'HEAD'))) return null;
    mkdirSync(this.repo, { recursive: true, mode: 0o700 });
    const r = await git(this.bin, ['init', '--quiet', '--bare', '.'], this.repo, this.opts.timeoutMs, 1 << 20);
    return r.code === 0 ? null : `git init failed: ${r.stderr.trim()}`;
  }

  /** One `git fetch` per poll, shared by the fleet and revocations reads of that poll. */
  private async fetchRef(): Promise<{ ok: true; commit: string; changed: boolean } | { ok: false; message: string }> {
    const init = await this.ensureRepo();
    if (init !== null) return { ok: false, message: init };
    // `--` ends options: neither remote nor ref can be read as a git option.
    const f = await git(this.bin, ['fetch', '--quiet', '--no-tags', '--depth=1', '--', this.cfg.remote, this.cfg.ref], this.repo, this.opts.timeoutMs, 1 << 20);
    if (f.code !== 0) return { ok: false, message: `git fetch ${this.cfg.remote} ${this.cfg.ref} failed: ${f.stderr.trim()}` };
    const rev = await git(this.bin, ['rev-parse', '--verify', 'FETCH_HEAD^{commit}'], this.repo, this.opts.timeoutMs, 1 << 16);
    if (rev.code !== 0) return { ok: false, message: `git rev-parse FETCH_HEAD failed: ${rev.stderr.trim()}` };
    const commit = rev.stdout.toString('utf8').trim();
    const changed = commit !== this.fetchedCommit;
    this.fetchedCommit = commit;
    return { ok: true, commit, changed };
  }

  private async blob(commit: string, path: string, max: number): Promise<{ ok: true; bytes: Uint8Array } | { ok: false; code: FetchErrorCode; message: string }> {
    const spec = `${commit}:${path}`;
    const size = await git(this.bin, ['cat-file', '-s', spec], this.repo, this.opts.timeoutMs, 1 << 16);
    if (size.code !== 0) return { ok: false, code: 'NOT_FOUND', message: `${path} not found at ${commit.slice(0, 12)}` };
    const n = Number(size.stdout.toString('utf8').trim());
    if (!(n <= max)) return { ok: false, code: 'TOO_LARGE', message: `${path} is ${n} bytes (limit ${max})` };
    const r = await git(this.bin, ['cat-file', 'blob', spec], this.repo, this.opts.timeoutMs, max + 1);
    if (r.code !== 0) return { ok: false, code: 'FETCH_FAILED', message: `git cat-file ${spec} failed: ${r.stderr.trim()}` };
    return { ok: true, bytes: new Uint8Array(r.stdout) };
  }

  async fetch(kind: SignedKind): Promise<Fetched> {
    // The fleet read starts a new fetch; the revocations and index reads of the same poll reuse it.
    if (kind === 'fleet' || this.lastFetch === null) this.lastFetch = this.fetchRef();
    const f = await this.lastFetch;
    if (!f.ok) return { kind: 'error', code: 'FETCH_FAILED', message: f.message };
    if (this.seen.get(kind) === f.commit) return { kind: 'not-modified' };
    const base = this.cfg.path.replace(/\/+$/, '');
    const path = base === '' || base === '.' ? FILE_NAMES[kind] : `${base}/${FILE_NAMES[kind]}`;
    const a = await this.blob(f.commit, path, this.opts.maxBytes);
    if (!a.ok) return { kind: 'error', code: a.code, message: a.message };
    const s = await this.blob(f.commit, `${path}.sig`, SIG_MAX_BYTES);
    if (!s.ok) return { kind: 'error', code: s.code, message: s.message };
    this.seen.set(kind, f.commit);
    return { kind: 'fetched', bytes: a.bytes, signature: s.bytes };
  }

  async close(): Promise<void> {}
}
