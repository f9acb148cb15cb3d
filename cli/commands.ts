/**
 * The command table of `nixfleet` (SPEC §7): the one source of argument parsing, `--help` and
 * docs/cli.md (regenerate with `npx tsx cli/gen-docs.ts`). Order here is the order in help and docs.
 */
import { AUDIT_COMMANDS, EVIDENCE_COMMANDS } from './commands-evidence.ts';
import { completionCommand } from './completion.ts';
import { PKI_COMMANDS } from './commands-pki.ts';
import { DASHBOARD_COMMAND } from './dashboard/command.ts';
import type { CommandSpec, FlagSpec } from './framework.ts';
import { lazy } from './lazy.ts';
import { SETTING_NAMES, SETTINGS, settingFlagName } from './settings.ts';

const online = () => import('./cmd-online.ts');
const config = () => import('./cmd-config.ts');
const keys = () => import('./cmd-keys.ts');
const complianceCmd = () => import('./cmd-compliance.ts');

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

const CHANNEL_FILTER: FlagSpec = { name: 'channel', type: 'string', placeholder: 'NAME', description: 'Only this channel.' };
const REASON: FlagSpec = { name: 'reason', type: 'string', placeholder: 'TEXT', description: 'Why (recorded in the audit log).' };

const ROLLOUT_SUMMARY_FIELDS = [
  { name: 'id', description: 'Rollout id `<channel>@<targetRef>`.' },
  { name: 'channel', description: 'Channel name.' },
  { name: 'state', description: 'Pending, Executing, Converged, Halted, Superseded or Paused.' },
  { name: 'currentWave', description: '0-based index of the wave in progress.' },
  { name: 'signedAt', description: 'meta.signedAt of the artefact that opened it.' },
  { name: 'artifactSha256', description: 'sha256 of that artefact.' },
  { name: 'openedAt', description: 'RFC 3339.' },
  { name: 'updatedAt', description: 'RFC 3339.' },
  { name: 'reason', description: 'Reason of the last state change, or null.' },
  { name: 'hostCounts', description: 'Host state → number of hosts.' },
];

const PAUSE_FIELDS = [
  { name: 'channel', description: 'Channel name.' },
  { name: 'paused', description: 'true after pause, false after resume.' },
  { name: 'by', description: '`operator:<name>` who paused, or null after resume.' },
  { name: 'since', description: 'RFC 3339, or null after resume.' },
  { name: 'reason', description: 'Given reason, or null.' },
];

export const ONLINE_COMMANDS: readonly CommandSpec[] = [
  {
    name: 'status',
    summary: 'Every host: channel, running and declared closure, status label, certificate expiry; exit 1 if any failed, quarantined or has an expired certificate',
    description:
      'Labels: ✓ converged, ✓ soaked, → soaking / confirming / activating / dispatched, … queued,\n‖ held (queued in a halted or paused rollout), ✗ failed, ✗ rolled back, ✗ quarantined (its declared\nclosure is quarantined on its channel), ⟳ pending reboot, ⚠ stale (missed its check-ins),\n⚠ offline (never checked in), · idle (nothing declared).\nExit 1 when any host is failed, rolled back or quarantined, so it can gate a CI job.',
    args: [],
    flags: [CHANNEL_FILTER],
    examples: ['nixfleet status', 'nixfleet status --json | jq -r \'.hosts[] | select(.status != "converged") | .hostname\''],
    online: true,
    json: {
      shape: '`{hosts: [...], counts: {status: n}, certs: {valid|expiring|expired: n}, unhealthy: boolean}`; each host:',
      fields: [
        { name: 'hostname', description: 'Host name.' },
        { name: 'channel', description: 'Its channel.' },
        { name: 'currentClosure', description: 'Store basename it reported running, or null.' },
        { name: 'declaredClosure', description: 'Store basename the signed fleet declares, or null.' },
        { name: 'status', description: 'converged, soaked, soaking, confirming, activating, dispatched, queued, held, failed, rolled-back, quarantined, pending-reboot, stale, offline or idle.' },
        { name: 'label', description: 'The human label, e.g. "✓ converged".' },
        { name: 'rolloutId', description: 'Newest rollout of its channel that includes it, or null.' },
        { name: 'rolloutState', description: 'State of that rollout (Pending, Executing, Converged, Halted, Superseded, Paused), or null.' },
        { name: 'hostState', description: 'The host\'s state in that rollout (Queued … Converged, Failed, Reverted), or null.' },
        { name: 'wave', description: 'Its wave in that rollout, or null.' },
        { name: 'lastCheckinAt', description: 'RFC 3339, or null when never seen.' },
        { name: 'online', description: 'false when it missed its check-ins.' },
        { name: 'certNotAfter', description: 'RFC 3339 expiry of the client certificate it presented at its last check-in, or null.' },
        { name: 'cert', description: 'valid, expiring (under 7 days left) or expired; null when unknown.' },
      ],
    },
    handler: lazy(online, 'status'),
  },
  {
    name: 'hosts',
    summary: 'What the CP knows of each host: check-ins, failed units, probes, last outcome',
    args: [],
    flags: [],
    examples: ['nixfleet hosts'],
    online: true,
    json: {
      shape: 'the CP\'s `HostsResponse` (protocol/api.ts): `{hosts: [...]}`; each host:',
      fields: [
        { name: 'hostname', description: 'Host name.' },
        { name: 'channel', description: 'Its channel.' },
        { name: 'declaredClosure', description: 'Closure in the signed fleet, or null.' },
        { name: 'currentClosure', description: 'Closure reported at the last check-in, or null.' },
        { name: 'lastCheckinAt', description: 'RFC 3339 or null.' },
        { name: 'bootId', description: 'Boot id reported, or null.' },
        { name: 'online', description: 'false after offlineAfterSecs without a check-in.' },
        { name: 'pendingReboot', description: 'Activated for the next boot, waiting for a reboot.' },
        { name: 'failedUnits', description: 'systemd failed units at the last check-in.' },
        { name: 'probes', description: '[{name, ok, observedAt, message?}].' },
        { name: 'lastOutcome', description: '{rolloutId, closureHash, outcome, at} or null.' },
        { name: 'rollout', description: '{rolloutId, state, since, wave} of the newest rollout including it, or null.' },
        { name: 'dispatch', description: '{rolloutId, closureHash, confirmDeadline} while a target is outstanding, or null.' },
        { name: 'certNotAfter', description: 'Expiry (RFC 3339) of the client certificate it presented at its last check-in; absent when unknown.' },
      ],
    },
    handler: lazy(online, 'hosts'),
  },
  {
    name: 'rollout list',
    summary: 'Rollouts, newest first: state, wave, converged hosts, age, reason',
    args: [],
    flags: [CHANNEL_FILTER, { name: 'state', type: 'string', placeholder: 'STATE', description: 'Only rollouts in this state (e.g. Executing, Halted).' }],
    examples: ['nixfleet rollout list --channel stable'],
    online: true,
    json: { shape: 'the CP\'s `RolloutsResponse`: `{rollouts: [...]}`; each rollout:', fields: ROLLOUT_SUMMARY_FIELDS },
    handler: lazy(online, 'rolloutList'),
  },
  {
    name: 'rollout show',
    summary: 'One rollout: its state and each host with wave, state, since when and why',
    args: [{ name: 'ID', description: 'Rollout id `<channel>@<targetRef>` (see rollout list), or a channel name: its current rollout.' }],
    flags: [],
    examples: ['nixfleet rollout show stable@3f9c2a1b'],
    online: true,
    json: {
      shape: 'the CP\'s `RolloutDetail`: the rollout list fields plus `hosts`:',
      fields: [...ROLLOUT_SUMMARY_FIELDS, { name: 'hosts', description: '[{hostname, wave, state, since, closureHash, reason, gate?}] (gate: the block code when a gate holds the host).' }],
    },
    handler: lazy(online, 'rolloutShow'),
  },
  {
    name: 'rollout trace',
    summary: 'Every transition of a rollout with wave, time and reason; --follow redraws progress until it ends',
    description:
      'With --follow: prints transitions as they happen and redraws the per-wave progress until the rollout\nconverges (exit 0), halts or is superseded (exit 1). A paused rollout is followed on (it may be resumed).',
    args: [{ name: 'ID', description: 'Rollout id `<channel>@<targetRef>`, or a channel name: its current rollout.' }],
    flags: [
      { name: 'follow', type: 'boolean', description: 'Keep watching until converged, halted or superseded.' },
      { name: 'interval-secs', type: 'int', placeholder: 'N', default: 2, description: 'Poll interval with --follow.' },
      { name: 'max-wait-mins', type: 'int', placeholder: 'N', default: 1440, description: 'Give up (exit 1) after N minutes with --follow.' },
    ],
    examples: ['nixfleet rollout trace stable', 'nixfleet rollout trace stable@3f9c2a1b --follow'],
    online: true,
    json: {
      shape: '`{rolloutId, state, events: [...]}`; with --follow, one event object per line as they happen. Each event:',
      fields: [
        { name: 'at', description: 'RFC 3339 time of the transition.' },
        { name: 'subject', description: '`rollout` or `host`.' },
        { name: 'hostname', description: 'The host, or null for rollout-level transitions.' },
        { name: 'wave', description: 'The host\'s wave in this rollout (null for rollout-level transitions).' },
        { name: 'from', description: 'Previous state, or null.' },
        { name: 'to', description: 'New state.' },
        { name: 'reason', description: 'Why (gate, probe, operator, …).' },
      ],
    },
    handler: lazy(online, 'rolloutTrace'),
  },
  {
    name: 'rollout skip',
    summary: 'Release a host from ordering (host edges, wave order) in one rollout',
    description: 'For a rollout reported stalled behind a host that will not come back: the host no longer waits for its gating hosts or its wave, and holds nobody back. It still gets its target when online. Audited.',
    args: [
      { name: 'ROLLOUT', description: 'Rollout id `<channel>@<targetRef>` (see rollout list).' },
      { name: 'HOST', description: 'Host name.' },
    ],
    flags: [REASON],
    examples: ['nixfleet rollout skip stable@3f9c2a1b web2 --reason "db1 is decommissioned"'],
    online: true,
    json: {
      shape: 'the CP\'s `RolloutSkipResponse`:',
      fields: [
        { name: 'rolloutId', description: 'The rollout.' },
        { name: 'host', description: 'The released host.' },
        { name: 'released', description: 'true.' },
        { name: 'by', description: '`operator:<name>`.' },
        { name: 'reason', description: 'As given.' },
      ],
    },
    handler: lazy(online, 'rolloutSkip'),
  },
  {
    name: 'rollout approve',
    summary: 'Approve a rollout whose channel requires approvals before it starts',
    description:
      'A channel with `requireApprovals: N` in the signed fleet starts a rollout only after N distinct operator certificates approved it (status shows it held: awaiting approvals). One approval per certificate name; approving twice counts once. Audited (`rollout.approved`).',
    args: [{ name: 'ROLLOUT', description: 'Rollout id `<channel>@<targetRef>` (see rollout list).' }],
    flags: [REASON],
    examples: ['nixfleet rollout approve prod@3f9c2a1b --reason "CAB-1234 approved"'],
    online: true,
    json: {
      shape: 'the CP\'s `RolloutApproveResponse`:',
      fields: [
        { name: 'rolloutId', description: 'The rollout.' },
        { name: 'by', description: '`operator:<name>`.' },
        { name: 'approvals', description: 'Every operator who approved it so far, sorted.' },
        { name: 'required', description: 'The channel\'s `requireApprovals` (0: none needed).' },
      ],
    },
    handler: lazy(online, 'rolloutApprove'),
  },
  {
    name: 'pause',
    summary: 'Pause a channel: no host of it gets a new target until resume',
    description: 'Only stopping actions are operator powers: pause cannot start anything CI did not sign.',
    args: [{ name: 'CHANNEL', description: 'Channel name.' }],
    flags: [REASON],
    examples: ['nixfleet pause stable --reason "investigating web1"'],
    online: true,
    json: { shape: 'the CP\'s `PauseResponse`:', fields: PAUSE_FIELDS },
    handler: lazy(online, 'pause'),
  },
  {
    name: 'resume',
    summary: 'Resume a paused channel: dispatch continues where it stopped',
    args: [{ name: 'CHANNEL', description: 'Channel name.' }],
    flags: [REASON],
    examples: ['nixfleet resume stable'],
    online: true,
    json: { shape: 'the CP\'s `PauseResponse`:', fields: PAUSE_FIELDS },
    handler: lazy(online, 'resume'),
  },
  {
    name: 'compliance',
    summary: 'Compliance per framework / control / host: pass, fail, error, stale, missing; exit 1 if any control fails',
    description:
      "From each host's newest signed evidence (issue 15): stale = older than the CP's complianceStaleAfterSecs or about\nanother closure than the host runs; missing = no evidence yet. Lists every failing control with what the host\nobserved and the framework clauses it maps to, and the static failures the signed release records.",
    args: [],
    flags: [
      CHANNEL_FILTER,
      { name: 'framework', type: 'string', placeholder: 'NAME', description: 'Only the controls mapped to this framework (nis2, dora, iso27001, anssi-bp028, cis, …).' },
      { name: 'host', type: 'string', placeholder: 'HOST', description: 'Only this host.' },
      { name: 'by', type: 'string', placeholder: 'VIEW', default: 'framework', description: 'Summary table: framework, control or host.' },
    ],
    examples: ['nixfleet compliance', 'nixfleet compliance --by control --framework nis2', 'nixfleet compliance --json | jq .failures'],
    online: true,
    json: {
      shape: '`{frameworks, controls, hosts, failures, staticFailures, failing}`:',
      fields: [
        { name: 'frameworks', description: '`[{framework, pass, fail, error, stale, missing}]` (host × control counts).' },
        { name: 'controls', description: '`[{control, title, severity, clauses, pass, …, failing: [host]}]`.' },
        { name: 'hosts', description: '`[{hostname, channel, mode, pass, …}]`.' },
        { name: 'failures', description: '`[{hostname, control, status, observed, at, clauses}]`.' },
        { name: 'staticFailures', description: 'From the signed artefact: `[{host, channel, control, observed}]`.' },
        { name: 'failing', description: 'true when some control fails or errors (exit 1).' },
      ],
    },
    handler: lazy(complianceCmd, 'compliance'),
  },
  {
    name: 'whoami',
    summary: 'The identity the CP sees in your certificate: name, role, serial, validity, issuer; exit 1 if expired',
    description:
      'Asks the control plane (GET /v1/whoami) what it reads from the client certificate you present, after the same\nchecks as every request: a revoked certificate is refused (CERT_REVOKED), as is one from an issuer not configured\nfor its role (ISSUER_REFUSED). Works with an operator or a host certificate.',
    args: [],
    flags: [],
    examples: ['nixfleet whoami', 'nixfleet whoami --json | jq -r .notAfter'],
    online: true,
    json: {
      shape: 'the CP\'s `WhoamiResponse` (protocol/enrol.ts):',
      fields: [
        { name: 'name', description: 'Subject CN: operator name or hostname.' },
        { name: 'role', description: '`operator`, `host` or null (subject OU).' },
        { name: 'serial', description: 'Certificate serial (hex).' },
        { name: 'notBefore', description: 'Start of validity (RFC 3339).' },
        { name: 'notAfter', description: 'End of validity (RFC 3339).' },
        { name: 'certState', description: '`valid`, `expiring` (under 7 days left) or `expired`.' },
        { name: 'issuer', description: '`{commonName, fingerprint256}` of the certificate that issued it.' },
        { name: 'revokedBefore', description: 'When a signed revocation names you: certificates issued before this time are refused; else null.' },
      ],
    },
    handler: lazy(online, 'whoami'),
  },
  {
    name: 'quarantine list',
    summary: 'Closures quarantined per channel (not dispatched again until cleared)',
    args: [],
    flags: [CHANNEL_FILTER],
    examples: ['nixfleet quarantine list'],
    online: true,
    json: {
      shape: '`{quarantines: [...]}`; each:',
      fields: [
        { name: 'channel', description: 'Channel name.' },
        { name: 'closureHash', description: 'Quarantined store basename (give it to quarantine clear).' },
        { name: 'rolloutId', description: 'Rollout in which it failed, or null.' },
        { name: 'reason', description: 'Why it was quarantined.' },
        { name: 'since', description: 'RFC 3339.' },
      ],
    },
    handler: lazy(online, 'quarantineList'),
  },
  {
    name: 'quarantine clear',
    summary: 'Lift the quarantine of one closure on a channel so it may be dispatched again',
    description: 'Exit 1 when that closure was not quarantined on that channel.',
    args: [
      { name: 'CHANNEL', description: 'Channel name.' },
      { name: 'CLOSURE', description: 'Full store basename, as quarantine list shows it.' },
    ],
    flags: [],
    examples: ['nixfleet quarantine clear stable 0123456789abcdfghijklmnpqrsvwxyz-nixos-system-web1-25.05'],
    online: true,
    json: { shape: 'the CP\'s `QuarantineClearResponse`:', fields: [{ name: 'cleared', description: 'Number of quarantines lifted.' }] },
    handler: lazy(online, 'quarantineClear'),
  },
  DASHBOARD_COMMAND,
];

export const COMMANDS: readonly CommandSpec[] = [
  ...ONLINE_COMMANDS,
  {
    name: 'config init',
    summary: 'Write the settings file (mode 0600) so other commands need no connection flags',
    description: 'Paths are stored absolute. Refuses to overwrite an existing file without --force.',
    args: [],
    flags: CONFIG_INIT_FLAGS,
    examples: ['nixfleet config init --url https://cp.example.org:8443 --cert op.pem --key op.key --ca ca.pem'],
    online: false,
    handler: lazy(config, 'configInit'),
  },
  {
    name: 'check-config',
    summary: 'Check the connection settings and the client certificate locally, without connecting',
    description:
      'Reads --url/--cert/--key/--ca (flags, env, settings file) and checks the certificate: extended key usage\nclientAuth, inside its validity period, --key belongs to it, issued by the --ca fleet CA.\nEvery online command runs the same check first; a problem is exit 2 with the reason.',
    args: [],
    flags: [],
    examples: ['nixfleet check-config', 'nixfleet check-config --cert op.pem --key op.key --ca ca.pem --url https://cp.example.org:8443'],
    online: true,
    handler: lazy(config, 'checkConfig'),
  },
  {
    name: 'completion',
    summary: 'Print a shell completion script (bash, zsh or fish) generated from this command table',
    description:
      'bash: source <(nixfleet completion bash)   zsh: source <(nixfleet completion zsh)\nfish: nixfleet completion fish > ~/.config/fish/completions/nixfleet.fish',
    args: [{ name: 'SHELL', description: 'bash, zsh or fish.' }],
    flags: [],
    examples: ['nixfleet completion bash > /etc/bash_completion.d/nixfleet'],
    online: false,
    handler: completionCommand(() => COMMANDS),
  },
  ...PKI_COMMANDS,
  {
    name: 'derive-pubkey',
    summary: 'Print the base64 of the raw 32 bytes of an OpenSSH ssh-ed25519 public key line',
    description:
      'Prints base64 of the raw 32-byte key (a trust.json-style key), not the "ssh-ed25519 AAAA… comment" line.\nA fleet\'s hosts.*.pubkey takes the line itself (the content of /etc/ssh/ssh_host_ed25519_key.pub): nixfleet-release resolve refuses this base64 there (INVALID_PUBKEY).',
    args: [{ name: 'FILE', description: 'A .pub file such as /etc/ssh/ssh_host_ed25519_key.pub; - or absent reads stdin.', optional: true }],
    flags: [],
    examples: ['nixfleet derive-pubkey /etc/ssh/ssh_host_ed25519_key.pub'],
    online: false,
    handler: lazy(keys, 'derivePubkey'),
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
    handler: lazy(keys, 'verifyArtifactCmd'),
  },

  ...AUDIT_COMMANDS,
  ...EVIDENCE_COMMANDS,
];
