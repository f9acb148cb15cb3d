#!/usr/bin/env node
/**
 * `npm run build`: the four programs as bundled ESM files in dist/ (gitignored), one per binary,
 * with esbuild. bin/*.js run them when present (no TypeScript transpiling at start: `nixfleet
 * --help` in ~0.1 s instead of ~1 s through tsx) and fall back to the sources through tsx
 * otherwise; nix/packages.nix builds them with `npm run build`. Native and optional modules stay
 * outside the bundle (better-sqlite3's addon, pg's optional pg-native) and resolve from
 * node_modules as usual.
 *
 *   node scripts/build.mjs [OUT_DIR]      (default dist/)
 */
import { build } from 'esbuild';
import { mkdirSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = fileURLToPath(new URL('..', import.meta.url));

/** binary name → entry point. */
export const PROGRAMS = {
  nixfleet: 'cli/main.ts',
  'nixfleet-agent': 'agent/main.ts',
  'nixfleet-control-plane': 'control-plane/main.ts',
  'nixfleet-release': 'release/main.ts',
};

export async function buildAll(outDir = join(ROOT, 'dist')) {
  mkdirSync(outDir, { recursive: true });
  await Promise.all(
    Object.entries(PROGRAMS).map(([name, entry]) =>
      build({
        // Code splitting: what a program imports dynamically (the CLI's command handlers) goes into
        // chunks loaded on first use, so `nixfleet --help` parses and runs little (issue 18).
        entryPoints: { [name]: join(ROOT, entry) },
        outdir: outDir,
        outExtension: { '.js': '.mjs' },
        splitting: true,
        chunkNames: `chunks/${name}-[hash]`,
        bundle: true,
        platform: 'node',
        format: 'esm',
        target: 'node20',
        minify: true,
        keepNames: true,
        legalComments: 'none',
        logLevel: 'warning',
        external: ['better-sqlite3', 'pg-native'],
        // CommonJS dependencies `require` node built-ins: give the ESM bundle a require.
        banner: { js: "import { createRequire as __nixfleetCreateRequire } from 'node:module'; const require = __nixfleetCreateRequire(import.meta.url);" },
      }),
    ),
  );
  return outDir;
}

if (process.argv[1] !== undefined && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const out = await buildAll(process.argv[2] !== undefined ? resolve(process.argv[2]) : undefined);
  process.stderr.write(`built ${Object.keys(PROGRAMS).map((n) => `${n}.mjs`).join(', ')} in ${out}\n`);
}
