/** `nixfleet compliance` (issue 15): per framework / control / host, pass / fail / error / stale / missing. */
import { ROUTES } from '../protocol/api.ts';
import { responseParser } from '../protocol/api-parse.ts';
import { ComplianceResponseSchema } from '../protocol/compliance-api.ts';
import { clientFromCtx } from './client.ts';
import { complianceReport, renderCompliance, type ComplianceBy } from './compliance-view.ts';
import type { Ctx, Outcome } from './framework.ts';
import { fail, flagBool, flagStr } from './framework.ts';
import { colorEnabled, makeStyle } from './output.ts';

const parseComplianceResponse = responseParser(ComplianceResponseSchema, 'compliance view');
const BY: readonly ComplianceBy[] = ['framework', 'control', 'host'];

export async function compliance(ctx: Ctx): Promise<Outcome> {
  const by = (flagStr(ctx, 'by') ?? 'framework') as ComplianceBy;
  if (!BY.includes(by)) return fail('USAGE', `--by must be one of ${BY.join(', ')}`);
  const c = clientFromCtx(ctx);
  if (!c.ok) return { error: c.error };
  try {
    const r = await c.value.get(ROUTES.compliance, parseComplianceResponse);
    if (!r.ok) return { error: r.error };
    const report = complianceReport(r.value, { channel: flagStr(ctx, 'channel'), framework: flagStr(ctx, 'framework'), host: flagStr(ctx, 'host') });
    if (flagBool(ctx, 'json')) ctx.io.stdout(JSON.stringify(report, null, 2) + '\n');
    else ctx.io.stdout(report.hosts.length === 0 ? 'no host is in a channel with compliance enabled\n' : renderCompliance(report, by, makeStyle(colorEnabled(ctx.io.isTTY, ctx.io.env))));
    // Like `status`: exit 1 when a control fails somewhere, so it can gate a CI job.
    return { exit: report.failing ? 1 : 0 };
  } finally {
    await c.value.close();
  }
}
