/**
 * `nixfleet audit verify FILE` (offline) — and `audit export` (online, see cmd-online.ts).
 */
import { parseOpenSshEd25519, toBase64 } from '../protocol/crypto.ts';
import { parseJsonStrict } from '../protocol/jcs.ts';
import { parseFleetResolved } from '../protocol/schema.ts';
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
  const r = verifyAuditLog(input.bytes.toString('utf8'), keys);
  const json = flagBool(ctx, 'json');
  if (!r.ok) {
    if (json) ctx.io.stdout(JSON.stringify({ ok: false, ...r.error }) + '\n');
    return fail('INVALID', r.error.message);
  }
  const s = r.value;
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
  ctx.io.stdout(`ok: chain intact, ${span}${reports}${evidence}; head ${s.lastHash}\n`);
  return done;
}
