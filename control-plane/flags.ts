/**
 * `nixfleet-control-plane serve|check-config` flags (issue 18): every setting a first control plane
 * needs is a flag, so `--config FILE` is optional. Flags override the file; without a file, a
 * required setting not given is a usage error naming its flag (exit 2, the binaries' shared convention in
 * io/program-args.ts), as is a flag value of the wrong shape. Pure: reads no file.
 */
import { flagsHelp } from '../io/program-args.ts';
import { err, ok, type Result } from '../protocol/result.ts';

type Kind = 'string' | 'port' | 'log-level' | 'source-dir';
export type CpFlag = { flag: string; arg: string; key: string; kind: Kind; required: boolean; help: string };

/** The settings flags, in --help order; `key` is the config file's setting. */
export const CP_FLAGS: readonly CpFlag[] = Object.freeze([
  { flag: 'tls-cert', arg: 'FILE', key: 'tlsCertFile', kind: 'string', required: true, help: 'server certificate, PEM (nixfleet mint-server-cert)' },
  { flag: 'tls-key', arg: 'FILE', key: 'tlsKeyFile', kind: 'string', required: true, help: 'its private key, PEM' },
  { flag: 'client-ca', arg: 'FILE', key: 'clientCaFile', kind: 'string', required: true, help: 'fleet CA certificate (ca.pem); client certificates must chain to it' },
  { flag: 'trust-file', arg: 'FILE', key: 'trustFile', kind: 'string', required: true, help: 'trust.json: the release key(s) (nixfleet-release init)' },
  { flag: 'source-dir', arg: 'DIR', key: 'source', kind: 'source-dir', required: true, help: 'artefact source: DIR/fleet.resolved.json{,.sig} (url / git sources: --config)' },
  { flag: 'db', arg: 'PATH', key: 'dbPath', kind: 'string', required: true, help: 'SQLite database (WAL); may be deleted: the CP rebuilds from the source' },
  { flag: 'listen-host', arg: 'HOST', key: 'listenHost', kind: 'string', required: false, help: 'default 127.0.0.1' },
  { flag: 'listen-port', arg: 'PORT', key: 'listenPort', kind: 'port', required: false, help: 'default 8443 (0: an ephemeral port)' },
  { flag: 'log-level', arg: 'LEVEL', key: 'logLevel', kind: 'log-level', required: false, help: 'debug | info | warn | error (NIXFLEET_LOG_LEVEL overrides; silent too)' },
]);

/** A usage error (exit 2): every bad or missing flag at once. */
export type FlagError = { code: 'USAGE'; message: string };

const LEVELS = ['debug', 'info', 'warn', 'error'] as const;

/** One `--flag VALUE` as the config setting's value, or the usage message. */
function flagValue(f: CpFlag, v: string): Result<unknown, string> {
  if (v === '') return err(`--${f.flag} needs a ${f.arg}`);
  switch (f.kind) {
    case 'port': {
      const n = /^[0-9]{1,5}$/.test(v) ? Number(v) : NaN;
      return Number.isInteger(n) && n <= 65535 ? ok(n) : err(`--${f.flag} must be a port number 0–65535, not ${JSON.stringify(v)}`);
    }
    case 'log-level':
      return (LEVELS as readonly string[]).includes(v) ? ok(v) : err(`--${f.flag} must be one of ${LEVELS.join(', ')}, not ${JSON.stringify(v)}`);
    case 'source-dir':
      return ok({ type: 'dir', dir: v });
    case 'string':
      return ok(v);
  }
}

/**
 * The configuration `resolveConfig` gets: the file's settings (or none without `--config`) with the
 * flags over them. Errors are usage errors (exit 2), naming the flag and, for a missing setting,
 * the config key that could give it instead.
 */
export function mergeCpFlags(file: Record<string, unknown> | null, flags: Readonly<Record<string, string | undefined>>): Result<Record<string, unknown>, FlagError> {
  const out: Record<string, unknown> = { ...(file ?? {}) };
  const problems: string[] = [];
  for (const f of CP_FLAGS) {
    const v = flags[f.flag];
    if (v === undefined) continue;
    const r = flagValue(f, v);
    if (r.ok) out[f.key] = r.value;
    else problems.push(r.error);
  }
  // With --config, a setting the file lacks is the file's error (exit 1, every bad field listed).
  for (const f of file === null ? CP_FLAGS : []) {
    if (f.required && out[f.key] === undefined && flags[f.flag] === undefined) {
      problems.push(`missing --${f.flag} ${f.arg}`);
    }
  }
  return problems.length === 0 ? ok(out) : err({ code: 'USAGE', message: problems.join('; ') });
}

/** The "Flags" lines of --help, aligned. */
export function cpFlagsHelp(): string {
  return flagsHelp(CP_FLAGS, 21);
}
