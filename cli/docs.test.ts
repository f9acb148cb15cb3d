import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { COMMANDS } from './commands.ts';
import { allFlags, synopsis } from './framework.ts';
import { renderDocs } from './help.ts';

const committed = readFileSync(fileURLToPath(new URL('../docs/cli.md', import.meta.url)), 'utf8');

test('docs/cli.md is exactly the text generated from the command table (run: npx tsx cli/gen-docs.ts)', () => {
  assert.fixture(committed, renderDocs(COMMANDS));
});

test('docs mention every command, synopsis, flag and example', () => {
  for (const c of COMMANDS) {
    assert.ok(committed.includes(`### nixfleet ${c.name}`), c.name);
    assert.ok(committed.includes(synopsis(c)));
    for (const f of allFlags(c)) assert.ok(committed.includes(`--${f.name}`), `${c.name} --${f.name}`);
    for (const e of c.examples) assert.ok(committed.includes(e));
    for (const j of c.json?.fields ?? []) assert.ok(committed.includes(`\`${j.name}\``), `${c.name} field ${j.name}`);
  }
});

test.run();
