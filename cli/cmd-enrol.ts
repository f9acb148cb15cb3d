/**
 * Enrolment commands (issue 16), both offline on the operator's machine:
 * - `enroll token --host H --ttl 1h --org-key FILE`: a one-time bootstrap token for a host whose
 *   SSH host key the signed fleet does not declare yet, signed by the org key the control planes
 *   trust (trust.json `orgRootKey`); bound to the host, expiring, single use (protocol/enrol.ts).
 * - `pki init-issuance`: the host-issuance intermediate for the control plane, signed by the
 *   fleet CA of the PKI directory (whose key stays there): it can only issue `O=nixfleet, OU=host`
 *   client certificates (pki/x509.ts).
 */
import { randomBytes } from 'node:crypto';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { parsePrivateKeyPem } from '../io/keyfile.ts';
import { signToken, type TokenClaims } from '../protocol/enrol.ts';
import { isHostname } from '../protocol/vocab.ts';
import type { Ctx, Outcome } from './framework.ts';
import { done, fail, flagBool, flagInt, flagStr } from './framework.ts';
import { CA_CERT_FILE, CA_KEY_FILE } from './cmd-pki.ts';

export const ISSUANCE_CERT_FILE = 'issuance.pem';
export const ISSUANCE_KEY_FILE = 'issuance.key';

const UNITS: Record<string, number> = { s: 1, m: 60, h: 3600, d: 86_400 };

/** `90s`, `30m`, `1h`, `2d` → seconds; null when unreadable. */
export function parseDuration(s: string): number | null {
  const m = /^(\d{1,7})([smhd])$/.exec(s.trim());
  return m === null ? null : Number(m[1]) * UNITS[m[2]!]!;
}

export async function enrollToken(ctx: Ctx): Promise<Outcome> {
  const host = flagStr(ctx, 'host')!;
  if (!isHostname(host)) return fail('USAGE', `--host ${JSON.stringify(host)} is not a valid host name`);
  const ttl = parseDuration(flagStr(ctx, 'ttl') ?? '1h');
  if (ttl === null || ttl < 60 || ttl > 30 * 86_400) return fail('USAGE', `--ttl: expected a duration from 60s to 30d such as 1h, got ${JSON.stringify(flagStr(ctx, 'ttl'))}`);
  const keyFile = resolve(ctx.io.cwd, flagStr(ctx, 'org-key')!);
  let pem: string;
  try {
    pem = readFileSync(keyFile, 'utf8');
  } catch (e) {
    return fail('IO', `cannot read ${keyFile}: ${(e as NodeJS.ErrnoException).code ?? String(e)}`);
  }
  const key = parsePrivateKeyPem(pem);
  if (!key.ok) return fail('USAGE', `--org-key ${keyFile}: ${key.error.message}`);
  const now = ctx.io.now();
  const claims: TokenClaims = {
    kind: 'nixfleet-enrol-token',
    hostname: host,
    nonce: randomBytes(16).toString('hex'),
    issuedAt: new Date(now).toISOString(),
    expiresAt: new Date(now + ttl * 1000).toISOString(),
    issuedBy: flagStr(ctx, 'by') ?? ctx.io.env['USER'] ?? 'operator',
  };
  const token = signToken(claims, key.value);
  const out = flagStr(ctx, 'out');
  if (out === undefined) ctx.io.stdout(`${token}\n`);
  else {
    const path = resolve(ctx.io.cwd, out);
    try {
      writeFileSync(path, `${token}\n`, { mode: 0o600, flag: 'wx' });
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      return code === 'EEXIST' ? fail('EXISTS', `${path} already exists (a token file is never overwritten)`) : fail('IO', `cannot write ${path}: ${code ?? String(e)}`);
    }
    ctx.io.stderr(`token for ${host} (nonce ${claims.nonce}, expires ${claims.expiresAt}) written to ${path}; put it in the agent's enrol.tokenFile\n`);
  }
  return done;
}

export async function pkiInitIssuance(ctx: Ctx): Promise<Outcome> {
  const dir = flagStr(ctx, 'pki-dir')!;
  let root: { certPem: string; keyPem: string };
  try {
    root = { certPem: readFileSync(join(dir, CA_CERT_FILE), 'utf8'), keyPem: readFileSync(join(dir, CA_KEY_FILE), 'utf8') };
  } catch (e) {
    return fail('USAGE', `no fleet CA in ${dir} (${(e as NodeJS.ErrnoException).code ?? String(e)}); run: nixfleet pki init --pki-dir ${dir}`);
  }
  const outDir = resolve(ctx.io.cwd, flagStr(ctx, 'out-dir') ?? '.');
  const validityDays = flagInt(ctx, 'validity-days') ?? 365;
  // Loaded here only: @peculiar/x509 is not needed by any other command of this CLI.
  const { createIssuanceCa } = await import('../pki/x509.ts');
  let issuance: { certPem: string; keyPem: string };
  try {
    issuance = await createIssuanceCa(root, { validityDays, now: new Date(ctx.io.now()) });
  } catch (e) {
    return fail('USAGE', `cannot create the issuance intermediate: ${e instanceof Error ? e.message : String(e)}`);
  }
  try {
    mkdirSync(outDir, { recursive: true, mode: 0o700 });
    const flag = flagBool(ctx, 'force') ? 'w' : 'wx';
    writeFileSync(join(outDir, ISSUANCE_KEY_FILE), issuance.keyPem, { mode: 0o600, flag });
    writeFileSync(join(outDir, ISSUANCE_CERT_FILE), issuance.certPem, { mode: 0o644, flag });
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    return code === 'EEXIST' ? fail('EXISTS', `${outDir} already holds an issuance intermediate (use --force to replace it)`) : fail('IO', `cannot write into ${outDir}: ${code ?? String(e)}`);
  }
  ctx.io.stdout(
    `host-issuance intermediate written: ${join(outDir, ISSUANCE_CERT_FILE)}, ${join(outDir, ISSUANCE_KEY_FILE)} (for the control plane's enrolment.issuerCertFile / issuerKeyFile; it can only issue OU=host client certificates, valid ${validityDays} days)\n`,
  );
  return done;
}
