/** The real binary (bin/nixfleet.js → cli/main.ts) as a process: exit codes and one-line errors. */
import { spawnSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { createServer } from 'node:net';
import type { AddressInfo } from 'node:net';
import { fileURLToPath } from 'node:url';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { createFleetCa, mintOperatorCert } from '../pki/pki.ts';
import { isOneLine, tempDir } from '../fixtures/cli-testing.ts';

const BIN = fileURLToPath(new URL('../bin/nixfleet.js', import.meta.url));
const tmp = tempDir();
test.after(() => tmp.cleanup());

function nixfleet(args: string[], env: Record<string, string> = {}) {
  const r = spawnSync(process.execPath, [BIN, ...args], { encoding: 'utf8', env: { PATH: process.env['PATH'] ?? '', HOME: tmp.dir, ...env }, timeout: 60_000 });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

test('--help exits 0 and lists the commands', () => {
  const r = nixfleet(['--help']);
  assert.is(r.code, 0);
  assert.match(r.stdout, /rollout trace/);
});

test('usage error: exit 2, one line', () => {
  const r = nixfleet(['rollout', 'frob']);
  assert.is(r.code, 2);
  assert.ok(isOneLine(r.stderr), r.stderr);
});

test('unreachable CP: exit 3, one line, no stack trace', async () => {
  const s = createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  const port = (s.address() as AddressInfo).port;
  await new Promise((r) => s.close(r));
  const fleetCa = await createFleetCa({ commonName: 'ca' });
  const op = await mintOperatorCert(fleetCa, 'op');
  writeFileSync(join(tmp.dir, 'ca.pem'), fleetCa.certPem);
  writeFileSync(join(tmp.dir, 'op.pem'), op.certPem);
  writeFileSync(join(tmp.dir, 'op.key'), op.keyPem);
  const r = nixfleet(['status'], { NIXFLEET_URL: `https://127.0.0.1:${port}`, NIXFLEET_CERT: join(tmp.dir, 'op.pem'), NIXFLEET_KEY: join(tmp.dir, 'op.key'), NIXFLEET_CA: join(tmp.dir, 'ca.pem') });
  assert.is(r.code, 3);
  assert.ok(isOneLine(r.stderr), r.stderr);
  assert.match(r.stderr, /connection refused/);
  assert.not.match(r.stderr, /\n\s+at /);
});

test.run();
