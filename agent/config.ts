/**
 * The agent's configuration (SPEC §6, STYLE §8): one `Config` type, frozen `DEFAULTS`, and
 * `resolveConfig(input)` that validates once at start-up and reports every bad field. Units are in
 * the names. Security limits are configuration with safe defaults.
 *
 * The config file is JSON (`nixfleet-agent run --config FILE`); the NixOS / nix-darwin modules
 * write it. Relative paths are refused: the agent runs from `/` as a service.
 */
import { err, ok, type Result } from '../protocol/result.ts';

export type Platform = 'nixos' | 'darwin';

type ProbeCommon = {
  name: string;
  /** How often the probe runs in the background (its result goes into each check-in). */
  intervalSecs: number;
  timeoutSecs: number;
};

/** Local health probes (§6): run before every confirm and periodically for check-ins. */
export type ProbeConfig =
  | (ProbeCommon & { kind: 'systemd-failed-units'; /** units to disregard */ ignore: string[] })
  | (ProbeCommon & { kind: 'http'; url: string; /** accepted statuses, default 200–399 */ expectStatus: number | null })
  | (ProbeCommon & { kind: 'tcp'; host: string; port: number })
  | (ProbeCommon & { kind: 'exec'; /** argv, no shell */ command: string[] });

export type Config = {
  /** Must equal the CN of the host certificate and the host's name in the signed fleet. */
  hostname: string;
  /** Base URL of the control plane, `https://…` (plain `http://` only with `allowPlainHttp`). */
  cpUrl: string;
  allowPlainHttp: boolean;
  tls: { certFile: string; keyFile: string; caFile: string };
  /** `trust.json` (§2.3): release keys and `cacheKeys`. Re-read on change. */
  trustFile: string;
  /** The host's Ed25519 key (OpenSSH private key, or PKCS#8 PEM) that signs reports; null: unsigned. */
  hostKeyFile: string | null;
  stateDir: string;
  profilePath: string;
  /** The running system (`/run/current-system`) and the booted one (`/run/booted-system`). */
  currentSystemPath: string;
  bootedSystemPath: string;
  platform: Platform;
  /** Binary caches to realise closures from; empty: Nix's configured substituters. */
  substituters: string[];
  /** Directory holding `nix-store` / `nix-env`; null: `PATH`. */
  nixBinDir: string | null;
  /** Paths inside a system closure that prove it contains the agent's own service (agent guard). */
  agentServicePaths: string[];
  pollIntervalSecs: number;
  /** ± percentage of random jitter on every poll interval. */
  pollJitterPct: number;
  /** Exponential backoff on errors, capped at this multiple of the poll interval. */
  maxBackoffFactor: number;
  /** Our own cap on the confirm window, from the start of the switch (the CP's deadline also applies). */
  confirmDeadlineSecs: number;
  /** Pause between two probe / confirm attempts inside the confirm window. */
  retryIntervalSecs: number;
  quarantineHours: number;
  requestTimeoutSecs: number;
  /** Nix realise / switch scripts are killed after this. */
  commandTimeoutSecs: number;
  maxArtifactBytes: number;
  probes: ProbeConfig[];
};

export const AGENT_SERVICE_PATHS: Readonly<Record<Platform, readonly string[]>> = Object.freeze({
  nixos: Object.freeze(['etc/systemd/system/nixfleet-agent.service']),
  darwin: Object.freeze(['Library/LaunchDaemons/org.nixfleet.agent.plist']),
});

export const DEFAULTS = Object.freeze({
  allowPlainHttp: false,
  trustFile: '/etc/nixfleet/trust.json',
  hostKeyFile: '/etc/ssh/ssh_host_ed25519_key',
  stateDir: '/var/lib/nixfleet',
  profilePath: '/nix/var/nix/profiles/system',
  currentSystemPath: '/run/current-system',
  bootedSystemPath: '/run/booted-system',
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
});

export type ConfigIssue = { path: string; message: string };
export type ConfigError = { code: 'CONFIG_INVALID'; message: string; issues: ConfigIssue[] };

/** Values the caller supplies from the host when the file leaves them out. */
export type HostDefaults = { hostname: string; platform: Platform };

/** Validates a parsed config file (unknown) into a `Config`, listing every bad field. */
export function resolveConfig(input: unknown, host: HostDefaults): Result<Config, ConfigError> {
  const issues: ConfigIssue[] = [];
  const bad = (path: string, message: string) => issues.push({ path, message });
  if (typeof input !== 'object' || input === null || Array.isArray(input)) {
    return err({ code: 'CONFIG_INVALID', message: 'config must be a JSON object', issues: [{ path: '', message: 'not an object' }] });
  }
  const o = input as Record<string, unknown>;
  const known = new Set([
    'hostname', 'cpUrl', 'allowPlainHttp', 'tls', 'trustFile', 'hostKeyFile', 'stateDir', 'profilePath', 'currentSystemPath',
    'bootedSystemPath', 'platform', 'substituters', 'nixBinDir', 'agentServicePaths', 'pollIntervalSecs', 'pollJitterPct',
    'maxBackoffFactor', 'confirmDeadlineSecs', 'retryIntervalSecs', 'quarantineHours', 'requestTimeoutSecs', 'commandTimeoutSecs',
    'maxArtifactBytes', 'probes',
  ]);
  for (const k of Object.keys(o)) if (!known.has(k)) bad(`/${k}`, 'unknown setting');

  const str = (k: string, dflt?: string): string => {
    const v = o[k];
    if (v === undefined && dflt !== undefined) return dflt;
    if (typeof v !== 'string' || v.length === 0) {
      bad(`/${k}`, 'required non-empty string');
      return '';
    }
    return v;
  };
  const absPath = (path: string, v: string): string => {
    if (v !== '' && !v.startsWith('/')) bad(path, 'must be an absolute path');
    return v;
  };
  const num = (k: string, dflt: number, min: number, max: number, int = true): number => {
    const v = o[k];
    if (v === undefined) return dflt;
    if (typeof v !== 'number' || !Number.isFinite(v) || (int && !Number.isInteger(v)) || v < min || v > max) {
      bad(`/${k}`, `must be ${int ? 'an integer' : 'a number'} in [${min}, ${max}]`);
      return dflt;
    }
    return v;
  };
  const bool = (k: string, dflt: boolean): boolean => {
    const v = o[k];
    if (v === undefined) return dflt;
    if (typeof v !== 'boolean') {
      bad(`/${k}`, 'must be a boolean');
      return dflt;
    }
    return v;
  };
  const strList = (k: string, dflt: readonly string[]): string[] => {
    const v = o[k];
    if (v === undefined) return [...dflt];
    if (!Array.isArray(v) || v.some((x) => typeof x !== 'string' || x.length === 0)) {
      bad(`/${k}`, 'must be a list of non-empty strings');
      return [...dflt];
    }
    return v as string[];
  };

  const hostname = str('hostname', host.hostname);
  const cpUrl = str('cpUrl');
  const allowPlainHttp = bool('allowPlainHttp', DEFAULTS.allowPlainHttp);
  if (cpUrl !== '') {
    let u: URL | null = null;
    try {
      u = new URL(cpUrl);
    } catch {
      bad('/cpUrl', 'not a URL');
    }
    if (u !== null && u.protocol !== 'https:' && !(allowPlainHttp && u.protocol === 'http:')) bad('/cpUrl', 'must be https:// (mutual TLS)');
  }
  let tls = { certFile: '', keyFile: '', caFile: '' };
  const t = o['tls'];
  if (typeof t !== 'object' || t === null || Array.isArray(t)) bad('/tls', 'required: {certFile, keyFile, caFile}');
  else {
    const tt = t as Record<string, unknown>;
    for (const k of ['certFile', 'keyFile', 'caFile'] as const) {
      const v = tt[k];
      if (typeof v !== 'string' || !v.startsWith('/')) bad(`/tls/${k}`, 'required absolute path');
      else tls = { ...tls, [k]: v };
    }
  }
  const platformV = o['platform'] ?? host.platform;
  if (platformV !== 'nixos' && platformV !== 'darwin') bad('/platform', 'must be "nixos" or "darwin"');
  const platform: Platform = platformV === 'darwin' ? 'darwin' : 'nixos';
  let hostKeyFile: string | null = DEFAULTS.hostKeyFile;
  if (o['hostKeyFile'] === null) hostKeyFile = null;
  else if (o['hostKeyFile'] !== undefined) hostKeyFile = absPath('/hostKeyFile', str('hostKeyFile'));
  let nixBinDir: string | null = DEFAULTS.nixBinDir;
  if (o['nixBinDir'] !== undefined && o['nixBinDir'] !== null) nixBinDir = absPath('/nixBinDir', str('nixBinDir'));

  const probes = parseProbes(o['probes'], bad);
  const config: Config = {
    hostname,
    cpUrl: cpUrl.replace(/\/+$/, ''),
    allowPlainHttp,
    tls,
    trustFile: absPath('/trustFile', str('trustFile', DEFAULTS.trustFile)),
    hostKeyFile,
    stateDir: absPath('/stateDir', str('stateDir', DEFAULTS.stateDir)),
    profilePath: absPath('/profilePath', str('profilePath', DEFAULTS.profilePath)),
    currentSystemPath: absPath('/currentSystemPath', str('currentSystemPath', DEFAULTS.currentSystemPath)),
    bootedSystemPath: absPath('/bootedSystemPath', str('bootedSystemPath', DEFAULTS.bootedSystemPath)),
    platform,
    substituters: strList('substituters', DEFAULTS.substituters),
    nixBinDir,
    agentServicePaths: strList('agentServicePaths', AGENT_SERVICE_PATHS[platform]),
    pollIntervalSecs: num('pollIntervalSecs', DEFAULTS.pollIntervalSecs, 1, 86_400, false),
    pollJitterPct: num('pollJitterPct', DEFAULTS.pollJitterPct, 0, 50),
    maxBackoffFactor: num('maxBackoffFactor', DEFAULTS.maxBackoffFactor, 1, 64),
    confirmDeadlineSecs: num('confirmDeadlineSecs', DEFAULTS.confirmDeadlineSecs, 1, 86_400, false),
    retryIntervalSecs: num('retryIntervalSecs', DEFAULTS.retryIntervalSecs, 0.05, 3600, false),
    quarantineHours: num('quarantineHours', DEFAULTS.quarantineHours, 0, 24 * 365, false),
    requestTimeoutSecs: num('requestTimeoutSecs', DEFAULTS.requestTimeoutSecs, 1, 3600, false),
    commandTimeoutSecs: num('commandTimeoutSecs', DEFAULTS.commandTimeoutSecs, 1, 86_400, false),
    maxArtifactBytes: num('maxArtifactBytes', DEFAULTS.maxArtifactBytes, 1024, 1024 * 1024 * 1024),
    probes,
  };
  if (issues.length > 0) {
    return err({ code: 'CONFIG_INVALID', message: issues.map((i) => `${i.path || '/'}: ${i.message}`).join('; '), issues });
  }
  return ok(Object.freeze(config));
}

function parseProbes(v: unknown, bad: (path: string, message: string) => void): ProbeConfig[] {
  if (v === undefined) return [...DEFAULTS.probes];
  if (!Array.isArray(v)) {
    bad('/probes', 'must be a list');
    return [];
  }
  const out: ProbeConfig[] = [];
  v.forEach((p: unknown, i) => {
    const at = `/probes/${i}`;
    if (typeof p !== 'object' || p === null) return bad(at, 'must be an object');
    const o = p as Record<string, unknown>;
    const name = typeof o['name'] === 'string' && o['name'].length > 0 ? o['name'] : null;
    if (name === null) bad(`${at}/name`, 'required');
    const secs = (k: string, d: number) => {
      const x = o[k];
      if (x === undefined) return d;
      if (typeof x !== 'number' || !(x > 0)) {
        bad(`${at}/${k}`, 'must be a positive number');
        return d;
      }
      return x;
    };
    const common = { name: name ?? '', intervalSecs: secs('intervalSecs', 30), timeoutSecs: secs('timeoutSecs', 10) };
    switch (o['kind']) {
      case 'systemd-failed-units': {
        const ignore = o['ignore'] ?? [];
        if (!Array.isArray(ignore) || ignore.some((x) => typeof x !== 'string')) bad(`${at}/ignore`, 'must be a list of unit names');
        out.push({ ...common, kind: 'systemd-failed-units', ignore: Array.isArray(ignore) ? (ignore as string[]) : [] });
        break;
      }
      case 'http': {
        const url = o['url'];
        if (typeof url !== 'string' || !/^https?:\/\//.test(url)) bad(`${at}/url`, 'required http(s) URL');
        const es = o['expectStatus'] ?? null;
        if (es !== null && (typeof es !== 'number' || !Number.isInteger(es))) bad(`${at}/expectStatus`, 'must be an integer');
        out.push({ ...common, kind: 'http', url: String(url), expectStatus: typeof es === 'number' ? es : null });
        break;
      }
      case 'tcp': {
        const host = o['host'] ?? '127.0.0.1';
        const port = o['port'];
        if (typeof host !== 'string') bad(`${at}/host`, 'must be a string');
        if (typeof port !== 'number' || !Number.isInteger(port) || port < 1 || port > 65535) bad(`${at}/port`, 'required port number');
        out.push({ ...common, kind: 'tcp', host: String(host), port: Number(port) });
        break;
      }
      case 'exec': {
        const cmd = o['command'];
        if (!Array.isArray(cmd) || cmd.length === 0 || cmd.some((x) => typeof x !== 'string')) bad(`${at}/command`, 'required argv list');
        out.push({ ...common, kind: 'exec', command: Array.isArray(cmd) ? (cmd as string[]) : [] });
        break;
      }
      default:
        bad(`${at}/kind`, 'must be systemd-failed-units, http, tcp or exec');
    }
  });
  return out;
}
