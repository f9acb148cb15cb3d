/**
 * The NixOS and nix-darwin modules, evaluated without nixpkgs against the stand-in lib of
 * nix-tests/stub-lib.nix (real option declarations and type checks, mkIf / mkMerge / priorities;
 * not the real module system: see docs/nixos.md for what this does not cover). Checks that the
 * config file each module writes is accepted by the program, the hardening of the units, and the
 * build-time agent guard.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { AGENT_SERVICE_PATHS, resolveConfig as resolveAgentConfig } from '../agent/config.ts';
import { resolveConfig as resolveCpConfig } from '../control-plane/config.ts';
import { nixInstantiate, nixString } from './nix.ts';
import { leaves, loadOptions } from './options.ts';

type Assertion = { assertion: boolean; message: string };
type Evaluated = {
  options: Record<string, { type: string; default?: unknown }>;
  assertions: Assertion[];
  systemd: Record<string, { serviceConfig: Record<string, unknown>; wantedBy?: string[]; [k: string]: unknown }> | null;
  launchd: Record<string, { serviceConfig: Record<string, unknown>; [k: string]: unknown }> | null;
  firewall: { allowedTCPPorts?: number[] } | null;
  activation: Record<string, { text: string }> | null;
};

const dir = mkdtempSync(join(tmpdir(), 'nixfleet-modules-'));
let n = 0;

function evalModule(module: 'agent' | 'control-plane' | 'darwin-agent', user: object): { ok: true; value: Evaluated } | { ok: false; stderr: string } {
  const file = join(dir, `args-${n++}.json`);
  writeFileSync(file, JSON.stringify({ module, user }));
  const r = nixInstantiate(['--eval', '--strict', '--json', '--expr', `import ./nix-tests/eval-module.nix { argsFile = ${nixString(file)}; }`]);
  return r.ok ? { ok: true, value: JSON.parse(r.stdout) as Evaluated } : { ok: false, stderr: r.stderr };
}
function mustEval(module: 'agent' | 'control-plane' | 'darwin-agent', user: object): Evaluated {
  const r = evalModule(module, user);
  if (!r.ok) throw new Error(r.stderr);
  return r.value;
}

/** The JSON config a module wrote (the stand-in writeText keeps the text in the store path). */
function writtenConfig(s: string): Record<string, unknown> {
  const m = /@@[^@]+\.json@@(.*)@@/s.exec(s);
  if (m === null) throw new Error(`no config file in ${s}`);
  return JSON.parse(m[1]!) as Record<string, unknown>;
}

const failed = (e: Evaluated) => e.assertions.filter((a) => !a.assertion).map((a) => a.message);

const hostBase = {
  networking: { hostName: 'web1' },
  nix: { package: '/nix/store/00000000000000000000000000000000-nix' },
};
const agentUser = (extra: object = {}) => ({
  ...hostBase,
  services: {
    'nixfleet-agent': {
      package: '/nix/store/00000000000000000000000000000000-nixfleet-agent',
      cpUrl: 'https://fleet.example.org:8443',
      tls: { certFile: '/var/lib/nixfleet-pki/host.crt', keyFile: '/var/lib/nixfleet-pki/host.key', caFile: '/etc/nixfleet/ca.crt' },
      ...extra,
    },
  },
});

// ---------------------------------------------------------------------------------------------

const agent = suite('nixosModules.agent');

agent('declares exactly the options of modules/options-agent.nix', () => {
  const e = mustEval('agent', agentUser());
  const spec = loadOptions('agent');
  const expected = [...leaves(spec.service), ...leaves(spec.settings)].map(([k]) => `services.nixfleet-agent.${k}`).sort();
  assert.equal(Object.keys(e.options).sort(), expected);
});

agent('writes a config that nixfleet-agent accepts, with the host name, platform and guard paths of NixOS', () => {
  const e = mustEval('agent', agentUser({ probes: [{ name: 'web', kind: 'http', url: 'http://127.0.0.1/healthz' }] }));
  assert.equal(failed(e), []);
  const unit = e.systemd?.['nixfleet-agent'];
  assert.ok(unit);
  const exec = String(unit!.serviceConfig['ExecStart']);
  assert.ok(exec.startsWith('/nix/store/00000000000000000000000000000000-nixfleet-agent/bin/nixfleet-agent run --config '), exec);
  const cfg = writtenConfig(exec);
  assert.equal(Object.keys(cfg).sort(), Object.keys(loadOptions('agent').settings).sort());
  const r = resolveAgentConfig(cfg, { hostname: 'not-used', platform: 'darwin' });
  assert.ok(r.ok, r.ok ? '' : r.error.message);
  if (!r.ok) return;
  assert.is(r.value.hostname, 'web1');
  assert.is(r.value.platform, 'nixos');
  assert.equal(r.value.agentServicePaths, [...AGENT_SERVICE_PATHS.nixos]);
  assert.is(r.value.cpUrl, 'https://fleet.example.org:8443');
  assert.is(r.value.probes.length, 1);
});

agent('the unit: root (activation needs it), state in StateDirectory, no namespace sandboxing, survives its own switch', () => {
  const unit = mustEval('agent', agentUser()).systemd!['nixfleet-agent']!;
  const sc = unit.serviceConfig;
  assert.is(sc['User'], 'root');
  assert.is(sc['StateDirectory'], 'nixfleet');
  assert.is(sc['StateDirectoryMode'], '0700');
  assert.is(sc['NoNewPrivileges'], true);
  assert.is(sc['KillMode'], 'process');
  assert.is(unit['stopIfChanged'], false);
  assert.equal(unit.wantedBy, ['multi-user.target']);
  for (const k of ['ProtectSystem', 'PrivateTmp', 'ProtectHome', 'DynamicUser']) assert.not.ok(k in sc, k);
});

agent('agent guard: a fleet host that disables its agent does not build', () => {
  const off = mustEval('agent', agentUser({ enable: false }));
  assert.is(off.systemd?.['nixfleet-agent'], undefined);
  assert.is(failed(off).length, 1);
  assert.match(failed(off)[0]!, /agent guard/);
  // Leaving on purpose is allowed.
  assert.equal(failed(mustEval('agent', agentUser({ enable: false, leaving: true }))), []);
  // Disabling the unit itself, or no longer starting it at boot, is refused too.
  const unitOff = mustEval('agent', { ...agentUser(), systemd: { services: { 'nixfleet-agent': { enable: false } } } });
  assert.match(failed(unitOff).join('\n'), /agent guard: systemd.services.nixfleet-agent/);
  const notWanted = mustEval('agent', { ...agentUser(), systemd: { services: { 'nixfleet-agent': { wantedBy: { _mkForce: [] } } } } });
  assert.match(failed(notWanted).join('\n'), /no longer wanted by multi-user.target/);
});

agent('a state directory outside /var/lib is refused; a relative key path fails the option type', () => {
  assert.match(failed(mustEval('agent', agentUser({ stateDir: '/srv/nixfleet' }))).join('\n'), /stateDir must be under \/var\/lib/);
  const rel = evalModule('agent', agentUser({ tls: { certFile: '/c', keyFile: 'host.key', caFile: '/ca' } }));
  assert.not.ok(rel.ok);
  if (!rel.ok) assert.match(rel.stderr, /tls\.keyFile/);
});

agent.run();

// ---------------------------------------------------------------------------------------------

const darwin = suite('darwinModules.agent');

darwin('a launchd daemon org.nixfleet.agent whose config nixfleet-agent accepts as darwin', () => {
  const e = mustEval('darwin-agent', agentUser());
  assert.equal(failed(e), []);
  const d = e.launchd?.['nixfleet-agent'];
  assert.ok(d);
  const sc = d!.serviceConfig;
  assert.is(sc['Label'], 'org.nixfleet.agent');
  assert.is(sc['KeepAlive'], true);
  const argv = sc['ProgramArguments'] as string[];
  assert.equal(argv.slice(0, 3), ['/nix/store/00000000000000000000000000000000-nixfleet-agent/bin/nixfleet-agent', 'run', '--config']);
  const r = resolveAgentConfig(writtenConfig(argv[3]!), { hostname: 'x', platform: 'nixos' });
  assert.ok(r.ok, r.ok ? '' : r.error.message);
  if (!r.ok) return;
  assert.is(r.value.platform, 'darwin');
  // The run-time guard looks for the plist this label produces.
  assert.equal(r.value.agentServicePaths, [...AGENT_SERVICE_PATHS.darwin]);
  assert.ok(AGENT_SERVICE_PATHS.darwin[0]!.endsWith(`${String(sc['Label'])}.plist`));
  assert.match(e.activation?.['postActivation']?.text ?? '', /chmod 0700 '\/var\/lib\/nixfleet'/);
});

darwin('agent guard', () => {
  assert.match(failed(mustEval('darwin-agent', agentUser({ enable: false }))).join('\n'), /agent guard/);
  assert.equal(failed(mustEval('darwin-agent', agentUser({ enable: false, leaving: true }))), []);
});

darwin.run();

// ---------------------------------------------------------------------------------------------

const cp = suite('nixosModules.control-plane');
const cpUser = (extra: object = {}) => ({
  ...hostBase,
  services: {
    'nixfleet-control-plane': {
      enable: true,
      package: '/nix/store/00000000000000000000000000000000-nixfleet-control-plane',
      tlsCertFile: '/etc/nixfleet/cp.crt',
      tlsKeyFile: '/run/secrets/cp.key',
      clientCaFile: '/etc/nixfleet/ca.crt',
      trustFile: '/etc/nixfleet/trust.json',
      source: { type: 'git', remote: 'https://git.example.org/ops/fleet.git', ref: 'main', path: 'releases' },
      ...extra,
    },
  },
});

cp('declares exactly the options of modules/options-control-plane.nix', () => {
  const e = mustEval('control-plane', cpUser());
  const spec = loadOptions('control-plane');
  const expected = [...leaves(spec.service), ...leaves(spec.settings)].map(([k]) => `services.nixfleet-control-plane.${k}`).sort();
  assert.equal(Object.keys(e.options).sort(), expected);
});

cp('writes a config nixfleet-control-plane accepts; the TLS key is read through the unit credential', () => {
  const e = mustEval('control-plane', cpUser());
  assert.equal(failed(e), []);
  const unit = e.systemd!['nixfleet-control-plane']!;
  const exec = String(unit.serviceConfig['ExecStart']);
  assert.ok(exec.startsWith('/nix/store/00000000000000000000000000000000-nixfleet-control-plane/bin/nixfleet-control-plane serve --config '), exec);
  const cfg = writtenConfig(exec);
  assert.equal(Object.keys(cfg).sort(), Object.keys(loadOptions('control-plane').settings).sort());
  const r = resolveCpConfig(cfg);
  assert.ok(r.ok, r.ok ? '' : r.error.message);
  if (!r.ok) return;
  assert.is(r.value.tlsKeyFile, '/run/credentials/nixfleet-control-plane.service/tls-key');
  assert.equal(unit.serviceConfig['LoadCredential'], ['tls-key:/run/secrets/cp.key']);
  assert.is(r.value.dbPath, '/var/lib/nixfleet-control-plane/state.db');
  assert.equal(unit['path'], ['/nix/store/00000000000000000000000000000000-git']);
});

cp('hardened: DynamicUser, read-only system, no capabilities unless the port needs one', () => {
  const sc = mustEval('control-plane', cpUser()).systemd!['nixfleet-control-plane']!.serviceConfig;
  assert.is(sc['DynamicUser'], true);
  assert.is(sc['StateDirectory'], 'nixfleet-control-plane');
  assert.is(sc['ProtectSystem'], 'strict');
  assert.is(sc['NoNewPrivileges'], true);
  assert.is(sc['PrivateTmp'], true);
  assert.equal(sc['CapabilityBoundingSet'], ['']);
  assert.not.ok('AmbientCapabilities' in sc);
  const low = mustEval('control-plane', cpUser({ listenPort: 443, openFirewall: true }));
  const lsc = low.systemd!['nixfleet-control-plane']!.serviceConfig;
  assert.equal(lsc['CapabilityBoundingSet'], ['CAP_NET_BIND_SERVICE']);
  assert.equal(lsc['AmbientCapabilities'], ['CAP_NET_BIND_SERVICE']);
  assert.equal(low.firewall?.allowedTCPPorts, [443]);
});

cp('state outside the StateDirectory is refused; disabled means no unit', () => {
  assert.match(failed(mustEval('control-plane', cpUser({ dbPath: '/srv/cp.db' }))).join('\n'), /dbPath must live under/);
  assert.match(failed(mustEval('control-plane', cpUser({ cacheDir: '/srv/git' }))).join('\n'), /cacheDir must be null or live under/);
  assert.is(mustEval('control-plane', cpUser({ enable: false })).systemd?.['nixfleet-control-plane'], undefined);
});

cp.after(() => rmSync(dir, { recursive: true, force: true }));
cp.run();
