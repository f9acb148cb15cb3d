/**
 * The operator's compliance view (issue 15, `GET /v1/compliance`, `nixfleet compliance`): for
 * every host of a channel whose compliance mode is not `disabled`, every runtime control of its
 * frameworks with the status of its newest evidence — `pass` / `fail` / `error`, or `stale` when
 * that evidence is older than `staleAfterSecs` or about another closure than the host runs now,
 * or `missing`. Plus the static failures the signed artefact records. Pure.
 */
import type { ComplianceResponse, HostComplianceView, HostControlView } from '../protocol/compliance-api.ts';
import { controlsOf, type CheckResult } from '../protocol/compliance.ts';
import type { FleetResolved } from '../protocol/schema.ts';
import type { EvidenceRow, HostRow } from './store/types.ts';

export function complianceView(fleet: FleetResolved, hosts: readonly HostRow[], latest: readonly EvidenceRow[], nowMs: number, staleAfterSecs: number): ComplianceResponse {
  const own = fleet.compliance?.controls ?? [];
  const byHost = new Map<string, Map<string, EvidenceRow>>();
  for (const e of latest) {
    let m = byHost.get(e.hostname);
    if (m === undefined) byHost.set(e.hostname, (m = new Map()));
    m.set(e.control, e);
  }
  const current = new Map(hosts.map((h) => [h.hostname, h.currentClosure]));
  const seen = new Map<string, ComplianceResponse['controls'][number]>();
  const out: HostComplianceView[] = [];
  for (const hostname of Object.keys(fleet.hosts).sort()) {
    const channel = fleet.hosts[hostname]!.channel;
    const c = fleet.channels[channel]?.compliance;
    if (c === undefined || c.mode === 'disabled') continue;
    const closure = current.get(hostname) ?? null;
    const controls: HostControlView[] = [];
    for (const ctl of controlsOf(c.frameworks, own)) {
      if (ctl.runtime === null) continue;
      seen.set(ctl.id, { id: ctl.id, title: ctl.title, severity: ctl.severity, frameworks: ctl.frameworks });
      const e = byHost.get(hostname)?.get(ctl.id);
      if (e === undefined) {
        controls.push({ control: ctl.id, status: 'missing', result: null, observed: null, at: null, closure: null, signed: false });
        continue;
      }
      const rec = JSON.parse(e.recordJson) as { observed?: string };
      const stale = nowMs - Date.parse(e.at) > staleAfterSecs * 1000 || (closure !== null && e.closure !== closure);
      const result = e.result as CheckResult;
      controls.push({ control: ctl.id, status: stale ? 'stale' : result, result, observed: rec.observed ?? null, at: e.at, closure: e.closure, signed: e.verdict === 'verified' });
    }
    out.push({ hostname, channel, mode: c.mode, frameworks: [...c.frameworks], currentClosure: closure, controls });
  }
  return { staleAfterSecs, controls: [...seen.values()], hosts: out, staticFailures: fleet.compliance?.staticFailures ?? [] };
}

/** Failing (`fail` / `error`, not stale) hosts per framework and control, for the metrics. */
export function failureCounts(view: ComplianceResponse): { framework: string; control: string; n: number }[] {
  const frameworksOf = new Map(view.controls.map((c) => [c.id, [...new Set(c.frameworks.map((f) => f.slice(0, f.indexOf(':'))))]]));
  const counts = new Map<string, number>();
  for (const h of view.hosts) {
    for (const c of h.controls) {
      for (const f of frameworksOf.get(c.control) ?? []) {
        if (!h.frameworks.includes(f)) continue;
        const k = `${f}\0${c.control}`;
        counts.set(k, (counts.get(k) ?? 0) + (c.status === 'fail' || c.status === 'error' ? 1 : 0));
      }
    }
  }
  return [...counts].map(([k, n]) => {
    const [framework, control] = k.split('\0') as [string, string];
    return { framework, control, n };
  });
}
