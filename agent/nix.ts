/**
 * The real activation backend (SPEC §6): Nix + the closure's own activation scripts.
 *
 * - realise: `nix-store -r <closure>` with `require-sigs = true`, `trusted-public-keys` = the
 *   `cacheKeys` of the agent's own trust.json and only the configured substituters, so an unsigned
 *   narinfo or one signed by another key is refused by Nix itself (code `CACHE_SIGNATURE`);
 * - profile: `nix-env -p <profile> --set <closure>` (a new generation);
 * - NixOS: `<closure>/bin/switch-to-configuration switch`, or `boot` when the kernel, initrd,
 *   systemd or dbus differ from the running system (switch inhibitors);
 * - nix-darwin: `<closure>/activate-user` (when present) then `<closure>/activate`; launchd
 *   restarts the services whose plists changed (nix-darwin's activation does that);
 * - rollback: the profile back to the newest generation that points at the previous closure (or
 *   a new generation with it), then the PREVIOUS closure's own activation script.
 *
 * Every command runs without a shell, with a timeout, and its stderr tail goes into the error.
 */
import type { Logger } from '../io/log.ts';
import { execFile } from 'node:child_process';
import { existsSync, readdirSync, readlinkSync, realpathSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { err, ok, type Result } from '../protocol/result.ts';
import type { ActivationBackend, ActivationError, ActivationErrorCode, Inspection } from './backend.ts';
import type { Platform } from './config.ts';
import type { Inhibitor, Pending } from './machine.ts';

export type NixBackendOptions = {
  platform: Platform;
  profilePath: string;
  currentSystemPath: string;
  bootedSystemPath: string;
  /** Empty: Nix's configured substituters. */
  substituters: readonly string[];
  /** Re-read on every realise (trust.json may rotate without a restart). */
  cacheKeys: () => readonly string[];
  nixBinDir: string | null;
  agentServicePaths: readonly string[];
  commandTimeoutSecs: number;
  log?: Logger;
};

/** `/nix/store/<32 base32 chars>-<name>`: what a closure path must look like. */
export const STORE_PATH = /^\/nix\/store\/[0-9abcdfghijklmnpqrsvwxyz]{32}-[A-Za-z0-9+\-._?=]+$/;

const SIGNATURE_REFUSED = /not signed by any of the keys|does not have a valid signature|lacks a (valid )?signature|no signature/i;

type Run = { code: number; stdout: string; stderr: string };

function tail(s: string, lines = 12): string {
  return s.trim().split('\n').slice(-lines).join('\n');
}

export class NixBackend implements ActivationBackend {
  constructor(private readonly opts: NixBackendOptions) {}

  private bin(name: string): string {
    return this.opts.nixBinDir === null ? name : join(this.opts.nixBinDir, name);
  }

  private exec(cmd: string, args: string[]): Promise<Run> {
    this.opts.log?.debug('agent.exec', { cmd, args });
    return new Promise((resolve) => {
      execFile(cmd, args, { timeout: this.opts.commandTimeoutSecs * 1000, maxBuffer: 64 * 1024 * 1024, killSignal: 'SIGKILL' }, (error, stdout, stderr) => {
        let code = 0;
        if (error !== null) code = typeof error.code === 'number' ? error.code : 127;
        const msg = error !== null && typeof error.code !== 'number' ? `${error.message}\n` : '';
        resolve({ code, stdout: String(stdout), stderr: msg + String(stderr) });
      });
    });
  }

  async running(): Promise<string | null> {
    try {
      return realpathSync(this.opts.currentSystemPath);
    } catch {
      return null;
    }
  }

  async realise(closurePath: string): Promise<Result<void, ActivationError>> {
    if (!STORE_PATH.test(closurePath)) return err({ code: 'NOT_A_SYSTEM', message: `not a store path: ${closurePath}` });
    const args = ['-r', closurePath, '--option', 'require-sigs', 'true', '--option', 'trusted-public-keys', this.opts.cacheKeys().join(' ')];
    if (this.opts.substituters.length > 0) args.push('--option', 'substituters', this.opts.substituters.join(' '));
    // Never build a system closure on the host: it comes from the cache or not at all.
    args.push('--option', 'fallback', 'false', '--option', 'max-jobs', '0');
    const r = await this.exec(this.bin('nix-store'), args);
    if (r.code === 0 && existsSync(closurePath)) return ok(undefined);
    const code: ActivationErrorCode = SIGNATURE_REFUSED.test(r.stderr) ? 'CACHE_SIGNATURE' : 'REALISE_FAILED';
    return err({ code, message: `nix-store -r ${closurePath} failed: ${tail(r.stderr)}` });
  }

  async inspect(closurePath: string): Promise<Result<Inspection, ActivationError>> {
    const entry = this.opts.platform === 'darwin' ? 'activate' : 'bin/switch-to-configuration';
    if (!existsSync(join(closurePath, entry))) return err({ code: 'NOT_A_SYSTEM', message: `${closurePath} has no ${entry}: not a ${this.opts.platform} system closure` });
    const hasAgentService = this.opts.agentServicePaths.some((p) => existsSync(join(closurePath, p)));
    const inhibitors: Inhibitor[] = [];
    if (this.opts.platform === 'nixos') {
      // Kernel and initrd against what was booted; systemd and dbus against what runs now.
      const checks: [Inhibitor, string, string][] = [
        ['kernel', this.opts.bootedSystemPath, 'kernel'],
        ['initrd', this.opts.bootedSystemPath, 'initrd'],
        ['systemd', this.opts.currentSystemPath, 'sw/bin/systemd'],
        ['dbus', this.opts.currentSystemPath, 'sw/bin/dbus-daemon'],
      ];
      for (const [name, system, rel] of checks) {
        const now = resolveOrNull(join(system, rel));
        const next = resolveOrNull(join(closurePath, rel));
        // Unknown on either side (no booted system recorded, component absent): not comparable.
        if (now !== null && next !== null && now !== next) inhibitors.push(name);
      }
    }
    return ok({ hasAgentService, inhibitors });
  }

  async setProfile(closurePath: string): Promise<Result<void, ActivationError>> {
    const r = await this.exec(this.bin('nix-env'), ['-p', this.opts.profilePath, '--option', 'substituters', '', '--set', closurePath]);
    if (r.code !== 0) return err({ code: 'PROFILE_FAILED', message: `nix-env --set failed: ${tail(r.stderr)}` });
    return ok(undefined);
  }

  async activate(closurePath: string, action: 'switch' | 'boot'): Promise<Result<void, ActivationError>> {
    if (this.opts.platform === 'darwin') {
      const user = join(closurePath, 'activate-user');
      if (existsSync(user)) {
        const u = await this.exec(user, []);
        if (u.code !== 0) return err({ code: 'SWITCH_FAILED', message: `activate-user exited ${u.code}: ${tail(u.stderr)}` });
      }
      const a = await this.exec(join(closurePath, 'activate'), []);
      if (a.code !== 0) return err({ code: 'SWITCH_FAILED', message: `activate exited ${a.code}: ${tail(a.stderr)}` });
      return ok(undefined);
    }
    const r = await this.exec(join(closurePath, 'bin/switch-to-configuration'), [action]);
    if (r.code !== 0) return err({ code: 'SWITCH_FAILED', message: `switch-to-configuration ${action} exited ${r.code}: ${tail(r.stderr)}` });
    return ok(undefined);
  }

  async rollback(p: Pending): Promise<Result<void, ActivationError>> {
    if (p.previous === null) return ok(undefined); // nothing ran before: nothing to go back to
    if (!existsSync(p.previous)) return err({ code: 'ROLLBACK_FAILED', message: `previous system ${p.previous} is not in the store` });
    const current = resolveOrNull(this.opts.profilePath);
    if (current !== p.previous) {
      const gen = newestGenerationOf(this.opts.profilePath, p.previous);
      const args = gen === null ? ['--set', p.previous] : ['--switch-generation', String(gen)];
      const r = await this.exec(this.bin('nix-env'), ['-p', this.opts.profilePath, '--option', 'substituters', '', ...args]);
      if (r.code !== 0) return err({ code: 'ROLLBACK_FAILED', message: `nix-env ${args.join(' ')} failed: ${tail(r.stderr)}` });
    }
    const a = await this.activate(p.previous, p.action);
    if (!a.ok) return err({ code: 'ROLLBACK_FAILED', message: `previous closure's activation failed: ${a.error.message}` });
    return ok(undefined);
  }
}

function resolveOrNull(p: string): string | null {
  try {
    return realpathSync(p);
  } catch {
    return null;
  }
}

/** Nix's profile layout: `<profile>-<N>-link` → store path, `<profile>` → one of those links. */
export function newestGenerationOf(profilePath: string, storePath: string): number | null {
  const dir = dirname(profilePath);
  const prefix = `${basename(profilePath)}-`;
  let best: number | null = null;
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch {
    return null;
  }
  for (const name of names) {
    if (!name.startsWith(prefix) || !name.endsWith('-link')) continue;
    const n = Number(name.slice(prefix.length, -'-link'.length));
    if (!Number.isInteger(n)) continue;
    let target: string;
    try {
      target = readlinkSync(join(dir, name));
    } catch {
      continue;
    }
    if (target === storePath && (best === null || n > best)) best = n;
  }
  return best;
}

/** Numbers of the profile's generations, ascending (for tests and diagnostics). */
export function listGenerations(profilePath: string): { generation: number; path: string }[] {
  const dir = dirname(profilePath);
  const prefix = `${basename(profilePath)}-`;
  if (!existsSync(dir)) return [];
  return readdirSync(dir)
    .filter((n) => n.startsWith(prefix) && n.endsWith('-link'))
    .map((n) => ({ generation: Number(n.slice(prefix.length, -'-link'.length)), path: readlinkSync(join(dir, n)) }))
    .filter((g) => Number.isInteger(g.generation))
    .sort((a, b) => a.generation - b.generation);
}
