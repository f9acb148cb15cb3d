/** The binaries' shared argument convention (io/program-args.ts), as the agent and the CP use it. */
import { parseArgs } from 'node:util';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { flagsHelp, parseProgramArgs, usageMessage } from './program-args.ts';

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
  assert.equal(P(['run', '--config']), { kind: 'usage', message: 'flag --config needs a value (see: prog --help)' });
  assert.equal(P(['run', 'extra']), { kind: 'usage', message: 'unexpected argument "extra" (see: prog --help)' });
});

test("usageMessage words node's parseArgs errors alike for every binary", () => {
  const msg = (args: string[]): string => {
    try {
      parseArgs({ args, options: { out: { type: 'string', short: 'o' }, force: { type: 'boolean' } }, strict: true, allowPositionals: false });
    } catch (e) {
      return usageMessage(e);
    }
    return 'parsed';
  };
  assert.is(msg(['--bogus']), 'unknown flag --bogus');
  assert.is(msg(['--out']), 'flag --out needs a value');
  assert.is(msg(['-o']), 'flag --out needs a value');
  assert.is(msg(['--out', '-x']), 'flag --out needs a value (for one that starts with "-": --out=VALUE)');
  assert.is(msg(['--force=yes']), 'flag --force takes no value');
  assert.is(msg(['x']), 'unexpected argument "x"');
  assert.is(usageMessage(new Error('Something else. More.')), 'Something else');
});

test('flagsHelp aligns the flag column (at least minWidth) and marks the required flags', () => {
  const rows = [
    { flag: 'db', arg: 'PATH', help: 'the database', required: true },
    { flag: 'listen-port', arg: 'PORT', help: 'default 8443', required: false },
  ];
  assert.is(flagsHelp(rows, 10), '  --db PATH           the database [required]\n  --listen-port PORT  default 8443');
  assert.is(flagsHelp(rows, 20).split('\n')[1], '  --listen-port PORT    default 8443');
});

test.run();
