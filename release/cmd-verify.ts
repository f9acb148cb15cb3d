/**
 * `nixfleet-release verify` (SPEC §3, §2.3): verify a signed artefact exactly as the control plane
 * and agents do (protocol/verify.ts), with a public key or a trust.json.
 */
import { basename } from 'node:path';
import { fromBase64 } from '../protocol/crypto.ts';
import { parseTrust, type Trust } from '../protocol/schema.ts';
import { SLICE_INDEX_FILE } from '../protocol/slice.ts';
import { verifyArtifact, type AcceptedState, type SignedKind } from '../protocol/verify.ts';
import { algorithmFlag, args, EXIT_INPUT, EXIT_OK, InputError, need, parseJsonFile, parseNow, readFile, type CliIo } from './cli-common.ts';

/** Exit 0 with a one-line `OK …` summary, or exit 1 with `CODE: message` on stderr. */
export function cmdVerify(argv: string[], io: CliIo): number {
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
  if (kindFlag !== undefined && kindFlag !== 'fleet' && kindFlag !== 'revocations' && kindFlag !== 'index') throw new InputError('--kind must be fleet, revocations or index');
  const name = basename(artifact);
  const kind: SignedKind = (kindFlag as SignedKind | undefined) ?? (name.startsWith('revocations') ? 'revocations' : name === SLICE_INDEX_FILE ? 'index' : 'fleet');
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
  const what =
    v.fleet !== undefined
      ? `${Object.keys(v.fleet.hosts).length} hosts, ${Object.keys(v.fleet.channels).length} channels`
      : v.index !== undefined
        ? `slice index: ${v.index.leafCount} leaves, root ${v.index.root}, artefact ${v.index.artifactSha256}`
        : `${v.revocations?.revocations.length ?? 0} revocations`;
  io.stdout(`OK ${kind} signedAt=${v.signedAt} sha256=${v.sha256} key=${v.keyRole} window=${v.freshnessWindowMinutes}m (${what})\n`);
  return EXIT_OK;
}
