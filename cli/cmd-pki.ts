/**
 * Offline PKI commands (SPEC §7): `pki init`, `mint-host-cert`, `mint-operator-cert`,
 * `mint-server-cert`. Minting itself is `pki/pki.ts` (@peculiar/x509, ECDSA P-256); this file only reads the CA
 * from the operator's PKI directory and writes PEM files. The CA key never leaves that directory.
 */
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import type { Ctx, Outcome } from './framework.ts';
import { arg, done, fail, flagBool, flagInt, flagStr } from './framework.ts';
import type { FleetCa, MintedCert } from '../pki/pki.ts';
import { parseTimestamp } from '../protocol/vocab.ts';
import { createFleetCa, mintHostCert, mintOperatorCert, mintServerCert, readCertIdentity } from '../pki/pki.ts';

export const CA_CERT_FILE = 'ca.pem';
export const CA_KEY_FILE = 'ca.key';

function pkiDir(ctx: Ctx): string {
  // Required flag: resolveFlags has already refused to run without it.
  return flagStr(ctx, 'pki-dir')!;
}

function ioError(what: string, path: string, e: unknown): Outcome {
  return fail('IO', `cannot ${what} ${path}: ${(e as NodeJS.ErrnoException).code ?? String(e)}`);
}

/** Write a file without ever replacing one (unless `force`): certificates and keys are identities. */
function writeNew(path: string, text: string, mode: number, force: boolean): Outcome | null {
  try {
    writeFileSync(path, text, { mode, flag: force ? 'w' : 'wx' });
    return null;
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'EEXIST') return fail('EXISTS', `${path} already exists (use --force to replace it)`);
    return ioError('write', path, e);
  }
}

function nowOf(ctx: Ctx): Date {
  return new Date(ctx.io.now());
}

export async function pkiInit(ctx: Ctx): Promise<Outcome> {
  const dir = pkiDir(ctx);
  const certPath = join(dir, CA_CERT_FILE);
  const keyPath = join(dir, CA_KEY_FILE);
  try {
    mkdirSync(dir, { recursive: true, mode: 0o700 });
  } catch (e) {
    return ioError('create', dir, e);
  }
  const validityDays = flagInt(ctx, 'validity-days');
  const ca = await createFleetCa({ commonName: flagStr(ctx, 'name')!, now: nowOf(ctx), ...(validityDays !== undefined ? { validityDays } : {}) });
  // Refuse to overwrite an existing CA, ever (no --force): replacing it would orphan every host
  // and operator certificate. Check both files first, then create each with O_EXCL; if the
  // certificate cannot be created, take back the key we just wrote so no half CA is left.
  for (const f of [CA_CERT_FILE, CA_KEY_FILE]) {
    if (existsSync(join(dir, f))) return fail('EXISTS', `a fleet CA already exists in ${dir} (${f}); refusing to overwrite it`);
  }
  const k = writeNew(keyPath, ca.keyPem, 0o600, false);
  if (k !== null) return k;
  const c = writeNew(certPath, ca.certPem, 0o644, false);
  if (c !== null) {
    rmSync(keyPath, { force: true });
    return c;
  }
  ctx.io.stdout(`fleet CA written: ${certPath} (give this to the CP and agents), ${keyPath} (keep it here; never on the CP)\n`);
  return done;
}

function loadCa(ctx: Ctx): FleetCa | Outcome {
  const dir = pkiDir(ctx);
  const read = (f: string): string | Outcome => {
    const p = join(dir, f);
    try {
      return readFileSync(p, 'utf8');
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return fail('USAGE', `no fleet CA in ${dir} (missing ${f}); run: nixfleet pki init --pki-dir ${dir}`);
      return ioError('read', p, e);
    }
  };
  const certPem = read(CA_CERT_FILE);
  if (typeof certPem !== 'string') return certPem;
  const keyPem = read(CA_KEY_FILE);
  if (typeof keyPem !== 'string') return keyPem;
  return { certPem, keyPem };
}

type Minter = (ca: FleetCa, name: string, opts: { now: Date; validityDays?: number; notBefore?: Date }) => Promise<MintedCert>;

async function mint(ctx: Ctx, name: string, fileBase: string, minter: Minter): Promise<Outcome> {
  const ca = loadCa(ctx);
  if ('exit' in ca || 'error' in ca) return ca;
  const outDir = resolve(ctx.io.cwd, flagStr(ctx, 'out-dir') ?? '.');
  const validityDays = flagInt(ctx, 'validity-days');
  const nb = flagStr(ctx, 'not-before');
  let notBefore: Date | undefined;
  if (nb !== undefined) {
    const ms = parseTimestamp(nb);
    if (ms === null) return fail('USAGE', `--not-before: expected an RFC 3339 time, got ${JSON.stringify(nb)}`);
    notBefore = new Date(ms);
  }
  let minted: MintedCert;
  try {
    minted = await minter(ca, name, {
      now: nowOf(ctx),
      ...(validityDays !== undefined ? { validityDays } : {}),
      ...(notBefore !== undefined ? { notBefore } : {}),
    });
  } catch (e) {
    // pki.ts throws on names it refuses and on a CA that is not PEM: both are the operator's input.
    return fail('USAGE', e instanceof Error ? e.message : String(e));
  }
  try {
    mkdirSync(outDir, { recursive: true });
  } catch (e) {
    return ioError('create', outDir, e);
  }
  const force = flagBool(ctx, 'force');
  const certPath = join(outDir, `${fileBase}.pem`);
  const keyPath = join(outDir, `${fileBase}.key`);
  const k = writeNew(keyPath, minted.keyPem, 0o600, force);
  if (k !== null) return k;
  const c = writeNew(certPath, minted.certPem, 0o644, force);
  if (c !== null) return c;
  const id = readCertIdentity(minted.certPem);
  ctx.io.stdout(
    `${certPath}: CN=${id.commonName ?? ''}${id.organizationalUnit ? ` OU=${id.organizationalUnit}` : ''} serial ${minted.serial}, valid ${minted.notBefore.toISOString()} to ${minted.notAfter.toISOString()}; key ${keyPath}\n`,
  );
  return done;
}

export async function mintHost(ctx: Ctx): Promise<Outcome> {
  const host = arg(ctx, 'HOSTNAME');
  return mint(ctx, host, host, mintHostCert);
}

export async function mintOperator(ctx: Ctx): Promise<Outcome> {
  const name = arg(ctx, 'NAME');
  return mint(ctx, name, name, mintOperatorCert);
}

export async function mintServer(ctx: Ctx): Promise<Outcome> {
  const names = (flagStr(ctx, 'hostnames') ?? '')
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s !== '');
  return mint(ctx, '', 'server', (ca, _name, opts) => mintServerCert(ca, { ...opts, hostnames: names }));
}
