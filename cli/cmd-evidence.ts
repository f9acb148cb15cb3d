/**
 * `nixfleet evidence export` (online: `GET /v1/evidence` + the audit pages of the period) and
 * `nixfleet evidence verify` (offline, cli/evidence-verify.ts), issue 15.
 */
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import type { AuditEntry } from '../protocol/api.ts';
import { ROUTES } from '../protocol/api.ts';
import { parseAuditResponse, responseParser } from '../protocol/api-parse.ts';
import { WitnessesResponseSchema } from '../protocol/audit-witness.ts';
import { CATALOGUE, type Control } from '../protocol/compliance.ts';
import { fromBase64 } from '../protocol/crypto.ts';
import { buildPacket, EvidenceResponseSchema, type PacketInfo } from '../protocol/evidence-packet.ts';
import { parseJsonStrict } from '../protocol/jcs.ts';
import { parseTimestamp, parseTrust, type Trust } from '../protocol/schema.ts';
import { writeTar } from '../protocol/tar.ts';
import { writeFileAtomic } from '../io/atomic-file.ts';
import { clientFromCtx } from './client.ts';
import { renderEvidenceHtml } from './evidence-html.ts';
import { verifyEvidencePacket, type PacketSummary } from './evidence-verify.ts';
import type { Ctx, Outcome } from './framework.ts';
import { arg, done, fail, flagBool, flagStr } from './framework.ts';

const parseEvidenceResponse = responseParser(EvidenceResponseSchema, 'evidence export');
const parseWitnesses = responseParser(WitnessesResponseSchema, 'audit witnesses');
const MAX_AUDIT_PAGES = 100_000;
const iso = (ms: number): string => new Date(ms).toISOString();

/** The controls whose clauses name `framework`: built-ins and the own controls of the given releases. */
function controlIdsOf(framework: string, releases: readonly { artifact: string }[]): Set<string> {
  const all: Control[] = [...CATALOGUE];
  for (const r of releases) {
    const bytes = fromBase64(r.artifact);
    const v = bytes === null ? null : parseJsonStrict(bytes);
    const own = v?.ok === true ? (v.value as { compliance?: { controls?: Control[] } }).compliance?.controls : undefined;
    if (Array.isArray(own)) all.push(...own);
  }
  return new Set(all.filter((c) => c.frameworks.some((cl) => cl.split(':')[0] === framework)).map((c) => c.id));
}

export async function evidenceExport(ctx: Ctx): Promise<Outcome> {
  const fromRaw = flagStr(ctx, 'from')!;
  const toRaw = flagStr(ctx, 'to');
  const fromMs = parseTimestamp(fromRaw);
  const toMs = toRaw === undefined ? ctx.io.now() : parseTimestamp(toRaw);
  if (fromMs === null) return fail('USAGE', `--from: an RFC 3339 time, got ${JSON.stringify(fromRaw)}`);
  if (toMs === null) return fail('USAGE', `--to: an RFC 3339 time, got ${JSON.stringify(toRaw)}`);
  if (fromMs > toMs) return fail('USAGE', '--from must not be after --to');
  const framework = flagStr(ctx, 'framework') ?? null;
  const out = resolve(ctx.io.cwd, flagStr(ctx, 'out')!);
  const c = clientFromCtx(ctx);
  if (!c.ok) return { error: c.error };
  try {
    const r = await c.value.get(ROUTES.evidence, parseEvidenceResponse, { from: iso(fromMs), to: iso(toMs) });
    if (!r.ok) return { error: r.error };
    // Witnesses first (each is then of a head the log below holds), those dated in or before the period.
    const w = await c.value.get(ROUTES.auditWitnesses, parseWitnesses);
    if (!w.ok) return { error: w.error };
    const witnesses = w.value.witnesses.filter((x) => Date.parse(x.at) <= toMs);
    // The audit segment of the period, read page by page; the head is the newest entry seen.
    const audit: AuditEntry[] = [];
    let head: AuditEntry | null = null;
    let after = 0;
    for (let page = 0; page < MAX_AUDIT_PAGES; page++) {
      const a = await c.value.get(ROUTES.audit, parseAuditResponse, { after, limit: 1000 });
      if (!a.ok) return { error: a.error };
      for (const e of a.value.entries) {
        const at = Date.parse(e.at);
        if (at >= fromMs && at <= toMs) audit.push(e);
        head = e;
      }
      const next = a.value.nextAfter;
      if (next === null || a.value.entries.length === 0) break;
      if (next <= after) return fail('REFUSED', `the CP's audit paging did not advance (nextAfter ${next} after ${after})`);
      after = next;
    }
    const keep = framework === null ? null : controlIdsOf(framework, r.value.releases);
    const evidence = keep === null ? r.value.evidence : r.value.evidence.filter((e) => keep.has(e.record.control));
    const nowMs = ctx.io.now();
    const info: PacketInfo = { from: iso(fromMs), to: iso(toMs), framework, generatedAt: iso(nowMs), auditHead: head === null ? null : { seq: head.seq, hash: head.hash } };
    const files = buildPacket(r.value, audit, evidence, witnesses, info);
    try {
      writeFileAtomic(out, writeTar(files, Math.floor(nowMs / 1000)), { mode: 0o600 });
    } catch (e) {
      return fail('IO', `cannot write ${out}: ${(e as NodeJS.ErrnoException).code ?? String(e)}`);
    }
    ctx.io.stdout(`wrote ${out}: ${r.value.releases.length} releases, ${audit.length} audit entries, ${evidence.length} evidence records, ${files.length} files (check it with: nixfleet evidence verify ${out})\n`);
    return done;
  } finally {
    await c.value.close();
  }
}

function readFile(ctx: Ctx, name: string): { bytes: Buffer } | { error: Outcome } {
  const path = resolve(ctx.io.cwd, name);
  try {
    return { bytes: readFileSync(path) };
  } catch (e) {
    return { error: fail('IO', `cannot read ${path}: ${(e as NodeJS.ErrnoException).code ?? String(e)}`) };
  }
}

export async function evidenceVerify(ctx: Ctx): Promise<Outcome> {
  const packet = readFile(ctx, arg(ctx, 'PACKET'));
  if ('error' in packet) return packet.error;
  let trust: Trust | null = null;
  const trustFile = flagStr(ctx, 'trust');
  if (trustFile !== undefined) {
    const t = readFile(ctx, trustFile);
    if ('error' in t) return t.error;
    const j = parseJsonStrict(t.bytes);
    const parsed = j.ok ? parseTrust(j.value) : null;
    if (parsed === null || !parsed.ok) return fail('USAGE', `--trust ${trustFile}: not a trust.json (${j.ok ? parsed!.ok ? '' : parsed!.error.message : j.error.message})`);
    trust = parsed.value;
  }
  const r = verifyEvidencePacket(new Uint8Array(packet.bytes), trust);
  const json = flagBool(ctx, 'json');
  if (!r.ok) {
    if (json) ctx.io.stdout(JSON.stringify({ ok: false, ...r.error }) + '\n');
    return fail('INVALID', `${r.error.code}: ${r.error.message}`);
  }
  const html = flagStr(ctx, 'html');
  if (html !== undefined) {
    try {
      writeFileAtomic(resolve(ctx.io.cwd, html), renderEvidenceHtml(r.value), { mode: 0o644 });
    } catch (e) {
      return fail('IO', `cannot write ${html}: ${(e as NodeJS.ErrnoException).code ?? String(e)}`);
    }
  }
  if (json) ctx.io.stdout(JSON.stringify({ ok: true, ...r.value }, null, 2) + '\n');
  else ctx.io.stdout(renderSummary(r.value));
  return done;
}

function renderSummary(s: PacketSummary): string {
  const a = s.audit;
  const lines = [
    `ok: evidence packet ${s.packet.from} .. ${s.packet.to}${s.packet.framework === null ? '' : ` (${s.packet.framework})`} verified offline (trust root: ${s.trustFrom === 'argument' ? '--trust' : 'the packet\'s own trust.json — give --trust to use yours'})`,
    `  ${s.files} files match the manifest; ${s.releases.length} signed releases in force`,
    `  audit chain: ${a === null ? 'no entries in the period' : `${a.entries} entries, seq ${a.firstSeq}..${a.lastSeq}, head ${a.lastHash}; ${a.reports.verified} host reports verified`}; witnessed heads: ${s.witnesses.matched} found in it${s.witnesses.before > 0 ? `, ${s.witnesses.before} before the period` : ''}`,
    `  ${s.activations} activations, each of a closure a signed release declared; ${s.evidence.records} evidence records (${s.evidence.verified} host-signed, verified${s.evidence.unsigned > 0 ? `, ${s.evidence.unsigned} unsigned` : ''})`,
    '',
    'FRAMEWORK      CONTROLS  PASS  FAIL  ERROR  STALE  MISSING',
    ...s.frameworks.map((f) => `${f.framework.padEnd(14)} ${String(f.controls).padStart(8)} ${String(f.pass).padStart(5)} ${String(f.fail).padStart(5)} ${String(f.error).padStart(6)} ${String(f.stale).padStart(6)} ${String(f.missing).padStart(8)}`),
  ];
  const failing = s.cells.filter((c) => c.status === 'fail' || c.status === 'error');
  if (failing.length > 0) lines.push('', 'failing:', ...failing.map((c) => `  ${c.host}  ${c.control}  ${c.status}: ${c.observed ?? ''} (${c.at ?? ''})`));
  return lines.join('\n') + '\n';
}
