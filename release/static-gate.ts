/**
 * The static compliance gate of `nixfleet-release resolve` (issue 15): the report that
 * `lib.compliance.staticReport` computed from the fleet's `nixosConfigurations` at CI time, held
 * against each channel's compliance mode and frameworks.
 * - `enforce`: a failing static control (or one the report has no result for) of a host refuses
 *   the resolve: `COMPLIANCE_STATIC_FAILED`, naming the host, the control and what was seen;
 * - `permissive`: resolves, with a warning per failure and the failures recorded in the artefact
 *   (`compliance.staticFailures`, covered by the release signature);
 * - `disabled`: nothing is checked.
 * The artefact gets `compliance: {controls, staticFailures}` whenever a report is given (the
 * fleet's own controls travel to the agents inside the signed artefact). lib/compliance.nix
 * implements the same rules, messages and output (nix-tests/compliance.test.ts).
 *
 * Pure module: no I/O.
 */
import { CATALOGUE, controlsForFrameworks, mergeCatalogue, parseStaticReport, type StaticFailure } from '../protocol/compliance.ts';
import { err, ok, type Result } from '../protocol/result.ts';
import type { ResolveError, Resolved } from './resolve.ts';

const q = (s: string): string => JSON.stringify(s);
/** What a control the report has no result for counts as (a failure: an auditor cannot tell). */
export const NOT_IN_REPORT = 'no result in the static compliance report';

/** Apply the static gate to a resolved fleet; `report` is the parsed JSON of the report file. */
export function applyStaticGate(resolved: Resolved, report: unknown): Result<Resolved, ResolveError> {
  const r = parseStaticReport(report);
  if (!r.ok) return err({ code: 'COMPLIANCE_REPORT_INVALID', message: r.error.message });
  const merged = mergeCatalogue(r.value.controls);
  if (!merged.ok) return err({ code: merged.error.code, message: `static compliance report: ${merged.error.message}` });
  const own = merged.value.slice(CATALOGUE.length);
  const { fleet } = resolved;
  const enforced: string[] = [];
  const warnings = [...resolved.warnings];
  const staticFailures: StaticFailure[] = [];
  for (const host of Object.keys(fleet.hosts).sort()) {
    const channel = fleet.hosts[host]!.channel;
    const { mode, frameworks } = fleet.channels[channel]!.compliance;
    if (mode === 'disabled') continue;
    for (const control of controlsForFrameworks(frameworks, merged.value)) {
      if (control.static === null) continue;
      const res = r.value.hosts[host]?.[control.id];
      if (res !== undefined && res.result === 'pass') continue;
      const observed = res?.observed ?? NOT_IN_REPORT;
      const line = `host ${q(host)} (channel ${q(channel)}, ${mode}): static control ${q(control.id)} failed: ${observed}`;
      if (mode === 'enforce') enforced.push(line);
      else {
        warnings.push(line);
        staticFailures.push({ host, channel, control: control.id, observed });
      }
    }
  }
  if (enforced.length > 0) {
    const more = enforced.length > 1 ? ` (and ${enforced.length - 1} more in enforce channels)` : '';
    return err({ code: 'COMPLIANCE_STATIC_FAILED', message: enforced[0]! + more });
  }
  return ok({ fleet: { ...fleet, compliance: { controls: own, staticFailures } }, warnings });
}
