/** The version constant follows package.json, and every binary answers --version with it. */
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { NIXFLEET_VERSION } from './version.ts';

const ROOT = join(import.meta.dirname, '..');

test('NIXFLEET_VERSION is package.json\'s version', () => {
  assert.is(NIXFLEET_VERSION, (JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { version: string }).version);
});

for (const bin of ['nixfleet', 'nixfleet-agent', 'nixfleet-control-plane', 'nixfleet-release']) {
  test(`${bin} --version prints "${bin} ${NIXFLEET_VERSION} (node …)" and exits 0`, () => {
    const r = spawnSync(process.execPath, [join(ROOT, 'bin', `${bin}.js`), '--version'], { encoding: 'utf8' });
    assert.is(r.status, 0, r.stderr);
    assert.is(r.stdout, `${bin} ${NIXFLEET_VERSION} (node ${process.version})\n`);
  });
}

test.run();
