/**
 * `nixfleet-release resolve` (SPEC §3, §3.1): fleet description files → canonical
 * `fleet.resolved.json` with `meta.signedAt = null`. The rules live in resolve.ts.
 */
import { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import { canonicalize } from '../protocol/jcs.ts';
import { args, EXIT_OK, InputError, parseJsonFile, writeFileAtomic, type CliIo } from './cli-common.ts';
import { resolveFleetInput } from './resolve.ts';
import { applyStaticGate } from './static-gate.ts';

/**
 * Resolves the `--fleet` files; with `--compliance-report` (lib.compliance.staticReport's JSON)
 * applies the static compliance gate; writes `--out` atomically or stdout; warnings on stderr.
 */
export function cmdResolve(argv: string[], io: CliIo): number {
  const { values } = args(argv, { fleet: { type: 'string', multiple: true }, out: { type: 'string' }, 'compliance-report': { type: 'string' } });
  const fleets = (values.fleet as string[] | undefined) ?? [];
  if (fleets.length === 0) throw new InputError('--fleet is required (see --help)');
  const inputs = fleets.map((f) => parseJsonFile(f, 'fleet description'));
  const reportFile = values['compliance-report'] as string | undefined;
  const report = reportFile === undefined ? undefined : parseJsonFile(reportFile, 'static compliance report');
  const resolved = resolveFleetInput(inputs);
  const r = resolved.ok && report !== undefined ? applyStaticGate(resolved.value, report) : resolved;
  if (!r.ok) throw new InputError(`${r.error.code}: ${r.error.message}`);
  for (const w of r.value.warnings) io.stderr(`warning: ${w}\n`);
  const c = canonicalize(r.value.fleet);
  if (!c.ok) throw new InputError(`${c.error.code}: ${c.error.message}`);
  const out = values.out as string | undefined;
  if (out === undefined) io.stdout(c.value + '\n');
  else {
    mkdirSync(dirname(out), { recursive: true });
    writeFileAtomic(out, c.value);
    io.stderr(`wrote ${out} (${Object.keys(r.value.fleet.hosts).length} hosts, ${Object.keys(r.value.fleet.channels).length} channels)\n`);
  }
  return EXIT_OK;
}
