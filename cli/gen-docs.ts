/**
 * Regenerate docs/cli.md from the command table: `npx tsx cli/gen-docs.ts`
 * (`--check` exits 1 instead of writing when the committed file is out of date).
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { COMMANDS } from './commands.ts';
import { renderDocs } from './help.ts';

export const DOCS_PATH = fileURLToPath(new URL('../docs/cli.md', import.meta.url));

const text = renderDocs(COMMANDS);
if (process.argv.includes('--check')) {
  let current = '';
  try {
    current = readFileSync(DOCS_PATH, 'utf8');
  } catch {}
  if (current !== text) {
    process.stderr.write('docs/cli.md is out of date: run npx tsx cli/gen-docs.ts\n');
    process.exitCode = 1;
  }
} else {
  writeFileSync(DOCS_PATH, text);
  process.stdout.write(`wrote ${DOCS_PATH}\n`);
}
