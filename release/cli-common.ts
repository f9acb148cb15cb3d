/**
 * What every `nixfleet-release` subcommand shares: the injected I/O (`CliIo`), the two error
 * classes that become exit codes 1 and 2 in `runCli` (cli.ts), and the file / flag helpers that
 * turn failures into those errors.
 */
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { usageMessage } from '../io/program-args.ts';
import { writeFileAtomic as writeFileAtomicDurable } from '../io/atomic-file.ts';
import { parseJsonStrict } from '../protocol/jcs.ts';
import { parseTimestamp, SIGNATURE_ALGORITHMS, type SignatureAlgorithm } from '../protocol/schema.ts';

/** The process as a subcommand sees it; tests pass captured streams and a fixed clock. */
export type CliIo = {
  stdout: (s: string | Uint8Array) => void;
  stderr: (s: string) => void;
  readStdin: () => Promise<Uint8Array>;
  nowMs: () => number;
  env: Record<string, string | undefined>;
};

/** Exit code 1: the input is invalid (bad flags, bad JSON, failed checks). */
export class InputError extends Error {}
/** Exit code 2: a file could not be read or written, or a hook failed. */
export class IoError extends Error {}

/** Exit codes of SPEC §3: 0 ok, 1 invalid input, 2 hook or I/O. */
export const EXIT_OK = 0;
export const EXIT_INPUT = 1;
export const EXIT_IO = 2;

// ---- I/O helpers ------------------------------------------------------------------------------

/** Read a file; a failure is an IoError (exit 2) naming `what`. */
export function readFile(path: string, what: string): Buffer {
  try {
    return readFileSync(path);
  } catch (e) {
    throw new IoError(`cannot read ${what} ${path}: ${(e as NodeJS.ErrnoException).code ?? String(e)}`);
  }
}

/** Write atomically (io/atomic-file.ts); an fs failure becomes an IoError (exit 2). */
export function writeFileAtomic(path: string, data: string | Uint8Array, mode = 0o644): void {
  try {
    writeFileAtomicDurable(path, data, { mode });
  } catch (e) {
    throw new IoError(`cannot write ${path}: ${(e as NodeJS.ErrnoException).code ?? String(e)}`);
  }
}

/** Strict JSON (duplicate keys etc. refused, jcs.ts) of a file; bad JSON is an InputError. */
export function parseJsonFile(path: string, what: string, integersOnly = false): unknown {
  const r = parseJsonStrict(readFile(path, what), { integersOnly });
  if (!r.ok) throw new InputError(`${r.error.code}: ${what} ${path}: ${r.error.message}`);
  return r.value;
}

/** `--now ISO` (or the injected clock, truncated to seconds) as milliseconds and the UTC string. */
export function parseNow(s: string | undefined, io: CliIo): { ms: number; iso: string } {
  if (s === undefined) {
    const ms = Math.floor(io.nowMs() / 1000) * 1000;
    return { ms, iso: new Date(ms).toISOString().replace('.000Z', 'Z') };
  }
  const ms = parseTimestamp(s);
  if (ms === null) throw new InputError(`--now ${JSON.stringify(s)} is not an RFC 3339 timestamp (e.g. 2026-04-24T10:00:00Z)`);
  // signedAt is always written in UTC (SPEC §2.2); keep the seconds precision of the input.
  const iso = new Date(ms).toISOString();
  return { ms, iso: ms % 1000 === 0 ? iso.replace('.000Z', 'Z') : iso };
}

type Opts = Parameters<typeof parseArgs>[0] extends infer T ? (T extends { options?: infer O } ? O : never) : never;

/**
 * `node:util` parseArgs in strict mode; an unknown or malformed flag is an InputError (exit 1: SPEC §3
 * has no usage code of its own), worded as by the other binaries (io/program-args.ts).
 */
export function args(argv: string[], options: NonNullable<Opts>, allowPositionals = false) {
  try {
    return parseArgs({ args: argv, options, strict: true, allowPositionals });
  } catch (e) {
    throw new InputError(`${usageMessage(e)} (see --help)`);
  }
}

/** The value of a required flag, or an InputError. */
export function need(v: string | undefined, flag: string): string {
  if (v === undefined || v === '') throw new InputError(`${flag} is required (see --help)`);
  return v;
}

/** `--algorithm`, checked against SIGNATURE_ALGORITHMS, or `dflt` when absent. */
export function algorithmFlag(v: string | undefined, dflt: SignatureAlgorithm): SignatureAlgorithm {
  if (v === undefined) return dflt;
  if (!(SIGNATURE_ALGORITHMS as readonly string[]).includes(v)) throw new InputError(`--algorithm must be one of ${SIGNATURE_ALGORITHMS.join(', ')}`);
  return v as SignatureAlgorithm;
}

