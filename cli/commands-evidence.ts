/**
 * The `evidence` commands of the command table (issue 15), beside commands.ts (which spreads them
 * in): `evidence export` (online) and `evidence verify` (offline). Handlers load on first use.
 */
import type { CommandSpec, Ctx, Outcome } from './framework.ts';

const evidence = () => import('./cmd-evidence.ts');

export const EVIDENCE_COMMANDS: readonly CommandSpec[] = [
  {
    name: 'evidence export',
    summary: 'Write the evidence packet of a period: signed releases, audit segment, host-signed evidence, trust root',
    description:
      'A ustar archive (open it with tar -xf) holding manifest.json (sha256 of every file), packet.json, trust.json,\nreleases.json + releases/*.json{,.sig} (every signed release in force over the period), audit.jsonl (the audit\nchain entries of the period) and evidence.jsonl (every host-signed evidence record received in it).\nCheck it with `nixfleet evidence verify`, which needs no control plane.',
    args: [],
    flags: [
      { name: 'from', type: 'string', placeholder: 'TIME', description: 'Start of the period, RFC 3339.', required: true },
      { name: 'to', type: 'string', placeholder: 'TIME', description: 'End of the period, RFC 3339 (default now).' },
      { name: 'framework', type: 'string', placeholder: 'NAME', description: 'Only the evidence of controls mapped to this framework (nis2, dora, iso27001, …).' },
      { name: 'out', type: 'string', placeholder: 'FILE', description: 'Where to write the packet (mode 0600).', required: true },
    ],
    examples: ['nixfleet evidence export --from 2026-01-01T00:00:00Z --to 2026-04-01T00:00:00Z --out q1.evidence.tar'],
    online: true,
    handler: async (ctx: Ctx): Promise<Outcome> => (await evidence()).evidenceExport(ctx),
  },
  {
    name: 'evidence verify',
    summary: 'Verify an evidence packet offline and print the per-framework summary (--html: a page for auditors)',
    description:
      'Checks every file against the manifest, every release signature under the trust root, the audit chain\nsegment and every host signature in it, that each activation was of a closure a signed release declared\nfor the host, and every evidence record\'s signature (host key from the signed releases) and freshness.\nThe first failure is named with a stable code and the file (and line) it is about; exit 1.',
    args: [{ name: 'PACKET', description: 'The file written by `nixfleet evidence export`.' }],
    flags: [
      { name: 'trust', type: 'string', placeholder: 'FILE', description: 'Your trust.json (release public keys); default: the one inside the packet (said so in the output).' },
      { name: 'html', type: 'string', placeholder: 'FILE', description: 'Also write the summary as a static HTML page: frameworks, controls × hosts, failures, release timeline.' },
    ],
    examples: ['nixfleet evidence verify q1.evidence.tar --trust /etc/nixfleet/trust.json --html q1.html'],
    online: false,
    json: {
      shape: 'one object.',
      fields: [
        { name: 'ok', description: 'true when the whole packet verifies (exit 0); false with code, file, line, message otherwise (exit 1).' },
        { name: 'packet', description: '{from, to, framework, generatedAt, auditHead} as exported.' },
        { name: 'trustFrom', description: '`argument` (--trust) or `packet`.' },
        { name: 'releases', description: '[{file, signedAt, acceptedAt, sha256, ciCommit, hosts, keyRole}].' },
        { name: 'audit', description: '{entries, firstSeq, lastSeq, lastHash, reports, evidence}, or null when the period has no entries.' },
        { name: 'activations', description: 'Activations checked against the signed releases.' },
        { name: 'evidence', description: '{records, verified, unsigned}.' },
        { name: 'frameworks', description: '[{framework, controls, pass, fail, error, stale, missing}] (host × control pairs).' },
        { name: 'cells', description: '[{host, control, status, observed, at, closure, signed}]: the controls × hosts matrix.' },
        { name: 'code', description: 'On failure: TAR_FORMAT, MANIFEST, FILE_MISSING, FILE_HASH, FILE_UNLISTED, PACKET_FILE, TRUST, RELEASE_SIGNATURE, RELEASE_INDEX, AUDIT_CHAIN, REPORT_SIGNATURE, EVIDENCE_SIGNATURE, EVIDENCE_FRESHNESS or ACTIVATION_UNDECLARED.' },
        { name: 'file', description: 'On failure: the packet file it is about.' },
        { name: 'line', description: 'On failure: the 1-based line in that file, or null.' },
      ],
    },
    handler: async (ctx: Ctx): Promise<Outcome> => (await evidence()).evidenceVerify(ctx),
  },
];
