/**
 * `nixfleet dashboard` (issue 20): a local, read-only web view of the fleet, like `kubectl proxy`:
 * the CLI talks to the CP with the operator's certificate (client.ts, GET only), the browser talks
 * to this process on loopback. Runs until SIGINT / SIGTERM.
 */
import { clientFromCtx } from '../client.ts';
import type { Ctx, Outcome } from '../framework.ts';
import { done, fail, flagBool, flagInt, flagStr } from '../framework.ts';
import { DEFAULT_LISTEN, isLoopback, parseListen, startDashboard, type RunningDashboard } from './server.ts';

export async function dashboard(ctx: Ctx): Promise<Outcome> {
  const listen = parseListen(flagStr(ctx, 'listen') ?? DEFAULT_LISTEN);
  if (!listen.ok) return { error: listen.error };
  if (!isLoopback(listen.value.host) && !flagBool(ctx, 'allow-remote')) {
    return fail('USAGE', `refusing to listen on ${listen.value.host}: not a loopback address, and the dashboard shows the fleet with your operator certificate to anyone who reaches it; use --allow-remote to mean it`);
  }
  const refreshSecs = flagInt(ctx, 'refresh-secs') ?? 2;
  if (refreshSecs < 1) return fail('USAGE', '--refresh-secs must be at least 1');
  const client = clientFromCtx(ctx);
  if (!client.ok) return { error: client.error };
  let running: RunningDashboard;
  try {
    running = await startDashboard({ client: client.value, listen: listen.value, refreshMs: refreshSecs * 1000, now: ctx.io.now });
  } catch (e) {
    await client.value.close();
    return fail('USAGE', `cannot listen on ${flagStr(ctx, 'listen') ?? DEFAULT_LISTEN}: ${(e as NodeJS.ErrnoException).code ?? String(e)}`);
  }
  if (flagBool(ctx, 'json')) ctx.io.stdout(JSON.stringify({ url: running.url, port: running.port, controlPlane: client.value.baseUrl, readOnly: true }) + '\n');
  else ctx.io.stdout(`nixfleet dashboard: ${running.url} (read-only view of ${client.value.baseUrl}); Ctrl-C stops\n`);
  await new Promise<void>((resolve) => {
    process.once('SIGINT', resolve);
    process.once('SIGTERM', resolve);
  });
  await running.close();
  await client.value.close();
  return done;
}
