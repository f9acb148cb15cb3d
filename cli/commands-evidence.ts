/**
 * The `audit` and `evidence` commands of the command table, beside commands.ts (which spreads them
 * in): audit export / checkpoint / verify, evidence export / verify (issue 15). Handlers load on first use.
 */
import type { CommandSpec } from './framework.ts';
import { lazy } from './lazy.ts';

const evidence = () => import('./cmd-evidence.ts');
const online = () => import('./cmd-online.ts');
const audit = () => import('./cmd-audit.ts');

/** `audit export` (online), `audit checkpoint` (online), `audit verify` (offline). */
export const AUDIT_COMMANDS: readonly CommandSpec[] = [
  {
    name: 'audit export',
    summary: 'Download the hash-chained audit log as JSON Lines (verify it with audit verify)',
    description:
      'Each line is the JCS form of one entry {seq, at, kind, actor, subject, data, prevHash, hash}, ascending seq.\nThe output is already JSON; there is no --json flag.',
    args: [],
    flags: [
      { name: 'since', type: 'string', placeholder: 'SEQ|TIME', description: 'Start at this seq number, or at entries at/after this RFC 3339 time.' },
      { name: 'out', type: 'string', placeholder: 'FILE', description: 'Write to FILE (mode 0600) instead of stdout; - is stdout.' },
      { name: 'witnesses', type: 'string', placeholder: 'FILE', description: 'Also write the witnessed heads the CP keeps (host-signed heads, operator checkpoints) as JSON to FILE; give it to audit verify --witnesses.' },
    ],
    examples: ['nixfleet audit export --out audit.jsonl', 'nixfleet audit export --since 2026-03-01T00:00:00Z | nixfleet audit verify -'],
    online: true,
    handler: lazy(online, 'auditExport'),
  },  {
    name: 'audit checkpoint',
    summary: 'Record the audit chain head now as an operator checkpoint, on the CP and in a file you keep',
    description:
      'The CP appends an audit.checkpoint entry naming you (mTLS identity) and keeps the witness; --out writes\n{by, seq, hash, at} signed with your certificate\'s key (the file carries the certificate) to keep away from the CP (commit it). `audit verify --witnesses FILE` then fails when\nthe log was rewritten or cut behind that head, or rebuilt from empty.',
    args: [],
    flags: [{ name: 'out', type: 'string', placeholder: 'FILE', description: 'Write the checkpoint as JSON to FILE (mode 0600).', required: true }],
    examples: ['nixfleet audit checkpoint --out checkpoints/$(date -u +%F).json'],
    online: true,
    json: {
      shape: 'the checkpoint, as written to --out:',
      fields: [
        { name: 'by', description: '`operator:<name>` (your certificate\'s CN).' },
        { name: 'seq', description: 'seq of the head entry.' },
        { name: 'hash', description: 'Its hash.' },
        { name: 'at', description: 'When the CP recorded it, RFC 3339.' },
      ],
    },
    handler: lazy(audit, 'auditCheckpoint'),
  },
  {
    name: 'audit verify',
    summary: 'Check an audit export offline: the hash chain, and host signatures on their reports',
    description:
      'Recomputes every entry hash (sha256 of the JCS of {seq, at, kind, actor, subject, data, prevHash}) and the links\nbetween entries, and checks each stored host report against the host key of the given fleet(s). Names the first\nbad line. Needs no control plane.',
    args: [{ name: 'FILE', description: 'JSON Lines written by `nixfleet audit export` (- for stdin).' }],
    flags: [
      {
        name: 'fleet',
        type: 'string',
        placeholder: 'FILES',
        description: 'Comma-separated fleet.resolved.json files whose hosts.*.pubkey verify the reports (check them first with verify-artifact).',
      },
      {
        name: 'witnesses',
        type: 'string',
        placeholder: 'FILES',
        description: 'Comma-separated witness files (audit export --witnesses) and checkpoint files (audit checkpoint --out): every witnessed head must be\nin the log — else WITNESS_REWRITTEN, WITNESS_TRUNCATED or WITNESS_REBUILT naming the witness. Host signatures checked with --fleet;\na checkpoint\'s operator signature under the certificate it carries (WITNESS_SIGNATURE).',
      },
      {
        name: 'fleet-ca',
        type: 'string',
        placeholder: 'FILE',
        description: 'The fleet CA certificate (PEM): a signed checkpoint must come from an operator certificate it issued.',
      },
    ],
    examples: ['nixfleet audit verify audit.jsonl --fleet releases/fleet.resolved.json'],
    online: false,
    json: {
      shape: 'one object.',
      fields: [
        { name: 'ok', description: 'true when the whole file verifies (exit 0); false otherwise (exit 1).' },
        { name: 'entries', description: 'Number of entries checked.' },
        { name: 'firstSeq', description: 'seq of the first line.' },
        { name: 'lastSeq', description: 'seq of the last line.' },
        { name: 'lastHash', description: 'hash of the last entry (compare with the CP to detect a truncated export).' },
        { name: 'complete', description: 'true when the export starts at seq 1 (the whole chain was checked).' },
        { name: 'reports', description: '{verified, rejectedByCp, unchecked}: host report signature counts.' },
        { name: 'evidence', description: '{verified, unchecked}: host-signed compliance evidence records carried by host.evidence entries (issue 15); a bad one fails with EVIDENCE_SIGNATURE.' },
        { name: 'witnesses', description: '{matched, before}: witnessed heads found in the log, and those before a partial export; null without --witnesses.' },
        { name: 'code', description: 'On failure: EMPTY, PARSE_ERROR, SHAPE, SEQ, PREV_HASH, HASH, REPORT_SIGNATURE, EVIDENCE_SIGNATURE, WITNESS_SIGNATURE, WITNESS_REWRITTEN, WITNESS_TRUNCATED or WITNESS_REBUILT.' },
        { name: 'line', description: 'On failure: the 1-based line number of the first bad entry.' },
        { name: 'seq', description: 'On failure: its seq, when readable.' },
        { name: 'message', description: 'On failure: what was wrong, naming the line.' },
      ],
    },
    handler: lazy(audit, 'auditVerify'),
  },];

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
    handler: lazy(evidence, 'evidenceExport'),
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
    handler: lazy(evidence, 'evidenceVerify'),
  },
];
