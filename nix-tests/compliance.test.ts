/**
 * lib/compliance.nix (issue 15): static control results computed from NixOS configurations (a
 * configuration is `{ config = …; }`, as `nixosSystem` gives; options set, unset → default, a
 * quoted sysctl path), and the static gate of `resolveWithReport` / `mkFleetWithReport`
 * byte-identical to `nixfleet-release resolve --compliance-report` (release/static-gate.ts):
 * same artefact after JCS, same warnings, same error code and message.
 */
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { CATALOGUE } from '../protocol/compliance.ts';
import { canonicalize } from '../protocol/jcs.ts';
import { resolveFleetInput } from '../release/resolve.ts';
import { gateFleet } from '../fixtures/compliance.ts';
import { applyStaticGate } from '../release/static-gate.ts';
import { nixEvalJson, nixInstantiate, nixString, ROOT } from './nix.ts';

const LIB = nixString(`${ROOT}/lib/compliance.nix`);
const canon = (v: unknown): string => {
  const c = canonicalize(v);
  if (!c.ok) throw new Error(c.error.message);
  return c.value;
};
const json = (v: unknown): string => `(builtins.fromJSON ${nixString(JSON.stringify(v))})`;

/** Host a: hardened; b: root login allowed and no auditd; c: mostly defaults. */
const CONFIGS = `{
  a = { config = { services.openssh.settings = { PermitRootLogin = "no"; PasswordAuthentication = false; KbdInteractiveAuthentication = false; };
    security.auditd.enable = true; security.audit.enable = "lock"; users.mutableUsers = false; services.nixfleet-agent.enable = true;
    boot.kernel.sysctl = { "kernel.kptr_restrict" = 2; "kernel.dmesg_restrict" = 1; "net.ipv4.conf.all.accept_redirects" = 0; }; }; };
  b = { config = { services.openssh.settings.PermitRootLogin = "yes"; boot.kernel.sysctl."kernel.kptr_restrict" = 1; networking.firewall.enable = true; }; };
  c = { config = { }; };
}`;
type Report = { schemaVersion: 1; controls: unknown[]; hosts: Record<string, Record<string, { result: string; observed: string }>> };
const report = (controls = '[ ]'): Report => nixEvalJson(`(import ${LIB}).staticReport { nixosConfigurations = ${CONFIGS}; controls = ${controls}; }`) as Report;

const s = suite('lib/compliance.nix');

s('staticReport: every static control per host; set, default and quoted-path options; what was seen', () => {
  const r = report();
  const withStatic = CATALOGUE.filter((c) => c.static !== null).map((c) => c.id).sort();
  assert.equal(Object.keys(r.hosts).sort(), ['a', 'b', 'c']);
  for (const h of ['a', 'b', 'c']) assert.equal(Object.keys(r.hosts[h]!).sort(), withStatic);
  assert.equal(r.hosts['a']!['ssh-no-root-login'], { result: 'pass', observed: 'services.openssh.settings.PermitRootLogin = "no"' });
  assert.equal(r.hosts['b']!['ssh-no-root-login'], { result: 'fail', observed: 'services.openssh.settings.PermitRootLogin = "yes"; want one of "no", "prohibit-password"' });
  assert.equal(r.hosts['c']!['ssh-no-root-login'], { result: 'pass', observed: 'services.openssh.settings.PermitRootLogin = "prohibit-password" (not set: default)' });
  assert.equal(r.hosts['b']!['kernel-kptr-restrict'], { result: 'pass', observed: 'boot.kernel.sysctl."kernel.kptr_restrict" = 1' });
  assert.is(r.hosts['c']!['auditd-enabled']!.result, 'fail');
  assert.is(r.hosts['a']!['audit-rules-enabled']!.result, 'pass');
});

s('splitOption: dots inside a quoted segment stay in it', () => {
  assert.equal(nixEvalJson(`(import ${LIB}).splitOption ${nixString('boot.kernel.sysctl."net.ipv4.ip_forward"')}`), ['boot', 'kernel', 'sysctl', 'net.ipv4.ip_forward']);
});

s('the catalogue Nix reads is the catalogue of protocol/compliance.ts', () => {
  assert.equal(nixEvalJson(`(import ${LIB}).catalogue`), JSON.parse(JSON.stringify(CATALOGUE)));
});

const OWN = `[ { id = "motd-banner"; title = "Login banner"; severity = "low"; frameworks = [ "iso27001:A.5.10" ]; static = { option = "users.motd"; equals = "authorised use only"; }; runtime = null; } ]`;

for (const [name, desc, controls, resolves] of [
  ['enforce: refused (host b fails nis2)', { ...gateFleet(), hosts: { ...gateFleet().hosts, b: { system: 'x86_64-linux', channel: 'strict' } } }, '[ ]', false],
  ['permissive: resolved with failures recorded', gateFleet('permissive'), '[ ]', true],
  ['enforce on hardened host a + own control failing in permissive', gateFleet(), OWN, true],
] as const) {
  s(`gate parity with resolve.ts — ${name}`, () => {
    const rep = report(controls);
    const ts = (() => {
      const r = resolveFleetInput(desc);
      if (!r.ok) throw new Error(r.error.message);
      return applyStaticGate(r.value, rep);
    })();
    const nix = nixEvalJson(`(import ${LIB}).resolveWithReport ${json(rep)} ${json(desc)}`) as { ok: boolean; fleet?: unknown; warnings?: string[]; error?: unknown };
    assert.is(ts.ok, resolves, ts.ok ? '' : ts.error.message);
    assert.is(nix.ok, ts.ok);
    if (ts.ok) {
      assert.is(canon(nix.fleet), canon(ts.value.fleet));
      assert.equal(nix.warnings, ts.value.warnings);
      assert.ok(ts.value.fleet.compliance!.staticFailures.length > 0);
    } else {
      assert.equal(nix.error, ts.error);
      const thrown = nixInstantiate(['--eval', '--strict', '--json', '--expr', `(import ${LIB}).mkFleetWithReport ${json(rep)} ${json(desc)}`]);
      assert.not.ok(thrown.ok);
      assert.ok(thrown.stderr.includes(`nixfleet.mkFleet: ${ts.error.code}: ${ts.error.message}`), thrown.stderr);
    }
  });
}

s.run();
