/**
 * Helper process for harness.test.ts: registers a temp root and a long-running child the way a
 * fleet does, prints `<child pid> <temp root>`, then waits to be interrupted. The test sends it
 * SIGINT and checks that proc.ts's handlers killed the child's group and removed the temp root.
 */
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { registerTempRoot, spawnProc } from './proc.ts';

const root = mkdtempSync(join(tmpdir(), 'nixfleet-e2e-sigint-'));
registerTempRoot(root);
const p = spawnProc({ name: 'sleeper', cmd: '/bin/sh', args: ['-c', 'sleep 300 & wait'], logFile: join(root, 'sleeper.log') });
process.stdout.write(`${p.pid} ${root}\n`);
setInterval(() => undefined, 60_000);
