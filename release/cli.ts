/**
 * `nixfleet-release` (SPEC §3): init, keygen, canonicalize, resolve, sign, verify, push.
 * Dispatches to one `cmd-*.ts` module per subcommand. `runCli(argv, io)` returns the exit code
 * (0 ok, 1 invalid input, 2 hook or I/O) so tests drive it in-process; `main.ts` wires it to the
 * real process with `processIo()`.
 */
import { EXIT_INPUT, EXIT_IO, EXIT_OK, InputError, IoError, type CliIo } from './cli-common.ts';
import { cmdCanonicalize } from './cmd-canonicalize.ts';
import { versionLine } from '../io/version.ts';
import { cmdInit } from './cmd-init.ts';
import { cmdKeygen } from './cmd-keygen.ts';
import { cmdResolve } from './cmd-resolve.ts';
import { cmdSign } from './cmd-sign.ts';
import { cmdVerify } from './cmd-verify.ts';
import { HELP, wantsHelp } from './help.ts';
import { runPush } from './push.ts';

export type { CliIo } from './cli-common.ts';

const COMMANDS: Record<string, (argv: string[], io: CliIo) => number | Promise<number>> = {
  init: cmdInit,
  keygen: cmdKeygen,
  canonicalize: cmdCanonicalize,
  resolve: cmdResolve,
  sign: cmdSign,
  verify: cmdVerify,
  // Written by the agent engineer (release/push.ts); it parses its own flags and prints its own --help.
  push: (argv, io) => runPush(argv, { stdout: (s) => io.stdout(s), stderr: io.stderr, env: io.env }),
};

/** Run `nixfleet-release` with `argv` (without the program name); returns the exit code. */
export async function runCli(argv: string[], io: CliIo): Promise<number> {
  const [cmd, ...rest] = argv;
  if (cmd === '--version' || cmd === '-V') {
    io.stdout(versionLine('nixfleet-release'));
    return EXIT_OK;
  }
  if (cmd === undefined || cmd === '--help' || cmd === '-h' || cmd === 'help') {
    (cmd === undefined ? io.stderr : io.stdout)(HELP['main']!);
    return cmd === undefined ? EXIT_INPUT : EXIT_OK;
  }
  const run = COMMANDS[cmd];
  if (run === undefined) {
    io.stderr(`nixfleet-release: unknown command ${JSON.stringify(cmd)}\n\n${HELP['main']}`);
    return EXIT_INPUT;
  }
  if (wantsHelp(rest) && HELP[cmd] !== undefined) {
    io.stdout(HELP[cmd]!);
    return EXIT_OK;
  }
  try {
    return await run(rest, io);
  } catch (e) {
    if (e instanceof InputError) {
      io.stderr(`nixfleet-release ${cmd}: ${e.message}\n`);
      return EXIT_INPUT;
    }
    if (e instanceof IoError) {
      io.stderr(`nixfleet-release ${cmd}: ${e.message}\n`);
      return EXIT_IO;
    }
    throw e;
  }
}

/** The real process's I/O. */
export function processIo(): CliIo {
  return {
    stdout: (s) => void process.stdout.write(s),
    stderr: (s) => void process.stderr.write(s),
    readStdin: async () => {
      const chunks: Buffer[] = [];
      for await (const c of process.stdin) chunks.push(c as Buffer);
      return Buffer.concat(chunks);
    },
    nowMs: () => Date.now(),
    env: process.env,
  };
}
