/**
 * `nixfleet-release sign` (SPEC §3): inject closure hashes, stamp `meta`, canonicalise, sign with
 * a key file or a `--sign-cmd` hook, check the signature, and write artefact + `.sig` atomically;
 * `--reuse-unchanged-signature` keeps an existing artefact that differs only in time. With the
 * fleet it also writes the signed slice index `fleet.index.json` + `.sig` (issue 19).
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fromBase64, publicKeyOf, sha256Hex, SIGNATURE_BYTES, signBytes, toBase64, verifySignature, type PrivateKey } from '../protocol/crypto.ts';
import { canonicalBytes, canonicalBytesOfText, canonicalize, parseJsonStrict } from '../protocol/jcs.ts';
import { parseFleetResolved, parseRevocations, parseTimestamp, type ArtifactKind, type FleetResolved, type Meta, type Revocations, type SignatureAlgorithm } from '../protocol/schema.ts';
import { parsePrivateKeyPem } from '../io/keyfile.ts';
import { isStoreBasename } from '../protocol/vocab.ts';
import { buildSliceTree, SLICE_INDEX_FILE } from '../protocol/slice.ts';
import { algorithmFlag, args, EXIT_OK, InputError, IoError, need, parseJsonFile, parseNow, readFile, writeFileAtomic, type CliIo } from './cli-common.ts';

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
      if (!isStoreBasename(base)) problems.push(`${host}: ${JSON.stringify(v)} is not a Nix store basename (hash-name)`);
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

/**
 * The signed slice index (protocol/slice.ts, issue 19) of the artefact now in `outDir`, written
 * beside it as `fleet.index.json` + `.sig`. Built from the artefact's bytes on disk, so a reused
 * artefact gets the index of what is actually published; an existing index with the same bytes
 * and a good signature is kept as it is.
 */
function signIndex(outDir: string, signer: Signer, io: CliIo): void {
  const artefact = readFile(join(outDir, 'fleet.resolved.json'), 'signed artefact');
  const parsed = canonicalBytesOfText(artefact, { integersOnly: true, maxBytes: artefact.byteLength, memberSpansOf: 'hosts' });
  if (!parsed.ok) throw new IoError(`cannot re-read the artefact just written: ${parsed.error.message}`);
  const fleet = parseFleetResolved(parsed.value.value);
  if (!fleet.ok) throw new IoError(`cannot re-read the artefact just written: ${fleet.error.message}`);
  if (Object.keys(fleet.value.hosts).length === 0) {
    io.stderr('fleet has no hosts: no slice index written\n');
    return;
  }
  // The model is the parsed value itself when nothing was filled: host entries are then read from
  // the bytes, where the canonical check found them.
  const tree = fleet.value === parsed.value.value ? buildSliceTree(fleet.value, sha256Hex(parsed.value.bytes), parsed.value.bytes, parsed.value.memberSpans) : buildSliceTree(fleet.value, sha256Hex(parsed.value.bytes));
  const bytes = canonicalBytes(tree.index);
  if (!bytes.ok) throw new InputError(`${bytes.error.code}: ${bytes.error.message}`);
  const path = join(outDir, SLICE_INDEX_FILE);
  if (existsSync(path) && existsSync(path + '.sig') && signer.publicKeyB64 !== null) {
    const old = readFile(path, 'existing index');
    const oldSig = readFile(path + '.sig', 'existing index signature');
    if (Buffer.from(bytes.value).equals(old) && oldSig.length === SIGNATURE_BYTES && verifySignature(signer.algorithm, signer.publicKeyB64, bytes.value, oldSig)) return;
  }
  const sig = signer.sign(bytes.value);
  if (signer.publicKeyB64 !== null && !verifySignature(signer.algorithm, signer.publicKeyB64, bytes.value, sig)) {
    throw new IoError(`the ${SLICE_INDEX_FILE} signature does not verify with the signing key's public key: refusing to write it`);
  }
  writeFileAtomic(path, bytes.value);
  writeFileAtomic(path + '.sig', sig);
  io.stderr(`signed ${path} (slice index: ${tree.index.leafCount} leaves, root ${tree.index.root.slice(0, 16)}…)\n`);
}

/** Signs `--in` and/or `--revocations` into `--out-dir`; validates everything before writing. */
export function cmdSign(argv: string[], io: CliIo): number {
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
  if (fleet !== null) {
    signOne('fleet', fleet, signer, outDir, now, ciCommit, reuse, io);
    signIndex(outDir, signer, io);
  }
  if (revocations !== null) signOne('revocations', revocations, signer, outDir, now, ciCommit, reuse, io);
  return EXIT_OK;
}
