/**
 * The command framework of `nixfleet` (SPEC §7): one declarative table of commands drives argument
 * parsing, `--help`, and `docs/cli.md` (see `help.ts`), so help and docs cannot drift from what
 * the parser accepts.
 *
 * Exit codes are part of the contract (operators gate CI jobs on them):
 *   0 ok · 1 the CP said no, or the thing is unhealthy · 2 usage error · 3 cannot reach the CP.
 */
import { parseArgs } from 'node:util';
import { usageMessage } from '../io/program-args.ts';
import type { Result } from '../protocol/result.ts';
import { err, ok } from '../protocol/result.ts';
import type { SettingName } from './settings.ts';
import { SETTINGS, settingFlagName } from './settings.ts';

export type ExitCode = 0 | 1 | 2 | 3;
export const EXIT = Object.freeze({ OK: 0, REFUSED: 1, USAGE: 2, UNREACHABLE: 3 } as const);

/**
 * Expected failures of a command, as values. `code` picks the exit code (`exitCodeOf`); `message`
 * is the one line the operator reads (never a stack trace).
 */
export type CliErrorCode =
  | 'USAGE' // bad flags/arguments, missing setting, unreadable config: exit 2
  | 'UNREACHABLE' // connection refused, DNS, TLS handshake, timeout: exit 3
  | 'REFUSED' // the CP answered with an error (4xx/5xx): exit 1
  | 'FORBIDDEN' // the CP refused our certificate's role (403): exit 1
  | 'NOT_FOUND' // exit 1
  | 'INVALID' // an input file failed verification (artifact, audit log): exit 1
  | 'EXISTS' // refusing to overwrite (CA, config): exit 1
  | 'IO'; // a local file could not be read or written: exit 1

export type CliError = { code: CliErrorCode; message: string };

export function exitCodeOf(code: CliErrorCode): ExitCode {
  switch (code) {
    case 'USAGE':
      return EXIT.USAGE;
    case 'UNREACHABLE':
      return EXIT.UNREACHABLE;
    default:
      return EXIT.REFUSED;
  }
}

export type FlagType = 'string' | 'boolean' | 'int';
export type FlagValue = string | boolean | number;

export type FlagSpec = {
  /** Long name without dashes, kebab-case. */
  name: string;
  type: FlagType;
  /** Shown in help after the flag, e.g. `FILE`. */
  placeholder?: string;
  description: string;
  default?: FlagValue;
  /** The command cannot run without it (after settings are resolved). */
  required?: boolean;
  /** Backed by a setting: flag, then NIXFLEET_* env, then config file, then the setting's default. */
  setting?: SettingName;
};

export type ArgSpec = { name: string; description: string; optional?: boolean };

export type JsonField = { name: string; description: string };

/** What a handler sees: parsed positionals, flags (settings already resolved), and the world. */
export type Ctx = {
  command: CommandSpec;
  args: Readonly<Record<string, string>>;
  flags: Readonly<Record<string, FlagValue>>;
  io: Io;
};

/** Everything a command touches of the outside world, injectable for tests. */
export type Io = {
  stdout: (s: string) => void;
  stderr: (s: string) => void;
  env: Readonly<Record<string, string | undefined>>;
  cwd: string;
  /** Whether stdout is a terminal (colour and in-place redraw only then). */
  isTTY: boolean;
  /** Terminal width when stdout is a terminal (the redrawn progress block must not wrap). */
  columns: number | null;
  now: () => number;
  sleep: (ms: number) => Promise<void>;
  /** All of standard input (read only by commands that take `-` or no FILE). */
  stdin: () => Promise<string>;
};

export type Outcome = { exit: 0 | 1 } | { error: CliError };

export type CommandSpec = {
  /** One or two words: `status`, `rollout trace`. */
  name: string;
  summary: string;
  /** Longer prose for help and docs (optional). */
  description?: string;
  args: ArgSpec[];
  flags: FlagSpec[];
  /** At least one example invocation, shown in help and docs. */
  examples: string[];
  /** Talks to the CP: gets the connection flags (url, cert, key, ca, timeout). */
  online: boolean;
  /** A read command: gets `--json`; `json` documents its stable output fields. */
  json?: { shape: string; fields: JsonField[] };
  handler: (ctx: Ctx) => Promise<Outcome>;
};

/** Flags every online command gets, backed by settings. */
export const CONNECTION_FLAGS: readonly FlagSpec[] = (['url', 'cert', 'key', 'ca', 'timeoutSecs'] as const).map(
  (s): FlagSpec => ({
    name: settingFlagName(s),
    type: SETTINGS[s].type,
    placeholder: SETTINGS[s].placeholder,
    description: SETTINGS[s].description,
    setting: s,
  }),
);

export const JSON_FLAG: FlagSpec = { name: 'json', type: 'boolean', description: 'Print JSON (stable field names, see below) instead of a table.' };
export const CONFIG_FLAG: FlagSpec = {
  name: 'config',
  type: 'string',
  placeholder: 'FILE',
  description: 'Settings file (default $XDG_CONFIG_HOME/nixfleet/config.json, else ~/.config/nixfleet/config.json); env NIXFLEET_CONFIG.',
};

/** Every flag a command accepts, in help order: its own, then --json, then connection flags. */
export function allFlags(cmd: CommandSpec): FlagSpec[] {
  const out = [...cmd.flags];
  if (cmd.json) out.push(JSON_FLAG);
  if (cmd.online) out.push(...CONNECTION_FLAGS);
  if (out.some((f) => f.setting !== undefined)) out.push(CONFIG_FLAG);
  return out;
}

export function synopsis(cmd: CommandSpec): string {
  const parts = ['nixfleet', cmd.name];
  for (const a of cmd.args) parts.push(a.optional ? `[${a.name}]` : a.name);
  for (const f of cmd.flags) {
    const flag = f.type === 'boolean' ? `--${f.name}` : `--${f.name} ${f.placeholder ?? 'VALUE'}`;
    parts.push(f.required ? flag : `[${flag}]`);
  }
  if (cmd.json) parts.push('[--json]');
  if (cmd.online) parts.push('[connection flags]');
  return parts.join(' ');
}

export type Parsed =
  | { kind: 'help'; command: CommandSpec | null; group: string | null }
  | { kind: 'version' }
  | { kind: 'run'; command: CommandSpec; args: Record<string, string>; flags: Record<string, string | boolean> };

/** Words that only group subcommands (`nixfleet rollout` alone is a usage error listing them). */
export function groups(table: readonly CommandSpec[]): Set<string> {
  return new Set(table.filter((c) => c.name.includes(' ')).map((c) => c.name.split(' ')[0]!));
}

/**
 * Find the command named by the leading words of argv and parse the rest with node's
 * `util.parseArgs` (strict). Settings are not resolved here (see `settings.ts`): this step only
 * knows argv.
 */
export function parseCommandLine(table: readonly CommandSpec[], argv: readonly string[]): Result<Parsed, CliError> {
  const words = [...argv];
  if (words.length === 0 || words[0] === '--help' || words[0] === '-h') return ok({ kind: 'help', command: null, group: null });
  if (words[0] === '--version' || words[0] === '-V') return ok({ kind: 'version' });
  if (words[0] === 'help') {
    const rest = words.slice(1);
    if (rest.length === 0) return ok({ kind: 'help', command: null, group: null });
    const found = findCommand(table, rest);
    if (found.ok) return ok({ kind: 'help', command: found.value.command, group: null });
    if (groups(table).has(rest[0]!)) return ok({ kind: 'help', command: null, group: rest[0]! });
    return found;
  }
  const found = findCommand(table, words);
  if (!found.ok) {
    if (groups(table).has(words[0]!) && (words.length === 1 || words.slice(1).some((w) => w === '--help' || w === '-h'))) {
      return ok({ kind: 'help', command: null, group: words[0]! });
    }
    return found;
  }
  const { command, rest } = found.value;
  if (rest.includes('--help') || rest.includes('-h')) return ok({ kind: 'help', command, group: null });

  const flags = allFlags(command);
  const options: Record<string, { type: 'string' | 'boolean' }> = {};
  for (const f of flags) options[f.name] = { type: f.type === 'boolean' ? 'boolean' : 'string' };
  let parsed: { values: Record<string, string | boolean | undefined>; positionals: string[] };
  try {
    parsed = parseArgs({ args: rest, options, allowPositionals: true, strict: true }) as typeof parsed;
  } catch (e) {
    return err({ code: 'USAGE', message: `${usageMessage(e)} (see: nixfleet ${command.name} --help)` });
  }
  const required = command.args.filter((a) => !a.optional);
  if (parsed.positionals.length < required.length) {
    const missing = required.slice(parsed.positionals.length).map((a) => a.name);
    return err({ code: 'USAGE', message: `missing ${missing.join(' ')}; usage: ${synopsis(command)}` });
  }
  if (parsed.positionals.length > command.args.length) {
    const extra = parsed.positionals.slice(command.args.length);
    return err({ code: 'USAGE', message: `unexpected argument ${JSON.stringify(extra[0])}; usage: ${synopsis(command)}` });
  }
  const args: Record<string, string> = {};
  command.args.forEach((a, i) => {
    const v = parsed.positionals[i];
    if (v !== undefined) args[a.name] = v;
  });
  const values: Record<string, string | boolean> = {};
  for (const [k, v] of Object.entries(parsed.values)) if (v !== undefined) values[k] = v;
  return ok({ kind: 'run', command, args, flags: values });
}

function findCommand(table: readonly CommandSpec[], words: string[]): Result<{ command: CommandSpec; rest: string[] }, CliError> {
  const two = words.slice(0, 2).join(' ');
  const byTwo = table.find((c) => c.name === two);
  if (byTwo && words.length >= 2) return ok({ command: byTwo, rest: words.slice(2) });
  const byOne = table.find((c) => c.name === words[0]);
  if (byOne) return ok({ command: byOne, rest: words.slice(1) });
  const first = words[0] ?? '';
  if (groups(table).has(first)) {
    const subs = table.filter((c) => c.name.startsWith(first + ' ')).map((c) => c.name.split(' ')[1]);
    const what = words[1] === undefined ? 'missing subcommand' : `unknown subcommand ${JSON.stringify(words[1])}`;
    return err({ code: 'USAGE', message: `${what} for "nixfleet ${first}"; one of: ${subs.join(', ')}` });
  }
  return err({ code: 'USAGE', message: `unknown command ${JSON.stringify(first)} (see: nixfleet --help)` });
}

// Typed accessors for handlers. Asking for an undeclared flag is a bug (throws), so a typo in a
// handler fails every test of that command rather than silently reading `undefined`.
function declared(ctx: Ctx, name: string): FlagSpec {
  const f = allFlags(ctx.command).find((x) => x.name === name);
  if (!f) throw new Error(`bug: command "${ctx.command.name}" reads undeclared flag --${name}`);
  return f;
}
export function flagStr(ctx: Ctx, name: string): string | undefined {
  const f = declared(ctx, name);
  if (f.type !== 'string') throw new Error(`bug: --${name} is not a string flag`);
  const v = ctx.flags[name];
  return typeof v === 'string' ? v : undefined;
}
export function flagInt(ctx: Ctx, name: string): number | undefined {
  const f = declared(ctx, name);
  if (f.type !== 'int') throw new Error(`bug: --${name} is not an int flag`);
  const v = ctx.flags[name];
  return typeof v === 'number' ? v : undefined;
}
export function flagBool(ctx: Ctx, name: string): boolean {
  const f = declared(ctx, name);
  if (f.type !== 'boolean') throw new Error(`bug: --${name} is not a boolean flag`);
  return ctx.flags[name] === true;
}
export function arg(ctx: Ctx, name: string): string {
  if (!ctx.command.args.some((a) => a.name === name)) throw new Error(`bug: command "${ctx.command.name}" reads undeclared argument ${name}`);
  return ctx.args[name] ?? '';
}

export const fail = (code: CliErrorCode, message: string): Outcome => ({ error: { code, message } });
export const done: Outcome = { exit: 0 };
