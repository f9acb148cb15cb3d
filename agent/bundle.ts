/**
 * Builds the agent as ONE ESM file for plain `node` (no tsx loader at run time: ~30 MB less
 * resident memory, SPEC §8), with esbuild (the bundler tsx already brings). Packaging can call
 * `npx tsx agent/bundle.ts OUT.mjs`; bench/agent.bench.ts measures both launch modes.
 */
import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const ROOT = fileURLToPath(new URL('..', import.meta.url));

/** Bundles agent/main.ts to `outFile`; resolves to `outFile`. */
export function bundleAgent(outFile: string): Promise<string> {
  const args = [
    'agent/main.ts',
    '--bundle',
    '--platform=node',
    '--format=esm',
    '--target=node20',
    `--outfile=${outFile}`,
    '--log-level=warning',
    '--minify',
    '--keep-names',
    '--legal-comments=none',
    // undici and others are CommonJS that `require` node built-ins: give the ESM bundle a require.
    "--banner:js=import { createRequire as __nixfleetCreateRequire } from 'node:module'; const require = __nixfleetCreateRequire(import.meta.url);",
  ];
  return new Promise((resolve, reject) => {
    execFile(`${ROOT}node_modules/.bin/esbuild`, args, { cwd: ROOT }, (error, _stdout, stderr) => {
      if (error !== null) reject(new Error(`esbuild failed: ${String(stderr) || error.message}`));
      else resolve(outFile);
    });
  });
}

if (process.argv[1] !== undefined && /agent[/\\]bundle\.ts$/.test(process.argv[1])) {
  const out = process.argv[2];
  if (out === undefined) {
    process.stderr.write('usage: tsx agent/bundle.ts OUT.mjs\n');
    process.exitCode = 1;
  } else {
    await bundleAgent(out);
    process.stderr.write(`wrote ${out}\n`);
  }
}
