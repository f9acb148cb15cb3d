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
    const message = e instanceof Error ? e.message : String(e);
    const unknown = /Unknown option '([^']+)'/.exec(message);
    const first = unknown !== null ? `unknown flag ${unknown[1]}` : (message.split('. ')[0] ?? message);
    return { kind: 'usage', message: `${first} (see: ${program} --help)` };
  }
}
