/** The binaries' shared argument convention (io/program-args.ts), as the agent and the CP use it. */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { parseProgramArgs } from './program-args.ts';

const P = (argv: string[]) => parseProgramArgs('prog', argv, ['run', 'once'] as const, { config: { type: 'string' } });

test('help: nothing, help, --help or -h anywhere; version: --version / -V first', () => {
  for (const a of [[], ['help'], ['--help'], ['run', '-h'], ['run', '--config', 'x', '--help']]) assert.equal(P(a), { kind: 'help' }, a.join(' '));
  assert.equal(P(['--version']), { kind: 'version' });
  assert.equal(P(['-V']), { kind: 'version' });
});

test('--flag value and --flag=value are the same; unknown commands and flags are usage errors naming them', () => {
  assert.equal(P(['run', '--config', 'a.json']), { kind: 'run', command: 'run', values: { config: 'a.json' } });
  assert.equal(P(['once', '--config=a.json']), { kind: 'run', command: 'once', values: { config: 'a.json' } });
  assert.equal(P(['serve']), { kind: 'usage', message: 'unknown command "serve" (see: prog --help)' });
  assert.equal(P(['run', '--conf', 'x']), { kind: 'usage', message: 'unknown flag --conf (see: prog --help)' });
  const missing = P(['run', '--config']);
  assert.is(missing.kind, 'usage');
  assert.match((missing as { message: string }).message, /--config.*\(see: prog --help\)$/);
  assert.is(P(['run', 'extra']).kind, 'usage');
});

test.run();
