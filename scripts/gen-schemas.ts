/**
 * `npm run schemas`: (re)write schemas/*.schema.json from the TypeBox schemas
 * (scripts/json-schemas.ts). Commit the result; scripts/json-schemas.test.ts checks it.
 */
import { mkdirSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { renderDataFiles, renderSchemas } from './json-schemas.ts';

const DIR = resolve(import.meta.dirname, '..', 'schemas');
mkdirSync(DIR, { recursive: true });
const files = renderSchemas();
for (const name of readdirSync(DIR)) if (name.endsWith('.schema.json') && !files.has(name)) rmSync(join(DIR, name));
for (const [name, text] of files) writeFileSync(join(DIR, name), text);
process.stdout.write(`schemas: wrote ${[...files.keys()].join(', ')} to ${DIR}\n`);
for (const [rel, text] of renderDataFiles()) writeFileSync(resolve(DIR, '..', rel), text);
process.stdout.write(`data: wrote ${[...renderDataFiles().keys()].join(', ')}\n`);
