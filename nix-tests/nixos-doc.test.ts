/**
 * Acceptance (issue 8): docs/nixos.md documents every module option (type, default), generated
 * from modules/options-*.nix, and the committed file is up to date.
 */
import { readFileSync } from 'node:fs';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { describeType, leaves, loadOptions } from './options.ts';
import { BEGIN, DOC, END, renderOptionsSection, withGenerated } from './nixos-doc.ts';

const doc = readFileSync(DOC, 'utf8');

test('the committed docs/nixos.md equals its regenerated form (run: npx tsx nix-tests/nixos-doc.ts --write)', () => {
  assert.ok(doc === withGenerated(doc), 'docs/nixos.md is out of date: npx tsx nix-tests/nixos-doc.ts --write');
});

test('every option of both modules has its own entry with its type', () => {
  const section = doc.slice(doc.indexOf(BEGIN), doc.indexOf(END));
  for (const m of ['agent', 'control-plane'] as const) {
    const o = loadOptions(m);
    for (const [k, s] of [...leaves(o.service), ...leaves(o.settings)]) {
      const heading = `#### \`services.nixfleet-${m}.${k}\``;
      const at = section.indexOf(heading);
      assert.ok(at !== -1, `${heading} missing`);
      assert.ok(section.slice(at).includes(`- Type: ${describeType(s.type)}`), `${heading}: type`);
    }
  }
});

test('a change in an option spec would show up as a difference (the comparison is not vacuous)', () => {
  const stale = doc.replace('#### `services.nixfleet-agent.cpUrl`', '#### `services.nixfleet-agent.cpURL`');
  assert.is.not(stale, doc);
  assert.is.not(withGenerated(stale), stale);
  assert.ok(renderOptionsSection().includes('#### `services.nixfleet-control-plane.tlsKeyFile`'));
});

test.run();
