/**
 * The command table of `nixfleet` (SPEC §7): the one source of argument parsing, `--help` and
 * docs/cli.md (regenerate with `npx tsx cli/gen-docs.ts`). Order here is the order in help and docs.
 */
import { auditVerify } from './cmd-audit.ts';
import { configInit } from './cmd-config.ts';
import { derivePubkey, verifyArtifactCmd } from './cmd-keys.ts';
import { mintHost, mintOperator, mintServer, pkiInit } from './cmd-pki.ts';
import type { CommandSpec, FlagSpec } from './framework.ts';
import { SETTING_NAMES, SETTINGS, settingFlagName } from './settings.ts';

/** `config init` takes every setting as a plain flag (not read from env: it writes what you say). */
const CONFIG_INIT_FLAGS: FlagSpec[] = [
  ...SETTING_NAMES.map((s): FlagSpec => ({
    name: settingFlagName(s),
    type: SETTINGS[s].type,
    placeholder: SETTINGS[s].placeholder,
    description: SETTINGS[s].description,
  })),
  { name: 'config', type: 'string', placeholder: 'FILE', description: 'Where to write (default: NIXFLEET_CONFIG, else $XDG_CONFIG_HOME/nixfleet/config.json, else ~/.config/nixfleet/config.json).' },
  { name: 'force', type: 'boolean', description: 'Overwrite an existing config file.' },
];

const PKI_DIR: FlagSpec = {
  name: 'pki-dir',
  type: 'string',
  placeholder: 'DIR',
  description: SETTINGS.pkiDir.description,
  setting: 'pkiDir',
  required: true,
};

const MINT_FLAGS: FlagSpec[] = [
  PKI_DIR,
  { name: 'out-dir', type: 'string', placeholder: 'DIR', default: '.', description: 'Where to write NAME.pem and NAME.key (mode 0600).' },
  { name: 'validity-days', type: 'int', placeholder: 'N', default: 365, description: 'Days of validity from --not-before.' },
  { name: 'not-before', type: 'string', placeholder: 'TIME', description: 'Start of validity, RFC 3339 (default now).' },
  { name: 'force', type: 'boolean', description: 'Replace existing NAME.pem / NAME.key.' },
];

export const COMMANDS: readonly CommandSpec[] = [
  {
    name: 'config init',
    summary: 'Write the settings file (mode 0600) so other commands need no connection flags',
    description: 'Paths are stored absolute. Refuses to overwrite an existing file without --force.',
    args: [],
    flags: CONFIG_INIT_FLAGS,
    examples: ['nixfleet config init --url https://cp.example.org:8443 --cert op.pem --key op.key --ca ca.pem'],
    online: false,
    handler: configInit,
  },
  {
    name: 'pki init',
    summary: 'Create the fleet CA (ca.pem, ca.key) in the PKI directory; refuses to overwrite one',
    description:
      'The CA key stays on the operator machine: the control plane and the agents get only ca.pem.\nAn existing CA is never replaced (every certificate it issued would stop working).',
    args: [],
    flags: [
      PKI_DIR,
      { name: 'name', type: 'string', placeholder: 'CN', default: 'nixfleet fleet CA', description: 'Subject CN of the CA.' },
      { name: 'validity-days', type: 'int', placeholder: 'N', default: 3650, description: 'Days of validity.' },
    ],
    examples: ['nixfleet pki init --pki-dir ~/.config/nixfleet/pki'],
    online: false,
    handler: pkiInit,
  },
  {
    name: 'mint-host-cert',
    summary: 'Mint an agent client certificate (CN = HOSTNAME, OU host) signed by the fleet CA',
    args: [{ name: 'HOSTNAME', description: 'The host name exactly as in the fleet (the CP compares it with the CN).' }],
    flags: MINT_FLAGS,
    examples: ['nixfleet mint-host-cert web1 --pki-dir ~/.config/nixfleet/pki --out-dir ./certs'],
    online: false,
    handler: mintHost,
  },
  {
    name: 'mint-operator-cert',
    summary: 'Mint an operator client certificate (CN = NAME, OU operator) for this CLI',
    args: [{ name: 'NAME', description: 'Operator name (shown as operator:NAME in the audit log).' }],
    flags: MINT_FLAGS,
    examples: ['nixfleet mint-operator-cert alice --pki-dir ~/.config/nixfleet/pki --out-dir ~/.config/nixfleet'],
    online: false,
    handler: mintOperator,
  },
  {
    name: 'mint-server-cert',
    summary: 'Mint the control plane server certificate (serverAuth; SAN always has localhost, 127.0.0.1)',
    args: [],
    flags: [
      { name: 'hostnames', type: 'string', placeholder: 'LIST', description: 'Comma-separated DNS names / IPs the CP is reached by.' },
      ...MINT_FLAGS,
    ],
    examples: ['nixfleet mint-server-cert --hostnames cp.example.org,10.0.0.5 --pki-dir ~/.config/nixfleet/pki --out-dir ./cp'],
    online: false,
    handler: mintServer,
  },
  {
    name: 'derive-pubkey',
    summary: 'Turn an OpenSSH ssh-ed25519 public key line into base64 of the raw 32 bytes',
    args: [{ name: 'FILE', description: 'A .pub file such as /etc/ssh/ssh_host_ed25519_key.pub; - or absent reads stdin.', optional: true }],
    flags: [],
    examples: ['nixfleet derive-pubkey /etc/ssh/ssh_host_ed25519_key.pub'],
    online: false,
    handler: derivePubkey,
  },
  {
    name: 'verify-artifact',
    summary: 'Verify a signed fleet.resolved.json or revocations.json exactly as the agent does',
    description:
      'Runs the same verifyArtifact as the agent and the CP (SPEC §2.3: parse, JCS, signature, schema, signedAt, freshness).\nExit 0 and a one-line summary when valid; exit 1 and the error code otherwise.',
    args: [{ name: 'FILE', description: 'The artefact as received (- for stdin).' }],
    flags: [
      { name: 'signature', type: 'string', placeholder: 'FILE', description: 'Raw 64-byte signature (default FILE.sig).' },
      { name: 'trust', type: 'string', placeholder: 'FILE', description: 'trust.json holding the release keys (current, previous, successor).' },
      { name: 'public-key', type: 'string', placeholder: 'B64', description: 'A single release public key instead of --trust.' },
      { name: 'algorithm', type: 'string', placeholder: 'ALG', default: 'ed25519', description: 'Algorithm of --public-key: ed25519 or ecdsa-p256.' },
      { name: 'kind', type: 'string', placeholder: 'KIND', default: 'fleet', description: 'fleet or revocations.' },
      { name: 'now', type: 'string', placeholder: 'TIME', description: 'Verify as of this RFC 3339 time (freshness), default now.' },
    ],
    examples: ['nixfleet verify-artifact releases/fleet.resolved.json --trust /etc/nixfleet/trust.json'],
    online: false,
    json: {
      shape: 'one object.',
      fields: [
        { name: 'ok', description: 'true when valid (exit 0); false with `code` and `message` otherwise (exit 1).' },
        { name: 'kind', description: '`fleet` or `revocations`.' },
        { name: 'signedAt', description: 'meta.signedAt, RFC 3339.' },
        { name: 'sha256', description: 'Hex SHA-256 of the canonical bytes (what the CP serves as ETag).' },
        { name: 'keyRole', description: 'Which trust.json slot verified it: current, previous or successor.' },
        { name: 'ciCommit', description: 'meta.ciCommit or null.' },
        { name: 'hosts', description: 'Number of hosts (fleet), else null.' },
        { name: 'channels', description: 'Number of channels (fleet), else null.' },
        { name: 'revocations', description: 'Number of revocations (revocations), else null.' },
        { name: 'code', description: 'On failure: the SPEC §2.3 error code, e.g. BAD_SIGNATURE, STALE.' },
        { name: 'message', description: 'On failure: what was wrong.' },
      ],
    },
    handler: verifyArtifactCmd,
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
        { name: 'code', description: 'On failure: EMPTY, PARSE_ERROR, SHAPE, SEQ, PREV_HASH, HASH or REPORT_SIGNATURE.' },
        { name: 'line', description: 'On failure: the 1-based line number of the first bad entry.' },
        { name: 'seq', description: 'On failure: its seq, when readable.' },
        { name: 'message', description: 'On failure: what was wrong, naming the line.' },
      ],
    },
    handler: auditVerify,
  },
];
