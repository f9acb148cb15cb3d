#!/usr/bin/env node
// Launcher: the bundle built by `npm run build` (dist/nixfleet-release.mjs) when present, else the
// TypeScript sources through tsx's loader. NIXFLEET_FROM_SOURCE=1 forces the sources (the test
// runner sets it, so tests never run a stale bundle).
import { existsSync } from 'node:fs';
import module from 'node:module';
// Node ≥ 22.1: keep V8's compiled code of the bundle between runs (most of a start-up's cost).
module.enableCompileCache?.();
const bundle = new URL('../dist/nixfleet-release.mjs', import.meta.url);
if (process.env.NIXFLEET_FROM_SOURCE !== '1' && existsSync(bundle)) {
  await import(bundle.href);
} else {
  const { register } = await import('tsx/esm/api');
  register();
  await import('../release/main.ts');
}
