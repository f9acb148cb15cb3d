/**
 * Acceptance (issue 8): every config key of the agent and of the control plane has a module
 * option, and every module setting is a config key, with the same defaults — so the modules and
 * the programs cannot drift. The option specs are read from modules/options-*.nix with
 * builtins-only Nix; the keys from the programs' own `DEFAULTS` and `resolveConfig`.
 */
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { AGENT_SERVICE_PATHS, DEFAULTS as AGENT_DEFAULTS, resolveConfig as resolveAgentConfig } from '../agent/config.ts';
import { DEFAULTS as CP_DEFAULTS, resolveConfig as resolveCpConfig } from '../control-plane/config.ts';
import { isGroup, leaves, loadOptions, sampleSettings, type ModuleName, type OptionsFile, type Spec } from './options.ts';

const HOST = { hostname: 'web1', platform: 'nixos' as const };

type Program = {
  name: ModuleName;
  defaults: Readonly<Record<string, unknown>>;
  resolve: (input: unknown) => { ok: true; value: object } | { ok: false; error: { message: string } };
};

const programs: Program[] = [
  { name: 'agent', defaults: AGENT_DEFAULTS, resolve: (u) => resolveAgentConfig(u, HOST) },
  { name: 'control-plane', defaults: CP_DEFAULTS, resolve: (u) => resolveCpConfig(u) },
];

for (const p of programs) {
  const t = suite(`services.nixfleet-${p.name} options ↔ ${p.name}/config.ts`);
  const opts: OptionsFile = loadOptions(p.name);

  t('every DEFAULTS key is a settings option with the same default', () => {
    for (const [k, v] of Object.entries(p.defaults)) {
      const s = opts.settings[k];
      assert.ok(s !== undefined, `config key ${k} has no module option`);
      if (s === undefined || isGroup(s)) continue;
      assert.ok('default' in s, `option ${k}: no default, the program's is ${JSON.stringify(v)}`);
      assert.equal(s.default, v, `option ${k}: default differs from ${p.name}/config.ts`);
    }
  });

  t('the settings a module writes by default are a valid config that has exactly the option keys', () => {
    const sample = sampleSettings(opts.settings);
    const r = p.resolve(sample);
    assert.ok(r.ok, r.ok ? '' : `${p.name} refuses the module's config: ${r.error.message}`);
    if (!r.ok) return;
    // The resolved Config holds every config key (required ones included): same key set.
    assert.equal(Object.keys(r.value).sort(), Object.keys(opts.settings).sort());
    for (const [k, s] of Object.entries(opts.settings)) {
      if (isGroup(s)) assert.equal(Object.keys((r.value as Record<string, object>)[k]!).sort(), Object.keys(s.options).sort(), `group ${k}`);
    }
  });

  t('the check has teeth: an option that is not a config key, or a missing required one, is refused', () => {
    const sample = sampleSettings(opts.settings);
    assert.not.ok(p.resolve({ ...sample, notAConfigKey: 1 }).ok);
    const required = Object.entries(opts.settings).filter(([, s]) => !isGroup(s) && !('default' in s) && !s.moduleDefault);
    assert.ok(required.length > 0);
    for (const [k] of required) {
      const without: Record<string, unknown> = { ...sample };
      delete without[k];
      assert.not.ok(p.resolve(without).ok, `${k} is not required by ${p.name}/config.ts, yet the option has no default`);
    }
  });

  t('every option is documented, typed, and has a default, an example or a module default', () => {
    const all: [string, Spec][] = [...leaves(opts.service), ...leaves(opts.settings)];
    for (const [k, s] of all) {
      assert.ok(!isGroup(s));
      if (isGroup(s)) continue;
      assert.ok(s.description.trim().length > 10, `${k}: description`);
      assert.ok(s.type !== undefined, `${k}: type`);
      assert.ok('default' in s || 'example' in s || 'defaultText' in s, `${k}: default, example or defaultText`);
      if (s.moduleDefault) assert.ok(!(k in p.defaults), `${k}: moduleDefault shadows the program default`);
    }
    for (const k of Object.keys(opts.service)) assert.ok(!(k in opts.settings), `${k} is both a service and a settings option`);
  });

  t.run();
}

const agent = suite('agent module defaults that depend on the platform');
agent('the run-time agent guard paths are the ones the modules produce (unit name, launchd label)', () => {
  // The NixOS module names its unit nixfleet-agent, the darwin module labels its daemon
  // org.nixfleet.agent (see modules/*.nix and nix-tests/modules.test.ts).
  assert.equal([...AGENT_SERVICE_PATHS.nixos], ['etc/systemd/system/nixfleet-agent.service']);
  assert.equal([...AGENT_SERVICE_PATHS.darwin], ['Library/LaunchDaemons/org.nixfleet.agent.plist']);
});
agent.run();
