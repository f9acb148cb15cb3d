/**
 * The imperative shell of `nixfleet`: parse argv against the command table, resolve settings,
 * run the handler, and turn every outcome into one exit code and at most one error line.
 * `run` never throws and never prints a stack trace (set NIXFLEET_DEBUG=1 to see one for a bug).
 */
import { escapeControl } from '../io/text.ts';
import type { CommandSpec, ExitCode, Io } from './framework.ts';
import { EXIT, allFlags, exitCodeOf, parseCommandLine } from './framework.ts';
import { renderCommandHelp, renderTopHelp } from './help.ts';
import { resolveFlags } from './settings.ts';
import { versionLine } from '../io/version.ts';

export async function run(table: readonly CommandSpec[], argv: readonly string[], io: Io): Promise<ExitCode> {
  const parsed = parseCommandLine(table, argv);
  if (!parsed.ok) {
    io.stderr(`nixfleet: ${parsed.error.message}\n`);
    return exitCodeOf(parsed.error.code);
  }
  const p = parsed.value;
  if (p.kind === 'version') {
    io.stdout(versionLine('nixfleet'));
    return EXIT.OK;
  }
  if (p.kind === 'help') {
    io.stdout(p.command ? renderCommandHelp(p.command) : renderTopHelp(table, p.group));
    return EXIT.OK;
  }
  const flags = resolveFlags(allFlags(p.command), p.flags, io);
  if (!flags.ok) {
    io.stderr(`nixfleet ${p.command.name}: ${flags.error.message}\n`);
    return exitCodeOf(flags.error.code);
  }
  try {
    const outcome = await p.command.handler({ command: p.command, args: p.args, flags: flags.value, io });
    if ('error' in outcome) {
      io.stderr(`nixfleet ${p.command.name}: ${oneLine(outcome.error.message)}\n`);
      return exitCodeOf(outcome.error.code);
    }
    return outcome.exit;
  } catch (e) {
    // A bug, not an expected failure: still one line for the operator.
    const message = e instanceof Error ? e.message : String(e);
    io.stderr(`nixfleet ${p.command.name}: internal error: ${oneLine(message)} (NIXFLEET_DEBUG=1 shows details)\n`);
    if (io.env['NIXFLEET_DEBUG']) io.stderr(`${e instanceof Error ? e.stack : ''}\n`);
    return EXIT.REFUSED;
  }
}

/** One line, with any control character (from a CP or host message) made visible (io/text.ts). */
function oneLine(s: string): string {
  return escapeControl(s.replace(/\s*\n\s*/g, ' ').trim());
}
