#!/usr/bin/env node
// Fresh-clone entry point for the demo, plain JavaScript so that it runs before `npm ci`:
// installs the locked dependencies when node_modules is missing, then runs e2e/demo.ts (which
// checks for Nix itself). `npm run demo` runs e2e/demo.ts directly and needs node_modules.
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const repo = join(dirname(fileURLToPath(import.meta.url)), '..');
if (!existsSync(join(repo, 'node_modules', 'tsx'))) {
  console.log('node_modules is missing: running npm ci …');
  const r = spawnSync('npm', ['ci', '--no-audit', '--no-fund'], { cwd: repo, stdio: 'inherit' });
  if (r.status !== 0) process.exit(r.status ?? 1);
}
const r = spawnSync(process.execPath, ['--import', 'tsx', join(repo, 'e2e', 'demo.ts')], { cwd: repo, stdio: 'inherit' });
process.exit(r.status ?? 1);
