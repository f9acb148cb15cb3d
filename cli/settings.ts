/**
 * Settings of the `nixfleet` CLI (SPEC §7): each is read from its flag, then its `NIXFLEET_*`
 * environment variable, then the config file (`$XDG_CONFIG_HOME/nixfleet/config.json`, else
 * `$HOME/.config/nixfleet/config.json`, or `--config` / `NIXFLEET_CONFIG`), then its default.
 *
 * Relative paths are resolved against the working directory for flags and environment, and
 * against the config file's own directory for the file (so a config file can be moved with its
 * certificates).
 */
import { Type } from '@sinclair/typebox';
import { readFileSync } from 'node:fs';
import { dirname, isAbsolute, join, resolve } from 'node:path';
import type { Result } from '../protocol/result.ts';
import { err, ok } from '../protocol/result.ts';
import { parseJsonStrict } from '../protocol/jcs.ts';
import { compile } from '../protocol/validate.ts';
// Types only: framework.ts imports values from here, so a value import back would be a cycle.
import type { CliError, FlagSpec, FlagType, FlagValue, Io } from './framework.ts';

type SettingSpec = {
  type: 'string' | 'int';
  placeholder: string;
  description: string;
  /** A filesystem path: resolved to absolute against its source. */
  path: boolean;
  default?: FlagValue;
};

export const SETTINGS = Object.freeze({
  url: { type: 'string', placeholder: 'URL', path: false, description: 'Control plane base URL, e.g. https://cp.example.org:8443.' },
  cert: { type: 'string', placeholder: 'FILE', path: true, description: 'Operator client certificate (PEM, OU=operator).' },
  key: { type: 'string', placeholder: 'FILE', path: true, description: 'Private key of the operator certificate (PEM).' },
  ca: { type: 'string', placeholder: 'FILE', path: true, description: 'Fleet CA certificate (PEM) that issued the CP server certificate.' },
  timeoutSecs: { type: 'int', placeholder: 'N', path: false, default: 10, description: 'Give up on the CP after N seconds.' },
  pkiDir: { type: 'string', placeholder: 'DIR', path: true, description: 'Directory holding the fleet CA (ca.pem, ca.key); stays on the operator machine.' },
} satisfies Record<string, SettingSpec>) as Readonly<Record<'url' | 'cert' | 'key' | 'ca' | 'timeoutSecs' | 'pkiDir', SettingSpec>>;

export type SettingName = keyof typeof SETTINGS;
export const SETTING_NAMES = Object.keys(SETTINGS) as SettingName[];

/** `timeoutSecs` → `timeout-secs`. */
export function settingFlagName(s: SettingName): string {
  return s.replace(/[A-Z]/g, (c) => '-' + c.toLowerCase());
}

/** `timeoutSecs` → `NIXFLEET_TIMEOUT_SECS`. */
export function settingEnvName(s: SettingName): string {
  return 'NIXFLEET_' + s.replace(/[A-Z]/g, (c) => '_' + c).toUpperCase();
}

/** Where the config file lives when neither `--config` nor `NIXFLEET_CONFIG` says. */
export function defaultConfigPath(env: Io['env']): string | null {
  const xdg = env['XDG_CONFIG_HOME'];
  if (xdg && isAbsolute(xdg)) return join(xdg, 'nixfleet', 'config.json');
  const home = env['HOME'];
  if (home) return join(home, '.config', 'nixfleet', 'config.json');
  return null;
}

export type ConfigFile = Partial<Record<SettingName, string | number>>;

/**
 * The config file (`config.json`), derived from {@link SETTINGS}: every setting optional, nothing
 * else allowed. JSON Schema in schemas/cli-config.schema.json.
 */
export const CliConfigSchema = Type.Object(
  Object.fromEntries(
    SETTING_NAMES.map((n) => {
      const s = SETTINGS[n];
      const opts = { description: s.description, ...(s.default === undefined ? {} : { default: s.default }) };
      return [n, Type.Optional(s.type === 'int' ? Type.Integer({ minimum: 0, maximum: Number.MAX_SAFE_INTEGER, ...opts }) : Type.String(opts))];
    }),
  ),
  { additionalProperties: false, title: 'nixfleet CLI settings (~/.config/nixfleet/config.json)' },
);

const configFile = compile(CliConfigSchema, { unknownField: `unknown setting (known: ${SETTING_NAMES.join(', ')})` });

/** Read and validate the config file. A missing file at the *default* path is no error. */
export function loadConfigFile(path: string, explicit: boolean): Result<ConfigFile | null, CliError> {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT' && !explicit) return ok(null);
    return err({ code: 'USAGE', message: `cannot read config file ${path}: ${(e as NodeJS.ErrnoException).code ?? String(e)}` });
  }
  const json = parseJsonStrict(text, { maxBytes: 1024 * 1024 });
  if (!json.ok) return err({ code: 'USAGE', message: `config file ${path} is not valid JSON (${json.error.message})` });
  const data = json.value;
  if (!configFile.check(data)) {
    return err({ code: 'USAGE', message: `config file ${path}: ${configFile.issues(data).map((i) => `${i.path}: ${i.message}`).join('; ')}` });
  }
  return ok(data);
}

/**
 * Turn raw argv flags into typed values, filling setting-backed flags from env and config file,
 * and checking `required` flags. The config file is read only if some setting is still missing.
 */
export function resolveFlags(
  flags: readonly FlagSpec[],
  raw: Readonly<Record<string, string | boolean>>,
  io: Pick<Io, 'env' | 'cwd'>,
): Result<Record<string, FlagValue>, CliError> {
  const out: Record<string, FlagValue> = {};
  const missing: FlagSpec[] = [];
  for (const f of flags) {
    const r = raw[f.name];
    if (r !== undefined) {
      const v = toFlagValue(f, r, `--${f.name}`);
      if (!v.ok) return v;
      out[f.name] = f.setting && SETTINGS[f.setting].path && typeof v.value === 'string' ? resolve(io.cwd, v.value) : v.value;
      continue;
    }
    if (f.setting) {
      const envName = settingEnvName(f.setting);
      const e = io.env[envName];
      if (e !== undefined && e !== '') {
        const v = toFlagValue(f, e, envName);
        if (!v.ok) return v;
        out[f.name] = SETTINGS[f.setting].path && typeof v.value === 'string' ? resolve(io.cwd, v.value) : v.value;
        continue;
      }
      missing.push(f);
      continue;
    }
    if (f.default !== undefined) out[f.name] = f.default;
  }
  if (missing.length > 0) {
    // `--config FILE` must exist; a NIXFLEET_CONFIG or default path that does not is just "no
    // file" (so a wrapper can point NIXFLEET_CONFIG at an isolated path and pass env settings).
    const flag = typeof out['config'] === 'string' ? (out['config'] as string) : undefined;
    const named = flag ?? (io.env['NIXFLEET_CONFIG'] || undefined);
    const path = named !== undefined ? resolve(io.cwd, named) : defaultConfigPath(io.env);
    const file = path ? loadConfigFile(path, flag !== undefined) : ok(null);
    if (!file.ok) return file;
    for (const f of missing) {
      const s = f.setting!;
      const v = file.value?.[s];
      if (v !== undefined && path) {
        out[f.name] = SETTINGS[s].path && typeof v === 'string' ? resolve(dirname(path), v) : v;
      } else {
        const d = f.default ?? SETTINGS[s].default;
        if (d !== undefined) out[f.name] = d;
      }
    }
  }
  for (const f of flags) {
    const needed = f.required === true || (f.setting !== undefined && REQUIRED_WHEN_ONLINE.has(f.setting));
    if (!needed || out[f.name] !== undefined) continue;
    const where = f.setting ? ` (or ${settingEnvName(f.setting)}, or "${f.setting}" in the config file; see: nixfleet config init)` : '';
    return err({ code: 'USAGE', message: `missing --${f.name}${where}` });
  }
  return ok(out);
}

/** Connection settings without which no online command can run. */
const REQUIRED_WHEN_ONLINE: ReadonlySet<SettingName> = new Set(['url', 'cert', 'key', 'ca']);

/** Convert a raw flag string to its declared type. */
export function toFlagValue(flag: { name: string; type: FlagType }, raw: string | boolean, source: string): Result<FlagValue, CliError> {
  if (flag.type === 'boolean') {
    if (typeof raw === 'boolean') return ok(raw);
    if (raw === 'true' || raw === '1') return ok(true);
    if (raw === 'false' || raw === '0' || raw === '') return ok(false);
    return err({ code: 'USAGE', message: `${source}: expected true or false, got ${JSON.stringify(raw)}` });
  }
  if (typeof raw === 'boolean') return err({ code: 'USAGE', message: `${source}: needs a value` });
  if (flag.type === 'int') {
    if (!/^\d+$/.test(raw.trim())) return err({ code: 'USAGE', message: `${source}: expected a whole number, got ${JSON.stringify(raw)}` });
    return ok(Number(raw.trim()));
  }
  return ok(raw);
}
