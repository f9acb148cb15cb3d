/**
 * The argument convention of the nixfleet binaries (the CLI's, cli/framework.ts, shared by the
 * agent and the control plane): `PROGRAM COMMAND [--flag value | --flag=value]…` parsed by node's
 * `util.parseArgs` in strict mode; no arguments, `help`, `--help` or `-h` anywhere print the help
 * (exit 0); `--version` / `-V` first prints the version (exit 0); an unknown command or flag is a
 * usage error naming it and pointing at `--help`. Each program maps a usage error to its
 * documented exit code.
 */
import { parseArgs } from 'node:util';

export type FlagOptions = Record<string, { type: 'string' | 'boolean'; multiple?: boolean }>;

export type ProgramArgs<C extends string> =
  | { kind: 'help' }
  | { kind: 'version' }
  | { kind: 'run'; command: C; values: Record<string, string | boolean | string[] | boolean[] | undefined> }
  | { kind: 'usage'; message: string };

export function parseProgramArgs<C extends string>(program: string, argv: readonly string[], commands: readonly C[], options: FlagOptions): ProgramArgs<C> {
  if (argv.length === 0 || argv[0] === 'help' || argv.includes('--help') || argv.includes('-h')) return { kind: 'help' };
  if (argv[0] === '--version' || argv[0] === '-V') return { kind: 'version' };
  const [command, ...rest] = argv;
  if (!(commands as readonly string[]).includes(command!)) return { kind: 'usage', message: `unknown command ${JSON.stringify(command)} (see: ${program} --help)` };
  try {
    const { values } = parseArgs({ args: rest, options, strict: true, allowPositionals: false });
    return { kind: 'run', command: command as C, values: { ...values } as Record<string, string | boolean | undefined> };
  } catch (e) {
    return { kind: 'usage', message: `${usageMessage(e)} (see: ${program} --help)` };
  }
}

/**
 * A usage message for a `util.parseArgs` error (every binary words them alike): `unknown flag
 * --x`, `flag --x needs a value`, `flag --x takes no value`, `unexpected argument "x"`; anything
 * else its first sentence.
 */
export function usageMessage(e: unknown): string {
  const code = (e as { code?: unknown } | null)?.code;
  const message = e instanceof Error ? e.message : String(e);
  const first = message.split(/\.\s|\n/)[0] ?? message;
  const flag = /Option '(?:-\w, )?(--?[^' ]+)/.exec(message)?.[1];
  switch (code) {
    case 'ERR_PARSE_ARGS_UNKNOWN_OPTION': {
      const m = /Unknown option '([^']+)'/.exec(message);
      return m ? `unknown flag ${m[1]}` : first;
    }
    case 'ERR_PARSE_ARGS_INVALID_OPTION_VALUE':
      if (flag === undefined) return first;
      if (/argument missing/.test(message)) return `flag ${flag} needs a value`;
      if (/ambiguous/.test(message)) return `flag ${flag} needs a value (for one that starts with "-": ${flag}=VALUE)`;
      return `flag ${flag} takes no value`;
    case 'ERR_PARSE_ARGS_UNEXPECTED_POSITIONAL': {
      const m = /Unexpected argument '([^']*)'/.exec(message);
      return m ? `unexpected argument ${JSON.stringify(m[1])}` : first;
    }
    default:
      return first;
  }
}

/** A settings flag as `--help` lists it. */
export type FlagDoc = { flag: string; arg: string; help: string; required: boolean };

/** The "Flags" lines of a `--help` (agent, control plane), aligned: the flag column at least `minWidth` wide. */
export function flagsHelp(flags: readonly FlagDoc[], minWidth: number): string {
  const rows = flags.map((f) => [`--${f.flag} ${f.arg}`, `${f.help}${f.required ? ' [required]' : ''}`] as const);
  const w = Math.max(minWidth, ...rows.map(([a]) => a.length));
  return rows.map(([a, b]) => `  ${a.padEnd(w)}  ${b}`).join('\n');
}
