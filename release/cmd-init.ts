/**
 * `nixfleet-release init` (issue 18): the files a new fleet repository starts from, in one
 * directory — `trust.json` (the release public key), an empty signed `revocations.json` (+ `.sig`;
 * the CP and agents want one even when nothing is revoked) and a starter fleet description
 * `fleet.json`. The release key is an existing one (`--key FILE`) or a fresh one written to
 * `DIR/release.key` (0600); with only `--public-key` the revocations are written unsigned and the
 * command says how to sign them. Nothing existing is overwritten, and every file is checked with
 * the parser that will read it (the TypeBox schemas behind schemas/) before anything is written.
 */
import { existsSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { fromBase64, generateKeyPair, publicKeyOf, signBytes, toBase64, verifySignature, type PrivateKey } from '../protocol/crypto.ts';
import { canonicalBytes } from '../protocol/jcs.ts';
import { parseFleetDescription, parseRevocations, parseTrust, SCHEMA_VERSION, type FleetDescription, type Revocations, type SignatureAlgorithm, type Trust } from '../protocol/schema.ts';
import { isHostname } from '../protocol/vocab.ts';
import { parsePrivateKeyPem, toPkcs8Pem } from '../io/keyfile.ts';
import { algorithmFlag, args, EXIT_OK, InputError, IoError, need, parseNow, readFile, writeFileAtomic, type CliIo } from './cli-common.ts';
import { resolveFleet } from './resolve.ts';

/** The files `init` writes, relative to `--dir`. */
export const INIT_FILES = { trust: 'trust.json', revocations: 'revocations.json', fleet: 'fleet.json', key: 'release.key' } as const;

/** A starter description: one channel `stable`, a canary wave then the rest, `hosts` on it. */
export function starterFleet(hosts: string[]): FleetDescription {
  return {
    hosts: Object.fromEntries(hosts.map((h) => [h, { system: 'x86_64-linux', channel: 'stable', tags: [] }])),
    channels: { stable: { rolloutPolicy: 'canary-then-all', freshnessWindow: 1440, signingIntervalMinutes: 60, reconcileIntervalMinutes: 5 } },
    rolloutPolicies: {
      'canary-then-all': {
        strategy: 'staged',
        waves: [
          { selector: { tags: ['canary'] }, soakMinutes: 30 },
          { selector: { all: true }, soakMinutes: 0 },
        ],
        healthGate: {},
        onHealthFailure: 'halt',
      },
    },
  } as FleetDescription;
}

const json = (v: unknown): string => `${JSON.stringify(v, null, 2)}\n`;

export function cmdInit(argv: string[], io: CliIo): number {
  const { values } = args(argv, {
    dir: { type: 'string' },
    key: { type: 'string' },
    'public-key': { type: 'string' },
    algorithm: { type: 'string' },
    host: { type: 'string', multiple: true },
    'cache-key': { type: 'string', multiple: true },
    now: { type: 'string' },
  });
  const dir = need(values.dir as string | undefined, '--dir');
  const keyPath = values.key as string | undefined;
  const publicKey = values['public-key'] as string | undefined;
  if (keyPath !== undefined && publicKey !== undefined) throw new InputError('give at most one of --key FILE and --public-key B64 (neither: a fresh key is generated)');
  if (values.algorithm !== undefined && keyPath !== undefined) throw new InputError('--algorithm goes with --public-key or a generated key (the key file knows its algorithm)');
  const hosts = ((values.host as string[] | undefined) ?? []).flatMap((h) => h.split(',')).filter((h) => h !== '');
  for (const h of hosts) if (!isHostname(h)) throw new InputError(`--host ${JSON.stringify(h)} is not a host name (a letter or digit, then letters, digits, ".", "_", "@", "-")`);
  const now = parseNow(values.now as string | undefined, io);
  // Binary-cache public keys (`nix key convert-secret-to-public`) the agents accept closures signed by.
  const cacheKeys = ((values['cache-key'] as string[] | undefined) ?? []).map((k) => k.trim());
  for (const k of cacheKeys) if (!/^[^:\s]+:[A-Za-z0-9+/]+={0,2}$/.test(k)) throw new InputError(`--cache-key ${JSON.stringify(k)} is not a Nix public key "name:base64" (nix key convert-secret-to-public prints one)`);

  // The key.
  let algorithm: SignatureAlgorithm;
  let secret: PrivateKey | null = null;
  let generatedPem: string | null = null;
  let publicB64: string;
  if (keyPath !== undefined) {
    const pk = parsePrivateKeyPem(readFile(keyPath, 'key').toString('utf8'));
    if (!pk.ok) throw new InputError(`${pk.error.code}: ${keyPath}: ${pk.error.message}`);
    secret = pk.value;
    algorithm = secret.algorithm;
    publicB64 = toBase64(publicKeyOf(secret));
  } else if (publicKey !== undefined) {
    algorithm = algorithmFlag(values.algorithm as string | undefined, 'ed25519');
    if (fromBase64(publicKey) === null) throw new InputError('--public-key must be base64 (what `nixfleet-release keygen` prints)');
    publicB64 = publicKey;
  } else {
    algorithm = algorithmFlag(values.algorithm as string | undefined, 'ed25519');
    const kp = generateKeyPair(algorithm);
    secret = { algorithm, secretKey: kp.secretKey };
    generatedPem = toPkcs8Pem(secret);
    publicB64 = kp.publicKeyB64;
  }

  // The files, each checked by the parser that will read it.
  const trust: Trust = { schemaVersion: SCHEMA_VERSION, ciReleaseKey: { current: { algorithm, public: publicB64 } }, cacheKeys };
  const t = parseTrust(structuredClone(trust));
  if (!t.ok) throw new InputError(`${t.error.message.includes('cacheKeys') ? '--cache-key' : '--public-key'}: ${t.error.message}`);
  const revocations: Revocations = {
    schemaVersion: SCHEMA_VERSION,
    revocations: [],
    meta: { schemaVersion: SCHEMA_VERSION, signedAt: secret === null ? null : now.iso, ciCommit: null, signatureAlgorithm: algorithm },
  };
  const r = parseRevocations(structuredClone(revocations));
  if (!r.ok) throw new IoError(`internal: the revocations.json written would not parse: ${r.error.message}`);
  const fleet = starterFleet(hosts);
  const f = parseFleetDescription(structuredClone(fleet));
  if (!f.ok) throw new IoError(`internal: the starter fleet would not parse: ${f.error.message}`);
  const resolved = resolveFleet(f.value);
  if (!resolved.ok) throw new IoError(`internal: the starter fleet does not resolve: ${resolved.error.code}: ${resolved.error.message}`);

  const revBytes = canonicalBytes(revocations);
  if (!revBytes.ok) throw new IoError(`internal: ${revBytes.error.message}`);
  let signature: Uint8Array | null = null;
  if (secret !== null) {
    signature = signBytes(revBytes.value, secret);
    if (!verifySignature(algorithm, publicB64, revBytes.value, signature)) throw new IoError('the revocations.json signature does not verify with the public key: refusing to write it');
  }

  const paths = {
    trust: join(dir, INIT_FILES.trust),
    revocations: join(dir, INIT_FILES.revocations),
    sig: join(dir, `${INIT_FILES.revocations}.sig`),
    fleet: join(dir, INIT_FILES.fleet),
    key: join(dir, INIT_FILES.key),
  };
  const toWrite = [paths.trust, paths.revocations, paths.fleet, ...(signature !== null ? [paths.sig] : []), ...(generatedPem !== null ? [paths.key] : [])];
  const existing = toWrite.filter((p) => existsSync(p));
  if (existing.length > 0) throw new InputError(`refusing to overwrite ${existing.join(', ')} (move them away or choose another --dir)`);
  try {
    mkdirSync(dir, { recursive: true });
  } catch (e) {
    throw new IoError(`cannot create ${dir}: ${(e as NodeJS.ErrnoException).code ?? String(e)}`);
  }
  if (generatedPem !== null) writeFileAtomic(paths.key, generatedPem, 0o600);
  writeFileAtomic(paths.trust, json(trust));
  writeFileAtomic(paths.revocations, revBytes.value);
  if (signature !== null) writeFileAtomic(paths.sig, signature);
  writeFileAtomic(paths.fleet, json(fleet));

  const lines = [
    ...(generatedPem !== null ? [`wrote ${paths.key} (the release PRIVATE key, mode 0600: move it to CI's secret store; never commit it)`] : []),
    `wrote ${paths.trust} (release key ${algorithm} ${publicB64}; copy it to the control plane and every host)`,
    signature !== null
      ? `wrote ${paths.revocations} + .sig (empty, signed ${now.iso}; re-sign it every signing interval: nixfleet-release sign --revocations …)`
      : `wrote ${paths.revocations} (empty, NOT signed: sign it in CI with nixfleet-release sign --revocations ${paths.revocations} --key … --out-dir …)`,
    `wrote ${paths.fleet} (starter fleet: channel "stable", ${hosts.length} host(s); edit it, then nixfleet-release resolve --fleet ${paths.fleet})`,
  ];
  io.stderr(lines.join('\n') + '\n');
  return EXIT_OK;
}
