/**
 * Issue 18 — the README's "Your first fleet", walked as a new user would: every command of that
 * section run as a real process (the `bin/*.js` entry points) in an empty temp directory, in its
 * order: cache key, `nixfleet-release init`, the PKI, `nixfleet config init`, the host's closure,
 * `push` to a signed file:// cache, `resolve`, `sign`, the control plane from flags, the agent
 * `once` from flags, `nixfleet status`. The only file edited is the fleet description
 * (`fleet/fleet.json`: the closure and the host's public key). At the end `nixfleet status --json`
 * shows web1 converged on the closure, and the agent's profile points at it.
 *
 * What differs from the README, because this machine is not web1: the closure is a toy NixOS
 * system built from fixtures/nix/toys.nix (a real `nix-build`, with a switch-to-configuration
 * script) in place of `nix build …toplevel`; web1's SSH host key comes from `ssh-keygen`; the
 * agent gets the flags in TEST_ONLY_FLAGS (state, profile, running and booted system, host key,
 * host name under the temp directory). Those are the only differences: the test fails when a
 * command it runs is not in the README section, or a command of the section is not run.
 */
import { existsSync, mkdirSync, mkdtempSync, readFileSync, realpathSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as assert from 'uvu/assert';
import { basenameOf, buildToys, newNonce } from '../fixtures/nix.ts';
import { freePort } from './harness.ts';
import { REPO, registerTempRoot, removeTempRoot, run, spawnProc, stopProc, tailLog, type Proc, type RunResult } from './proc.ts';
import { scenarioSuite } from './scenario.ts';
import { waitFor } from './wait.ts';

const { s, register } = scenarioSuite('first-fleet', ['release-cli', 'push', 'control-plane', 'agent', 'cli']);

const BINS: Record<string, string> = {
  'nixfleet-release': 'bin/nixfleet-release.js',
  nixfleet: 'bin/nixfleet.js',
  'nixfleet-control-plane': 'bin/nixfleet-control-plane.js',
  'nixfleet-agent': 'bin/nixfleet-agent.js',
};

/** Flags the test adds because this machine is not web1 (the README's defaults are a NixOS host's). */
const TEST_ONLY_FLAGS: Record<string, readonly string[]> = {
  'nixfleet-agent': ['--state-dir', '--profile', '--current-system', '--booted-system', '--host-key', '--hostname'],
};

/** README commands the test replaces (see the header). */
const REPLACED = new Set(['nix build']);

// ---- the README section as commands -------------------------------------------------------------

/** Shell-ish words of one command line: quotes kept together, stops at a pipe or redirection. */
export function words(line: string): string[] {
  const out: string[] = [];
  let cur = '';
  let quote: string | null = null;
  let depth = 0;
  for (const ch of line) {
    if (quote !== null) {
      if (ch === '(') depth++;
      if (ch === ')') depth--;
      if (ch === quote && depth === 0) quote = null;
      else cur += ch;
    } else if (ch === '"' || ch === "'") quote = ch;
    else if (/\s/.test(ch)) {
      if (cur !== '') out.push(cur);
      cur = '';
    } else if ('|<>&'.includes(ch)) break;
    else cur += ch;
  }
  if (cur !== '') out.push(cur);
  return out;
}

/** What must agree between README and test: program, leading words (subcommand, name), flag names. */
export function signature(argv: readonly string[]): string {
  const [prog, ...rest] = argv;
  const lead: string[] = [];
  let i = 0;
  for (; i < rest.length && !rest[i]!.startsWith('-'); i++) lead.push(rest[i]!);
  const skip = new Set(TEST_ONLY_FLAGS[prog!] ?? []);
  const flags = [...new Set(rest.slice(i).filter((t) => t.startsWith('--')).map((t) => t.split('=')[0]!))].filter((f) => !skip.has(f)).sort();
  return [prog, ...lead, ...flags].join(' ');
}

/** Every command of the README's "Your first fleet" code blocks, as signatures, in order. */
function readmeCommands(): string[] {
  const text = readFileSync(join(REPO, 'README.md'), 'utf8');
  const start = text.indexOf('\n## Your first fleet\n');
  assert.ok(start >= 0, 'README.md has a "Your first fleet" section');
  const end = text.indexOf('\n## ', start + 1);
  const section = text.slice(start, end < 0 ? undefined : end);
  const out: string[] = [];
  for (const block of section.matchAll(/```sh\n([\s\S]*?)```/g)) {
    const lines = block[1]!.replace(/\\\n\s*/g, ' ').split('\n');
    for (const l of lines) {
      if (l.trim() === '' || l.trim().startsWith('#')) continue;
      out.push(signature(words(l)));
    }
  }
  return out;
}

// ---- the walk -------------------------------------------------------------------------------------

let dir = '';
let cp: Proc | null = null;
const ran: string[] = [];

s.after(async () => {
  if (cp !== null) await stopProc(cp);
  if (dir !== '') removeTempRoot(dir);
});

/** Run one README command (program + args) in the user's directory; fails the test on exit ≠ 0. */
async function cmd(argv: string[], opts: { input?: string; env?: NodeJS.ProcessEnv } = {}): Promise<RunResult> {
  ran.push(signature(argv));
  const [prog, ...args] = argv;
  const bin = BINS[prog!];
  const r = bin !== undefined ? await run(process.execPath, [join(REPO, bin), ...args], { cwd: dir, env: { ...userEnv(), ...opts.env }, ...(opts.input !== undefined ? { input: opts.input } : {}), timeoutMs: 300_000 }) : await run(prog!, args, { cwd: dir, env: userEnv(), ...(opts.input !== undefined ? { input: opts.input } : {}) });
  if (r.code !== 0) throw new Error(`${argv.join(' ')} exited ${r.code}\n--- stdout\n${r.stdout}\n--- stderr\n${r.stderr}`);
  return r;
}

/** The user's environment: the CLI's settings under the temp dir, Nix's cache too; `nix key` needs nix-command. */
function userEnv(): NodeJS.ProcessEnv {
  return { XDG_CONFIG_HOME: join(dir, 'xdg-config'), XDG_CACHE_HOME: join(dir, 'xdg-cache'), NIXFLEET_LOG_LEVEL: 'info', NIX_CONFIG: 'experimental-features = nix-command' };
}

register('the README\'s first fleet: init → PKI → push → resolve → sign → CP → agent → status, with no file written by hand but fleet.json', async () => {
  dir = mkdtempSync(join(tmpdir(), 'nixfleet-e2e-first-fleet-'));
  registerTempRoot(dir);
  const port = await freePort();
  const url = `https://127.0.0.1:${port}`;

  // 1. Cache key, fleet repository.
  const secret = await cmd(['nix', 'key', 'generate-secret', '--key-name', 'cache-1']);
  writeFileSync(join(dir, 'cache.sec'), secret.stdout, { mode: 0o600 });
  const pub = await cmd(['nix', 'key', 'convert-secret-to-public'], { input: secret.stdout });
  writeFileSync(join(dir, 'cache.pub'), pub.stdout);
  await cmd(['nixfleet-release', 'init', '--dir', 'fleet', '--host', 'web1', '--cache-key', pub.stdout.trim()]);
  for (const f of ['trust.json', 'revocations.json', 'revocations.json.sig', 'fleet.json', 'release.key']) assert.ok(existsSync(join(dir, 'fleet', f)), `init wrote fleet/${f}`);

  // 2. PKI and the CLI's settings.
  await cmd(['nixfleet', 'pki', 'init', '--pki-dir', 'pki']);
  await cmd(['nixfleet', 'mint-server-cert', '--hostnames', 'localhost', '--pki-dir', 'pki', '--out-dir', 'cp']);
  await cmd(['nixfleet', 'mint-operator-cert', 'alice', '--pki-dir', 'pki', '--out-dir', 'op']);
  await cmd(['nixfleet', 'mint-host-cert', 'web1', '--pki-dir', 'pki', '--out-dir', 'web1']);
  await cmd(['nixfleet', 'config', 'init', '--url', url, '--cert', 'op/alice.pem', '--key', 'op/alice.key', '--ca', 'pki/ca.pem']);

  // 3. web1's closure (a toy NixOS system, see the header), pushed to the signed file:// cache.
  const machine = join(dir, 'web1-machine');
  mkdirSync(join(machine, 'profiles'), { recursive: true });
  const closure = (await buildToys(machine, [{ name: 'web1' }], newNonce()))['web1']!;
  await cmd(['nixfleet-release', 'push', '--cache', `file://${dir}/cache`, '--signing-key', 'cache.sec', '--closure', `web1=${closure}`]);
  // Only the signed cache has it now: the agent must fetch it from there (not a user step).
  const del = await run('nix-store', ['--delete', closure]);
  assert.is(del.code, 0, del.stderr);
  assert.not.ok(existsSync(closure), 'the closure left the local store');

  // The one hand edit: the fleet description gets web1's closure and SSH host key.
  const hostKey = join(machine, 'ssh_host_ed25519_key');
  const kg = await run('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', 'root@web1', '-f', hostKey]);
  assert.is(kg.code, 0, kg.stderr);
  const fleetFile = join(dir, 'fleet', 'fleet.json');
  const fleet = JSON.parse(readFileSync(fleetFile, 'utf8')) as { hosts: Record<string, Record<string, unknown>> };
  fleet.hosts['web1'] = { ...fleet.hosts['web1'], closureHash: basenameOf(closure), pubkey: readFileSync(`${hostKey}.pub`, 'utf8').trim() };
  writeFileSync(fleetFile, JSON.stringify(fleet, null, 2) + '\n');

  // 4. CI: resolve and sign.
  await cmd(['nixfleet-release', 'resolve', '--fleet', 'fleet/fleet.json', '--out', 'fleet.resolved.json']);
  await cmd(['nixfleet-release', 'sign', '--in', 'fleet.resolved.json', '--key', 'fleet/release.key', '--out-dir', 'releases']);

  // 5. The control plane, from flags only.
  const cpArgs = ['serve', '--tls-cert', 'cp/server.pem', '--tls-key', 'cp/server.key', '--client-ca', 'pki/ca.pem', '--trust-file', 'fleet/trust.json', '--source-dir', 'releases', '--db', 'cp.sqlite', '--listen-port', String(port)];
  ran.push(signature(['nixfleet-control-plane', ...cpArgs]));
  const cpLog = join(dir, 'cp.log');
  cp = spawnProc({ name: 'cp', cmd: process.execPath, args: [join(REPO, BINS['nixfleet-control-plane']!), ...cpArgs], logFile: cpLog, cwd: dir, env: userEnv() });
  await waitFor('the control plane to be ready (verified the signed fleet)', () => {
    if (cp?.hasExited() === true) throw new Error(`CP exited:\n${tailLog(cpLog)}`);
    return existsSync(cpLog) && readFileSync(cpLog, 'utf8').includes('"cp.ready"');
  }, { timeoutMs: 120_000, diagnostics: () => tailLog(cpLog) });

  // 6. The agent, once, from flags only (+ TEST_ONLY_FLAGS: web1's state lives under the temp dir).
  const profile = join(machine, 'profiles', 'system');
  const agentArgv = [
    'nixfleet-agent', 'once', '--cp-url', url, '--cert', 'web1/web1.pem', '--key', 'web1/web1.key', '--ca', 'pki/ca.pem', '--trust-file', 'fleet/trust.json', '--substituter', `file://${dir}/cache`,
    '--hostname', 'web1', '--host-key', hostKey, '--state-dir', join(machine, 'state'), '--profile', profile, '--current-system', join(machine, 'current-system'), '--booted-system', join(machine, 'booted-system'),
  ];
  const once = await cmd(agentArgv);
  const outcome = JSON.parse(once.stdout.trim().split('\n').pop()!) as { kind: string; outcome?: string };
  assert.is(outcome.kind, 'activated', once.stdout + once.stderr);
  assert.is(outcome.outcome, 'confirmed', once.stdout + once.stderr);
  // 7. Status. One `once` is enough: its confirm made the closure web1's current one on the CP in
  // the same write (no later check-in; nothing else talks to the CP as web1). Converged follows with
  // the reconcile pass the confirm asked for. The profile points at the closure, fetched from the cache.
  const right = await cmd(['nixfleet', 'status', '--json']);
  const first = (JSON.parse(right.stdout) as { hosts: { hostname: string; currentClosure: string | null }[] }).hosts.find((x) => x.hostname === 'web1');
  assert.is(first?.currentClosure, basenameOf(closure), 'the CP shows the confirmed closure as current right after `once`');
  const table = await cmd(['nixfleet', 'status']);
  assert.match(table.stdout, /web1/);
  const status = await waitFor('nixfleet status --json to show web1 converged', async (observe) => {
    const r = await cmd(['nixfleet', 'status', '--json']);
    const hosts = (JSON.parse(r.stdout) as { hosts: { hostname: string; status: string; currentClosure: string | null; declaredClosure: string | null }[] }).hosts;
    observe(hosts);
    const h = hosts.find((x) => x.hostname === 'web1');
    return h !== undefined && h.status === 'converged' && h.currentClosure !== null ? h : undefined;
  }, { timeoutMs: 120_000, intervalMs: 2000, diagnostics: () => tailLog(cpLog) });
  assert.is(status.currentClosure, basenameOf(closure));
  assert.is(status.declaredClosure, basenameOf(closure));
  assert.is(realpathSync(profile), closure, "the agent's profile points at the closure");
  assert.ok(existsSync(closure), 'the closure came back from the signed cache');
  assert.equal(readFileSync(join(machine, 'switch.log'), 'utf8').trim().split('\n'), ['web1 switch'], "the closure's own switch script ran once");

  // The README and this walk agree, both ways.
  const readme = readmeCommands();
  for (const r of new Set(ran)) assert.ok(readme.includes(r), `the test ran "${r}", which is not in README.md "Your first fleet":\n${readme.join('\n')}`);
  for (const r of readme) {
    const replaced = [...REPLACED].some((p) => r.startsWith(`${p} `) || r === p);
    assert.ok(replaced || ran.includes(r), `README.md "Your first fleet" has "${r}", which the test does not run:\n${[...new Set(ran)].join('\n')}`);
  }
});

s.run();
