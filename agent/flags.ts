/**
 * `nixfleet-agent run|once` flags (issue 18): the settings a first host needs are flags, so
 * `--config FILE` is optional. Flags override the file; without a file, a required setting not given
 * is a usage error naming its flag (exit 2, the binaries' shared convention in io/program-args.ts), as
 * is a flag value of the wrong shape. Paths given as flags may be relative (to the working
 * directory; the file's must be absolute, a service runs from /). Pure but for `cwd`.
 */
import { isAbsolute, resolve } from 'node:path';
import { flagsHelp } from '../io/program-args.ts';
import { err, ok, type Result } from '../protocol/result.ts';

type Kind = 'path' | 'path-or-none' | 'url' | 'string' | 'secs' | 'list';
/** `key`: the setting in the config file; `tls.certFile` is a field of `tls`. */
export type AgentFlag = { flag: string; arg: string; key: string; kind: Kind; required: boolean; help: string };

export const AGENT_FLAGS: readonly AgentFlag[] = Object.freeze([
  { flag: 'cp-url', arg: 'URL', key: 'cpUrl', kind: 'url', required: true, help: 'the control plane, https://cp.example:8443' },
  { flag: 'cert', arg: 'FILE', key: 'tls.certFile', kind: 'path', required: true, help: 'host client certificate, PEM (nixfleet mint-host-cert)' },
  { flag: 'key', arg: 'FILE', key: 'tls.keyFile', kind: 'path', required: true, help: 'its private key, PEM' },
  { flag: 'ca', arg: 'FILE', key: 'tls.caFile', kind: 'path', required: true, help: 'fleet CA certificate (ca.pem)' },
  { flag: 'hostname', arg: 'NAME', key: 'hostname', kind: 'string', required: false, help: 'the certificate CN and fleet host name; default: the machine host name' },
  { flag: 'trust-file', arg: 'FILE', key: 'trustFile', kind: 'path', required: false, help: 'trust.json; default /etc/nixfleet/trust.json' },
  { flag: 'host-key', arg: 'FILE', key: 'hostKeyFile', kind: 'path-or-none', required: false, help: 'Ed25519 key signing reports ("none": unsigned); default /etc/ssh/ssh_host_ed25519_key' },
  { flag: 'substituter', arg: 'URL', key: 'substituters', kind: 'list', required: false, help: "binary cache to realise from (repeatable); default: Nix's own" },
  { flag: 'state-dir', arg: 'DIR', key: 'stateDir', kind: 'path', required: false, help: 'default /var/lib/nixfleet' },
  { flag: 'profile', arg: 'PATH', key: 'profilePath', kind: 'path', required: false, help: 'system profile; default /nix/var/nix/profiles/system' },
  { flag: 'current-system', arg: 'PATH', key: 'currentSystemPath', kind: 'path', required: false, help: 'the running system; default /run/current-system' },
  { flag: 'booted-system', arg: 'PATH', key: 'bootedSystemPath', kind: 'path', required: false, help: 'the booted system; default /run/booted-system' },
  { flag: 'poll-interval-secs', arg: 'N', key: 'pollIntervalSecs', kind: 'secs', required: false, help: 'check-in interval (run); default 60' },
]);

/** A usage error (exit 2): every bad or missing flag at once. */
export type FlagError = { code: 'USAGE'; message: string };

type Values = Readonly<Record<string, string | boolean | string[] | boolean[] | undefined>>;

function flagValue(f: AgentFlag, raw: string | string[], cwd: string): Result<unknown, string> {
  if (f.kind === 'list') {
    const list = Array.isArray(raw) ? raw : [raw];
    const bad = list.find((v) => v === '');
    return bad === undefined ? ok(list) : err(`--${f.flag} needs a ${f.arg}`);
  }
  const v = Array.isArray(raw) ? raw[raw.length - 1]! : raw;
  if (v === '') return err(`--${f.flag} needs a ${f.arg}`);
  switch (f.kind) {
    case 'path':
      return ok(isAbsolute(v) ? v : resolve(cwd, v));
    case 'path-or-none':
      return ok(v === 'none' ? null : isAbsolute(v) ? v : resolve(cwd, v));
    case 'url': {
      let u: URL | null = null;
      try {
        u = new URL(v);
      } catch {
        /* reported below */
      }
      return u !== null && u.protocol === 'https:' ? ok(v) : err(`--${f.flag} must be an https:// URL (mutual TLS), not ${JSON.stringify(v)}`);
    }
    case 'secs': {
      const n = /^[0-9]+(\.[0-9]+)?$/.test(v) ? Number(v) : NaN;
      return n >= 1 && n <= 86_400 ? ok(n) : err(`--${f.flag} must be a number of seconds from 1 to 86400, not ${JSON.stringify(v)}`);
    }
    case 'string':
      return ok(v);
  }
}

/**
 * The configuration `resolveConfig` gets: the file's settings (or none without `--config`) with the
 * flags over them (`tls` field by field).
 */
export function mergeAgentFlags(file: Record<string, unknown> | null, values: Values, cwd: string): Result<Record<string, unknown>, FlagError> {
  const out: Record<string, unknown> = { ...(file ?? {}) };
  const fileTls = out['tls'];
  const tls: Record<string, unknown> = typeof fileTls === 'object' && fileTls !== null && !Array.isArray(fileTls) ? { ...(fileTls as Record<string, unknown>) } : {};
  const problems: string[] = [];
  for (const f of AGENT_FLAGS) {
    const raw = values[f.flag];
    if (raw === undefined || typeof raw === 'boolean' || (Array.isArray(raw) && raw.some((x) => typeof x !== 'string'))) continue;
    const r = flagValue(f, raw as string | string[], cwd);
    if (!r.ok) problems.push(r.error);
    else if (f.key.startsWith('tls.')) tls[f.key.slice(4)] = r.value;
    else out[f.key] = r.value;
  }
  if (AGENT_FLAGS.some((f) => f.key.startsWith('tls.') && values[f.flag] !== undefined)) out['tls'] = tls;
  // With --config, a setting the file lacks is the file's error (exit 1, every bad field listed).
  for (const f of file === null ? AGENT_FLAGS : []) {
    if (!f.required || values[f.flag] !== undefined) continue; // given with a bad value: reported above
    const present = f.key.startsWith('tls.') ? tls[f.key.slice(4)] !== undefined : out[f.key] !== undefined;
    if (!present) problems.push(`missing --${f.flag} ${f.arg}`);
  }
  return problems.length === 0 ? ok(out) : err({ code: 'USAGE', message: problems.join('; ') });
}

/** The flags for `parseProgramArgs`. */
export function agentFlagOptions(): Record<string, { type: 'string'; multiple?: boolean }> {
  return Object.fromEntries(AGENT_FLAGS.map((f) => [f.flag, f.kind === 'list' ? { type: 'string' as const, multiple: true } : { type: 'string' as const }]));
}

/** The "Flags" lines of --help, aligned. */
export function agentFlagsHelp(): string {
  return flagsHelp(AGENT_FLAGS, 24);
}
