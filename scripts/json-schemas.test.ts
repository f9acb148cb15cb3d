/**
 * The schemas/ files are generated (`npm run schemas`), never hand-edited: regenerate them in
 * memory and compare, so a schema change without `npm run schemas` fails here.
 */
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { renderDataFiles, renderSchemas, SCHEMA_FILES } from './json-schemas.ts';

const DIR = resolve(import.meta.dirname, '..', 'schemas');
const drift = suite('schemas/ drift');

drift('schemas/*.schema.json equal what `npm run schemas` renders from the TypeBox schemas', () => {
  const want = renderSchemas();
  for (const [name, text] of want) {
    const p = join(DIR, name);
    assert.ok(existsSync(p), `schemas/${name} is missing: run npm run schemas`);
    assert.ok(readFileSync(p, 'utf8') === text, `schemas/${name} differs from the TypeBox schema: run npm run schemas`);
  }
  const stray = readdirSync(DIR).filter((n) => n.endsWith('.schema.json') && !want.has(n));
  assert.equal(stray, [], 'schemas/ holds files no schema renders');
});

drift('lib/compliance-catalogue.json (read by lib/compliance.nix) equals the catalogue of protocol/compliance.ts', () => {
  for (const [rel, text] of renderDataFiles()) {
    const p = resolve(DIR, '..', rel);
    assert.ok(existsSync(p), `${rel} is missing: run npm run schemas`);
    assert.ok(readFileSync(p, 'utf8') === text, `${rel} differs from protocol/compliance.ts: run npm run schemas`);
  }
});

drift('every schema is self-contained draft-07 (no dangling $ref, no TypeBox-only keyword)', () => {
  for (const name of Object.keys(SCHEMA_FILES)) {
    const text = renderSchemas().get(name)!;
    const doc = JSON.parse(text) as { definitions?: Record<string, unknown> };
    for (const m of text.matchAll(/"\$ref": "#\/definitions\/([^"]+)"/g)) assert.ok(doc.definitions?.[m[1]!] !== undefined, `${name}: dangling $ref ${m[1]}`);
    assert.not.ok(text.includes('errorMessage'), `${name}: errorMessage leaked`);
  }
});

drift('a defaulted field is not required of the writer; a required one is', () => {
  const agent = JSON.parse(renderSchemas().get('agent-config.schema.json')!) as { required: string[] };
  assert.ok(agent.required.includes('cpUrl') && agent.required.includes('tls'));
  assert.not.ok(agent.required.includes('pollIntervalSecs'));
});

drift.run();
