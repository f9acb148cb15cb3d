/**
 * `nixfleet-release` (SPEC §3): keygen, canonicalize, resolve, sign, verify.
 * The imperative shell around the pure release core. `runCli(argv, io)` returns the exit code
 * (0 ok, 1 invalid input, 2 hook or I/O) so tests drive it in-process; `main.ts` wires it to the
 * real process.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, dirname, join } from 'node:path';
import { writeFileAtomic as writeFileAtomicDurable } from '../io/atomic-file.ts';
import { parseArgs } from 'node:util';
import { fromBase64, generateKeyPair, publicKeyOf, SIGNATURE_BYTES, signBytes, toBase64, verifySignature, type PrivateKey } from '../protocol/crypto.ts';
import { canonicalBytes, canonicalize, parseJsonStrict } from '../protocol/jcs.ts';
import { parsePrivateKeyPem, toPkcs8Pem } from '../io/keyfile.ts';
import { runPush } from './push.ts';
import { resolveFleetInput } from './resolve.ts';
import {
  parseFleetResolved,
  parseRevocations,
  parseTimestamp,
  parseTrust,
  SIGNATURE_ALGORITHMS,
  type ArtifactKind,
  type FleetResolved,
  type Meta,
  type Revocations,
  type SignatureAlgorithm,
  type Trust,
} from '../protocol/schema.ts';
import { verifyArtifact, type AcceptedState } from '../protocol/verify.ts';

export type CliIo = {
  stdout: (s: string | Uint8Array) => void;
  stderr: (s: string) => void;
  readStdin: () => Promise<Uint8Array>;
  nowMs: () => number;
  env: Record<string, string | undefined>;
};

/** Exit code 1: the input is invalid (bad flags, bad JSON, failed checks). */
class InputError extends Error {}
/** Exit code 2: a file could not be read or written, or a hook failed. */
class IoError extends Error {}

const EXIT_OK = 0;
const EXIT_INPUT = 1;
const EXIT_IO = 2;

// ---- I/O helpers ------------------------------------------------------------------------------

function readFile(path: string, what: string): Buffer {
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

function parseJsonFile(path: string, what: string, integersOnly = false): unknown {
  const r = parseJsonStrict(readFile(path, what), { integersOnly });
  if (!r.ok) throw new InputError(`${r.error.code}: ${what} ${path}: ${r.error.message}`);
  return r.value;
}

function parseNow(s: string | undefined, io: CliIo): { ms: number; iso: string } {
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

// ---- help -------------------------------------------------------------------------------------

const HELP: Record<string, string> = {
  main: `nixfleet-release — resolve, canonicalise, sign and verify nixfleet release artefacts

Usage: nixfleet-release <command> [options]

Commands:
  keygen        create a release signing key
  canonicalize  print the JCS (RFC 8785) form of a JSON file
  resolve       turn a fleet description into fleet.resolved.json
  sign          stamp, canonicalise and sign fleet.resolved.json / revocations.json
  verify        verify a signed artefact as the control plane and agents do
  push          copy every host's closure to the binary cache, signed with the cache key

Run 'nixfleet-release <command> --help' for the options of a command.
Exit codes: 0 ok, 1 invalid input, 2 hook or I/O failure.
`,
  keygen: `Usage: nixfleet-release keygen --out FILE [--algorithm ed25519|ecdsa-p256] [--force]

Writes a PKCS#8 PEM private key to FILE (mode 0600) and prints the public key (base64 of the raw
32 bytes for ed25519, of X‖Y for ecdsa-p256) on stdout: put it in trust.json as
ciReleaseKey.current.public. Refuses to overwrite FILE unless --force.
`,
  canonicalize: `Usage: nixfleet-release canonicalize [FILE]

Prints the JCS (RFC 8785) serialisation of FILE (or stdin when FILE is absent or "-") on stdout,
with no trailing newline. Refuses duplicate keys, lone surrogates and numbers JSON cannot carry.
`,
  resolve: `Usage: nixfleet-release resolve --fleet FLEET.json [--fleet MORE.json …] [--out FILE]

Turns a fleet description into fleet.resolved.json: merges the files, fills defaults, resolves
wave selectors to host lists and checks every invariant of SPEC §3.1 (see release/README.md).
Writes canonical JSON with meta.signedAt = null to FILE (atomically) or stdout. Warnings go to
stderr; an error prints "CODE: message" on stderr and exits 1.
`,
  sign: `Usage: nixfleet-release sign [--in fleet.resolved.json] [--revocations revocations.json]
                        (--key FILE | --sign-cmd CMD [--algorithm ALG] [--public-key B64])
                        [--closures MAP.json] [--ci-commit SHA] [--now ISO]
                        [--reuse-unchanged-signature] --out-dir DIR

Injects closure hashes (MAP.json: {"host": "<store basename or /nix/store path>"}), stamps
meta.signedAt (--now, default the current time), meta.ciCommit and meta.signatureAlgorithm,
canonicalises (JCS), signs, and writes DIR/fleet.resolved.json and DIR/fleet.resolved.json.sig
(raw 64 bytes) atomically; the same for --revocations (DIR/revocations.json{,.sig}).

  --key FILE           PKCS#8 PEM private key (from 'keygen')
  --sign-cmd CMD       run CMD with sh -c; it reads the canonical bytes from the file named by
                       $NIXFLEET_INPUT and writes the raw 64-byte signature to $NIXFLEET_OUTPUT
  --algorithm ALG      algorithm of the --sign-cmd key (ed25519 | ecdsa-p256; default ed25519)
  --public-key B64     with --sign-cmd: check the produced signature with this key
  --reuse-unchanged-signature
                       if DIR already holds a valid signed artefact that differs only in
                       meta.signedAt and is younger than the smallest signingIntervalMinutes
                       (60 for revocations), keep it byte for byte instead of re-signing
`,
  verify: `Usage: nixfleet-release verify --artifact FILE [--signature FILE.sig]
                          (--public-key B64 [--algorithm ALG] | --trust trust.json)
                          [--now ISO] [--kind fleet|revocations] [--freshness-window MINUTES]
                          [--last-signed-at ISO --last-sha256 HEX] [--max-bytes N]

Verifies exactly as the control plane and agents do (SPEC §2.3). Exit 0 with a one-line summary
on stdout when valid; exit 1 with "CODE: message" on stderr otherwise (codes: TOO_LARGE,
PARSE_ERROR, DUPLICATE_KEY, NOT_CANONICALIZABLE, BAD_SIGNATURE, NO_ACTIVE_KEY, SCHEMA_VERSION,
SCHEMA_INVALID, NOT_SIGNED, REJECTED_BEFORE, STALE, FUTURE_DATED, ROLLBACK, EQUIVOCATION).
--signature defaults to FILE.sig; --kind defaults to revocations when the file name starts with
"revocations", else fleet. The algorithm of --public-key is inferred from its length.
`,
};

function wantsHelp(argv: string[]): boolean {
  return argv.includes('--help') || argv.includes('-h');
}

type Opts = Parameters<typeof parseArgs>[0] extends infer T ? (T extends { options?: infer O } ? O : never) : never;

function args(argv: string[], options: NonNullable<Opts>, allowPositionals = false) {
  try {
    return parseArgs({ args: argv, options, strict: true, allowPositionals });
  } catch (e) {
    throw new InputError(e instanceof Error ? e.message : String(e));
  }
}

function need(v: string | undefined, flag: string): string {
  if (v === undefined || v === '') throw new InputError(`${flag} is required (see --help)`);
  return v;
}

function algorithmFlag(v: string | undefined, dflt: SignatureAlgorithm): SignatureAlgorithm {
  if (v === undefined) return dflt;
  if (!(SIGNATURE_ALGORITHMS as readonly string[]).includes(v)) throw new InputError(`--algorithm must be one of ${SIGNATURE_ALGORITHMS.join(', ')}`);
  return v as SignatureAlgorithm;
}

// ---- commands ---------------------------------------------------------------------------------

function cmdKeygen(argv: string[], io: CliIo): number {
  const { values } = args(argv, { out: { type: 'string' }, algorithm: { type: 'string' }, force: { type: 'boolean' } });
  const out = need(values.out as string | undefined, '--out');
  const algorithm = algorithmFlag(values.algorithm as string | undefined, 'ed25519');
  if (existsSync(out) && values.force !== true) throw new InputError(`${out} already exists; refusing to overwrite a key (use --force)`);
  const kp = generateKeyPair(algorithm);
  writeFileAtomic(out, toPkcs8Pem({ algorithm, secretKey: kp.secretKey }), 0o600);
  io.stdout(kp.publicKeyB64 + '\n');
  return EXIT_OK;
}

async function cmdCanonicalize(argv: string[], io: CliIo): Promise<number> {
  const { positionals } = args(argv, {}, true);
  if (positionals.length > 1) throw new InputError('canonicalize takes at most one FILE');
  const file = positionals[0];
  const bytes = file === undefined || file === '-' ? await io.readStdin() : readFile(file, 'input');
  const v = parseJsonStrict(bytes);
  if (!v.ok) throw new InputError(`${v.error.code}: ${v.error.message}`);
  const c = canonicalize(v.value);
  if (!c.ok) throw new InputError(`${c.error.code}: ${c.error.message}`);
  io.stdout(c.value);
  return EXIT_OK;
}

function cmdResolve(argv: string[], io: CliIo): number {
  const { values } = args(argv, { fleet: { type: 'string', multiple: true }, out: { type: 'string' } });
  const fleets = (values.fleet as string[] | undefined) ?? [];
  if (fleets.length === 0) throw new InputError('--fleet is required (see --help)');
  const inputs = fleets.map((f) => parseJsonFile(f, 'fleet description'));
  const r = resolveFleetInput(inputs);
  if (!r.ok) throw new InputError(`${r.error.code}: ${r.error.message}`);
  for (const w of r.value.warnings) io.stderr(`warning: ${w}\n`);
  const c = canonicalize(r.value.fleet);
  if (!c.ok) throw new InputError(`${c.error.code}: ${c.error.message}`);
  const out = values.out as string | undefined;
  if (out === undefined) io.stdout(c.value + '\n');
  else {
    mkdirSync(dirname(out), { recursive: true });
    writeFileAtomic(out, c.value);
    io.stderr(`wrote ${out} (${Object.keys(r.value.fleet.hosts).length} hosts, ${Object.keys(r.value.fleet.channels).length} channels)\n`);
  }
  return EXIT_OK;
}

const STORE_BASENAME = /^[0-9abcdfghijklmnpqrsvwxyz]{32}-[A-Za-z0-9+\-._?=]+$/;

function readClosures(path: string, fleet: FleetResolved): Record<string, string> {
  const u = parseJsonFile(path, 'closure map');
  if (typeof u !== 'object' || u === null || Array.isArray(u)) throw new InputError(`closure map ${path} must be an object {"host": "<store basename>"}`);
  const out: Record<string, string> = {};
  const problems: string[] = [];
  for (const [host, v] of Object.entries(u as Record<string, unknown>)) {
    if (!Object.prototype.hasOwnProperty.call(fleet.hosts, host)) problems.push(`${host}: not a host of the fleet`);
    else if (typeof v !== 'string') problems.push(`${host}: must be a string`);
    else {
      const base = v.startsWith('/nix/store/') ? v.slice('/nix/store/'.length).replace(/\/$/, '') : v;
      if (!STORE_BASENAME.test(base)) problems.push(`${host}: ${JSON.stringify(v)} is not a Nix store basename (hash-name)`);
      else out[host] = base;
    }
  }
  if (problems.length > 0) throw new InputError(`invalid closure map ${path}: ${problems.join('; ')}`);
  return out;
}

type Signer = { algorithm: SignatureAlgorithm; sign: (bytes: Uint8Array) => Uint8Array; publicKeyB64: string | null };

function keySigner(path: string): Signer {
  const pk = parsePrivateKeyPem(readFile(path, 'key').toString('utf8'));
  if (!pk.ok) throw new InputError(`${pk.error.code}: ${path}: ${pk.error.message}`);
  const key: PrivateKey = pk.value;
  return { algorithm: key.algorithm, sign: (b) => signBytes(b, key), publicKeyB64: toBase64(publicKeyOf(key)) };
}

function cmdSigner(cmd: string, algorithm: SignatureAlgorithm, publicKeyB64: string | null, io: CliIo): Signer {
  return {
    algorithm,
    publicKeyB64,
    sign: (bytes) => {
      const dir = mkdtempSync(join(tmpdir(), 'nixfleet-sign-'));
      try {
        const input = join(dir, 'input');
        const output = join(dir, 'output.sig');
        writeFileAtomic(input, bytes, 0o600);
        const r = spawnSync('sh', ['-c', cmd], {
          env: { ...io.env, NIXFLEET_INPUT: input, NIXFLEET_OUTPUT: output },
          stdio: ['inherit', 'pipe', 'pipe'],
          timeout: 10 * 60_000,
        });
        if (r.stderr !== null && r.stderr.length > 0) io.stderr(r.stderr.toString());
        if (r.error !== undefined) throw new IoError(`--sign-cmd could not run: ${r.error.message}`);
        if (r.status !== 0) throw new IoError(`--sign-cmd exited with ${r.status ?? r.signal}`);
        if (!existsSync(output)) throw new IoError('--sign-cmd wrote no signature to $NIXFLEET_OUTPUT');
        const sig = readFileSync(output);
        if (sig.length !== SIGNATURE_BYTES) throw new IoError(`--sign-cmd wrote ${sig.length} bytes; a signature is ${SIGNATURE_BYTES} raw bytes`);
        return new Uint8Array(sig);
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    },
  };
}

type Stampable = FleetResolved | Revocations;

/** JCS bytes with meta.signedAt cleared: what "nothing but time changed" compares. */
function timelessBytes(v: Stampable): string {
  const c = structuredClone(v);
  c.meta.signedAt = null;
  const r = canonicalize(c);
  if (!r.ok) throw new InputError(`${r.error.code}: ${r.error.message}`);
  return r.value;
}

function signOne(
  kind: ArtifactKind,
  value: Stampable,
  signer: Signer,
  outDir: string,
  now: { ms: number; iso: string },
  ciCommit: string | undefined,
  reuse: boolean,
  io: CliIo,
): void {
  const name = kind === 'fleet' ? 'fleet.resolved.json' : 'revocations.json';
  const path = join(outDir, name);
  const meta: Meta = value.meta;
  meta.signedAt = now.iso;
  if (ciCommit !== undefined) meta.ciCommit = ciCommit;
  meta.signatureAlgorithm = signer.algorithm;

  if (reuse && existsSync(path) && existsSync(path + '.sig')) {
    const reused = tryReuse(kind, value, signer, path, now.ms);
    if (reused !== null) {
      io.stderr(`${name}: unchanged since ${reused}; kept the existing signature\n`);
      return;
    }
  }
  const bytes = canonicalBytes(value);
  if (!bytes.ok) throw new InputError(`${bytes.error.code}: ${bytes.error.message}`);
  const sig = signer.sign(bytes.value);
  if (signer.publicKeyB64 !== null && !verifySignature(signer.algorithm, signer.publicKeyB64, bytes.value, sig)) {
    throw new IoError(`the ${name} signature does not verify with the signing key's public key: refusing to write it`);
  }
  writeFileAtomic(path, bytes.value);
  writeFileAtomic(path + '.sig', sig);
  io.stderr(`signed ${path} (${signer.algorithm}, signedAt ${now.iso})\n`);
}

/** The signedAt of the existing artefact when it can be kept byte for byte, else null. */
function tryReuse(kind: ArtifactKind, value: Stampable, signer: Signer, path: string, nowMs: number): string | null {
  const bytes = readFile(path, 'existing artefact');
  const sig = readFile(path + '.sig', 'existing signature');
  const parsed = parseJsonStrict(bytes, { integersOnly: true });
  if (!parsed.ok) return null;
  const old = kind === 'fleet' ? parseFleetResolved(parsed.value) : parseRevocations(parsed.value);
  if (!old.ok || old.value.meta.signedAt === null) return null;
  const canon = canonicalBytes(parsed.value);
  if (!canon.ok) return null;
  if (signer.publicKeyB64 !== null && !verifySignature(signer.algorithm, signer.publicKeyB64, canon.value, sig)) return null;
  if (sig.length !== SIGNATURE_BYTES) return null;
  if (timelessBytes(old.value) !== timelessBytes(value)) return null;
  // Re-signing is due every signing interval, or the artefact would go stale (freshnessWindow ≥ 2×).
  const intervals = kind === 'fleet' ? Object.values((value as FleetResolved).channels).map((c) => c.signingIntervalMinutes) : [];
  const intervalMin = intervals.length > 0 ? Math.min(...intervals) : 60;
  const signedMs = parseTimestamp(old.value.meta.signedAt, true);
  if (signedMs === null || nowMs - signedMs >= intervalMin * 60_000 || signedMs > nowMs) return null;
  return old.value.meta.signedAt;
}

function cmdSign(argv: string[], io: CliIo): number {
  const { values } = args(argv, {
    in: { type: 'string' },
    revocations: { type: 'string' },
    key: { type: 'string' },
    'sign-cmd': { type: 'string' },
    algorithm: { type: 'string' },
    'public-key': { type: 'string' },
    closures: { type: 'string' },
    'ci-commit': { type: 'string' },
    now: { type: 'string' },
    'out-dir': { type: 'string' },
    'reuse-unchanged-signature': { type: 'boolean' },
  });
  const inPath = values.in as string | undefined;
  const revPath = values.revocations as string | undefined;
  if (inPath === undefined && revPath === undefined) throw new InputError('--in or --revocations is required (see --help)');
  const outDir = need(values['out-dir'] as string | undefined, '--out-dir');
  const keyPath = values.key as string | undefined;
  const signCmd = values['sign-cmd'] as string | undefined;
  if ((keyPath === undefined) === (signCmd === undefined)) throw new InputError('exactly one of --key and --sign-cmd is required');
  if (values.closures !== undefined && inPath === undefined) throw new InputError('--closures needs --in');
  const now = parseNow(values.now as string | undefined, io);
  const ciCommit = values['ci-commit'] as string | undefined;

  let signer: Signer;
  if (keyPath !== undefined) {
    if (values.algorithm !== undefined || values['public-key'] !== undefined) throw new InputError('--algorithm and --public-key go with --sign-cmd (the key file knows its algorithm)');
    signer = keySigner(keyPath);
  } else {
    const algorithm = algorithmFlag(values.algorithm as string | undefined, 'ed25519');
    const pub = (values['public-key'] as string | undefined) ?? null;
    if (pub !== null && fromBase64(pub) === null) throw new InputError('--public-key must be base64');
    signer = cmdSigner(signCmd!, algorithm, pub, io);
  }

  // Validate everything before writing anything.
  let fleet: FleetResolved | null = null;
  if (inPath !== undefined) {
    const r = parseFleetResolved(parseJsonFile(inPath, 'fleet.resolved.json', true));
    if (!r.ok) throw new InputError(`SCHEMA_INVALID: ${inPath}: ${r.error.message}`);
    fleet = r.value;
    if (values.closures !== undefined) {
      const map = readClosures(values.closures as string, fleet);
      for (const [h, c] of Object.entries(map)) fleet.hosts[h]!.closureHash = c;
    }
    const missing = Object.keys(fleet.hosts).filter((h) => fleet!.hosts[h]!.closureHash === null);
    if (missing.length > 0) {
      io.stderr(`warning: ${missing.length} host(s) have no closureHash and will not be deployed: ${missing.slice(0, 5).join(', ')}${missing.length > 5 ? ', …' : ''}\n`);
    }
  }
  let revocations: Revocations | null = null;
  if (revPath !== undefined) {
    const r = parseRevocations(parseJsonFile(revPath, 'revocations.json', true));
    if (!r.ok) throw new InputError(`SCHEMA_INVALID: ${revPath}: ${r.error.message}`);
    revocations = r.value;
  }
  try {
    mkdirSync(outDir, { recursive: true });
  } catch (e) {
    throw new IoError(`cannot create ${outDir}: ${(e as NodeJS.ErrnoException).code ?? String(e)}`);
  }
  const reuse = values['reuse-unchanged-signature'] === true;
  if (fleet !== null) signOne('fleet', fleet, signer, outDir, now, ciCommit, reuse, io);
  if (revocations !== null) signOne('revocations', revocations, signer, outDir, now, ciCommit, reuse, io);
  return EXIT_OK;
}

function cmdVerify(argv: string[], io: CliIo): number {
  const { values } = args(argv, {
    artifact: { type: 'string' },
    signature: { type: 'string' },
    'public-key': { type: 'string' },
    algorithm: { type: 'string' },
    trust: { type: 'string' },
    now: { type: 'string' },
    kind: { type: 'string' },
    'freshness-window': { type: 'string' },
    'last-signed-at': { type: 'string' },
    'last-sha256': { type: 'string' },
    'max-bytes': { type: 'string' },
  });
  const artifact = need(values.artifact as string | undefined, '--artifact');
  const sigPath = (values.signature as string | undefined) ?? artifact + '.sig';
  const pub = values['public-key'] as string | undefined;
  const trustPath = values.trust as string | undefined;
  if ((pub === undefined) === (trustPath === undefined)) throw new InputError('exactly one of --public-key and --trust is required');
  let trust: Trust;
  if (pub !== undefined) {
    const raw = fromBase64(pub);
    if (raw === null || (raw.length !== 32 && raw.length !== 64)) throw new InputError('--public-key must be base64 of 32 (ed25519) or 64 (ecdsa-p256 X‖Y) bytes');
    const algorithm = algorithmFlag(values.algorithm as string | undefined, raw.length === 32 ? 'ed25519' : 'ecdsa-p256');
    trust = { schemaVersion: 1, ciReleaseKey: { current: { algorithm, public: pub } }, cacheKeys: [] };
  } else {
    const t = parseTrust(parseJsonFile(trustPath!, 'trust.json'));
    if (!t.ok) throw new InputError(`SCHEMA_INVALID: ${trustPath}: ${t.error.message}`);
    trust = t.value;
  }
  const kindFlag = values.kind as string | undefined;
  if (kindFlag !== undefined && kindFlag !== 'fleet' && kindFlag !== 'revocations') throw new InputError('--kind must be fleet or revocations');
  const kind: ArtifactKind = (kindFlag as ArtifactKind | undefined) ?? (basename(artifact).startsWith('revocations') ? 'revocations' : 'fleet');
  const now = parseNow(values.now as string | undefined, io);
  const posInt = (flag: string): number | undefined => {
    const v = values[flag] as string | undefined;
    if (v === undefined) return undefined;
    if (!/^[1-9][0-9]*$/.test(v)) throw new InputError(`--${flag} must be a positive integer`);
    return Number(v);
  };
  const window = posInt('freshness-window');
  const maxBytes = posInt('max-bytes');
  const lastAt = values['last-signed-at'] as string | undefined;
  const lastSha = values['last-sha256'] as string | undefined;
  if ((lastAt === undefined) !== (lastSha === undefined)) throw new InputError('--last-signed-at and --last-sha256 go together');
  const lastAccepted: AcceptedState | null = lastAt !== undefined && lastSha !== undefined ? { signedAt: lastAt, sha256: lastSha } : null;

  const r = verifyArtifact({
    kind,
    bytes: readFile(artifact, 'artefact'),
    signature: readFile(sigPath, 'signature'),
    trust,
    nowMs: now.ms,
    lastAccepted,
    ...(window !== undefined ? { freshnessWindowMinutes: window } : {}),
    ...(maxBytes !== undefined ? { maxBytes } : {}),
  });
  if (!r.ok) {
    io.stderr(`${r.error.code}: ${r.error.message}\n`);
    return EXIT_INPUT;
  }
  const v = r.value;
  const what = v.fleet !== undefined ? `${Object.keys(v.fleet.hosts).length} hosts, ${Object.keys(v.fleet.channels).length} channels` : `${v.revocations?.revocations.length ?? 0} revocations`;
  io.stdout(`OK ${kind} signedAt=${v.signedAt} sha256=${v.sha256} key=${v.keyRole} window=${v.freshnessWindowMinutes}m (${what})\n`);
  return EXIT_OK;
}

// ---- dispatch ---------------------------------------------------------------------------------

const COMMANDS: Record<string, (argv: string[], io: CliIo) => number | Promise<number>> = {
  keygen: cmdKeygen,
  canonicalize: cmdCanonicalize,
  resolve: cmdResolve,
  sign: cmdSign,
  verify: cmdVerify,
  // Written by the agent engineer (release/push.ts); it parses its own flags and prints its own --help.
  push: (argv, io) => runPush(argv, { stdout: (s) => io.stdout(s), stderr: io.stderr, env: io.env }),
};

/** Run `nixfleet-release` with `argv` (without the program name); returns the exit code. */
export async function runCli(argv: string[], io: CliIo): Promise<number> {
  const [cmd, ...rest] = argv;
  if (cmd === undefined || cmd === '--help' || cmd === '-h' || cmd === 'help') {
    (cmd === undefined ? io.stderr : io.stdout)(HELP['main']!);
    return cmd === undefined ? EXIT_INPUT : EXIT_OK;
  }
  const run = COMMANDS[cmd];
  if (run === undefined) {
    io.stderr(`nixfleet-release: unknown command ${JSON.stringify(cmd)}\n\n${HELP['main']}`);
    return EXIT_INPUT;
  }
  if (wantsHelp(rest) && HELP[cmd] !== undefined) {
    io.stdout(HELP[cmd]!);
    return EXIT_OK;
  }
  try {
    return await run(rest, io);
  } catch (e) {
    if (e instanceof InputError) {
      io.stderr(`nixfleet-release ${cmd}: ${e.message}\n`);
      return EXIT_INPUT;
    }
    if (e instanceof IoError) {
      io.stderr(`nixfleet-release ${cmd}: ${e.message}\n`);
      return EXIT_IO;
    }
    throw e;
  }
}

/** The real process's I/O. */
export function processIo(): CliIo {
  return {
    stdout: (s) => void process.stdout.write(s),
    stderr: (s) => void process.stderr.write(s),
    readStdin: async () => {
      const chunks: Buffer[] = [];
      for await (const c of process.stdin) chunks.push(c as Buffer);
      return Buffer.concat(chunks);
    },
    nowMs: () => Date.now(),
    env: process.env,
  };
}
