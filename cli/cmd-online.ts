/**
 * Commands that talk to the control plane over mutual TLS (operator certificate): status, hosts,
 * rollout list|show|trace, pause, resume, quarantine list|clear, audit export.
 */
import { writeFileSync } from 'node:fs';
import { resolve } from 'node:path';
import type { AuditEntry, RolloutDetail, TraceResponse } from '../protocol/api.ts';
import { ROUTES } from '../protocol/api.ts';
import {
  parseAuditResponse,
  parseHostsResponse,
  parsePauseResponse,
  parseRolloutSkipResponse,
  parseRolloutApproveResponse,
  parseQuarantineClearResponse,
  parseQuarantinesResponse,
  parseRolloutDetail,
  parseRolloutsResponse,
  parseTraceResponse,
  parseWhoamiResponse,
  responseParser,
} from '../protocol/api-parse.ts';
import { WitnessesResponseSchema } from '../protocol/audit-witness.ts';
import { ENROL_ROUTES, type WhoamiResponse } from '../protocol/enrol.ts';
import { canonicalize } from '../protocol/jcs.ts';
import { parseTimestamp } from '../protocol/schema.ts';
import type { Result } from '../protocol/result.ts';
import type { Client } from './client.ts';
import { clientFromCtx } from './client.ts';
import type { CliError, Ctx, Outcome } from './framework.ts';
import { arg, done, fail, flagBool, flagInt, flagStr } from './framework.ts';
import type { Style } from './output.ts';
import { colorEnabled, fitLines, makeStyle } from './output.ts';
import {
  renderHosts,
  renderProgress,
  renderQuarantines,
  renderRolloutDetail,
  renderRolloutList,
  renderStatus,
  renderTrace,
  renderTraceLine,
  statusReport,
  traceRows,
} from './views.ts';

const style = (ctx: Ctx): Style => makeStyle(colorEnabled(ctx.io.isTTY, ctx.io.env));
const json = (ctx: Ctx, value: unknown): void => ctx.io.stdout(JSON.stringify(value, null, 2) + '\n');
const path = (route: string, params: Record<string, string>): string =>
  route.replace(/:(\w+)/g, (_, k: string) => encodeURIComponent(params[k] ?? ''));

async function withClient(ctx: Ctx, fn: (c: Client) => Promise<Outcome>): Promise<Outcome> {
  const c = clientFromCtx(ctx);
  if (!c.ok) return { error: c.error };
  try {
    return await fn(c.value);
  } finally {
    await c.value.close();
  }
}

const failed = (e: CliError): Outcome => ({ error: e });

/** Issue 16: `nixfleet whoami` — what the CP reads from our certificate. */
export async function whoami(ctx: Ctx): Promise<Outcome> {
  return withClient(ctx, async (c) => {
    const r = await c.get(ENROL_ROUTES.whoami, parseWhoamiResponse);
    if (!r.ok) return failed(r.error);
    if (flagBool(ctx, 'json')) json(ctx, r.value);
    else ctx.io.stdout(renderWhoami(r.value));
    return { exit: r.value.certState === 'expired' ? 1 : 0 };
  });
}

function renderWhoami(w: WhoamiResponse): string {
  const lines = [
    `${w.name} (${w.role === null ? 'no known role' : `OU ${w.role}`}), serial ${w.serial}`,
    `valid ${w.notBefore} to ${w.notAfter} (${w.certState})`,
    `issued by ${w.issuer.commonName ?? 'an unnamed issuer'}${w.issuer.fingerprint256 !== null ? ` (sha256 ${w.issuer.fingerprint256})` : ''}`,
  ];
  if (w.revokedBefore !== null) lines.push(`a signed revocation names ${w.name}: certificates issued before ${w.revokedBefore} are refused (this one is not)`);
  return lines.join('\n') + '\n';
}

export async function status(ctx: Ctx): Promise<Outcome> {
  return withClient(ctx, async (c) => {
    const [hosts, quarantines, rollouts] = await Promise.all([
      c.get(ROUTES.hosts, parseHostsResponse),
      c.get(ROUTES.quarantines, parseQuarantinesResponse),
      c.get(ROUTES.rollouts, parseRolloutsResponse),
    ]);
    if (!hosts.ok) return failed(hosts.error);
    if (!quarantines.ok) return failed(quarantines.error);
    if (!rollouts.ok) return failed(rollouts.error);
    const channel = flagStr(ctx, 'channel');
    const report = statusReport(
      hosts.value.hosts.filter((h) => channel === undefined || h.channel === channel),
      quarantines.value.quarantines,
      rollouts.value.rollouts,
      ctx.io.now(),
    );
    if (flagBool(ctx, 'json')) json(ctx, report);
    else ctx.io.stdout(renderStatus(report, ctx.io.now(), style(ctx)));
    // Exit 1 when a host failed or is quarantined or its certificate expired, so `nixfleet status` can gate a CI job.
    return { exit: report.unhealthy ? 1 : 0 };
  });
}

export async function hosts(ctx: Ctx): Promise<Outcome> {
  return withClient(ctx, async (c) => {
    const r = await c.get(ROUTES.hosts, parseHostsResponse);
    if (!r.ok) return failed(r.error);
    if (flagBool(ctx, 'json')) json(ctx, r.value);
    else ctx.io.stdout(renderHosts(r.value.hosts, ctx.io.now(), style(ctx)));
    return done;
  });
}

export async function rolloutList(ctx: Ctx): Promise<Outcome> {
  return withClient(ctx, async (c) => {
    const r = await c.get(ROUTES.rollouts, parseRolloutsResponse, { channel: flagStr(ctx, 'channel'), state: flagStr(ctx, 'state') });
    if (!r.ok) return failed(r.error);
    if (flagBool(ctx, 'json')) json(ctx, r.value);
    else ctx.io.stdout(renderRolloutList(r.value.rollouts, ctx.io.now(), style(ctx)));
    return done;
  });
}

export async function rolloutShow(ctx: Ctx): Promise<Outcome> {
  return withClient(ctx, async (c) => {
    const id = await resolveRolloutId(c, arg(ctx, 'ID'));
    if (!id.ok) return failed(id.error);
    const r = await c.get(path(ROUTES.rollout, { id: id.value }), parseRolloutDetail);
    if (!r.ok) return failed(await withKnownIds(c, r.error));
    if (flagBool(ctx, 'json')) json(ctx, r.value);
    else ctx.io.stdout(renderRolloutDetail(r.value, ctx.io.now(), style(ctx)));
    return done;
  });
}

/**
 * `ID` of `rollout show` / `rollout trace`: a full id `<channel>@<targetRef>` as it is, or a
 * channel name meaning that channel's current rollout (the newest one still open, else the
 * newest). An unknown channel is NOT_FOUND listing the ids that exist.
 */
async function resolveRolloutId(c: Client, id: string): Promise<Result<string, CliError>> {
  if (id.includes('@')) return { ok: true, value: id };
  const all = await c.get(ROUTES.rollouts, parseRolloutsResponse, {});
  if (!all.ok) return all;
  const rollouts = newestFirst(all.value.rollouts);
  const mine = rollouts.filter((r) => r.channel === id);
  const current = mine.find((r) => r.state !== 'Converged' && r.state !== 'Superseded') ?? mine[0];
  if (current !== undefined) return { ok: true, value: current.id };
  return { ok: false, error: { code: 'NOT_FOUND', message: `no rollout of channel ${JSON.stringify(id)} (ID is <channel>@<targetRef> or a channel name); ${knownIds(rollouts)}` } };
}

function newestFirst<T extends { openedAt: string }>(rs: readonly T[]): T[] {
  return [...rs].sort((a, b) => (a.openedAt < b.openedAt ? 1 : a.openedAt > b.openedAt ? -1 : 0));
}

function knownIds(rollouts: readonly { id: string }[]): string {
  const known = rollouts.slice(0, 10).map((r) => r.id);
  if (known.length === 0) return 'there are no rollouts yet';
  return `rollouts: ${known.join(', ')}${rollouts.length > known.length ? `, … (${rollouts.length} in all: nixfleet rollout list)` : ''}`;
}

/** A rollout the CP does not know: say which ids exist. */
async function withKnownIds(c: Client, e: CliError): Promise<CliError> {
  if (e.code !== 'NOT_FOUND') return e;
  const all = await c.get(ROUTES.rollouts, parseRolloutsResponse, {});
  return all.ok ? { ...e, message: `${e.message}; ${knownIds(newestFirst(all.value.rollouts))}` } : e;
}

async function fetchTrace(c: Client, id: string): Promise<Result<{ detail: RolloutDetail; trace: TraceResponse }, CliError>> {
  const [detail, trace] = await Promise.all([c.get(path(ROUTES.rollout, { id }), parseRolloutDetail), c.get(path(ROUTES.rolloutTrace, { id }), parseTraceResponse)]);
  if (!detail.ok) return detail;
  if (!trace.ok) return trace;
  return { ok: true, value: { detail: detail.value, trace: trace.value } };
}

/** Rollout states after which `--follow` stops (Paused is not one: an operator may resume). */
const FINAL_STATES = new Set(['Converged', 'Halted', 'Superseded']);

export async function rolloutTrace(ctx: Ctx): Promise<Outcome> {
  const wanted = arg(ctx, 'ID');
  const asJson = flagBool(ctx, 'json');
  if (!flagBool(ctx, 'follow')) {
    return withClient(ctx, async (c) => {
      const id = await resolveRolloutId(c, wanted);
      if (!id.ok) return failed(id.error);
      const r = await fetchTrace(c, id.value);
      if (!r.ok) return failed(await withKnownIds(c, r.error));
      const rows = traceRows(r.value.detail, r.value.trace.events);
      if (asJson) json(ctx, { rolloutId: r.value.trace.rolloutId, state: r.value.detail.state, events: rows });
      else ctx.io.stdout(renderTrace(r.value.detail, rows, ctx.io.now(), style(ctx)));
      return done;
    });
  }
  return withClient(ctx, async (c) => {
    const id = await resolveRolloutId(c, wanted);
    return id.ok ? follow(ctx, c, id.value, asJson) : failed(id.error);
  });
}

/**
 * `rollout trace ID --follow`: print transitions as they happen and redraw the per-wave progress
 * until the rollout converges (exit 0), halts or is superseded (exit 1). On a terminal the progress
 * block is redrawn in place; otherwise it is printed again only when it changes. Bounded by
 * `--max-wait-mins`; a few consecutive connection failures are retried before exit 3.
 */
async function follow(ctx: Ctx, c: Client, id: string, asJson: boolean): Promise<Outcome> {
  const st = style(ctx);
  const intervalMs = (flagInt(ctx, 'interval-secs') ?? 2) * 1000;
  const deadline = ctx.io.now() + (flagInt(ctx, 'max-wait-mins') ?? 1440) * 60_000;
  const redraw = ctx.io.isTTY && !asJson;
  let printed = 0;
  let lastProgress = '';
  let drawnLines = 0;
  let failures = 0;
  for (;;) {
    const r = await fetchTrace(c, id);
    if (!r.ok) {
      if (r.error.code !== 'UNREACHABLE' || ++failures >= 5) return failed(r.error);
      await ctx.io.sleep(intervalMs);
      continue;
    }
    failures = 0;
    const { detail, trace } = r.value;
    const rows = traceRows(detail, trace.events);
    const fresh = rows.slice(printed);
    printed = rows.length;
    const now = ctx.io.now();
    if (asJson) {
      for (const e of fresh) ctx.io.stdout(JSON.stringify(e) + '\n');
    } else {
      // Redrawn in place on a terminal: every line must take exactly one row, or the cursor-up
      // count would leave fragments behind.
      const progress = redraw && ctx.io.columns !== null ? fitLines(renderProgress(detail, st), ctx.io.columns) : renderProgress(detail, st);
      let out = '';
      if (redraw && drawnLines > 0 && (fresh.length > 0 || progress !== lastProgress)) out += `\x1b[${drawnLines}A\x1b[J`;
      for (const e of fresh) out += renderTraceLine(e, now);
      if (progress !== lastProgress || (redraw && out !== '')) {
        out += progress;
        drawnLines = progress.split('\n').length - 1;
        lastProgress = progress;
      }
      ctx.io.stdout(out);
    }
    if (FINAL_STATES.has(detail.state)) {
      if (detail.state === 'Converged') return done;
      return fail('REFUSED', `rollout ${id} ${detail.state === 'Halted' ? 'halted' : 'was superseded by a newer signed release'}${detail.reason ? `: ${detail.reason}` : ''}`);
    }
    if (ctx.io.now() >= deadline) return fail('REFUSED', `rollout ${id} is still ${detail.state.toLowerCase()} after --max-wait-mins`);
    await ctx.io.sleep(intervalMs);
  }
}

async function pauseOrResume(ctx: Ctx, which: 'pause' | 'resume'): Promise<Outcome> {
  const channel = arg(ctx, 'CHANNEL');
  const reason = flagStr(ctx, 'reason');
  return withClient(ctx, async (c) => {
    const r = await c.post(path(which === 'pause' ? ROUTES.pause : ROUTES.resume, { channel }), reason !== undefined ? { reason } : {}, parsePauseResponse);
    if (!r.ok) return failed(r.error);
    if (flagBool(ctx, 'json')) json(ctx, r.value);
    else if (r.value.paused) ctx.io.stdout(`channel ${channel} paused${r.value.by ? ` by ${r.value.by}` : ''}${r.value.reason ? `: ${r.value.reason}` : ''}; hosts get no new target until: nixfleet resume ${channel}\n`);
    else ctx.io.stdout(`channel ${channel} resumed; dispatch continues\n`);
    return done;
  });
}

export const pause = (ctx: Ctx): Promise<Outcome> => pauseOrResume(ctx, 'pause');

/** `nixfleet rollout skip ROLLOUT HOST --reason …` (issue 14): release a host from ordering. */
export async function rolloutSkip(ctx: Ctx): Promise<Outcome> {
  const id = arg(ctx, 'ROLLOUT');
  const host = arg(ctx, 'HOST');
  const reason = flagStr(ctx, 'reason');
  if (reason === undefined || reason === '') return fail('USAGE', 'rollout skip needs --reason (recorded in the audit log)');
  return withClient(ctx, async (c) => {
    const r = await c.post(path(ROUTES.rolloutSkip, { id }), { host, reason }, parseRolloutSkipResponse);
    if (!r.ok) return failed(r.error);
    if (flagBool(ctx, 'json')) json(ctx, r.value);
    else ctx.io.stdout(`${host} released from ordering in ${id} by ${r.value.by}: ${r.value.reason}; it gets its target when online\n`);
    return done;
  });
}
/** `nixfleet rollout approve ROLLOUT [--reason …]` (issue 14, requireApprovals). */
export async function rolloutApprove(ctx: Ctx): Promise<Outcome> {
  const id = arg(ctx, 'ROLLOUT');
  const reason = flagStr(ctx, 'reason');
  return withClient(ctx, async (c) => {
    const r = await c.post(path(ROUTES.rolloutApprove, { id }), reason === undefined ? {} : { reason }, parseRolloutApproveResponse);
    if (!r.ok) return failed(r.error);
    const v = r.value;
    if (flagBool(ctx, 'json')) json(ctx, v);
    else {
      const state = v.required === 0 ? 'its channel requires no approvals' : v.approvals.length >= v.required ? 'approved: it starts inside its change window' : `${v.required - v.approvals.length} more needed`;
      ctx.io.stdout(`${id} approved by ${v.by} (${v.approvals.length} of ${v.required}: ${v.approvals.join(', ')}); ${state}\n`);
    }
    return done;
  });
}

export const resume = (ctx: Ctx): Promise<Outcome> => pauseOrResume(ctx, 'resume');

export async function quarantineList(ctx: Ctx): Promise<Outcome> {
  return withClient(ctx, async (c) => {
    const r = await c.get(ROUTES.quarantines, parseQuarantinesResponse);
    if (!r.ok) return failed(r.error);
    const channel = flagStr(ctx, 'channel');
    const qs = r.value.quarantines.filter((q) => channel === undefined || q.channel === channel);
    if (flagBool(ctx, 'json')) json(ctx, { quarantines: qs });
    else ctx.io.stdout(qs.length === 0 ? 'no quarantined closures\n' : renderQuarantines(qs, ctx.io.now(), style(ctx)));
    return done;
  });
}

export async function quarantineClear(ctx: Ctx): Promise<Outcome> {
  const channel = arg(ctx, 'CHANNEL');
  const closureHash = arg(ctx, 'CLOSURE');
  return withClient(ctx, async (c) => {
    const r = await c.post(ROUTES.quarantinesClear, { channel, closureHash }, parseQuarantineClearResponse);
    if (!r.ok) return failed(r.error);
    if (flagBool(ctx, 'json')) json(ctx, r.value);
    if (r.value.cleared === 0) return fail('NOT_FOUND', `${closureHash} is not quarantined on channel ${channel} (see: nixfleet quarantine list)`);
    if (!flagBool(ctx, 'json')) ctx.io.stdout(`cleared ${r.value.cleared} quarantine${r.value.cleared === 1 ? '' : 's'} of ${closureHash} on ${channel}; it may be dispatched again\n`);
    return done;
  });
}

/** Upper bound on pages fetched by one export (1000 entries each): a loop must end. */
const MAX_AUDIT_PAGES = 100_000;
const parseWitnesses = responseParser(WitnessesResponseSchema, 'audit witnesses');

export async function auditExport(ctx: Ctx): Promise<Outcome> {
  const since = flagStr(ctx, 'since');
  let after = 0;
  let sinceMs: number | null = null;
  if (since !== undefined) {
    if (/^\d+$/.test(since)) after = Math.max(0, Number(since) - 1);
    else {
      sinceMs = parseTimestamp(since);
      if (sinceMs === null) return fail('USAGE', `--since: a seq number or an RFC 3339 time, got ${JSON.stringify(since)}`);
    }
  }
  return withClient(ctx, async (c) => {
    const wout = flagStr(ctx, 'witnesses');
    if (wout !== undefined) {
      // Read before the log: every head witnessed so far is then in (or before) the export.
      const w = await c.get(ROUTES.auditWitnesses, parseWitnesses);
      if (!w.ok) return failed(w.error);
      try {
        writeFileSync(resolve(ctx.io.cwd, wout), JSON.stringify(w.value.witnesses, null, 2) + '\n', { mode: 0o600 });
      } catch (e) {
        return fail('IO', `cannot write ${wout}: ${(e as NodeJS.ErrnoException).code ?? String(e)}`);
      }
    }
    const lines: string[] = [];
    let first: AuditEntry | null = null;
    let last: AuditEntry | null = null;
    for (let page = 0; page < MAX_AUDIT_PAGES; page++) {
      const r = await c.get(ROUTES.audit, parseAuditResponse, { after, limit: 1000 });
      if (!r.ok) return failed(r.error);
      for (const e of r.value.entries) {
        if (sinceMs !== null && Date.parse(e.at) < sinceMs) continue;
        const text = canonicalize(e);
        if (!text.ok) return fail('REFUSED', `audit entry ${e.seq} from the CP is not canonical JSON: ${text.error.message}`);
        lines.push(text.value + '\n');
        first ??= e;
        last = e;
      }
      const next = r.value.nextAfter;
      if (next === null || r.value.entries.length === 0) break;
      if (next <= after) return fail('REFUSED', `the CP's audit paging did not advance (nextAfter ${next} after ${after})`);
      after = next;
    }
    const out = flagStr(ctx, 'out');
    const body = lines.join('');
    if (out === undefined || out === '-') {
      ctx.io.stdout(body);
      return done;
    }
    const file = resolve(ctx.io.cwd, out);
    try {
      writeFileSync(file, body, { mode: 0o600 });
    } catch (e) {
      return fail('IO', `cannot write ${file}: ${(e as NodeJS.ErrnoException).code ?? String(e)}`);
    }
    ctx.io.stdout(first && last ? `wrote ${lines.length} entries (seq ${first.seq}..${last.seq}, head ${last.hash}) to ${file}\n` : `wrote 0 entries to ${file}\n`);
    return done;
  });
}
