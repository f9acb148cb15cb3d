/**
 * `nixfleet-release push` (SPEC §3): publish every host's system closure to the binary cache the
 * agents realise from, signed with the cache key, so that an agent (which trusts only the
 * `cacheKeys` of its trust.json, with `require-sigs`) accepts them.
 *
 *   push --cache URL --signing-key FILE --closures MAP.json
 *       `nix store sign --key-file FILE --recursive <closures>` (signatures on every path of each
 *       closure, kept in the local store) then `nix copy --to URL <closures>`. URL is any Nix store
 *       URL: `file:///srv/cache`, `s3://bucket?region=…`, `ssh://host`, `https://…` with upload.
 *   push --push-cmd CMD --closures MAP.json
 *       Runs `/bin/sh -c CMD` once per distinct closure with NIXFLEET_CLOSURE=/nix/store/… and
 *       NIXFLEET_HOSTS=<space-separated hosts> (for caches with their own tooling: attic, cachix…).
 *
 * MAP.json: `{ "<host>": "<store basename or /nix/store path>" }`, or `--closure HOST=PATH` flags (the same map `sign --closures`
 * takes). Exit codes: 0 ok, 1 invalid input, 2 hook or I/O (Nix failed).
 */
import { execFile, spawn } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { usageMessage } from '../io/program-args.ts';
import { isStoreBasename } from '../protocol/vocab.ts';

export type PushIo = {
  stdout: (s: string) => void;
  stderr: (s: string) => void;
  env: Record<string, string | undefined>;
};

const HELP = `nixfleet-release push — copy every host's closure to the binary cache, signed with the cache key

Usage:
  nixfleet-release push --cache URL --signing-key FILE (--closures MAP.json | --closure HOST=PATH…)
  nixfleet-release push --push-cmd CMD (--closures MAP.json | --closure HOST=PATH…)

  --cache URL          Nix store URL of the binary cache (file://, s3://, ssh://, https://…)
  --signing-key FILE   Nix binary-cache secret key (nix key generate-secret); signs every path
  --closures MAP.json  {"host": "<store basename or /nix/store/… path>"}
  --closure HOST=PATH  the same for one host, without a file (repeatable)
  --push-cmd CMD       instead of nix copy: run CMD (sh -c) per closure with NIXFLEET_CLOSURE and
                       NIXFLEET_HOSTS in the environment

Exit codes: 0 ok, 1 invalid input, 2 hook or I/O.
`;

const NIX = ['--extra-experimental-features', 'nix-command'];

class Fail extends Error {
  constructor(
    readonly code: 1 | 2,
    message: string,
  ) {
    super(message);
  }
}

function defaultIo(): PushIo {
  return { stdout: (s) => process.stdout.write(s), stderr: (s) => process.stderr.write(s), env: process.env };
}

/** `--closure HOST=PATH` flags as a host → closure object. */
function closureFlags(flags: string[]): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const f of flags) {
    const i = f.indexOf('=');
    if (i <= 0 || i === f.length - 1) throw new Fail(1, `--closure ${JSON.stringify(f)} must be HOST=PATH (PATH: a store basename or /nix/store/… path)`);
    out[f.slice(0, i)] = f.slice(i + 1);
  }
  return out;
}

/** host → closure map, grouped by closure (several hosts may share one). */
function readClosureMap(file: string): Map<string, string[]> {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (e) {
    throw new Fail(2, `cannot read closure map ${file}: ${(e as NodeJS.ErrnoException).code ?? String(e)}`);
  }
  let u: unknown;
  try {
    u = JSON.parse(text);
  } catch (e) {
    throw new Fail(1, `closure map ${file} is not JSON: ${(e as Error).message}`);
  }
  if (typeof u !== 'object' || u === null || Array.isArray(u)) throw new Fail(1, `closure map ${file} must be an object {"host": "<store basename>"}`);
  return groupClosures(u as Record<string, unknown>, `closure map ${file}`);
}

function groupClosures(u: Record<string, unknown>, what: string): Map<string, string[]> {
  const byClosure = new Map<string, string[]>();
  const problems: string[] = [];
  for (const [host, v] of Object.entries(u)) {
    if (typeof v !== 'string') {
      problems.push(`${host}: must be a string`);
      continue;
    }
    const base = v.startsWith('/nix/store/') ? v.slice('/nix/store/'.length).replace(/\/$/, '') : v;
    if (!isStoreBasename(base)) {
      problems.push(`${host}: ${JSON.stringify(v)} is not a Nix store basename`);
      continue;
    }
    const path = `/nix/store/${base}`;
    byClosure.set(path, [...(byClosure.get(path) ?? []), host]);
  }
  if (problems.length > 0) throw new Fail(1, `invalid ${what}: ${problems.join('; ')}`);
  if (byClosure.size === 0) throw new Fail(1, `${what} names no closure`);
  return byClosure;
}

function exec(cmd: string, args: string[], env: Record<string, string | undefined>): Promise<{ code: number; stderr: string }> {
  return new Promise((resolve) => {
    execFile(cmd, args, { env: env as NodeJS.ProcessEnv, maxBuffer: 64 * 1024 * 1024 }, (error, _stdout, stderr) => {
      const code = error === null ? 0 : typeof error.code === 'number' ? error.code : 127;
      resolve({ code, stderr: error !== null && typeof error.code !== 'number' ? error.message : String(stderr) });
    });
  });
}

function hook(cmd: string, env: Record<string, string | undefined>, io: PushIo): Promise<number> {
  return new Promise((resolve) => {
    const child = spawn('/bin/sh', ['-c', cmd], { env: env as NodeJS.ProcessEnv, stdio: ['ignore', 'pipe', 'pipe'] });
    child.stdout.on('data', (d: Buffer) => io.stderr(d.toString()));
    child.stderr.on('data', (d: Buffer) => io.stderr(d.toString()));
    child.on('error', () => resolve(127));
    child.on('close', (code) => resolve(code ?? 1));
  });
}

/** `nixfleet-release push …` (argv without the subcommand). Returns the exit code. */
export async function runPush(argv: string[], io: PushIo = defaultIo()): Promise<number> {
  try {
    let values: { cache?: string; 'signing-key'?: string; closures?: string; closure?: string[]; 'push-cmd'?: string; help?: boolean };
    try {
      values = parseArgs({
        args: argv,
        options: { cache: { type: 'string' }, 'signing-key': { type: 'string' }, closures: { type: 'string' }, closure: { type: 'string', multiple: true }, 'push-cmd': { type: 'string' }, help: { type: 'boolean', short: 'h' } },
        strict: true,
        allowPositionals: false,
      }).values;
    } catch (e) {
      throw new Fail(1, `${usageMessage(e)} (see --help)`);
    }
    if (values.help === true) {
      io.stdout(HELP);
      return 0;
    }
    if (values.closures === undefined && values.closure === undefined) throw new Fail(1, 'push needs --closures MAP.json or --closure HOST=PATH');
    if (values.closures !== undefined && values.closure !== undefined) throw new Fail(1, 'give --closures MAP.json or --closure HOST=PATH, not both');
    const useHook = values['push-cmd'] !== undefined;
    if (useHook && (values.cache !== undefined || values['signing-key'] !== undefined)) throw new Fail(1, '--push-cmd replaces --cache/--signing-key; give one or the other');
    if (!useHook && values.cache === undefined) throw new Fail(1, 'push needs --cache URL (or --push-cmd CMD)');
    if (!useHook && values['signing-key'] === undefined) throw new Fail(1, 'push needs --signing-key FILE: agents refuse paths the cache key did not sign');
    if (values['signing-key'] !== undefined && !existsSync(values['signing-key'])) throw new Fail(2, `cannot read signing key ${values['signing-key']}`);

    const byClosure = values.closures !== undefined ? readClosureMap(values.closures) : groupClosures(closureFlags(values.closure!), '--closure');
    const missing = [...byClosure.keys()].filter((p) => !existsSync(p));
    if (missing.length > 0) throw new Fail(1, `not in the local store (build them first): ${missing.join(', ')}`);

    if (useHook) {
      for (const [path, hosts] of byClosure) {
        const code = await hook(values['push-cmd']!, { ...io.env, NIXFLEET_CLOSURE: path, NIXFLEET_HOSTS: hosts.join(' ') }, io);
        if (code !== 0) throw new Fail(2, `--push-cmd failed with exit code ${code} for ${path}`);
        io.stderr(`pushed ${path} (${hosts.join(', ')}) with --push-cmd\n`);
      }
      io.stdout(`pushed ${byClosure.size} closure(s)\n`);
      return 0;
    }

    const paths = [...byClosure.keys()];
    const sign = await exec('nix', [...NIX, 'store', 'sign', '--key-file', values['signing-key']!, '--recursive', ...paths], io.env);
    if (sign.code !== 0) throw new Fail(2, `nix store sign failed: ${sign.stderr.trim().split('\n').slice(-5).join('\n')}`);
    const copy = await exec('nix', [...NIX, 'copy', '--to', values.cache!, ...paths], io.env);
    if (copy.code !== 0) throw new Fail(2, `nix copy --to ${values.cache} failed: ${copy.stderr.trim().split('\n').slice(-5).join('\n')}`);
    for (const [path, hosts] of byClosure) io.stderr(`pushed ${path} (${hosts.join(', ')})\n`);
    io.stdout(`pushed ${byClosure.size} closure(s) to ${values.cache}\n`);
    return 0;
  } catch (e) {
    if (e instanceof Fail) {
      io.stderr(`nixfleet-release push: ${e.message}\n`);
      return e.code;
    }
    throw e;
  }
}
