/**
 * Instructions per steady check-in against the bare Node mTLS server, both under callgrind
 * (bench/lib/checkin-ir.ts): counts that do not move with the machine's load — the bare server's
 * repeat within 2–5 %. The CP's timers are stretched as Valgrind stretches wall time (50×), so its
 * rounds repeat too: in an A/A run (session 15) two checkouts of the same code counted within
 * 0.1–2 % of each other round by round. Compare versions round by round (`IR_AB`), not across
 * runs. Not issue 19's ≤ 1.5× figure: no kernel time is counted, so the shared TLS work weighs
 * less and the ratio is higher than in CPU time (docs/performance.md, session 13).
 * Skipped when Valgrind is missing.
 *
 * `IR_ROUNDS` (default 3), `IR_LIVE` (hosts that check in, default 2,000 — every first contact is a
 * TLS handshake under Valgrind), `IR_FLEET` (hosts the artefact declares, default 10,000),
 * `IR_CONNECTIONS` (default 64), `IR_PER_CONNECTION` (default 100), `IR_WARMUP` (uncounted phases first, default 10), `IR_AB=DIR[,DIR2]` (another
 * checkout's CP in the same rounds, labelled `base`, `base2`), `IR_DUMP=DIR` (one more count per
 * server written there as a callgrind profile, for callgrind_annotate).
 */
import { callgrindAvailable } from './lib/callgrind.ts';
import { runCheckinIr } from './lib/checkin-ir.ts';
import { MAX_HOSTS } from './lib/load.ts';

export default async function bench(): Promise<object> {
  if (!callgrindAvailable()) return { skipped: 'valgrind (callgrind_control) is not installed: apt-get install -y valgrind' };
  const env = process.env;
  const num = (name: string, dflt: number): number => Number(env[name] ?? dflt);
  const ab = (env['IR_AB'] ?? '').split(',').filter((x) => x !== '');
  const r = await runCheckinIr({
    liveHosts: Math.min(num('IR_LIVE', 2000), MAX_HOSTS),
    fleetHosts: num('IR_FLEET', MAX_HOSTS),
    rounds: num('IR_ROUNDS', 3),
    connections: num('IR_CONNECTIONS', 64),
    checkinsPerConnection: num('IR_PER_CONNECTION', 100),
    warmupPhases: num('IR_WARMUP', 10),
    ...(env['IR_DUMP'] !== undefined && env['IR_DUMP'] !== '' ? { dumpDir: env['IR_DUMP'] } : {}),
    variants: [{ label: 'cp', root: process.cwd() }, ...ab.map((root, i) => ({ label: i === 0 ? 'base' : `base${i + 1}`, root }))],
  });
  const cp = r.variants[0]!;
  // Not an acceptance figure: user-space instructions only, no kernel time (docs/performance.md).
  return { irRatioToBare: cp.median.ratio, ...r };
}
