// Loaded with `--import` (through NODE_OPTIONS, so every child process gets it too) when the suite
// runs on a second Node runtime (scripts/run.mjs, NIXFLEET_NODE=24): `better-sqlite3` then resolves
// to a copy whose native addon was built for that runtime's ABI (NIXFLEET_ADDON_DIR/node_modules),
// instead of node_modules' copy, built for the default node. Test infrastructure only: the product
// never sees it. On a runtime without module.registerHooks it does nothing.
import * as mod from 'node:module';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';

const dir = process.env.NIXFLEET_ADDON_DIR;
if (dir !== undefined && dir !== '' && typeof mod.registerHooks === 'function') {
  const entry = pathToFileURL(join(dir, 'node_modules', 'better-sqlite3', 'lib', 'index.js')).href;
  mod.registerHooks({
    resolve(specifier, context, next) {
      return specifier === 'better-sqlite3' ? { url: entry, format: 'commonjs', shortCircuit: true } : next(specifier, context);
    },
  });
}
