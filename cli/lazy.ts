import type { Ctx, Outcome } from './framework.ts';

/**
 * Lazy command handlers for the command tables (cli/commands.ts, cli/commands-pki.ts).
 *
 * Handlers load on first use (dynamic import): `nixfleet --help`, completion and usage errors
 * never evaluate the HTTP client, the PKI library or the verifiers (issue 18: `--help` ≤ 200 ms;
 * the bundle splits them into chunks, scripts/build.mjs).
 */
export type Handler = (ctx: Ctx) => Promise<Outcome>;
export const lazy =
  <M extends Record<K, Handler>, K extends string>(load: () => Promise<M>, name: K): Handler =>
  async (ctx) =>
    (await load())[name](ctx);
