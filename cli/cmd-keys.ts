/**
 * Offline key and artefact commands: `derive-pubkey` (OpenSSH ssh-ed25519 → base64 raw 32 bytes)
 * and `verify-artifact` (the very `verifyArtifact` the agent and the CP run, for an auditor's laptop).
 */
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { parseOpenSshEd25519, toBase64, fromBase64 } from '../protocol/crypto.ts';
import { parseJsonStrict } from '../protocol/jcs.ts';
import type { ArtifactKind, SignatureAlgorithm, Trust } from '../protocol/schema.ts';
import { SIGNATURE_ALGORITHMS, parseTrust, parseTimestamp } from '../protocol/schema.ts';
import { verifyArtifact } from '../protocol/verify.ts';
import type { Ctx, Outcome } from './framework.ts';
import { arg, done, fail, flagBool, flagStr } from './framework.ts';

/** Read a file named on the command line; `-` is standard input. */
export async function readInput(ctx: Ctx, name: string): Promise<{ bytes: Buffer } | { error: Outcome }> {
  if (name === '-') return { bytes: Buffer.from(await ctx.io.stdin(), 'utf8') };
  const path = resolve(ctx.io.cwd, name);
  try {
    return { bytes: readFileSync(path) };
  } catch (e) {
    return { error: fail('IO', `cannot read ${path}: ${(e as NodeJS.ErrnoException).code ?? String(e)}`) };
  }
}

export async function derivePubkey(ctx: Ctx): Promise<Outcome> {
  const file = ctx.args['FILE'] ?? '-';
  const input = await readInput(ctx, file);
  if ('error' in input) return input.error;
  // A .pub file holds one line; tolerate blank lines and comments around it.
  const lines = input.bytes
    .toString('utf8')
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l !== '' && !l.startsWith('#'));
  if (lines.length !== 1) return fail('INVALID', `expected exactly one "ssh-ed25519 AAAA… comment" line in ${file === '-' ? 'standard input' : file}, got ${lines.length}`);
  const key = parseOpenSshEd25519(lines[0]!);
  if (!key.ok) return fail('INVALID', `not an OpenSSH ed25519 public key: ${key.error.message}`);
  ctx.io.stdout(`${toBase64(key.value)}\n`);
  ctx.io.stderr('(base64 of the raw 32-byte ed25519 key; a fleet\'s hosts.*.pubkey takes the "ssh-ed25519 AAAA…" line itself)\n');
  return done;
}

function loadTrust(ctx: Ctx): Trust | Outcome {
  const trustFile = flagStr(ctx, 'trust');
  const publicKey = flagStr(ctx, 'public-key');
  const algorithm = flagStr(ctx, 'algorithm') ?? 'ed25519';
  if ((trustFile === undefined) === (publicKey === undefined)) return fail('USAGE', 'give exactly one of --trust FILE or --public-key B64');
  if (!SIGNATURE_ALGORITHMS.includes(algorithm as SignatureAlgorithm)) {
    return fail('USAGE', `--algorithm: one of ${SIGNATURE_ALGORITHMS.join(', ')}`);
  }
  if (publicKey !== undefined) {
    if (fromBase64(publicKey) === null) return fail('USAGE', '--public-key: not base64');
    return { schemaVersion: 1, ciReleaseKey: { current: { algorithm: algorithm as SignatureAlgorithm, public: publicKey } }, cacheKeys: [] };
  }
  const path = resolve(ctx.io.cwd, trustFile!);
  let text: Buffer;
  try {
    text = readFileSync(path);
  } catch (e) {
    return fail('IO', `cannot read ${path}: ${(e as NodeJS.ErrnoException).code ?? String(e)}`);
  }
  const json = parseJsonStrict(text);
  if (!json.ok) return fail('INVALID', `${path}: ${json.error.code}: ${json.error.message}`);
  const trust = parseTrust(json.value);
  if (!trust.ok) {
    const first = trust.error.issues[0];
    return fail('INVALID', `${path}: not a trust.json: ${first ? `${first.path}: ${first.message}` : trust.error.message}`);
  }
  return trust.value;
}

export async function verifyArtifactCmd(ctx: Ctx): Promise<Outcome> {
  const file = arg(ctx, 'FILE');
  const kind = (flagStr(ctx, 'kind') ?? 'fleet') as ArtifactKind;
  if (kind !== 'fleet' && kind !== 'revocations') return fail('USAGE', '--kind: fleet or revocations');
  const nowFlag = flagStr(ctx, 'now');
  let nowMs = ctx.io.now();
  if (nowFlag !== undefined) {
    const t = parseTimestamp(nowFlag);
    if (t === null) return fail('USAGE', `--now: expected an RFC 3339 time, got ${JSON.stringify(nowFlag)}`);
    nowMs = t;
  }
  const trust = loadTrust(ctx);
  if ('exit' in trust || 'error' in trust) return trust;
  const artifact = await readInput(ctx, file);
  if ('error' in artifact) return artifact.error;
  const sigName = flagStr(ctx, 'signature') ?? `${file}.sig`;
  const sig = await readInput(ctx, sigName);
  if ('error' in sig) return sig.error;

  const r = verifyArtifact({ kind, bytes: artifact.bytes, signature: sig.bytes, trust, nowMs, lastAccepted: null });
  const json = flagBool(ctx, 'json');
  if (!r.ok) {
    if (json) ctx.io.stdout(JSON.stringify({ ok: false, code: r.error.code, message: r.error.message }) + '\n');
    return fail('INVALID', `${r.error.code}: ${r.error.message}`);
  }
  const v = r.value;
  const summary = {
    ok: true,
    kind: v.kind,
    signedAt: v.signedAt,
    sha256: v.sha256,
    keyRole: v.keyRole,
    ciCommit: v.fleet?.meta.ciCommit ?? v.revocations?.meta.ciCommit ?? null,
    hosts: v.fleet ? Object.keys(v.fleet.hosts).length : null,
    channels: v.fleet ? Object.keys(v.fleet.channels).length : null,
    revocations: v.revocations ? v.revocations.revocations.length : null,
  };
  if (json) {
    ctx.io.stdout(JSON.stringify(summary) + '\n');
  } else {
    const what = v.fleet ? `${summary.hosts} hosts, ${summary.channels} channels` : `${summary.revocations} revocations`;
    ctx.io.stdout(`ok: ${v.kind} signed ${v.signedAt} by the ${v.keyRole} release key; ${what}; sha256 ${v.sha256}\n`);
  }
  return done;
}
