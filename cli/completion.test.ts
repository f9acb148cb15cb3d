/**
 * `nixfleet completion`: generated from the command table; bash's own completion machinery is run
 * on the script (source it, set COMP_WORDS, call the function) to see what it offers.
 */
import { spawnSync } from 'node:child_process';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { COMMANDS } from './commands.ts';
import { completionScript } from './completion.ts';
import { allFlags } from './framework.ts';
import { runCli } from '../fixtures/cli-testing.ts';

/** What bash completes for `words` (the last one is being typed). */
function bashComplete(words: string[]): string[] {
  const script = `${completionScript(COMMANDS, 'bash')}
COMP_WORDS=(${words.map((w) => `'${w}'`).join(' ')}); COMP_CWORD=${words.length - 1}; _nixfleet; printf '%s\\n' "\${COMPREPLY[@]}"`;
  const r = spawnSync('bash', ['-c', script], { encoding: 'utf8' });
  assert.is(r.status, 0, r.stderr);
  return r.stdout.split('\n').filter((l) => l !== '');
}

test('bash: commands, group subcommands and each command\'s flags, from the table', () => {
  const top = bashComplete(['nixfleet', '']);
  for (const c of COMMANDS) assert.ok(top.includes(c.name.split(' ')[0]!), c.name);
  assert.ok(top.includes('--version'));
  assert.equal(bashComplete(['nixfleet', 'ro']), ['rollout']);
  assert.equal(bashComplete(['nixfleet', 'rollout', '']).sort(), ['approve', 'list', 'show', 'skip', 'trace']);
  const trace = bashComplete(['nixfleet', 'rollout', 'trace', '--']);
  for (const f of allFlags(COMMANDS.find((c) => c.name === 'rollout trace')!)) assert.ok(trace.includes(`--${f.name}`), f.name);
  assert.equal(bashComplete(['nixfleet', 'audit', 'export', '--o']), ['--out']);
  assert.equal(bashComplete(['nixfleet', 'status', '--js']), ['--json']);
});

test('zsh and fish scripts name every command and flag; bash -n accepts bash and zsh\'s bash part', () => {
  for (const shell of ['zsh', 'fish'] as const) {
    const s = completionScript(COMMANDS, shell);
    for (const c of COMMANDS) for (const w of c.name.split(' ')) assert.ok(s.includes(w), `${shell}: ${w}`);
    for (const c of COMMANDS) for (const f of allFlags(c)) assert.ok(s.includes(shell === 'fish' ? `-l ${f.name}` : `--${f.name}`), `${shell}: --${f.name}`);
  }
  const r = spawnSync('bash', ['-n'], { input: completionScript(COMMANDS, 'bash'), encoding: 'utf8' });
  assert.is(r.status, 0, r.stderr);
});

test('nixfleet completion SHELL prints the script; another shell is a usage error (exit 2)', async () => {
  const r = await runCli(['completion', 'fish']);
  assert.is(r.code, 0);
  assert.is(r.stdout, completionScript(COMMANDS, 'fish'));
  const bad = await runCli(['completion', 'tcsh']);
  assert.is(bad.code, 2);
  assert.match(bad.stderr, /SHELL must be one of bash, zsh, fish/);
});

test('--version and -V print the version line; exit 0', async () => {
  for (const flag of ['--version', '-V']) {
    const r = await runCli([flag]);
    assert.is(r.code, 0);
    assert.match(r.stdout, /^nixfleet \d+\.\d+\.\d+ \(node v\d+/);
  }
});

test.run();
