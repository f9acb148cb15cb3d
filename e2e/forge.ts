/**
 * A git forge on loopback: a bare repository (the "remote"), a working clone where people and the
 * scripted CI step commit, and a raw-file HTTP endpoint like a forge's
 * `https://forge/<repo>/raw/<ref>/<path>` that serves the committed bytes of `main` with a strong
 * ETag (sha256) and answers `If-None-Match` with 304 — what the CP polls (SPEC §2.4, §5).
 */
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:http';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { dirname, join } from 'node:path';
import { runOk } from './proc.ts';

const GIT_ID = ['-c', 'user.name=nixfleet e2e', '-c', 'user.email=e2e@nixfleet.invalid', '-c', 'init.defaultBranch=main', '-c', 'commit.gpgsign=false'];

export class Forge {
  readonly bare: string;
  readonly work: string;
  private server: Server | null = null;
  private base = '';
  /** Requests answered, by path (diagnostics; lets tests see that the CP really polls). */
  readonly hits = new Map<string, number>();

  private constructor(root: string) {
    this.bare = join(root, 'forge.git');
    this.work = join(root, 'forge-work');
  }

  static async create(root: string, listenHost: string): Promise<Forge> {
    const f = new Forge(root);
    await runOk('git', [...GIT_ID, 'init', '-q', '--bare', f.bare]);
    await runOk('git', [...GIT_ID, 'clone', '-q', f.bare, f.work]);
    await f.git(['checkout', '-q', '-b', 'main']);
    f.write('README.md', '# fleet repository (nixfleet e2e)\n');
    await f.commit('initial commit');
    await f.listen(listenHost);
    return f;
  }

  async git(args: readonly string[]): Promise<string> {
    return (await runOk('git', [...GIT_ID, ...args], { cwd: this.work })).stdout;
  }

  write(path: string, content: string | Uint8Array): void {
    const p = join(this.work, path);
    mkdirSync(dirname(p), { recursive: true });
    writeFileSync(p, content);
  }

  /** Commit everything in the working clone and push to the bare repository; returns the sha. */
  async commit(message: string): Promise<string> {
    await this.git(['add', '-A']);
    await this.git(['commit', '-q', '--allow-empty', '-m', message]);
    await this.git(['push', '-q', 'origin', 'HEAD:main']);
    return (await this.git(['rev-parse', 'HEAD'])).trim();
  }

  /** The committed bytes of `path` at `ref` in the bare repository, or null when absent. */
  async show(ref: string, path: string): Promise<Buffer | null> {
    return new Promise((resolve) => {
      execFile('git', ['--git-dir', this.bare, 'show', `${ref}:${path}`], { encoding: 'buffer', maxBuffer: 64 * 1024 * 1024 }, (e, stdout) =>
        resolve(e === null ? stdout : null),
      );
    });
  }

  async head(): Promise<string> {
    return (await runOk('git', ['--git-dir', this.bare, 'rev-parse', 'main'])).stdout.trim();
  }

  /** `<base>/raw/main/<path>` */
  rawUrl(path: string): string {
    if (this.base === '') throw new Error('forge is not listening');
    return `${this.base}/raw/main/${path}`;
  }

  private listen(host: string): Promise<void> {
    const server = createServer((req, res) => {
      const m = /^\/raw\/([A-Za-z0-9._/-]+?)\/(releases\/[A-Za-z0-9._-]+)$/.exec(req.url ?? '');
      if (req.method !== 'GET' || m === null) {
        res.writeHead(404).end('not found\n');
        return;
      }
      const [, ref, path] = m as unknown as [string, string, string];
      this.hits.set(path, (this.hits.get(path) ?? 0) + 1);
      void this.show(ref, path).then((bytes) => {
        if (bytes === null) {
          res.writeHead(404).end('not found\n');
          return;
        }
        const etag = `"${createHash('sha256').update(bytes).digest('hex')}"`;
        if (req.headers['if-none-match'] === etag) {
          res.writeHead(304, { ETag: etag }).end();
          return;
        }
        res.writeHead(200, { ETag: etag, 'Content-Type': 'application/octet-stream', 'Content-Length': bytes.length }).end(bytes);
      });
    });
    this.server = server;
    return new Promise((resolve, reject) => {
      server.once('error', reject);
      server.listen(0, host, () => {
        const a = server.address() as AddressInfo;
        this.base = `http://${host}:${a.port}`;
        resolve();
      });
    });
  }

  async close(): Promise<void> {
    const s = this.server;
    this.server = null;
    if (s === null) return;
    s.closeAllConnections();
    await new Promise<void>((resolve) => s.close(() => resolve()));
  }
}

