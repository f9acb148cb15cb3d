/**
 * `nixfleet-agent`: `run [--config FILE] [flags]` (the daemon) and `once …` (a single check-in
 * cycle, waiting for an activation it starts to settle; for debugging). The settings a first host
 * needs are flags (agent/flags.ts), over the file when both are given. Exit codes: 0 ok, 1 invalid
 * configuration, 2 usage (unknown, bad or missing flag) or I/O (unreadable key or certificate,
 * state directory).
 */
import { readFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { parseProgramArgs } from '../io/program-args.ts';
import { createLogger, effectiveLevel, isLogLevel, type LogLevel } from '../io/log.ts';
import { NIXFLEET_VERSION, versionLine } from '../io/version.ts';
import { askWhoami, buildAgent } from './compose.ts';
import { ensureCertificate } from './certs.ts';
import { loadHostKey } from './hostkey.ts';
import { resolveConfig, type Config } from './config.ts';
import { agentFlagOptions, agentFlagsHelp, mergeAgentFlags } from './flags.ts';
import { StateCorrupt } from './state.ts';

const HELP = `nixfleet-agent — verifies signed targets, activates them with Nix, rolls itself back unless it can confirm

Usage:
  nixfleet-agent run  [--config FILE] [flags]   poll the control plane forever (the service)
  nixfleet-agent once [--config FILE] [flags]   one check-in cycle; waits for an activation it starts to settle
  nixfleet-agent whoami [--config FILE] [flags] the identity the CP reads from this host's certificate (JSON)
  nixfleet-agent --help | --version

Flags (each overrides its setting in the config file; [required]: unless the file has it):
  --config FILE             JSON configuration: every setting and its default (agent/README.md)
${agentFlagsHelp()}
  --log-level LEVEL         debug | info | warn | error | silent (overrides the config's logLevel)
  -h, --help                this help
  -V, --version             print the version

Example (certificates from \`nixfleet mint-host-cert\`, trust.json from \`nixfleet-release init\`):
  nixfleet-agent once --cp-url https://cp.example:8443 --cert web1.pem --key web1.key \\
    --ca ca.pem --trust-file trust.json --substituter https://cache.example

Logs: one JSON object per line on stderr (event names in docs/operations.md); NIXFLEET_LOG_LEVEL
  overrides --log-level and logLevel.

Exit codes: 0 ok, 1 invalid configuration, 2 usage error (an unknown, bad or missing flag) or I/O
  (keys, certificates, state;
  \`once\`: the check-in failed; \`whoami\`: the CP refused or could not be reached).
`;

class Exit extends Error {
  constructor(
    readonly code: number,
    message: string,
  ) {
    super(message);
  }
}

/** The file (when given) with the flags over it. */
function loadConfig(file: string | null, values: Record<string, string | boolean | string[] | boolean[] | undefined>): Config {
  let json: Record<string, unknown> | null = null;
  if (file !== null) {
    let text: string;
    try {
      text = readFileSync(file, 'utf8');
    } catch (e) {
      throw new Exit(2, `cannot read config ${file}: ${(e as Error).message}`);
    }
    let parsed: unknown;
    try {
      parsed = JSON.parse(text);
    } catch (e) {
      throw new Exit(1, `config ${file} is not JSON: ${(e as Error).message}`);
    }
    if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) throw new Exit(1, `config ${file} is invalid:\n  /: must be a JSON object`);
    json = parsed as Record<string, unknown>;
  }
  const merged = mergeAgentFlags(json, values, process.cwd());
  if (!merged.ok) throw new Exit(2, `${merged.error.message} (see: nixfleet-agent --help)`);
  const r = resolveConfig(merged.value, { hostname: hostname(), platform: process.platform === 'darwin' ? 'darwin' : 'nixos' });
  const what = file === null ? 'the configuration' : `config ${file}`;
  if (!r.ok) throw new Exit(1, `${what} is invalid:\n${r.error.issues.map((i) => `  ${i.path || '/'}: ${i.message}`).join('\n')}`);
  return r.value;
}

type Values = Record<string, string | boolean | string[] | boolean[] | undefined>;

/** The binaries' shared convention (io/program-args.ts); a usage error is exit 2, as for `nixfleet`. */
function parseArgs(argv: string[]): { cmd: 'run' | 'once' | 'whoami' | 'help' | 'version'; config: string | null; logLevel: LogLevel | null; values: Values } {
  const p = parseProgramArgs('nixfleet-agent', argv, ['run', 'once', 'whoami'] as const, { config: { type: 'string' }, 'log-level': { type: 'string' }, ...agentFlagOptions() });
  if (p.kind === 'usage') throw new Exit(2, p.message);
  if (p.kind === 'help' || p.kind === 'version') return { cmd: p.kind, config: null, logLevel: null, values: {} };
  const config = p.values['config'];
  if (config === '') throw new Exit(2, `--config needs a FILE (see: nixfleet-agent --help)`);
  const level = p.values['log-level'];
  if (level !== undefined && !isLogLevel(level)) throw new Exit(2, `--log-level must be one of debug, info, warn, error, silent (see: nixfleet-agent --help)`);
  return { cmd: p.command, config: typeof config === 'string' ? config : null, logLevel: level === undefined ? null : level, values: p.values };
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
    const config = loadConfig(args.config, args.values);
    if (args.cmd === 'whoami') {
      // Issue 16: what the CP sees for this host's certificate (JSON on stdout, like `once`).
      const w = await askWhoami(config);
      if (!w.ok) throw new Exit(2, `whoami: ${w.error.message}`);
      process.stdout.write(JSON.stringify(w.value) + '\n');
      return 0;
    }
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
