/**
 * `nixfleet audit verify FILE` (offline) and `audit checkpoint` (online) — `audit export` is in
 * cmd-online.ts. Witnesses (issue 15, protocol/audit-witness.ts): `--witnesses` files hold heads
 * hosts signed and operators checkpointed; each must be in the log.
 */
import { Type } from '@sinclair/typebox';
import { parseOpenSshEd25519, toBase64 } from '../protocol/crypto.ts';
import { canonicalBytes, parseJsonStrict } from '../protocol/jcs.ts';
import { parseFleetResolved } from '../protocol/schema.ts';
import { resolve } from 'node:path';
import type { AuditEntry } from '../protocol/api.ts';
import { ROUTES } from '../protocol/api.ts';
import { responseParser } from '../protocol/api-parse.ts';
import { badWitnessSignature, checkpointStatement, checkWitnesses, CheckpointSchema, SignedCheckpointSchema, StoredWitnessSchema, WitnessesResponseSchema, type StoredWitness } from '../protocol/audit-witness.ts';
import { signStatement, verifyStatement } from '../pki/statement.ts';
import { compile } from '../protocol/validate.ts';
import { writeFileAtomic } from '../io/atomic-file.ts';
import { connectionFromCtx, openClient } from './client.ts';
import { mergeHostKeys, verifyAuditLog } from './audit.ts';
import { readInput } from './cmd-keys.ts';
import type { Ctx, Outcome } from './framework.ts';
import { arg, done, fail, flagBool, flagStr } from './framework.ts';

/** hostname → base64 raw keys from one or more fleet.resolved.json files (comma-separated). */
async function hostKeysFrom(ctx: Ctx, list: string): Promise<Record<string, string[]> | Outcome> {
  const keys: Record<string, string[]> = {};
  for (const file of list.split(',').map((s) => s.trim()).filter((s) => s !== '')) {
    const input = await readInput(ctx, file);
    if ('error' in input) return input.error;
    const json = parseJsonStrict(input.bytes);
    if (!json.ok) return fail('INVALID', `${file}: ${json.error.code}: ${json.error.message}`);
    const fleet = parseFleetResolved(json.value);
    if (!fleet.ok) return fail('INVALID', `${file}: not a fleet.resolved.json: ${fleet.error.issues[0]?.path ?? ''} ${fleet.error.issues[0]?.message ?? fleet.error.message}`);
    const one: Record<string, string> = {};
    for (const [h, host] of Object.entries(fleet.value.hosts)) {
      if (host.pubkey === null) continue;
      const k = parseOpenSshEd25519(host.pubkey);
      if (!k.ok) return fail('INVALID', `${file}: hosts.${h}.pubkey: ${k.error.message}`);
      one[h] = toBase64(k.value);
    }
    mergeHostKeys(keys, one);
  }
  return keys;
}

export async function auditVerify(ctx: Ctx): Promise<Outcome> {
  const file = arg(ctx, 'FILE');
  const input = await readInput(ctx, file);
  if ('error' in input) return input.error;
  const fleets = flagStr(ctx, 'fleet');
  let keys: Record<string, string[]> | null = null;
  if (fleets !== undefined) {
    const k = await hostKeysFrom(ctx, fleets);
    if ('exit' in k || 'error' in k) return k as Outcome;
    keys = k as Record<string, string[]>;
  }
  const text = input.bytes.toString('utf8');
  const r = verifyAuditLog(text, keys);
  const json = flagBool(ctx, 'json');
  if (!r.ok) {
    if (json) ctx.io.stdout(JSON.stringify({ ok: false, ...r.error }) + '\n');
    return fail('INVALID', r.error.message);
  }
  const wfiles = flagStr(ctx, 'witnesses');
  let witnessLine = '';
  let witnessSummary: { matched: number; before: number } | undefined;
  if (wfiles !== undefined) {
    const ws = await witnessesFrom(ctx, wfiles);
    if (!Array.isArray(ws)) {
      if (json && 'error' in ws && ws.error.message.startsWith('WITNESS_SIGNATURE')) ctx.io.stdout(JSON.stringify({ ok: false, line: null, seq: null, code: 'WITNESS_SIGNATURE', message: ws.error.message }) + '\n');
      return ws;
    }
    const entries = text.split('\n').filter((l) => l !== '').map((l) => JSON.parse(l) as AuditEntry);
    const bad = badWitnessSignature(ws, keys);
    const c = bad !== null ? null : checkWitnesses(entries, ws);
    const error = bad !== null ? { code: 'WITNESS_SIGNATURE', message: `${bad.by}'s witness of seq ${bad.seq} does not verify under its host key` } : c !== null && !c.ok ? { code: c.error.code, message: c.error.message } : null;
    if (error !== null) {
      if (json) ctx.io.stdout(JSON.stringify({ ok: false, line: null, seq: c !== null && !c.ok ? c.error.seq : bad!.seq, ...error }) + '\n');
      return fail('INVALID', `${error.code}: ${error.message}`);
    }
    witnessSummary = c!.ok ? c!.value : { matched: 0, before: 0 };
    witnessLine = `; witnessed heads: ${witnessSummary.matched} found in the log${witnessSummary.before > 0 ? `, ${witnessSummary.before} before this partial export` : ''}`;
  }
  const s = { ...r.value, witnesses: witnessSummary ?? null };
  if (json) {
    ctx.io.stdout(JSON.stringify({ ok: true, ...s }) + '\n');
    return done;
  }
  const span = `${s.entries} entries, seq ${s.firstSeq}..${s.lastSeq}${s.complete ? ' (from genesis)' : ' (partial export: the link to earlier entries is not checked)'}`;
  const rep = s.reports;
  const reports =
    keys === null && rep.unchecked > 0
      ? `; ${rep.unchecked} host reports NOT checked (give --fleet to check host signatures)`
      : `; host reports: ${rep.verified} verified${rep.rejectedByCp > 0 ? `, ${rep.rejectedByCp} refused by the CP (bad signature, recorded as invalid)` : ''}${rep.unchecked > 0 ? `, ${rep.unchecked} unchecked (host has no key in the fleet)` : ''}`;
  const ev = s.evidence;
  const evidence = ev.verified + ev.unchecked === 0 ? '' : `; evidence records: ${ev.verified} verified${ev.unchecked > 0 ? `, ${ev.unchecked} NOT checked (${keys === null ? 'give --fleet' : 'host has no key in the fleet'})` : ''}`;
  ctx.io.stdout(`ok: chain intact, ${span}${reports}${evidence}${witnessLine}; head ${s.lastHash}\n`);
  return done;
}

const witnessList = compile(Type.Array(StoredWitnessSchema));
const checkpointFile = compile(SignedCheckpointSchema);

/**
 * Witness files (a JSON list, from `audit export --witnesses`) and checkpoint files (one object).
 * A signed checkpoint must verify under the operator certificate it carries, name that operator,
 * and — with --fleet-ca — come from a certificate the fleet CA issued (WITNESS_SIGNATURE otherwise).
 */
async function witnessesFrom(ctx: Ctx, list: string): Promise<StoredWitness[] | Outcome> {
  const out: StoredWitness[] = [];
  const caFile = flagStr(ctx, 'fleet-ca');
  let caPem: string | null = null;
  if (caFile !== undefined) {
    const ca = await readInput(ctx, caFile);
    if ('error' in ca) return ca.error;
    caPem = ca.bytes.toString('utf8');
  }
  for (const file of list.split(',').map((x) => x.trim()).filter((x) => x !== '')) {
    const input = await readInput(ctx, file);
    if ('error' in input) return input.error;
    const j = parseJsonStrict(input.bytes);
    if (!j.ok) return fail('INVALID', `${file}: ${j.error.code}: ${j.error.message}`);
    if (witnessList.check(j.value)) out.push(...j.value);
    else if (checkpointFile.check(j.value)) {
      const c = j.value;
      if (c.signature !== undefined) {
        const bytes = canonicalBytes(checkpointStatement(c));
        const v = bytes.ok ? await verifyStatement(bytes.value, c.signature, { cn: c.by.replace(/^operator:/, ''), ou: 'operator' }, caPem) : null;
        if (v === null || !v.ok) return fail('INVALID', `WITNESS_SIGNATURE: ${file}: checkpoint of seq ${c.seq} by ${c.by}: ${v === null ? 'not canonicalisable' : `${v.error.code}: ${v.error.message}`}`);
      }
      out.push({ ...checkpointStatement(c), witness: null, signature: null });
    }
    else return fail('INVALID', `${file}: neither a witness list (audit export --witnesses) nor a checkpoint (audit checkpoint --out)`);
  }
  return out;
}

const parseWitnesses = responseParser(WitnessesResponseSchema, 'audit witnesses');
const parseCheckpoint = responseParser(CheckpointSchema, 'audit checkpoint');

export async function auditCheckpoint(ctx: Ctx): Promise<Outcome> {
  const out = resolve(ctx.io.cwd, flagStr(ctx, 'out')!);
  const conn = connectionFromCtx(ctx);
  if (!conn.ok) return { error: conn.error };
  const c = openClient(conn.value.options);
  if (!c.ok) return { error: c.error };
  try {
    const w = await c.value.get(ROUTES.auditWitnesses, parseWitnesses);
    if (!w.ok) return { error: w.error };
    if (w.value.head === null || w.value.head.seq === 0) return fail('REFUSED', 'the audit log is empty: nothing to checkpoint');
    const r = await c.value.post(ROUTES.auditCheckpoint, w.value.head, parseCheckpoint);
    if (!r.ok) return { error: r.error };
    // Signed with the key of the operator's own certificate, which the file carries (issue 15).
    const bytes = canonicalBytes(checkpointStatement(r.value));
    if (!bytes.ok) return fail('INVALID', `the CP's checkpoint answer is not canonicalisable: ${bytes.error.message}`);
    const signed = { ...r.value, signature: signStatement(bytes.value, conn.value.options.keyPem, conn.value.options.certPem) };
    try {
      writeFileAtomic(out, JSON.stringify(signed, null, 2) + '\n', { mode: 0o600 });
    } catch (e) {
      return fail('IO', `cannot write ${out}: ${(e as NodeJS.ErrnoException).code ?? String(e)}`);
    }
    if (flagBool(ctx, 'json')) ctx.io.stdout(JSON.stringify(r.value) + '\n');
    else ctx.io.stdout(`checkpoint: seq ${r.value.seq}, head ${r.value.hash}, by ${r.value.by} at ${r.value.at}; kept in ${out}\n`);
    return done;
  } finally {
    await c.value.close();
  }
}
