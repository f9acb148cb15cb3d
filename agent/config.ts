/**
 * The agent's configuration (SPEC §6, STYLE §8): one `Config` type, frozen `DEFAULTS`, and
 * `resolveConfig(input)` that validates once at start-up and reports every bad field. Units are in
 * the names. Security limits are configuration with safe defaults.
 *
 * The config file is JSON (`nixfleet-agent run --config FILE`); the NixOS / nix-darwin modules
 * write it. Relative paths are refused: the agent runs from `/` as a service. Its shape is
 * {@link AgentConfigSchema} (TypeBox, the one validation kit; JSON Schema in
 * schemas/agent-config.schema.json); `Config` is derived from it.
 */
import { Type, type ObjectOptions, type Static, type TProperties } from '@sinclair/typebox';
import { err, ok, type Result } from '../protocol/result.ts';
import { compile, compileDefaults, type Issue } from '../protocol/validate.ts';
import { Enum, Nullable } from '../protocol/vocab.ts';

const PLATFORMS = ['nixos', 'darwin'] as const;
export type Platform = (typeof PLATFORMS)[number];

export const AGENT_SERVICE_PATHS: Readonly<Record<Platform, readonly string[]>> = Object.freeze({
  nixos: Object.freeze(['etc/systemd/system/nixfleet-agent.service']),
  darwin: Object.freeze(['Library/LaunchDaemons/org.nixfleet.agent.plist']),
});

/** Issue 14: how the agent reboots the machine (rebootPolicy automatic), per platform. */
export const REBOOT_COMMANDS: Readonly<Record<Platform, readonly string[]>> = Object.freeze({
  nixos: Object.freeze(['/run/current-system/sw/bin/systemctl', 'reboot']),
  darwin: Object.freeze(['/sbin/shutdown', '-r', 'now']),
});

export const DEFAULTS = Object.freeze({
  allowPlainHttp: false,
  trustFile: '/etc/nixfleet/trust.json',
  hostKeyFile: '/etc/ssh/ssh_host_ed25519_key',
  stateDir: '/var/lib/nixfleet',
  profilePath: '/nix/var/nix/profiles/system',
  currentSystemPath: '/run/current-system',
  bootedSystemPath: '/run/booted-system',
  bootIdFile: '/proc/sys/kernel/random/boot_id',
  substituters: [] as readonly string[],
  nixBinDir: null,
  pollIntervalSecs: 60,
  pollJitterPct: 20,
  maxBackoffFactor: 8,
  confirmDeadlineSecs: 120,
  retryIntervalSecs: 5,
  quarantineHours: 24,
  requestTimeoutSecs: 30,
  commandTimeoutSecs: 1800,
  maxArtifactBytes: 16 * 1024 * 1024,
  probes: [] as readonly ProbeConfig[],
  complianceIntervalSecs: 6 * 3600,
  complianceRoot: '/',
  logLevel: 'info' as const,
  metricsFile: null,
});

export type ConfigIssue = Issue;
export type ConfigError = { code: 'CONFIG_INVALID'; message: string; issues: ConfigIssue[] };

/** Values the caller supplies from the host when the file leaves them out. */
export type HostDefaults = { hostname: string; platform: Platform };

const AbsPath = (description: string, dflt?: string) =>
  Type.String({ minLength: 1, pattern: '^/', errorMessage: 'must be an absolute path', description, ...(dflt === undefined ? {} : { default: dflt }) });
const Secs = (min: number, max: number, dflt: number, description: string) => Type.Number({ minimum: min, maximum: max, default: dflt, description });
const Int = (min: number, max: number, dflt: number, description: string) => Type.Integer({ minimum: min, maximum: max, default: dflt, description });
const Strict = <P extends TProperties>(props: P, opts: ObjectOptions = {}) => Type.Object(props, { additionalProperties: false, ...opts });

const probeCommon = {
  name: Type.String({ minLength: 1 }),
  /** How often the probe runs in the background (its result goes into each check-in). */
  intervalSecs: Type.Number({ exclusiveMinimum: 0, default: 30, description: 'How often the probe runs in the background (its result goes into each check-in).' }),
  timeoutSecs: Type.Number({ exclusiveMinimum: 0, default: 10 }),
};

/** Local health probes (§6): run before every confirm and periodically for check-ins. */
export const ProbeConfigSchema = Type.Union([
  Strict({ kind: Type.Literal('systemd-failed-units'), ...probeCommon, ignore: Type.Array(Type.String(), { default: [], description: 'Units to disregard.' }) }),
  Strict({
    kind: Type.Literal('http'),
    ...probeCommon,
    url: Type.String({ pattern: '^https?://', errorMessage: 'must be an http(s) URL' }),
    expectStatus: Nullable(Type.Integer(), { default: null, description: 'Accepted status; null: 200–399.' }),
  }),
  Strict({ kind: Type.Literal('tcp'), ...probeCommon, host: Type.String({ default: '127.0.0.1' }), port: Type.Integer({ minimum: 1, maximum: 65535 }) }),
  Strict({ kind: Type.Literal('exec'), ...probeCommon, command: Type.Array(Type.String(), { minItems: 1, description: 'argv, no shell' }) }),
]);
export type ProbeConfig = Static<typeof ProbeConfigSchema>;

/**
 * The agent's config file. Fields with a `default` may be left out; `hostname` and `platform`
 * default to the machine's, `agentServicePaths` to {@link AGENT_SERVICE_PATHS} and `rebootCommand` to
 * {@link REBOOT_COMMANDS} of the platform.
 */
export const AgentConfigSchema = Strict(
  {
    hostname: Type.Optional(Type.String({ minLength: 1, description: 'Must equal the CN of the host certificate and the host name in the signed fleet; default: the machine host name.' })),
    cpUrl: Type.String({ minLength: 1, description: 'Base URL of the control plane, https://… (plain http:// only with allowPlainHttp).' }),
    cpUrls: Type.Array(Type.String({ minLength: 1 }), {
      default: [],
      description: 'Further control plane replicas (several CPs on one PostgreSQL), tried in order after cpUrl when the current one is unreachable or answers 502/503/504; the agent stays with the one that answers. Empty: cpUrl only (or a load balancer in front of the replicas).',
    }),
    allowPlainHttp: Type.Boolean({ default: DEFAULTS.allowPlainHttp }),
    tls: Strict({ certFile: AbsPath('Host client certificate (PEM).'), keyFile: AbsPath('Its private key (PEM).'), caFile: AbsPath('Fleet CA certificate (PEM).') }),
    trustFile: AbsPath('trust.json (SPEC §2.3): release keys and cacheKeys. Re-read on change.', DEFAULTS.trustFile),
    hostKeyFile: Nullable(AbsPath('The host Ed25519 key (OpenSSH or PKCS#8 PEM) that signs reports; null: unsigned.'), { default: DEFAULTS.hostKeyFile }),
    stateDir: AbsPath('State directory.', DEFAULTS.stateDir),
    profilePath: AbsPath('System profile.', DEFAULTS.profilePath),
    currentSystemPath: AbsPath('The running system.', DEFAULTS.currentSystemPath),
    bootedSystemPath: AbsPath('The booted system.', DEFAULTS.bootedSystemPath),
    bootIdFile: AbsPath('Where the id of the current boot is read (a new boot after a deferred activation is told apart by it).', DEFAULTS.bootIdFile),
    rebootCommand: Type.Optional(
      Type.Array(Type.String({ minLength: 1 }), {
        minItems: 1,
        description:
          "argv (no shell) the agent runs to reboot into an activation deferred to the next boot, when the channel's signed rebootPolicy is automatic (issue 14); default: REBOOT_COMMANDS of the platform.",
      }),
    ),
    platform: Type.Optional(Enum(PLATFORMS, { description: 'Default: the platform the agent runs on.' })),
    substituters: Type.Array(Type.String({ minLength: 1 }), { default: [], description: "Binary caches to realise closures from; empty: Nix's configured substituters." }),
    nixBinDir: Nullable(AbsPath('Directory holding nix-store / nix-env; null: PATH.'), { default: DEFAULTS.nixBinDir }),
    agentServicePaths: Type.Optional(
      Type.Array(Type.String({ minLength: 1 }), { description: "Paths inside a system closure that prove it contains the agent's own service (agent guard); default: AGENT_SERVICE_PATHS of the platform." }),
    ),
    pollIntervalSecs: Secs(1, 86_400, DEFAULTS.pollIntervalSecs, 'Check-in interval.'),
    pollJitterPct: Int(0, 50, DEFAULTS.pollJitterPct, '± percentage of random jitter on every poll interval.'),
    maxBackoffFactor: Int(1, 64, DEFAULTS.maxBackoffFactor, 'Exponential backoff on errors, capped at this multiple of the poll interval.'),
    confirmDeadlineSecs: Secs(1, 86_400, DEFAULTS.confirmDeadlineSecs, "Our own cap on the confirm window, from the start of the switch (the CP's deadline also applies)."),
    retryIntervalSecs: Secs(0.05, 3600, DEFAULTS.retryIntervalSecs, 'Pause between two probe / confirm attempts inside the confirm window.'),
    quarantineHours: Secs(0, 24 * 365, DEFAULTS.quarantineHours, 'How long a closure that failed here is refused.'),
    requestTimeoutSecs: Secs(1, 3600, DEFAULTS.requestTimeoutSecs, 'Per request to the CP.'),
    commandTimeoutSecs: Secs(1, 86_400, DEFAULTS.commandTimeoutSecs, 'Nix realise / switch scripts are killed after this.'),
    maxArtifactBytes: Int(1024, 1024 * 1024 * 1024, DEFAULTS.maxArtifactBytes, 'Size limit of the signed artefact (STYLE §5).'),
    probes: Type.Array(ProbeConfigSchema, { default: [] }),
    complianceIntervalSecs: Secs(
      60,
      7 * 86_400,
      DEFAULTS.complianceIntervalSecs,
      "Issue 15: how often the runtime compliance checks of the channel's frameworks run besides after each activation (before its confirm).",
    ),
    complianceRoot: AbsPath('Issue 15: the root the file / world-writable compliance checks read under (/ on a host).', DEFAULTS.complianceRoot),
    logLevel: Enum(['debug', 'info', 'warn', 'error'] as const, { default: DEFAULTS.logLevel, description: 'JSON log lines on stderr at this level and above (NIXFLEET_LOG_LEVEL overrides).' }),
    metricsFile: Nullable(AbsPath('Prometheus text file rewritten after every cycle (for node_exporter\'s textfile collector, e.g. /var/lib/prometheus-node-exporter/nixfleet.prom); null: none.'), { default: DEFAULTS.metricsFile }),
    enrol: Nullable(
      Strict({
        url: Type.String({ pattern: '^https://', errorMessage: 'must be an https:// URL', description: "The control plane's enrolment listener (no client certificate)." }),
        tokenFile: Nullable(AbsPath('A one-time bootstrap token (nixfleet enroll token) for a host whose SSH host key the fleet does not declare yet; null: enrol with hostKeyFile.'), { default: null }),
        renewAtFraction: Type.Number({ exclusiveMinimum: 0, maximum: 0.95, default: 0.5, description: 'Renew once this fraction of the certificate lifetime has passed (default: half-life).' }),
      }),
      { default: null, description: 'Issue 16: with no certificate in tls.certFile, enrol (new ECDSA P-256 key); renew before expiry. null: the certificate is managed by hand.' },
    ),
  },
  { title: 'nixfleet-agent configuration (nixfleet-agent run --config FILE)' },
);

type ConfigFile = Static<typeof AgentConfigSchema>;
/** The resolved configuration: the file, with the machine's defaults filled in. */
export type Config = Omit<ConfigFile, 'hostname' | 'platform' | 'agentServicePaths' | 'rebootCommand'> & Required<Pick<ConfigFile, 'hostname' | 'platform' | 'agentServicePaths' | 'rebootCommand'>>;

const validator = compile(AgentConfigSchema, { unknownField: 'unknown setting' });
const withDefaults = compileDefaults(AgentConfigSchema);

/** Validates a parsed config file (unknown) into a `Config`, listing every bad field. */
export function resolveConfig(input: unknown, host: HostDefaults): Result<Config, ConfigError> {
  if (typeof input !== 'object' || input === null || Array.isArray(input)) {
    return err({ code: 'CONFIG_INVALID', message: 'config must be a JSON object', issues: [{ path: '$', message: 'must be an object' }] });
  }
  const c = withDefaults(input);
  const issues = validator.check(c) ? [] : validator.issues(c);
  const cpUrl = (c as { cpUrl?: unknown }).cpUrl;
  const cpUrls = (c as { cpUrls?: unknown }).cpUrls;
  const urls: [string, unknown][] = [['$.cpUrl', cpUrl], ...(Array.isArray(cpUrls) ? cpUrls.map((v, i): [string, unknown] => [`$.cpUrls[${i}]`, v]) : [])];
  for (const [path, url] of urls) {
    if (typeof url !== 'string' || url === '') continue;
    // SPEC §5: mutual TLS; plain HTTP only when explicitly allowed (tests, a local proxy).
    let u: URL | null = null;
    try {
      u = new URL(url);
    } catch {
      issues.push({ path, message: 'not a URL' });
    }
    if (u !== null && u.protocol !== 'https:' && !((c as { allowPlainHttp?: unknown }).allowPlainHttp === true && u.protocol === 'http:')) issues.push({ path, message: 'must be https:// (mutual TLS)' });
  }
  if (issues.length > 0 || !validator.check(c)) {
    return err({ code: 'CONFIG_INVALID', message: issues.map((i) => `${i.path}: ${i.message}`).join('; '), issues });
  }
  // Defaults that depend on the machine, not on the schema.
  const { hostname = host.hostname, platform = host.platform } = c;
  const agentServicePaths = c.agentServicePaths ?? [...AGENT_SERVICE_PATHS[platform]];
  const rebootCommand = c.rebootCommand ?? [...REBOOT_COMMANDS[platform]];
  const trim = (u: string): string => u.replace(/\/+$/, '');
  return ok(Object.freeze({ ...c, hostname, platform, agentServicePaths, rebootCommand, cpUrl: trim(c.cpUrl), cpUrls: c.cpUrls.map(trim) }));
}
