/**
 * `nixfleet compliance` views (issue 15), pure: the CP's per-host control statuses
 * (`GET /v1/compliance`) summarised per framework, per control and per host, and rendered as
 * tables (the failures with what the host observed).
 */
import type { ComplianceResponse, ControlStatus } from '../protocol/compliance-api.ts';
import { renderTable, type Cell, type Style, type Tone } from './output.ts';

export type Tally = Record<ControlStatus, number>;
const zero = (): Tally => ({ pass: 0, fail: 0, error: 0, stale: 0, missing: 0 });
const TONE: Record<ControlStatus, Tone> = { pass: 'ok', fail: 'bad', error: 'bad', stale: 'warn', missing: 'wait' };
const SYMBOL: Record<ControlStatus, string> = { pass: '✓', fail: '✗', error: '✗', stale: '⚠', missing: '…' };

export type ComplianceFilter = { channel?: string | undefined; framework?: string | undefined; host?: string | undefined };

export type ComplianceReport = {
  frameworks: ({ framework: string } & Tally)[];
  controls: ({ control: string; title: string; severity: string; clauses: string[] } & Tally & { failing: string[] })[];
  hosts: ({ hostname: string; channel: string; mode: string } & Tally)[];
  /** Newest evidence failing or in error, fresh or stale (`status`), with the closure it is about. */
  failures: { hostname: string; control: string; status: ControlStatus; observed: string | null; at: string | null; closure: string | null; clauses: string[] }[];
  staticFailures: ComplianceResponse['staticFailures'];
  /** Some control fails (or errors) on some host, on fresh evidence: `nixfleet compliance` exits 1. */
  failing: boolean;
};

const fw = (clause: string): string => clause.slice(0, clause.indexOf(':'));

/** Tallies of the view, after the filter (a framework filter keeps the controls mapped to it). */
export function complianceReport(view: ComplianceResponse, f: ComplianceFilter = {}): ComplianceReport {
  const meta = new Map(view.controls.map((c) => [c.id, c]));
  const frameworks = new Map<string, Tally>();
  const controls = new Map<string, ComplianceReport['controls'][number]>();
  const hosts: ComplianceReport['hosts'] = [];
  const failures: ComplianceReport['failures'] = [];
  for (const h of view.hosts) {
    if ((f.channel !== undefined && h.channel !== f.channel) || (f.host !== undefined && h.hostname !== f.host)) continue;
    const ht = { hostname: h.hostname, channel: h.channel, mode: h.mode, ...zero() };
    for (const c of h.controls) {
      const m = meta.get(c.control);
      const clauses = (m?.frameworks ?? []).filter((x) => h.frameworks.includes(fw(x)) && (f.framework === undefined || fw(x) === f.framework));
      if (clauses.length === 0) continue;
      ht[c.status]++;
      for (const name of new Set(clauses.map(fw))) {
        let t = frameworks.get(name);
        if (t === undefined) frameworks.set(name, (t = zero()));
        t[c.status]++;
      }
      let ct = controls.get(c.control);
      if (ct === undefined) controls.set(c.control, (ct = { control: c.control, title: m?.title ?? c.control, severity: m?.severity ?? '', clauses: m?.frameworks ?? [], ...zero(), failing: [] }));
      ct[c.status]++;
      // A stale failure is listed too (e.g. the evidence of a closure the host rolled back from), flagged stale.
      if (c.result === 'fail' || c.result === 'error') {
        if (c.status !== 'stale') ct.failing.push(h.hostname);
        failures.push({ hostname: h.hostname, control: c.control, status: c.status, observed: c.observed, at: c.at, closure: c.closure, clauses });
      }
    }
    hosts.push(ht);
  }
  return {
    frameworks: [...frameworks].sort(([a], [b]) => (a < b ? -1 : 1)).map(([framework, t]) => ({ framework, ...t })),
    controls: [...controls.values()],
    hosts,
    failures,
    staticFailures: view.staticFailures.filter((s) => (f.channel === undefined || s.channel === f.channel) && (f.host === undefined || s.host === f.host)),
    failing: failures.some((x) => x.status !== 'stale'),
  };
}

const counts = (t: Tally): Cell[] =>
  (['pass', 'fail', 'error', 'stale', 'missing'] as const).map((k) => (t[k] === 0 ? '0' : { text: String(t[k]), tone: TONE[k] }));

export type ComplianceBy = 'framework' | 'control' | 'host';

/** The tables: the tallies by framework (default), control or host, then every failure. */
export function renderCompliance(r: ComplianceReport, by: ComplianceBy, style: Style): string {
  const H = ['PASS', 'FAIL', 'ERROR', 'STALE', 'MISSING'];
  const right = (n: number) => [...Array<'left'>(n).fill('left'), ...Array<'right'>(5).fill('right')];
  let out: string;
  if (by === 'framework') out = renderTable(['FRAMEWORK', ...H], r.frameworks.map((x) => [x.framework, ...counts(x)]), style, right(1));
  else if (by === 'control') out = renderTable(['CONTROL', 'SEVERITY', ...H], r.controls.map((x) => [x.control, x.severity, ...counts(x)]), style, right(2));
  else out = renderTable(['HOST', 'CHANNEL', 'MODE', ...H], r.hosts.map((x) => [x.hostname, x.channel, x.mode, ...counts(x)]), style, right(3));
  if (r.failures.length > 0) {
    out += '\nfailing controls:\n';
    out += renderTable(
      ['', 'HOST', 'CONTROL', 'OBSERVED', 'CLAUSES'],
      r.failures.map((x) => [
        { text: SYMBOL[x.status], tone: TONE[x.status] },
        x.hostname,
        x.control,
        `${x.observed ?? '-'}${x.status === 'stale' ? ` (stale: about ${x.closure ?? 'an unknown closure'})` : ''}`,
        x.clauses.join(' '),
      ]),
      style,
    );
  }
  if (r.staticFailures.length > 0) {
    out += '\nstatic failures recorded in the signed release (permissive):\n';
    out += renderTable(['HOST', 'CHANNEL', 'CONTROL', 'OBSERVED'], r.staticFailures.map((s) => [s.host, s.channel, s.control, s.observed]), style);
  }
  return out;
}
