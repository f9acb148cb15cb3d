/**
 * `npm run bench`: runs every `bench/*.bench.ts` module in its own process (so one benchmark's
 * heap and JIT state do not colour another's) and prints one JSON document on stdout:
 * `{ machine, results: { <name>: <whatever that module returned> } }`.
 *
 * A bench module's default export is `async () => object`; the child prints it as JSON on the last
 * line of its stdout. `--only NAME` runs one module.
 */
import { spawnSync } from 'node:child_process';
import { readdirSync } from 'node:fs';
import { cpus, totalmem } from 'node:os';
import { basename, join } from 'node:path';
import { pathToFileURL } from 'node:url';

const DIR = join(process.cwd(), 'bench');

async function child(file: string): Promise<void> {
  const mod = (await import(pathToFileURL(file).href)) as { default: () => Promise<unknown> };
  const result = await mod.default();
  process.stdout.write('\n' + JSON.stringify(result) + '\n');
  process.exit(0);
}

function main(): void {
  const onlyIdx = process.argv.indexOf('--only');
  const only = onlyIdx >= 0 ? process.argv[onlyIdx + 1] : undefined;
  const files = readdirSync(DIR)
    .filter((f) => f.endsWith('.bench.ts'))
    .filter((f) => only === undefined || basename(f, '.bench.ts') === only)
    .sort();
  const results: Record<string, unknown> = {};
  for (const f of files) {
    const name = basename(f, '.bench.ts');
    process.stderr.write(`bench: ${name} …\n`);
    const r = spawnSync(process.execPath, ['--expose-gc', '--import', 'tsx', join(DIR, 'main.ts'), '--child', join(DIR, f)], {
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'inherit'],
      maxBuffer: 64 * 1024 * 1024,
    });
    const lines = (r.stdout ?? '').trim().split('\n');
    try {
      results[name] = JSON.parse(lines[lines.length - 1] ?? '');
    } catch {
      results[name] = { error: `exit ${r.status}`, output: (r.stdout ?? '').slice(-2000) };
    }
  }
  const machine = { cpus: cpus().length, cpuModel: cpus()[0]?.model ?? 'unknown', memoryBytes: totalmem(), node: process.version };
  process.stdout.write(JSON.stringify({ machine, results }, null, 2) + '\n');
}

const childIdx = process.argv.indexOf('--child');
if (childIdx >= 0) await child(process.argv[childIdx + 1]!);
else main();
