/**
 * `nixfleet-release` entry point (bin/nixfleet-release.js imports this file). All behaviour lives
 * in cli.ts and the cmd-*.ts modules it dispatches to, so tests can run it in-process.
 */
import { processIo, runCli } from './cli.ts';

process.exitCode = await runCli(process.argv.slice(2), processIo());
