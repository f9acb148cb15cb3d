/**
 * `npm run build` (scripts/build.mjs): every program bundles, and each bundle runs on plain node
 * (no tsx): --version, --help, and a real command of the release tool. Timing is measured by
 * `npm run bench` (bench/startup.bench.ts), not here.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { NIXFLEET_VERSION } from '../io/version.ts';

const dir = mkdtempSync(join(tmpdir(), 'nixfleet-build-'));
// Beside node_modules, as dist/ is: the external native module (better-sqlite3) resolves from there.
const out = join(import.meta.dirname, '..', `.build-test-${process.pid}`);
test.after(() => {
  rmSync(dir, { recursive: true, force: true });
  rmSync(out, { recursive: true, force: true });
});

test('the four bundles build and run on plain node', async () => {
  const buildModule: string = new URL('./build.mjs', import.meta.url).href;
  const { buildAll, PROGRAMS } = (await import(buildModule)) as { buildAll: (o: string) => Promise<string>; PROGRAMS: Record<string, string> };
  await buildAll(out);
  for (const name of Object.keys(PROGRAMS)) {
    const file = join(out, `${name}.mjs`);
    assert.ok(existsSync(file), file);
    const v = spawnSync(process.execPath, [file, '--version'], { encoding: 'utf8' });
    assert.is(v.status, 0, `${name}: ${v.stderr}`);
    assert.is(v.stdout, `${name} ${NIXFLEET_VERSION} (node ${process.version})\n`);
    const h = spawnSync(process.execPath, [file, '--help'], { encoding: 'utf8' });
    assert.is(h.status, 0, `${name} --help: ${h.stderr}`);
    assert.match(h.stdout, /Usage|usage/);
  }
  const init = spawnSync(process.execPath, [join(out, 'nixfleet-release.mjs'), 'init', '--dir', join(dir, 'repo'), '--host', 'web1'], { encoding: 'utf8' });
  assert.is(init.status, 0, init.stderr);
  assert.ok(existsSync(join(dir, 'repo', 'revocations.json.sig')));
});

test('the CLI bundle keeps its command handlers in chunks loaded on first use (a small --help), and they run', () => {
  const main = statSync(join(out, 'nixfleet.mjs')).size;
  const chunks = readdirSync(join(out, 'chunks')).filter((f) => f.startsWith('nixfleet-') && f.endsWith('.mjs'));
  const chunked = chunks.reduce((n, f) => n + statSync(join(out, 'chunks', f)).size, 0);
  assert.ok(chunks.length > 0 && main * 5 < chunked, `entry ${main} bytes, chunks ${chunked} bytes`);
  // A lazily loaded handler (the PKI commands: @peculiar/x509) works from its chunk.
  const pki = spawnSync(process.execPath, [join(out, 'nixfleet.mjs'), 'pki', 'init', '--pki-dir', join(dir, 'pki')], { encoding: 'utf8' });
  assert.is(pki.status, 0, pki.stderr);
  assert.ok(existsSync(join(dir, 'pki', 'ca.pem')));
});

test.run();
