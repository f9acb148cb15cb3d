/**
 * `nixfleet config init`: write the settings file that every other command falls back to.
 * `nixfleet check-config`: resolve the connection settings and check the identity locally.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { connectionFromCtx } from './client.ts';
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

/**
 * `nixfleet check-config`: the settings every online command would use, read, and the client
 * certificate checked locally (clientAuth, validity, key match, issued by the --ca fleet CA).
 * Does not connect. A problem is exit 2 with the reason.
 */
export async function checkConfig(ctx: Ctx): Promise<Outcome> {
  const c = connectionFromCtx(ctx);
  if (!c.ok) return { error: c.error };
  const { options, identity } = c.value;
  const until = identity.notAfterMs === null ? '' : `, valid until ${new Date(identity.notAfterMs).toISOString()}`;
  ctx.io.stdout(
    `url ${options.url}\n` +
      `--cert ${flagStr(ctx, 'cert')} (${identity.subject ?? '?'}): clientAuth, --key matches, issued by --ca ${flagStr(ctx, 'ca')}${until}\n` +
      'configuration ok (not connected: `nixfleet status` talks to the control plane)\n',
  );
  return done;
}
