/**
 * Compliance controls as data (SPEC §10, issue 15): what a control is, the built-in catalogue,
 * the presets per framework, and the host-signed evidence record.
 *
 * A control maps to framework clauses (`nis2:21.2(h)`), has a severity, a *static* predicate over
 * the host's NixOS configuration (evaluated where the configuration is: in the fleet's flake at CI
 * time, `lib/compliance.nix` reads this catalogue as JSON) and a *runtime* check the agent runs on
 * the host after each activation and periodically (agent/compliance.ts). Both halves are plain
 * data here, so the CI side, the agent and an auditor's tools read the same definitions.
 *
 * Pure module: no I/O.
 */
import { type Static, Type } from '@sinclair/typebox';
import { schemaParser, type SchemaError } from './artifact.ts';
import type { Result } from './result.ts';
import { compile } from './validate.ts';
import { Enum, Hostname, Nullable, Timestamp } from './vocab.ts';

/** Frameworks a channel may name; anything else is refused by `resolve` (SPEC §3.1). */
export const KNOWN_FRAMEWORKS: readonly string[] = ['anssi-bp028', 'bsi-grundschutz', 'cis', 'dora', 'hipaa', 'iso27001', 'nis2', 'pci-dss', 'soc2'];

export const SEVERITIES = ['low', 'medium', 'high', 'critical'] as const;
export type Severity = (typeof SEVERITIES)[number];

/** Default time limit of one runtime check; a check never runs unbounded. */
export const DEFAULT_CHECK_TIMEOUT_MS = 5_000;

const timeoutMs = Type.Optional(Type.Integer({ minimum: 1, maximum: 600_000 }));

/**
 * The runtime check kinds (issue 15: file content / permission, systemd unit state, sysctl value,
 * listening ports, an exec command). Each is data the agent interprets; none is a shell string.
 */
export const RuntimeCheckSchema = Type.Union([
  Type.Object(
    {
      kind: Type.Literal('file'),
      path: Type.String({ pattern: '^/' }),
      /** The file must exist (default) or must not. */
      exists: Type.Optional(Type.Boolean()),
      /** A line must match this regular expression (JavaScript syntax, multiline). */
      matches: Type.Optional(Type.String({ minLength: 1 })),
      /** No line may match this regular expression. */
      notMatches: Type.Optional(Type.String({ minLength: 1 })),
      /** Permission bits the file must NOT have, octal (e.g. "022": not group/world-writable). */
      forbiddenMode: Type.Optional(Type.String({ pattern: '^[0-7]{3,4}$' })),
      timeoutMs,
    },
    { additionalProperties: false },
  ),
  Type.Object(
    {
      kind: Type.Literal('systemd'),
      unit: Type.String({ pattern: '^[A-Za-z0-9:_.@\\\\-]+\\.(service|socket|timer|target|mount|path)$' }),
      /** `systemctl is-active` must print this (e.g. "active"), or "inactive" for must-not-run. */
      activeState: Enum(['active', 'inactive']),
      timeoutMs,
    },
    { additionalProperties: false },
  ),
  Type.Object(
    {
      kind: Type.Literal('sysctl'),
      key: Type.String({ pattern: '^[a-z0-9_]+(\\.[a-z0-9_*-]+)+$' }),
      /** Values accepted, as /proc/sys shows them (whitespace-normalised). */
      allowed: Type.Array(Type.String(), { minItems: 1 }),
      timeoutMs,
    },
    { additionalProperties: false },
  ),
  Type.Object(
    {
      kind: Type.Literal('listening'),
      protocol: Enum(['tcp', 'udp']),
      port: Type.Integer({ minimum: 1, maximum: 65535 }),
      /** Whether something may listen on the port (on any address). */
      expect: Enum(['open', 'closed']),
      timeoutMs,
    },
    { additionalProperties: false },
  ),
  Type.Object(
    {
      kind: Type.Literal('world-writable'),
      /** No regular file under this directory may be world-writable. */
      under: Type.String({ pattern: '^/' }),
      timeoutMs,
    },
    { additionalProperties: false },
  ),
  Type.Object(
    {
      kind: Type.Literal('exec'),
      /** argv, run without a shell. */
      argv: Type.Array(Type.String(), { minItems: 1 }),
      expectExit: Type.Optional(Type.Integer({ minimum: 0, maximum: 255 })),
      stdoutMatches: Type.Optional(Type.String({ minLength: 1 })),
      timeoutMs,
    },
    { additionalProperties: false },
  ),
]);
export type RuntimeCheck = Static<typeof RuntimeCheckSchema>;

/**
 * A static predicate over the host's NixOS configuration: the option at `option` (an attribute
 * path under `config`) compared to `equals` (JSON value), or, with `oneOf`, to one of several. A
 * missing option counts as `default`. Evaluated by lib/compliance.nix at CI time.
 */
export const StaticPredicateSchema = Type.Object(
  {
    option: Type.String({ pattern: '^[A-Za-z0-9_-]+(\\.[A-Za-z0-9_"-]+)*$' }),
    equals: Type.Optional(Type.Unknown()),
    oneOf: Type.Optional(Type.Array(Type.Unknown(), { minItems: 1 })),
    default: Type.Optional(Type.Unknown()),
  },
  { additionalProperties: false },
);
export type StaticPredicate = Static<typeof StaticPredicateSchema>;

export const ControlSchema = Type.Object(
  {
    id: Type.String({ pattern: '^[a-z0-9]+(-[a-z0-9]+)*$' }),
    title: Type.String({ minLength: 1 }),
    severity: Enum(SEVERITIES),
    /** `framework:clause`, e.g. `nis2:21.2(h)`, `iso27001:A.8.9`. */
    frameworks: Type.Array(Type.String({ pattern: '^[a-z0-9-]+:.+$' }), { minItems: 1 }),
    static: Nullable(StaticPredicateSchema),
    runtime: Nullable(RuntimeCheckSchema),
  },
  { additionalProperties: false },
);
export type Control = Static<typeof ControlSchema>;
const controlValidator = compile(ControlSchema);

const c = (control: Control): Control => control;

/**
 * The built-in catalogue: controls that map to concrete NixOS settings. Clause references name
 * the requirement each control gives evidence for (NIS2 Art. 21(2); DORA Art. 9; ISO/IEC
 * 27001:2022 Annex A; ANSSI BP-028 v2 recommendations R-numbers; CIS Linux benchmarks sections).
 */
export const CATALOGUE: readonly Control[] = [
  c({
    id: 'ssh-no-root-login',
    title: 'SSH refuses root login',
    severity: 'high',
    frameworks: ['nis2:21.2(i)', 'iso27001:A.8.2', 'anssi-bp028:R21', 'cis:5.2.10', 'dora:9.4(c)'],
    static: { option: 'services.openssh.settings.PermitRootLogin', oneOf: ['no', 'prohibit-password'], default: 'prohibit-password' },
    runtime: { kind: 'file', path: '/etc/ssh/sshd_config', matches: '^\\s*PermitRootLogin\\s+(no|prohibit-password)\\s*$' },
  }),
  c({
    id: 'ssh-no-password-auth',
    title: 'SSH password authentication is off',
    severity: 'high',
    frameworks: ['nis2:21.2(j)', 'iso27001:A.8.5', 'anssi-bp028:R18', 'cis:5.2.8', 'dora:9.4(d)'],
    static: { option: 'services.openssh.settings.PasswordAuthentication', equals: false, default: true },
    runtime: { kind: 'file', path: '/etc/ssh/sshd_config', matches: '^\\s*PasswordAuthentication\\s+no\\s*$' },
  }),
  c({
    id: 'ssh-no-kbd-interactive',
    title: 'SSH keyboard-interactive authentication is off',
    severity: 'medium',
    frameworks: ['nis2:21.2(j)', 'iso27001:A.8.5', 'cis:5.2.9'],
    static: { option: 'services.openssh.settings.KbdInteractiveAuthentication', equals: false, default: true },
    runtime: { kind: 'file', path: '/etc/ssh/sshd_config', matches: '^\\s*KbdInteractiveAuthentication\\s+no\\s*$' },
  }),
  c({
    id: 'firewall-enabled',
    title: 'The host firewall is on',
    severity: 'high',
    frameworks: ['nis2:21.2(e)', 'iso27001:A.8.20', 'anssi-bp028:R7', 'cis:3.5', 'dora:9.2'],
    static: { option: 'networking.firewall.enable', equals: true, default: true },
    runtime: { kind: 'systemd', unit: 'firewall.service', activeState: 'active' },
  }),
  c({
    id: 'auditd-enabled',
    title: 'The Linux audit daemon runs',
    severity: 'high',
    frameworks: ['nis2:21.2(g)', 'iso27001:A.8.15', 'anssi-bp028:R73', 'cis:4.1.1', 'dora:10.1'],
    static: { option: 'security.auditd.enable', equals: true, default: false },
    runtime: { kind: 'systemd', unit: 'auditd.service', activeState: 'active' },
  }),
  c({
    id: 'audit-rules-enabled',
    title: 'Kernel audit rules are loaded',
    severity: 'medium',
    frameworks: ['iso27001:A.8.15', 'anssi-bp028:R73', 'cis:4.1.3'],
    static: { option: 'security.audit.enable', oneOf: [true, 'lock'], default: false },
    runtime: null,
  }),
  c({
    id: 'journald-persistent',
    title: 'The journal is kept on disk',
    severity: 'medium',
    frameworks: ['nis2:21.2(g)', 'iso27001:A.8.15', 'dora:12.1', 'cis:4.2.2.3'],
    static: { option: 'services.journald.storage', oneOf: ['persistent', 'auto'], default: 'persistent' },
    runtime: { kind: 'file', path: '/var/log/journal', exists: true },
  }),
  c({
    id: 'time-sync',
    title: 'Time is synchronised',
    severity: 'medium',
    frameworks: ['iso27001:A.8.17', 'cis:2.1.1', 'dora:12.1'],
    static: { option: 'services.timesyncd.enable', equals: true, default: true },
    runtime: { kind: 'systemd', unit: 'systemd-timesyncd.service', activeState: 'active' },
  }),
  c({
    id: 'kernel-kptr-restrict',
    title: 'Kernel pointers are hidden (kernel.kptr_restrict)',
    severity: 'medium',
    frameworks: ['anssi-bp028:R9', 'iso27001:A.8.9'],
    static: { option: 'boot.kernel.sysctl."kernel.kptr_restrict"', oneOf: [1, 2], default: 0 },
    runtime: { kind: 'sysctl', key: 'kernel.kptr_restrict', allowed: ['1', '2'] },
  }),
  c({
    id: 'kernel-dmesg-restrict',
    title: 'The kernel log is root-only (kernel.dmesg_restrict)',
    severity: 'low',
    frameworks: ['anssi-bp028:R9', 'cis:1.5.3', 'iso27001:A.8.9'],
    static: { option: 'boot.kernel.sysctl."kernel.dmesg_restrict"', equals: 1, default: 0 },
    runtime: { kind: 'sysctl', key: 'kernel.dmesg_restrict', allowed: ['1'] },
  }),
  c({
    id: 'kernel-aslr',
    title: 'Full address-space layout randomisation (kernel.randomize_va_space = 2)',
    severity: 'high',
    frameworks: ['anssi-bp028:R9', 'cis:1.5.2', 'iso27001:A.8.9'],
    static: { option: 'boot.kernel.sysctl."kernel.randomize_va_space"', equals: 2, default: 2 },
    runtime: { kind: 'sysctl', key: 'kernel.randomize_va_space', allowed: ['2'] },
  }),
  c({
    id: 'kernel-ptrace-scope',
    title: 'ptrace is restricted (kernel.yama.ptrace_scope ≥ 1)',
    severity: 'medium',
    frameworks: ['anssi-bp028:R11', 'cis:1.5.4', 'iso27001:A.8.9'],
    static: { option: 'boot.kernel.sysctl."kernel.yama.ptrace_scope"', oneOf: [1, 2, 3], default: 1 },
    runtime: { kind: 'sysctl', key: 'kernel.yama.ptrace_scope', allowed: ['1', '2', '3'] },
  }),
  c({
    id: 'net-no-ip-forward',
    title: 'IPv4 forwarding is off (not a router)',
    severity: 'medium',
    frameworks: ['cis:3.1.1', 'anssi-bp028:R12', 'iso27001:A.8.20'],
    static: { option: 'boot.kernel.sysctl."net.ipv4.ip_forward"', equals: 0, default: 0 },
    runtime: { kind: 'sysctl', key: 'net.ipv4.ip_forward', allowed: ['0'] },
  }),
  c({
    id: 'net-no-redirects',
    title: 'ICMP redirects are not accepted',
    severity: 'low',
    frameworks: ['cis:3.2.2', 'anssi-bp028:R12', 'iso27001:A.8.20'],
    static: { option: 'boot.kernel.sysctl."net.ipv4.conf.all.accept_redirects"', equals: 0, default: 1 },
    runtime: { kind: 'sysctl', key: 'net.ipv4.conf.all.accept_redirects', allowed: ['0'] },
  }),
  c({
    id: 'net-syncookies',
    title: 'TCP SYN cookies are on',
    severity: 'low',
    frameworks: ['cis:3.2.8', 'anssi-bp028:R12'],
    static: { option: 'boot.kernel.sysctl."net.ipv4.tcp_syncookies"', equals: 1, default: 1 },
    runtime: { kind: 'sysctl', key: 'net.ipv4.tcp_syncookies', allowed: ['1'] },
  }),
  c({
    id: 'etc-no-world-writable',
    title: 'No world-writable files under /etc',
    severity: 'high',
    frameworks: ['cis:6.1.9', 'anssi-bp028:R54', 'iso27001:A.8.9', 'nis2:21.2(e)'],
    static: null,
    runtime: { kind: 'world-writable', under: '/etc' },
  }),
  c({
    id: 'no-telnet',
    title: 'Nothing listens on telnet (tcp/23)',
    severity: 'high',
    frameworks: ['cis:2.2.18', 'iso27001:A.8.20', 'nis2:21.2(e)'],
    static: null,
    runtime: { kind: 'listening', protocol: 'tcp', port: 23, expect: 'closed' },
  }),
  c({
    id: 'sudo-requires-password',
    title: 'sudo asks for a password (wheelNeedsPassword)',
    severity: 'medium',
    frameworks: ['iso27001:A.8.2', 'anssi-bp028:R39', 'nis2:21.2(i)'],
    static: { option: 'security.sudo.wheelNeedsPassword', equals: true, default: true },
    runtime: null,
  }),
  c({
    id: 'immutable-users',
    title: 'Users and groups come only from the configuration (users.mutableUsers = false)',
    severity: 'medium',
    frameworks: ['iso27001:A.5.18', 'nis2:21.2(i)', 'dora:9.4(c)'],
    static: { option: 'users.mutableUsers', equals: false, default: true },
    runtime: null,
  }),
  c({
    id: 'automatic-rollback',
    title: 'The nixfleet agent runs, so an activation that cuts the host off rolls back by itself',
    severity: 'high',
    frameworks: ['dora:12.1', 'iso27001:A.8.32', 'nis2:21.2(c)'],
    static: { option: 'services.nixfleet-agent.enable', equals: true, default: false },
    runtime: { kind: 'systemd', unit: 'nixfleet-agent.service', activeState: 'active' },
  }),
  c({
    id: 'nix-signed-substituters',
    title: 'Nix only accepts signed store paths (require-sigs)',
    severity: 'critical',
    frameworks: ['nis2:21.2(d)', 'iso27001:A.8.19', 'dora:9.4(a)', 'anssi-bp028:R59'],
    static: { option: 'nix.settings.require-sigs', equals: true, default: true },
    runtime: { kind: 'file', path: '/etc/nix/nix.conf', notMatches: '^\\s*require-sigs\\s*=\\s*false\\s*$' },
  }),
  c({
    id: 'no-core-dumps-setuid',
    title: 'setuid programs do not dump core (fs.suid_dumpable = 0)',
    severity: 'low',
    frameworks: ['cis:1.5.1', 'anssi-bp028:R14'],
    static: { option: 'boot.kernel.sysctl."fs.suid_dumpable"', equals: 0, default: 0 },
    runtime: { kind: 'sysctl', key: 'fs.suid_dumpable', allowed: ['0'] },
  }),
];

/** Control ids mapped to a framework, in catalogue order: the built-in preset of that framework. */
export function presetFor(framework: string, catalogue: readonly Control[] = CATALOGUE): string[] {
  return catalogue.filter((ctl) => ctl.frameworks.some((f) => f.startsWith(`${framework}:`))).map((ctl) => ctl.id);
}

export type CatalogueError = { code: 'CONTROL_INVALID' | 'DUPLICATE_CONTROL' | 'UNKNOWN_FRAMEWORK'; message: string };

/**
 * The catalogue a fleet uses: the built-in one plus the fleet's own controls (same shape). A
 * fleet control may not reuse a built-in id; every framework it names must be known.
 */
export function mergeCatalogue(extra: readonly unknown[]): { ok: true; value: Control[] } | { ok: false; error: CatalogueError } {
  const out = [...CATALOGUE];
  const ids = new Set(out.map((x) => x.id));
  for (const [i, u] of extra.entries()) {
    if (!controlValidator.check(u)) {
      const issues = controlValidator.issues(u, 3).map((x) => `${x.path.replace(/^\$/, `$[${i}]`)}: ${x.message}`);
      return { ok: false, error: { code: 'CONTROL_INVALID', message: issues.join('; ') } };
    }
    if (ids.has(u.id)) return { ok: false, error: { code: 'DUPLICATE_CONTROL', message: `control ${u.id} is already defined` } };
    const unknown = u.frameworks.map((f) => f.slice(0, f.indexOf(':'))).filter((f) => !KNOWN_FRAMEWORKS.includes(f));
    if (unknown.length > 0) return { ok: false, error: { code: 'UNKNOWN_FRAMEWORK', message: `control ${u.id}: unknown framework ${unknown[0]}` } };
    ids.add(u.id);
    out.push(u);
  }
  return { ok: true, value: out };
}

/** The controls that apply to a channel with these frameworks (union of the presets). */
export function controlsForFrameworks(frameworks: readonly string[], catalogue: readonly Control[] = CATALOGUE): Control[] {
  const want = new Set(frameworks);
  return catalogue.filter((ctl) => ctl.frameworks.some((f) => want.has(f.slice(0, f.indexOf(':')))));
}

export const CHECK_RESULTS = ['pass', 'fail', 'error'] as const;
export type CheckResult = (typeof CHECK_RESULTS)[number];

/**
 * One evidence record: what a host observed for one control, signed by the host's SSH key over
 * the record's JCS bytes (like reports), and fresh relative to the activation it is about.
 */
export const EvidenceRecordSchema = Type.Object(
  {
    schemaVersion: Type.Literal(1),
    hostname: Hostname(),
    control: Type.String({ minLength: 1, maxLength: 128 }),
    result: Enum(CHECK_RESULTS),
    /** What was seen (bounded: a value, not a dump). */
    observed: Type.String({ maxLength: 1024 }),
    /** The closure the host ran when it checked (store basename), or null before any activation. */
    closure: Nullable(Type.String({ maxLength: 256 })),
    bootId: Type.String({ maxLength: 64 }),
    /** The rollout whose activation this check follows, or null for a periodic check. */
    rolloutId: Nullable(Type.String({ maxLength: 256 })),
    at: Timestamp(),
  },
  { additionalProperties: false },
);
export type EvidenceRecord = Static<typeof EvidenceRecordSchema>;
export const evidenceRecordValidator = compile(EvidenceRecordSchema);

/** A record with the host's signature (base64 of the raw 64-byte Ed25519 signature). */
export type SignedEvidence = { record: EvidenceRecord; signature: string };

// ---------------------------------------------------------------------------------------------
// Static gate (CI): the report lib/compliance.nix computes from `nixosConfigurations`, and what
// `nixfleet-release resolve` records of it in the artefact.
// ---------------------------------------------------------------------------------------------

/** One host's static result for one control; `observed` is the option's value as Nix rendered it. */
export const StaticResultSchema = Type.Object(
  { result: Enum(['pass', 'fail'] as const), observed: Type.String({ maxLength: 1024 }) },
  { additionalProperties: false },
);
export type StaticResult = Static<typeof StaticResultSchema>;

/**
 * The static compliance report (`lib.compliance.staticReport`, input of `resolve
 * --compliance-report`): the fleet's own controls it evaluated beside the built-in catalogue, and
 * per host per control id the result. Controls are checked by {@link mergeCatalogue} on use.
 */
export const StaticReportSchema = Type.Object(
  {
    schemaVersion: Type.Literal(1),
    controls: Type.Array(Type.Unknown(), { maxItems: 1000 }),
    hosts: Type.Record(Type.String({ minLength: 1 }), Type.Record(Type.String({ minLength: 1 }), StaticResultSchema)),
  },
  { additionalProperties: false, title: 'nixfleet static compliance report (lib.compliance.staticReport)' },
);
export type StaticReport = Static<typeof StaticReportSchema>;
export const parseStaticReport: (u: unknown) => Result<StaticReport, SchemaError> = schemaParser(StaticReportSchema, 'static compliance report');

/** A static control that failed on a host of a `permissive` channel: recorded in the signed artefact. */
export const StaticFailureSchema = Type.Object({ host: Type.String(), channel: Type.String(), control: Type.String(), observed: Type.String() });
export type StaticFailure = Static<typeof StaticFailureSchema>;

/**
 * The artefact's optional top-level `compliance` (our addition; a v1 reader ignores it), written
 * by `resolve` when it was given a static report: the fleet's own controls (the agents run their
 * runtime halves; they are covered by the release signature) and the static failures of
 * `permissive` channels.
 */
export const FleetComplianceSchema = Type.Object({ controls: Type.Array(ControlSchema), staticFailures: Type.Array(StaticFailureSchema) });
export type FleetCompliance = Static<typeof FleetComplianceSchema>;

/** The controls a host of a channel with `frameworks` is held to, built-ins then the fleet's own. */
export function controlsOf(frameworks: readonly string[], own: readonly Control[] | undefined): Control[] {
  return controlsForFrameworks(frameworks, own === undefined || own.length === 0 ? CATALOGUE : [...CATALOGUE, ...own]);
}
