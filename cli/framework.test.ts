import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { COMMANDS } from './commands.ts';
import { allFlags, groups, parseCommandLine, synopsis } from './framework.ts';
import { renderCommandHelp, renderTopHelp } from './help.ts';
import { isOneLine, runCli } from '../fixtures/cli-testing.ts';

test('every command has a summary, an example that names it, and unique flag names', () => {
  for (const c of COMMANDS) {
    assert.ok(c.summary.length > 0, c.name);
    assert.ok(c.examples.length > 0, `${c.name} has no example`);
    for (const e of c.examples) assert.ok(e.startsWith(`nixfleet ${c.name}`), `example of ${c.name}: ${e}`);
    if (c.json) assert.ok(c.json.fields.length > 0, `${c.name} documents no JSON fields`);
    const names = allFlags(c).map((f) => f.name);
    assert.is(new Set(names).size, names.length, `duplicate flag in ${c.name}`);
  }
  const names = COMMANDS.map((c) => c.name);
  assert.is(new Set(names).size, names.length);
});

test('--help of every command shows usage, every flag and the example; exit 0', async () => {
  for (const c of COMMANDS) {
    const r = await runCli([...c.name.split(' '), '--help']);
    assert.is(r.code, 0, c.name);
    assert.is(r.stderr, '');
    assert.is(r.stdout, renderCommandHelp(c));
    assert.ok(r.stdout.includes(`Usage: ${synopsis(c)}`));
    for (const f of allFlags(c)) assert.ok(r.stdout.includes(`--${f.name}`), `${c.name} help lacks --${f.name}`);
    for (const e of c.examples) assert.ok(r.stdout.includes(e));
    const viaHelp = await runCli(['help', ...c.name.split(' ')]);
    assert.is(viaHelp.stdout, r.stdout);
  }
});

test('top-level help lists every command and the exit codes', async () => {
  for (const argv of [[], ['--help'], ['help']]) {
    const r = await runCli(argv);
    assert.is(r.code, 0);
    for (const c of COMMANDS) assert.ok(r.stdout.includes(c.name), c.name);
    assert.match(r.stdout, /Exit codes:/);
  }
});

test('a group word alone lists its subcommands', async () => {
  for (const g of groups(COMMANDS)) {
    const r = await runCli([g]);
    assert.is(r.code, 0, g);
    assert.is(r.stdout, renderTopHelp(COMMANDS, g));
  }
});

test('usage errors exit 2 with one line', async () => {
  const cases: [string[], RegExp][] = [
    [['frobnicate'], /unknown command "frobnicate"/],
    [['config', 'nope'], /unknown subcommand "nope" for "nixfleet config"/],
    [['config', 'init', '--bogus'], /unknown flag --bogus.*config init --help/],
    [['config', 'init', '--url'], /--url needs a value/],
    [['config', 'init', 'extra'], /unexpected argument "extra"/],
    [['config', 'init', '--timeout-secs', 'soon'], /--timeout-secs: expected a whole number/],
  ];
  for (const [argv, re] of cases) {
    const r = await runCli(argv);
    assert.is(r.code, 2, argv.join(' '));
    assert.match(r.stderr, re);
    assert.ok(isOneLine(r.stderr), r.stderr);
    assert.is(r.stdout, '');
  }
});

test('parseCommandLine: two-word commands win over one-word prefixes; positionals map to names', () => {
  const r = parseCommandLine(COMMANDS, ['config', 'init', '--force']);
  assert.ok(r.ok && r.value.kind === 'run');
  if (r.ok && r.value.kind === 'run') {
    assert.is(r.value.command.name, 'config init');
    assert.equal(r.value.flags, { force: true });
  }
});

test.run();
