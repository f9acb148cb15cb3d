/**
 * What the online commands print: pure functions from the CP's answers (protocol/api.ts
 * types), `now` and a `Style` to text or to the documented `--json` objects. No I/O.
 */
import type {
  HostState,
  HostView,
  Quarantine,
  RolloutDetail,
  RolloutState,
  RolloutSummary,
  TraceEvent,
} from '../protocol/api.ts';
import type { Cell, HostStatusKind, Style } from './output.ts';
import { HOST_STATUS_LABELS, UNHEALTHY_KINDS, ago, hostStatusCell, relativeTime, renderTable, rolloutStateCell, shortClosure } from './output.ts';
import { certState } from '../protocol/enrol.ts';

const ROLLOUT_HOST_KIND: Readonly<Record<HostState, HostStatusKind>> = {
  Queued: 'queued',
  Dispatched: 'dispatched',
  Activating: 'activating',
  ConfirmWindow: 'confirming',
  PendingReboot: 'pending-reboot',
  Healthy: 'soaking',
  Soaked: 'soaked',
  Converged: 'converged',
  Failed: 'failed',
  Reverted: 'rolled-back',
};

/**
 * One host's status, first match wins: a failure in its rollout (failed, rolled back); its declared
 * closure quarantined on its channel; waiting for a reboot; not checked in (never: offline,
 * recently not: stale); queued in a rollout that is halted or paused (held: nothing will move
 * until an operator or a new release acts); its state in the newest rollout; else converged when
 * it runs what is declared, idle when nothing is declared, queued otherwise.
 */
export function hostStatus(h: HostView, quarantined: ReadonlySet<string>, rolloutState: RolloutState | null = null): HostStatusKind {
  const st = h.rollout?.state;
  if (st === 'Failed' || st === 'Reverted') return ROLLOUT_HOST_KIND[st];
  if (h.declaredClosure !== null && h.currentClosure !== h.declaredClosure && quarantined.has(quarantineKey(h.channel, h.declaredClosure))) return 'quarantined';
  if (h.pendingReboot) return 'pending-reboot';
  if (h.lastCheckinAt === null) return 'offline';
  if (!h.online) return 'stale';
  if (h.drift !== undefined) return 'drifted';
  if (h.pin !== undefined && (st === undefined || st === 'Queued' || st === 'Soaked' || st === 'Converged')) return 'pinned';
  if (st === 'Queued' && (rolloutState === 'Halted' || rolloutState === 'Paused')) return 'held';
  if (st !== undefined) return ROLLOUT_HOST_KIND[st];
  if (h.declaredClosure === null) return 'idle';
  return h.currentClosure === h.declaredClosure ? 'converged' : 'queued';
}

export const quarantineKey = (channel: string, closure: string): string => `${channel}\u0000${closure}`;
export const quarantineSet = (qs: readonly Quarantine[]): Set<string> => new Set(qs.map((q) => quarantineKey(q.channel, q.closureHash)));

/** A row of `status --json` (documented in the command table). */
export type StatusRow = {
  hostname: string;
  channel: string;
  currentClosure: string | null;
  declaredClosure: string | null;
  status: HostStatusKind;
  label: string;
  rolloutId: string | null;
  /** State of that rollout (Executing, Halted, …), when the CP listed it. */
  rolloutState: RolloutState | null;
  /** The host's state within that rollout. */
  hostState: HostState | null;
  wave: number | null;
  lastCheckinAt: string | null;
  online: boolean;
  /** Issue 16: notAfter of the certificate it presented last, and its state (null: unknown). */
  certNotAfter: string | null;
  cert: CertState | null;
};

export type CertState = 'valid' | 'expiring' | 'expired';

export type StatusReport = { hosts: StatusRow[]; counts: Partial<Record<HostStatusKind, number>>; certs: Partial<Record<CertState, number>>; unhealthy: boolean };

/** Issue 16: ` · ⚠ certificate expires in 3d` / ` · ✗ certificate expired`. */
function certSuffix(state: CertState | null, notAfterMs: number, nowMs: number): string {
  if (state === 'expired') return ' · ✗ certificate expired';
  if (state === 'expiring') return ` · ⚠ certificate expires ${relativeTime(notAfterMs, nowMs)}`;
  return '';
}

/** `nowMs`: for the certificate states (issue 16); without it they are not computed. */
export function statusReport(hosts: readonly HostView[], quarantines: readonly Quarantine[], rollouts: readonly RolloutSummary[] = [], nowMs: number | null = null): StatusReport {
  const q = quarantineSet(quarantines);
  const rolloutStates = new Map(rollouts.map((r) => [r.id, r.state]));
  const rows = [...hosts]
    .sort((a, b) => (a.channel === b.channel ? cmp(a.hostname, b.hostname) : cmp(a.channel, b.channel)))
    .map((h): StatusRow => {
      const rolloutState = h.rollout === null ? null : (rolloutStates.get(h.rollout.rolloutId) ?? null);
      const status = hostStatus(h, q, rolloutState);
      const l = HOST_STATUS_LABELS[status];
      // Issue 14: `pinned until …`, `drifted (runs …)`.
      const detail = status === 'pinned' && h.pin !== undefined ? (h.pin.until === null ? '' : ` until ${h.pin.until}`) : status === 'drifted' && h.drift !== undefined ? ` (runs ${shortClosure(h.drift.actual)})` : '';
      const notAfterMs = h.certNotAfter === undefined ? NaN : Date.parse(h.certNotAfter);
      const cert = nowMs === null || !Number.isFinite(notAfterMs) ? null : certState(notAfterMs, nowMs);
      return {
        hostname: h.hostname,
        channel: h.channel,
        currentClosure: h.currentClosure,
        declaredClosure: h.declaredClosure,
        status,
        label: `${l.symbol} ${l.text}${detail}${certSuffix(cert, notAfterMs, nowMs ?? 0)}`,
        rolloutId: h.rollout?.rolloutId ?? null,
        rolloutState,
        hostState: h.rollout?.state ?? null,
        wave: h.rollout?.wave ?? null,
        lastCheckinAt: h.lastCheckinAt,
        online: h.online,
        certNotAfter: h.certNotAfter ?? null,
        cert,
      };
    });
  const counts: Partial<Record<HostStatusKind, number>> = {};
  for (const r of rows) counts[r.status] = (counts[r.status] ?? 0) + 1;
  const certs: Partial<Record<CertState, number>> = {};
  for (const r of rows) if (r.cert !== null) certs[r.cert] = (certs[r.cert] ?? 0) + 1;
  // An expired certificate cuts the host off: unhealthy, like a failure.
  return { hosts: rows, counts, certs, unhealthy: rows.some((r) => UNHEALTHY_KINDS.has(r.status) || r.cert === 'expired') };
}

const cmp = (a: string, b: string): number => (a < b ? -1 : a > b ? 1 : 0);

/** Closure column: `=` when the host runs what is declared keeps the table quiet when all is well. */
function closureCells(current: string | null, declared: string | null): [string, string] {
  return [shortClosure(current), declared !== null && declared === current ? '= current' : shortClosure(declared)];
}

/** `nixfleet status`: HOST CHANNEL CURRENT DECLARED STATUS SEEN, then one summary line. */
export function renderStatus(report: StatusReport, nowMs: number, style: Style): string {
  const rows: Cell[][] = report.hosts.map((r) => {
    const [cur, dec] = closureCells(r.currentClosure, r.declaredClosure);
    return [r.hostname, r.channel, cur, dec, { text: r.label, tone: HOST_STATUS_LABELS[r.status].tone }, ago(r.lastCheckinAt === null ? null : Date.parse(r.lastCheckinAt), nowMs)];
  });
  const table = renderTable(['HOST', 'CHANNEL', 'CURRENT', 'DECLARED', 'STATUS', 'SEEN'], rows, style);
  const order = Object.keys(HOST_STATUS_LABELS) as HostStatusKind[];
  const parts = order.filter((k) => report.counts[k]).map((k) => `${report.counts[k]} ${HOST_STATUS_LABELS[k].text}`);
  const n = report.hosts.length;
  const certs = (['expiring', 'expired'] as const).filter((k) => report.certs[k]).map((k) => `${report.certs[k]} certificate${report.certs[k] === 1 ? '' : 's'} ${k}`);
  return `${table}\n${n} host${n === 1 ? '' : 's'}${parts.length > 0 ? ': ' + parts.join(', ') : ''}${certs.length > 0 ? `; ${certs.join(', ')}` : ''}\n`;
}

/** `nixfleet hosts`: the CP's view of each host's check-ins. */
export function renderHosts(hosts: readonly HostView[], nowMs: number, style: Style): string {
  const rows: Cell[][] = [...hosts]
    .sort((a, b) => cmp(a.hostname, b.hostname))
    .map((h) => [
      h.hostname,
      h.channel,
      h.online ? { text: 'online', tone: 'ok' } : { text: h.lastCheckinAt === null ? 'never seen' : 'offline', tone: 'warn' },
      ago(h.lastCheckinAt === null ? null : Date.parse(h.lastCheckinAt), nowMs),
      shortClosure(h.currentClosure),
      h.failedUnits.length === 0 ? '-' : { text: h.failedUnits.join(','), tone: 'bad' },
      probesCell(h),
      h.lastOutcome ? `${h.lastOutcome.outcome} ${ago(Date.parse(h.lastOutcome.at), nowMs)}${h.lastOutcome.refused !== undefined ? ` (refused: ${h.lastOutcome.refused})` : ''}` : '-',
    ]);
  return renderTable(['HOST', 'CHANNEL', 'CHECK-IN', 'SEEN', 'CURRENT', 'FAILED UNITS', 'PROBES', 'LAST OUTCOME'], rows, style);
}

function probesCell(h: HostView): Cell {
  if (h.probes.length === 0) return '-';
  const bad = h.probes.filter((p) => !p.ok).length;
  return bad === 0 ? { text: `${h.probes.length} ok`, tone: 'ok' } : { text: `${bad}/${h.probes.length} failing`, tone: 'bad' };
}

function hostCountText(counts: RolloutSummary['hostCounts']): string {
  const total = Object.values(counts).reduce((a, b) => a + (b ?? 0), 0);
  return `${counts.Converged ?? 0}/${total}`;
}

/** `nixfleet rollout list`. */
export function renderRolloutList(rollouts: readonly RolloutSummary[], nowMs: number, style: Style): string {
  const rows: Cell[][] = [...rollouts]
    .sort((a, b) => cmp(b.openedAt, a.openedAt))
    .map((r) => [
      r.id,
      r.channel,
      rolloutStateCell(r.state),
      r.state === 'Executing' ? String(r.currentWave) : '-',
      hostCountText(r.hostCounts),
      ago(Date.parse(r.openedAt), nowMs),
      ago(Date.parse(r.updatedAt), nowMs),
      // Issue 14: a stall or a change-window hold says more than the last transition's reason.
      r.stall !== undefined ? `⚠ stalled (${r.stall.gate}: ${r.stall.hosts.join(', ')}): ${r.stall.reason}` : r.windowHold !== undefined ? `‖ ${r.windowHold}` : (r.reason ?? ''),
    ]);
  return renderTable(['ROLLOUT', 'CHANNEL', 'STATE', 'WAVE', 'CONVERGED', 'OPENED', 'UPDATED', 'REASON'], rows, style);
}

function rolloutHeader(r: RolloutSummary, waveCount: number, nowMs: number, style: Style): string {
  const state = rolloutStateCell(r.state);
  const stateText = typeof state === 'string' ? state : style.tone(state.tone, state.text);
  // Waves are 0-based everywhere (API, trace table, progress), as in fleet.resolved.json `waves`.
  const wave = r.state === 'Executing' || r.state === 'Paused' ? `, wave ${r.currentWave} (waves 0–${waveCount - 1})` : '';
  return (
    `rollout ${style.bold(r.id)}: ${stateText}${wave}${r.reason ? ` (${r.reason})` : ''}\n` +
    (r.stall !== undefined ? `${style.tone('warn', `⚠ stalled since ${r.stall.since}`)}: ${r.stall.reason}\n` : '') +
    (r.windowHold !== undefined ? `‖ held: ${r.windowHold}\n` : '') +
    `opened ${ago(Date.parse(r.openedAt), nowMs)}, updated ${ago(Date.parse(r.updatedAt), nowMs)}; artefact signed ${r.signedAt}, sha256 ${r.artifactSha256.slice(0, 12)}…\n`
  );
}

const waveCountOf = (d: RolloutDetail): number => Math.max(d.currentWave + 1, ...d.hosts.map((h) => h.wave + 1), 1);

/** `nixfleet rollout show ID`. */
export function renderRolloutDetail(d: RolloutDetail, nowMs: number, style: Style): string {
  const rows: Cell[][] = [...d.hosts]
    .sort((a, b) => a.wave - b.wave || cmp(a.hostname, b.hostname))
    .map((h) => [String(h.wave), h.hostname, hostStatusCell(ROLLOUT_HOST_KIND[h.state]), ago(Date.parse(h.since), nowMs), shortClosure(h.closureHash), h.reason ?? '']);
  return `${rolloutHeader(d, waveCountOf(d), nowMs, style)}\n${renderTable(['WAVE', 'HOST', 'STATE', 'SINCE', 'CLOSURE', 'REASON'], rows, style)}`;
}

/** A trace event with the host's wave joined in from the rollout (null for rollout-level events). */
export type TraceRow = TraceEvent & { wave: number | null };

export function traceRows(d: RolloutDetail, events: readonly TraceEvent[]): TraceRow[] {
  const waveOf = new Map(d.hosts.map((h) => [h.hostname, h.wave]));
  return events.map((e) => {
    const own = (e as { wave?: unknown }).wave;
    const wave = typeof own === 'number' ? own : e.hostname !== null ? (waveOf.get(e.hostname) ?? null) : null;
    return { ...e, wave };
  });
}

function traceTableRows(rows: readonly TraceRow[], nowMs: number): Cell[][] {
  return rows.map((e) => [
    e.at.replace(/\.\d+Z$/, 'Z'),
    ago(Date.parse(e.at), nowMs),
    e.wave === null ? '-' : String(e.wave),
    e.subject === 'rollout' ? '(rollout)' : (e.hostname ?? '?'),
    `${e.from ?? '∅'} → ${e.to}`,
    e.reason,
  ]);
}

export const TRACE_HEADERS = ['TIME', 'AGE', 'WAVE', 'HOST', 'TRANSITION', 'REASON'];

/** `nixfleet rollout trace ID`: every transition, with wave, time and reason. */
export function renderTrace(d: RolloutDetail, rows: readonly TraceRow[], nowMs: number, style: Style): string {
  return `${rolloutHeader(d, waveCountOf(d), nowMs, style)}\n${renderTable(TRACE_HEADERS, traceTableRows(rows, nowMs), style)}`;
}

/** One line per trace event, for `--follow` (appended as events arrive). */
export function renderTraceLine(e: TraceRow, nowMs: number): string {
  const [cells] = traceTableRows([e], nowMs);
  const [time, , wave, host, transition, reason] = cells as string[];
  return `${time}  wave ${wave}  ${host}  ${transition}  ${reason}\n`;
}

/** Per-wave progress for `--follow`: one line per wave, a bar of converged (or soaked) hosts. */
export function renderProgress(d: RolloutDetail, style: Style): string {
  const waves = waveCountOf(d);
  const lines: string[] = [];
  for (let w = 0; w < waves; w++) {
    const hs = d.hosts.filter((h) => h.wave === w);
    const done = hs.filter((h) => h.state === 'Converged' || h.state === 'Soaked').length;
    const bad = hs.filter((h) => h.state === 'Failed' || h.state === 'Reverted').length;
    const width = 20;
    const filled = hs.length === 0 ? width : Math.round((done / hs.length) * width);
    const bar = style.tone(bad > 0 ? 'bad' : 'ok', '#'.repeat(filled)) + '-'.repeat(width - filled);
    const byState = new Map<string, number>();
    for (const h of hs) {
      const l = HOST_STATUS_LABELS[ROLLOUT_HOST_KIND[h.state]].text;
      byState.set(l, (byState.get(l) ?? 0) + 1);
    }
    const detail = [...byState].map(([k, n]) => `${n} ${k}`).join(', ');
    const marker = d.state === 'Executing' && w === d.currentWave ? '▸' : ' ';
    lines.push(`${marker} wave ${w}  [${bar}] ${done}/${hs.length}${detail ? `  ${detail}` : ''}`);
  }
  const state = rolloutStateCell(d.state);
  const stateText = typeof state === 'string' ? state : style.tone(state.tone, state.text);
  return `${d.id}: ${stateText}${d.reason ? ` (${d.reason})` : ''}\n${lines.join('\n')}\n`;
}

/** `nixfleet quarantine list`. */
export function renderQuarantines(qs: readonly Quarantine[], nowMs: number, style: Style): string {
  const rows: Cell[][] = [...qs]
    .sort((a, b) => cmp(a.channel, b.channel) || cmp(a.closureHash, b.closureHash))
    .map((q) => [q.channel, q.closureHash, q.rolloutId ?? '-', ago(Date.parse(q.since), nowMs), q.reason]);
  return renderTable(['CHANNEL', 'CLOSURE', 'ROLLOUT', 'SINCE', 'REASON'], rows, style);
}
