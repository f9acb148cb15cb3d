/**
 * `nixfleet config init`: write the settings file that every other command falls back to.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import type { Ctx, Outcome } from './framework.ts';
import { done, fail, flagBool, flagInt, flagStr } from './framework.ts';
import type { ConfigFile, SettingName } from './settings.ts';
import { SETTING_NAMES, SETTINGS, defaultConfigPath, settingFlagName } from './settings.ts';

export async function configInit(ctx: Ctx): Promise<Outcome> {
  const explicit = flagStr(ctx, 'config') ?? ctx.io.env['NIXFLEET_CONFIG'];
  const path = explicit ? resolve(ctx.io.cwd, explicit) : defaultConfigPath(ctx.io.env);
  if (path === null) return fail('USAGE', 'cannot tell where the config file goes: set HOME, XDG_CONFIG_HOME or --config');
  const config: ConfigFile = {};
  for (const s of SETTING_NAMES) {
    const name = settingFlagName(s);
    const v = SETTINGS[s].type === 'int' ? flagInt(ctx, name) : flagStr(ctx, name);
    if (v === undefined) continue;
    // Paths are stored absolute, so the file means the same from any working directory.
    config[s as SettingName] = SETTINGS[s].path && typeof v === 'string' ? resolve(ctx.io.cwd, v) : v;
  }
  if (Object.keys(config).length === 0) {
    return fail('USAGE', `nothing to write: give at least one of ${SETTING_NAMES.map((s) => '--' + settingFlagName(s)).join(', ')}`);
  }
  try {
    mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
    writeFileSync(path, JSON.stringify(config, null, 2) + '\n', { mode: 0o600, flag: flagBool(ctx, 'force') ? 'w' : 'wx' });
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'EEXIST') return fail('EXISTS', `${path} already exists (use --force to overwrite)`);
    return fail('IO', `cannot write ${path}: ${code ?? String(e)}`);
  }
  ctx.io.stdout(`wrote ${path}\n`);
  return done;
}
