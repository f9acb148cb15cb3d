/**
 * The real Nix backend on its own (real nix-env / nix-store, toy closures): the nix-darwin path,
 * inhibitor detection per component, the agent guard, rollback through an existing generation.
 */
import { mkdirSync, mkdtempSync, readlinkSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { buildToys, readSwitchLog, run } from '../fixtures/nix.ts';
import { AGENT_SERVICE_PATHS } from './config.ts';
import type { Pending } from './machine.ts';
import { listGenerations, NixBackend } from './nix.ts';

const test = suite('agent/nix backend');
const root = mkdtempSync(join(tmpdir(), 'nixfleet-nixbackend-'));
let toys: Record<string, string> = {};

test.before(async () => {
  toys = await buildToys(root, [
    { name: 'base' },
    { name: 'sysd', systemd: 'B' },
    { name: 'dbus', dbus: 'B' },
    { name: 'mac1', darwin: true },
    { name: 'mac2', darwin: true },
    { name: 'mac-noagent', darwin: true, agent: false },
  ]);
});
test.after(() => rmSync(root, { recursive: true, force: true }));

function backend(platform: 'nixos' | 'darwin', dir: string): NixBackend {
  return new NixBackend({
    platform,
    profilePath: join(dir, 'profiles', 'system'),
    currentSystemPath: join(root, 'current-system'),
    bootedSystemPath: join(dir, 'booted-system'),
    substituters: [],
    cacheKeys: () => [],
    nixBinDir: null,
    agentServicePaths: AGENT_SERVICE_PATHS[platform],
    commandTimeoutSecs: 60,
  });
}

test('inhibitors: systemd and dbus differences are detected against the running system', async () => {
  const dir = join(root, 'nixos');
  mkdirSync(join(dir, 'profiles'), { recursive: true });
  symlinkSync(toys['base']!, join(root, 'current-system'));
  symlinkSync(toys['base']!, join(dir, 'booted-system'));
  const b = backend('nixos', dir);
  const ins = async (n: string) => {
    const r = await b.inspect(toys[n]!);
    assert.ok(r.ok);
    return r.ok ? r.value : null;
  };
  assert.equal((await ins('base'))!.inhibitors, []);
  assert.equal((await ins('sysd'))!.inhibitors, ['systemd']);
  assert.equal((await ins('dbus'))!.inhibitors, ['dbus']);
  assert.is((await ins('base'))!.hasAgentService, true);
  const mac = await b.inspect(toys['mac1']!);
  assert.ok(!mac.ok && mac.error.code === 'NOT_A_SYSTEM', 'a darwin closure is not a NixOS system');
  const notPath = await b.realise('/etc/passwd');
  assert.ok(!notPath.ok && notPath.error.code === 'NOT_A_SYSTEM');
  rmSync(join(root, 'current-system'));
});

test('nix-darwin: activate-user then activate, agent guard on the launchd plist, rollback runs the previous activate', async () => {
  const dir = join(root, 'darwin');
  mkdirSync(join(dir, 'profiles'), { recursive: true });
  const b = backend('darwin', dir);
  const profile = join(dir, 'profiles', 'system');
  for (const n of ['mac1', 'mac2']) {
    const s = await b.setProfile(toys[n]!);
    assert.ok(s.ok);
  }
  assert.equal(listGenerations(profile).map((g) => g.path), [toys['mac1'], toys['mac2']]);
  const guard = await b.inspect(toys['mac-noagent']!);
  assert.ok(guard.ok && guard.value.hasAgentService === false && guard.value.inhibitors.length === 0);
  const ok2 = await b.inspect(toys['mac2']!);
  assert.ok(ok2.ok && ok2.value.hasAgentService);
  const a = await b.activate(toys['mac2']!, 'switch');
  assert.ok(a.ok);
  assert.equal(readSwitchLog(root).slice(-2), ['mac2 activate-user', 'mac2 activate']);
  const pending: Pending = {
    rolloutId: 'r',
    closureHash: toys['mac2']!.slice(11),
    closurePath: toys['mac2']!,
    previous: toys['mac1']!,
    deadlineMs: 0,
    startedAtMs: 0,
    action: 'switch',
    phase: 'rolling-back',
  };
  const r = await b.rollback(pending);
  assert.ok(r.ok, r.ok ? '' : r.error.message);
  assert.equal(readSwitchLog(root).slice(-2), ['mac1 activate-user', 'mac1 activate']);
  // Back through the existing generation 1, not a new one.
  assert.is(readlinkSync(profile), 'system-1-link');
  assert.is(listGenerations(profile).length, 2);
  // Idempotent: a second rollback (after a crash) does not move the profile again.
  assert.ok((await b.rollback(pending)).ok);
  assert.is(readlinkSync(profile), 'system-1-link');
  const gens = await run('nix-env', ['-p', profile, '--list-generations']);
  assert.match(gens.stdout, /1 .*\(current\)/);
});

test.run();
