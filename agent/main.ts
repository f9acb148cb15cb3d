/**
 * `nixfleet-agent`: `run --config FILE` (the daemon) and `once --config FILE` (a single check-in
 * cycle, waiting for an activation it starts to settle; for debugging). Exit codes: 0 ok, 1 invalid
 * input (usage, configuration), 2 I/O (unreadable key or certificate, state directory).
 */
import { readFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { parseProgramArgs } from '../io/program-args.ts';
import { versionLine } from '../io/version.ts';
import { buildAgent } from './compose.ts';
import { ensureCertificate } from './certs.ts';
import { loadHostKey } from './hostkey.ts';
import { resolveConfig, type Config } from './config.ts';
import { StateCorrupt } from './state.ts';

const HELP = `nixfleet-agent — verifies signed targets, activates them with Nix, rolls itself back unless it can confirm

Usage:
  nixfleet-agent run  --config FILE   poll the control plane forever (the service)
  nixfleet-agent once --config FILE   one check-in cycle; waits for an activation it starts to settle
  nixfleet-agent --help | --version

The config file is JSON; see agent/README.md for every setting and its default. Required:
  cpUrl ("https://cp.example:8443"), tls {certFile, keyFile, caFile}.

Exit codes: 0 ok, 1 invalid input (usage, configuration), 2 I/O (keys, certificates, state).
`;

class Exit extends Error {
  constructor(
    readonly code: number,
    message: string,
  ) {
    super(message);
  }
}

function log(msg: string): void {
  process.stderr.write(`${new Date().toISOString()} nixfleet-agent: ${msg}\n`);
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

/** The binaries' shared convention (io/program-args.ts); a usage error is exit 1 here. */
function parseArgs(argv: string[]): { cmd: 'run' | 'once' | 'help' | 'version'; config: string | null } {
  const p = parseProgramArgs('nixfleet-agent', argv, ['run', 'once'] as const, { config: { type: 'string' } });
  if (p.kind === 'usage') throw new Exit(1, p.message);
  if (p.kind === 'help' || p.kind === 'version') return { cmd: p.kind, config: null };
  const config = p.values['config'];
  if (typeof config !== 'string' || config === '') throw new Exit(1, `${p.command} needs --config FILE`);
  return { cmd: p.command, config };
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
        log('stopping');
        ac.abort();
      };
      process.once('SIGTERM', stop);
      process.once('SIGINT', stop);
      log(`started: ${config.hostname} → ${config.cpUrl}, state ${config.stateDir}`);
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
    throw e;
  }
}

const isEntry = process.argv[1] !== undefined && /(agent[/\\]main\.ts|nixfleet-agent(\.m?js)?)$/.test(process.argv[1]);
if (isEntry) process.exitCode = await main(process.argv.slice(2));
