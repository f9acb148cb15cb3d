/**
 * `nixfleet-agent`: `run --config FILE` (the daemon) and `once --config FILE` (a single check-in
 * cycle, waiting for an activation it starts to settle; for debugging). Exit codes: 0 ok, 1 invalid
 * input (usage, configuration), 2 I/O (unreadable key or certificate, state directory).
 */
import { readFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { parseProgramArgs } from '../io/program-args.ts';
import { createLogger, effectiveLevel, isLogLevel, type LogLevel } from '../io/log.ts';
import { NIXFLEET_VERSION, versionLine } from '../io/version.ts';
import { buildAgent } from './compose.ts';
import { ensureCertificate } from './certs.ts';
import { loadHostKey } from './hostkey.ts';
import { resolveConfig, type Config } from './config.ts';
import { StateCorrupt } from './state.ts';

const HELP = `nixfleet-agent — verifies signed targets, activates them with Nix, rolls itself back unless it can confirm

Usage:
  nixfleet-agent run  --config FILE [--log-level LEVEL]   poll the control plane forever (the service)
  nixfleet-agent once --config FILE [--log-level LEVEL]   one check-in cycle; waits for an activation it starts to settle
  nixfleet-agent --help | --version

The config file is JSON; see agent/README.md for every setting and its default. Required:
  cpUrl ("https://cp.example:8443"), tls {certFile, keyFile, caFile}.
Logs: one JSON object per line on stderr (event names in docs/operations.md); --log-level
  (debug | info | warn | error | silent) overrides the config's logLevel, NIXFLEET_LOG_LEVEL both.

Exit codes: 0 ok, 1 invalid configuration, 2 usage error or I/O (keys, certificates, state;
  \`once\`: the check-in failed).
`;

class Exit extends Error {
  constructor(
    readonly code: number,
    message: string,
  ) {
    super(message);
  }
}

function loadConfig(file: string): Config {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (e) {
    throw new Exit(2, `cannot read config ${file}: ${(e as Error).message}`);
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (e) {
    throw new Exit(1, `config ${file} is not JSON: ${(e as Error).message}`);
  }
  const r = resolveConfig(json, { hostname: hostname(), platform: process.platform === 'darwin' ? 'darwin' : 'nixos' });
  if (!r.ok) throw new Exit(1, `config ${file} is invalid:\n${r.error.issues.map((i) => `  ${i.path || '/'}: ${i.message}`).join('\n')}`);
  return r.value;
}

/** The binaries' shared convention (io/program-args.ts); a usage error is exit 2, as for `nixfleet`. */
function parseArgs(argv: string[]): { cmd: 'run' | 'once' | 'help' | 'version'; config: string | null; logLevel: LogLevel | null } {
  const p = parseProgramArgs('nixfleet-agent', argv, ['run', 'once'] as const, { config: { type: 'string' }, 'log-level': { type: 'string' } });
  if (p.kind === 'usage') throw new Exit(2, p.message);
  if (p.kind === 'help' || p.kind === 'version') return { cmd: p.kind, config: null, logLevel: null };
  const config = p.values['config'];
  if (typeof config !== 'string' || config === '') throw new Exit(2, `${p.command} needs --config FILE (see: nixfleet-agent --help)`);
  const level = p.values['log-level'];
  if (level !== undefined && !isLogLevel(level)) throw new Exit(2, `--log-level must be one of debug, info, warn, error, silent (see: nixfleet-agent --help)`);
  return { cmd: p.command, config, logLevel: level === undefined ? null : level };
}

export async function main(argv: string[]): Promise<number> {
  try {
    const args = parseArgs(argv);
    if (args.cmd === 'help') {
      process.stdout.write(HELP);
      return 0;
    }
    if (args.cmd === 'version') {
      process.stdout.write(versionLine('nixfleet-agent'));
      return 0;
    }
    const config = loadConfig(args.config!);
    const log = createLogger({ program: 'nixfleet-agent', level: effectiveLevel(args.logLevel ?? config.logLevel) });
    if (config.enrol !== null) {
      // Issue 16 first boot: no certificate yet → enrol (retrying while the CP is unreachable).
      const hk = config.hostKeyFile === null ? null : loadHostKey(config.hostKeyFile);
      if (hk !== null && !hk.ok) throw new Exit(2, `${hk.error.code}: ${hk.error.message}`);
      const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));
      const c = await ensureCertificate(config, hk === null ? null : hk.value, { log, sleep, attempts: args.cmd === 'once' ? 1 : Number.MAX_SAFE_INTEGER });
      if (!c.ok) throw new Exit(2, `${c.error.code}: ${c.error.message}`);
    }
    // The real host: every dependency buildAgent does not get is the production one.
    const built = buildAgent(config, { log });
    if (!built.ok) throw new Exit(2, built.error.message);
    const { agent, close } = built.value;
    try {
      if (args.cmd === 'once') {
        const outcome = await agent.once();
        process.stdout.write(JSON.stringify(outcome) + '\n');
        return outcome.kind === 'checkin-failed' ? 2 : 0;
      }
      const ac = new AbortController();
      const stop = () => {
        log.info('agent.stopping');
        ac.abort();
      };
      process.once('SIGTERM', stop);
      process.once('SIGINT', stop);
      log.info('agent.started', { host: config.hostname, cp: config.cpUrl, stateDir: config.stateDir, version: NIXFLEET_VERSION });
      await agent.runForever(ac.signal);
      return 0;
    } finally {
      await close();
    }
  } catch (e) {
    if (e instanceof Exit) {
      process.stderr.write(`nixfleet-agent: ${e.message}\n`);
      return e.code;
    }
    if (e instanceof StateCorrupt) {
      process.stderr.write(`nixfleet-agent: unreadable state file (inspect it; never deleted automatically): ${e.message}\n`);
      return 2;
    }
    // A bug: one line for the user, the stack only when asked for.
    process.stderr.write(`nixfleet-agent: internal error: ${e instanceof Error ? e.message : String(e)} (NIXFLEET_DEBUG=1 shows details)\n`);
    if (process.env['NIXFLEET_DEBUG'] === '1' && e instanceof Error) process.stderr.write(`${e.stack ?? ''}\n`);
    return 2;
  }
}

const isEntry = process.argv[1] !== undefined && /(agent[/\\]main\.ts|nixfleet-agent(\.m?js)?)$/.test(process.argv[1]);
if (isEntry) process.exitCode = await main(process.argv.slice(2));
