/**
 * A minimal POSIX ustar archive (issue 15's evidence packet): regular files only, written
 * byte-deterministically (mode 0644, uid/gid 0, the given mtime), read strictly (header
 * checksums, zero padding, two zero end blocks) so that a flipped byte anywhere in the archive
 * is either a file-content change (caught by the packet manifest) or a format error here.
 * An auditor opens the packet with plain `tar -xf`. Pure: bytes in, bytes out.
 */
import { err, ok, type Result } from './result.ts';

const BLOCK = 512;
const enc = new TextEncoder();
const dec = new TextDecoder('utf-8', { fatal: true });

export type TarFile = { path: string; bytes: Uint8Array };
export type TarError = { code: 'TAR_FORMAT'; message: string };

function octal(n: number, width: number): string {
  return n.toString(8).padStart(width - 1, '0') + '\0';
}

function header(path: string, size: number, mtimeSecs: number): Uint8Array {
  const h = new Uint8Array(BLOCK);
  const put = (s: string, off: number) => h.set(enc.encode(s), off);
  put(path, 0);
  put(octal(0o644, 8), 100);
  put(octal(0, 8), 108);
  put(octal(0, 8), 116);
  put(octal(size, 12), 124);
  put(octal(mtimeSecs, 12), 136);
  put('        ', 148); // checksum field counts as spaces while summing
  put('0', 156);
  put('ustar\u000000', 257);
  let sum = 0;
  for (const b of h) sum += b;
  put(sum.toString(8).padStart(6, '0') + '\0 ', 148);
  return h;
}

/** Paths: relative, `/`-separated, ≤ 100 bytes, no `..` (a packet never needs more). */
export function isPacketPath(p: string): boolean {
  return /^[A-Za-z0-9._-]+(\/[A-Za-z0-9._-]+)*$/.test(p) && enc.encode(p).length <= 100 && !p.split('/').includes('..');
}

/** The archive of `files`, in the given order. Throws on a path {@link isPacketPath} refuses (a bug: we name them). */
export function writeTar(files: readonly TarFile[], mtimeSecs: number): Uint8Array {
  const parts: Uint8Array[] = [];
  let total = 0;
  for (const f of files) {
    if (!isPacketPath(f.path)) throw new Error(`tar: bad path ${JSON.stringify(f.path)}`);
    parts.push(header(f.path, f.bytes.length, mtimeSecs), f.bytes);
    const pad = (BLOCK - (f.bytes.length % BLOCK)) % BLOCK;
    parts.push(new Uint8Array(pad));
    total += BLOCK + f.bytes.length + pad;
  }
  parts.push(new Uint8Array(2 * BLOCK));
  total += 2 * BLOCK;
  const out = new Uint8Array(total);
  let off = 0;
  for (const p of parts) {
    out.set(p, off);
    off += p.length;
  }
  return out;
}

function field(h: Uint8Array, off: number, len: number): string {
  const raw = h.subarray(off, off + len);
  const end = raw.indexOf(0);
  return dec.decode(end === -1 ? raw : raw.subarray(0, end));
}

function parseOctal(s: string): number | null {
  const t = s.trim();
  return /^[0-7]{1,11}$/.test(t) ? parseInt(t, 8) : null;
}

const allZero = (b: Uint8Array): boolean => b.every((x) => x === 0);

/** Read an archive {@link writeTar} wrote (or any plain ustar of regular files); strict. */
export function readTar(bytes: Uint8Array): Result<TarFile[], TarError> {
  const bad = (message: string) => err<TarError>({ code: 'TAR_FORMAT', message });
  const files: TarFile[] = [];
  const seen = new Set<string>();
  let off = 0;
  for (;;) {
    if (off + BLOCK > bytes.length) return bad(`truncated archive at byte ${off} (no end-of-archive blocks)`);
    const h = bytes.subarray(off, off + BLOCK);
    if (allZero(h)) {
      if (off + 2 * BLOCK > bytes.length || !allZero(bytes.subarray(off + BLOCK, off + 2 * BLOCK))) return bad(`byte ${off}: a lone zero block (damaged end of archive)`);
      if (!allZero(bytes.subarray(off + 2 * BLOCK))) return bad(`byte ${off + 2 * BLOCK}: data after the end of the archive`);
      return ok(files);
    }
    let path: string;
    let magic: string;
    try {
      path = field(h, 0, 100);
      magic = field(h, 257, 6);
    } catch {
      return bad(`byte ${off}: a header field is not UTF-8`);
    }
    let sum = 0;
    for (let i = 0; i < BLOCK; i++) sum += i >= 148 && i < 156 ? 32 : h[i]!;
    const stored = parseOctal(field(h, 148, 8));
    if (stored !== sum) return bad(`byte ${off}: header checksum mismatch for ${JSON.stringify(path)} (header edited)`);
    if (magic !== 'ustar') return bad(`byte ${off}: not a ustar header`);
    if (field(h, 156, 1) !== '0' && field(h, 156, 1) !== '') return bad(`${path}: only regular files are allowed in a packet`);
    if (!isPacketPath(path)) return bad(`byte ${off}: unsafe or invalid path ${JSON.stringify(path)}`);
    if (seen.has(path)) return bad(`${path}: appears twice in the archive`);
    seen.add(path);
    const size = parseOctal(field(h, 124, 12));
    if (size === null) return bad(`${path}: bad size field`);
    const start = off + BLOCK;
    const pad = (BLOCK - (size % BLOCK)) % BLOCK;
    if (start + size + pad > bytes.length) return bad(`${path}: truncated (${size} bytes announced)`);
    if (!allZero(bytes.subarray(start + size, start + size + pad))) return bad(`${path}: non-zero padding after the file (archive edited)`);
    files.push({ path, bytes: bytes.slice(start, start + size) });
    off = start + size + pad;
  }
}
