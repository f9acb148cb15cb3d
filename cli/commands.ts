/**
 * The command table of `nixfleet` (SPEC §7): the one source of argument parsing, `--help` and
 * docs/cli.md (regenerate with `npx tsx cli/gen-docs.ts`). Order here is the order in help and docs.
 */
import { configInit } from './cmd-config.ts';
import type { CommandSpec, FlagSpec } from './framework.ts';
import { SETTING_NAMES, SETTINGS, settingFlagName } from './settings.ts';

/** `config init` takes every setting as a plain flag (not read from env: it writes what you say). */
const CONFIG_INIT_FLAGS: FlagSpec[] = [
  ...SETTING_NAMES.map((s): FlagSpec => ({
    name: settingFlagName(s),
    type: SETTINGS[s].type,
    placeholder: SETTINGS[s].placeholder,
    description: SETTINGS[s].description,
  })),
  { name: 'config', type: 'string', placeholder: 'FILE', description: 'Where to write (default: NIXFLEET_CONFIG, else $XDG_CONFIG_HOME/nixfleet/config.json, else ~/.config/nixfleet/config.json).' },
  { name: 'force', type: 'boolean', description: 'Overwrite an existing config file.' },
];

export const COMMANDS: readonly CommandSpec[] = [
  {
    name: 'config init',
    summary: 'Write the settings file (mode 0600) so other commands need no connection flags',
    description: 'Paths are stored absolute. Refuses to overwrite an existing file without --force.',
    args: [],
    flags: CONFIG_INIT_FLAGS,
    examples: ['nixfleet config init --url https://cp.example.org:8443 --cert op.pem --key op.key --ca ca.pem'],
    online: false,
    handler: configInit,
  },
];
