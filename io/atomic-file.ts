/**
 * Durable file writes for the shells (release CLI, agent state). Not part of the pure core: it
 * does I/O, and only shell modules import it.
 *
 * Atomic means: write a uniquely named temporary file in the same directory, fsync it, rename it
 * over the target, fsync the directory. A reader sees the old file or the new one, never a torn
 * one, also after a power cut (SPEC §6 "every write atomic"; "Bad input and faults").
 */
import { closeSync, existsSync, fsyncSync, mkdirSync, openSync, renameSync, rmSync, writeSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';

export type AtomicWriteOptions = {
  /** File mode of the new file (default 0o644). */
  mode?: number;
  /** Create the directory (recursively) with this mode when it is missing. */
  mkdirMode?: number;
};

function fsyncDir(dir: string): void {
  try {
    const dfd = openSync(dir, 'r');
    try {
      fsyncSync(dfd);
    } finally {
      closeSync(dfd);
    }
  } catch {
    // Some filesystems refuse fsync on a directory; the rename itself is still atomic.
  }
}

/** Write `data` to `path` atomically (temp file, fsync, rename, fsync the directory). Throws the fs error. */
export function writeFileAtomic(path: string, data: string | Uint8Array, opts: AtomicWriteOptions = {}): void {
  const dir = dirname(path);
  if (opts.mkdirMode !== undefined) mkdirSync(dir, { recursive: true, mode: opts.mkdirMode });
  const tmp = join(dir, `.${basename(path)}.tmp-${process.pid}-${Math.random().toString(36).slice(2)}`);
  try {
    const fd = openSync(tmp, 'wx', opts.mode ?? 0o644);
    try {
      const buf = typeof data === 'string' ? Buffer.from(data, 'utf8') : data;
      let off = 0;
      while (off < buf.length) off += writeSync(fd, buf, off, buf.length - off);
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    renameSync(tmp, path);
  } catch (e) {
    rmSync(tmp, { force: true });
    throw e;
  }
  fsyncDir(dir);
}

/** Remove `path` (if present) and fsync its directory, so the removal survives a power cut. */
export function removeFileDurable(path: string): void {
  if (!existsSync(path)) return;
  rmSync(path);
  fsyncDir(dirname(path));
}
