/**
 * `npm run demo`: a small signed-GitOps fleet on this machine, end to end, with real processes —
 * a git forge, the CI signing step, a signed Nix binary cache, the control plane and four agents —
 * then a signed rollout followed live with `nixfleet rollout trace --follow`, a kernel update that
 * waits for a reboot (the edge host reboots itself: `rebootPolicy: automatic`), then a bad release
 * that the canary rolls back, and `nixfleet status`. Everything runs under one temp directory on
 * loopback and is stopped and removed at the end (also on Ctrl-C).
 *
 *   edge   : edge-1                          (goes first: `stable` waits for `edge` to converge;
 *                                            rebootPolicy automatic)
 *   stable : web-canary  → web-1, web-2      (canary wave, then the rest; rollback-and-halt)
 */
import { execFileSync, spawn } from 'node:child_process';
import { existsSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Fleet as FleetT } from './harness.ts';
import { REPO, tsxArgs } from './proc.ts';

const t0 = Date.now();
const tty = process.stdout.isTTY === true && process.env['NO_COLOR'] === undefined;
const bold = (s: string) => (tty ? `\x1b[1m${s}\x1b[0m` : s);
const dim = (s: string) => (tty ? `\x1b[2m${s}\x1b[0m` : s);
const elapsed = () => `${((Date.now() - t0) / 1000).toFixed(0).padStart(3)}s`;
const step = (n: number, text: string) => console.log(`\n${bold(`[${elapsed()}] ${n}. ${text}`)}`);
const note = (text: string) => console.log(dim(`        ${text}`));

function haveNix(): boolean {
  try {
    execFileSync('nix-build', ['--version'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

/**
 * What the demo needs; `npm run demo` (scripts/run.mjs) has installed node_modules and nix-bin
 * already, so this only explains what is still missing when the file is run some other way.
 */
function preflight(): void {
  if (!haveNix()) {
    console.error('The demo needs Nix (it builds and activates real, if tiny, system closures): run it with `npm run demo`, which installs Debian’s nix-bin, or install Nix yourself.');
    process.exit(2);
  }
  if (process.getuid?.() !== 0) {
    console.error('The demo writes to the Nix store as a single-user install: run it as root (e.g. in a VM or container).');
    process.exit(2);
  }
}

preflight();

// Imported after the preflight so a missing Nix gives the message above, not a stack.
const { Fleet } = await import('./harness.ts');

/** `nixfleet …` with its output shown live (the operator's view). */
function cliLive(f: FleetT, args: string[]): Promise<number> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, tsxArgs('cli/main.ts', args), {
      cwd: REPO,
      stdio: ['ignore', 'inherit', 'inherit'],
      env: {
        ...process.env,
        NIXFLEET_URL: f.cpUrl,
        NIXFLEET_CERT: join(f.root, 'operator', 'operator.pem'),
        NIXFLEET_KEY: join(f.root, 'operator', 'operator.key'),
        NIXFLEET_CA: join(f.root, 'operator', 'ca.pem'),
        NIXFLEET_CONFIG: join(f.root, 'operator', 'cli-config.json'),
      },
    });
    child.on('exit', (code) => resolve(code ?? 1));
  });
}

async function rolloutId(f: FleetT, channel: string, label: string): Promise<string> {
  const r = await f.waitFor(`the ${channel} rollout of ${label} to open`, async () => f.rolloutFor(channel, label), { timeoutMs: 60_000 });
  return r.id;
}

const HOSTS = [
  { name: 'edge-1', channel: 'edge' },
  { name: 'web-canary', channel: 'stable', tags: ['canary'] },
  { name: 'web-1', channel: 'stable' },
  { name: 'web-2', channel: 'stable' },
];

let fleet: FleetT | null = null;
let failed = false;
try {
  step(1, 'Building the fleet: PKI, release key, signed binary cache, git forge, toy NixOS closures');
  fleet = await Fleet.create({
    name: 'demo',
    hosts: HOSTS,
    description: {
      channels: {
        edge: { rolloutPolicy: 'all-at-once', freshnessWindow: 120, signingIntervalMinutes: 60, rebootPolicy: 'automatic' },
        stable: { rolloutPolicy: 'canary', freshnessWindow: 120, signingIntervalMinutes: 60 },
      },
      rolloutPolicies: {
        'all-at-once': { strategy: 'all-at-once', waves: [{ selector: { all: true }, soakMinutes: 0 }] },
        canary: {
          strategy: 'canary',
          waves: [
            { selector: { tags: ['canary'] }, soakMinutes: 0 },
            { selector: { all: true }, soakMinutes: 0 },
          ],
          onHealthFailure: 'rollback-and-halt',
        },
      },
      channelEdges: [{ gates: 'edge', gated: 'stable', reason: 'edge proves a release first' }],
      disruptionBudgets: [{ selector: { channel: 'stable' }, maxInFlight: 1 }],
    },
    closures: { v1: 'ok', kern: { variant: 'ok', kernel: 'B' }, bad: 'fail' },
    cp: { logLevel: 'info' },
  });
  const f = fleet;
  note(`temp root      ${f.root}`);
  note(`forge          ${f.forge.rawUrl('releases/')}`);
  note(`binary cache   ${f.cache.url}  (key ${f.cacheKey.name})`);
  note(`release key    ${f.ci.publicKey}  (ed25519, stays with CI)`);

  step(2, 'CI: resolve the fleet, push closures to the signed cache, sign fleet.resolved.json, commit');
  const rel = await f.release('v1', { message: 'fleet: first release' });
  note(`source commit ${rel.sourceCommit.slice(0, 12)} → release commit ${rel.releaseCommit.slice(0, 12)} (releases/fleet.resolved.json + .sig, 64-byte ed25519)`);

  step(3, 'Starting the control plane (mTLS, SQLite; it holds no signing key) and 4 agents');
  await f.startCp();
  const ready = await f.op.get<{ fleet: { sha256: string; signedAt: string } | null }>('/readyz');
  note(`CP verified the release: sha256 ${ready.fleet?.sha256.slice(0, 16)}…, signed at ${ready.fleet?.signedAt}`);
  await f.startAgents();

  step(4, 'Rollout of v1, channel edge (stable waits for it): nixfleet rollout trace --follow');
  const edgeId = await rolloutId(f, 'edge', 'v1');
  await cliLive(f, ['rollout', 'trace', edgeId, '--follow', '--interval-secs', '1']);

  step(5, 'Rollout of v1, channel stable: canary first, then the rest, one host at a time');
  const stableId = await rolloutId(f, 'stable', 'v1');
  const c1 = await cliLive(f, ['rollout', 'trace', stableId, '--follow', '--interval-secs', '1']);
  if (c1 !== 0) throw new Error(`the v1 rollout did not converge (trace exit ${c1})`);
  await f.waitConverged('v1');
  note('every agent verified the signed artefact itself, fetched its closure from the signed cache, switched and confirmed');

  step(6, 'A kernel update on edge: activated for the next boot, PendingReboot, the agent reboots the host (rebootPolicy automatic)');
  const edge = f.host('edge-1');
  const relink = (link: string, target: string) => {
    rmSync(link, { force: true });
    symlinkSync(target, link);
  };
  relink(join(edge.dir, 'booted-system'), edge.closures['v1']!); // edge-1 booted into v1
  await f.release({ 'edge-1': 'kern', 'web-canary': 'v1', 'web-1': 'v1', 'web-2': 'v1' }, { message: 'edge: kernel update' });
  await f.waitFor('edge-1 to activate the kernel update for the next boot', () => f.switchLog('edge-1').includes('edge-1-kern boot'));
  await f.waitFor('edge-1 PendingReboot on the control plane', async () => (await f.hostsView()).find((h) => h.hostname === 'edge-1')?.rollout?.state === 'PendingReboot');
  note('edge-1: kernel differs from the booted one → switch-to-configuration boot → PendingReboot: no confirm deadline runs, the budget slot is held');
  await f.waitFor('edge-1 to run its reboot command', () => existsSync(join(edge.dir, 'reboots')));
  note('edge-1 ran its reboot command (a recorder in this demo); the machine "reboots": new boot id, booted into the new closure');
  await f.stopAgent('edge-1');
  relink(join(edge.dir, 'booted-system'), edge.closures['kern']!);
  relink(join(edge.dir, 'current-system'), edge.closures['kern']!);
  writeFileSync(join(edge.dir, 'boot_id'), 'demo-boot-2\n');
  await f.startAgent('edge-1');
  const kernId = await rolloutId(f, 'edge', 'kern');
  await cliLive(f, ['rollout', 'trace', kernId, '--follow', '--interval-secs', '1']);
  await f.waitConverged('kern', ['edge-1']);
  note('the agent confirmed from the booted system, over a new connection; the rollout converged');

  step(7, 'CI signs a bad release for stable (its activation fails)');
  const bad = await f.release({ 'edge-1': 'kern', 'web-canary': 'bad', 'web-1': 'bad', 'web-2': 'bad' }, { message: 'stable: a release whose activation fails' });
  note(`release commit ${bad.releaseCommit.slice(0, 12)}`);
  const badId = await rolloutId(f, 'stable', 'bad');
  const c2 = await cliLive(f, ['rollout', 'trace', badId, '--follow', '--interval-secs', '1']);
  note(`trace ended with exit ${c2} (1 = halted)`);
  await f.waitFor('web-canary to be back on v1', () => f.profileLabel('web-canary') === 'v1' && f.currentLabel('web-canary') === 'v1');
  note(`web-canary switch log: ${f.switchLog('web-canary').join(' → ')}`);
  note(`web-1 / web-2 untouched: ${f.profileLabel('web-1')} / ${f.profileLabel('web-2')}`);

  step(8, 'nixfleet status');
  await cliLive(f, ['status']);
} catch (e) {
  failed = true;
  console.error(`\ndemo failed: ${e instanceof Error ? e.message : String(e)}`);
  if (fleet !== null) console.error(await fleet.diagnostics());
} finally {
  step(9, 'Stopping every process and removing the temp directory');
  await fleet?.stop();
  note(`done in ${((Date.now() - t0) / 1000).toFixed(0)} s`);
}
process.exitCode = failed ? 1 : 0;
