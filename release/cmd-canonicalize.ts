/** `nixfleet-release canonicalize` (SPEC §3): the JCS (RFC 8785) form of a JSON file or stdin. */
import { canonicalize, parseJsonStrict } from '../protocol/jcs.ts';
import { args, EXIT_OK, InputError, readFile, type CliIo } from './cli-common.ts';

/** Prints the JCS bytes of FILE (stdin when absent or `-`), no trailing newline. */
export async function cmdCanonicalize(argv: string[], io: CliIo): Promise<number> {
  const { positionals } = args(argv, {}, true);
  if (positionals.length > 1) throw new InputError('canonicalize takes at most one FILE');
  const file = positionals[0];
  const bytes = file === undefined || file === '-' ? await io.readStdin() : readFile(file, 'input');
  const v = parseJsonStrict(bytes);
  if (!v.ok) throw new InputError(`${v.error.code}: ${v.error.message}`);
  const c = canonicalize(v.value);
  if (!c.ok) throw new InputError(`${c.error.code}: ${c.error.message}`);
  io.stdout(c.value);
  return EXIT_OK;
}
