/**
 * Test harness for the agent's real-Nix tests (not a test file itself): one temporary "host"
 * with toy system closures, a running system + profile, a fleet CA with server and host
 * certificates, an OpenSSH host key (ssh-keygen), a release key and trust.json, a signed HTTP
 * binary cache on loopback, the fake CP behind the net-cut proxy, and helpers to sign a fleet
 * for a closure and build the matching target.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readlinkSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Target } from '../control-plane/api.ts';
import { createFleetCa, mintHostCert, mintServerCert } from '../cli/pki.ts';
import { signFleet, type SignedArtifact } from '../fixtures/artifacts.ts';
import { startFakeCp, type FakeCp } from '../fixtures/fake-cp.ts';
import { mintReleaseKey, trustFor, writeTrustFile, type ReleaseKey } from '../fixtures/keys.ts';
import { basenameOf, buildToys, copyToFileCache, generateCacheKey, networkCutMarker, readSwitchLog, run, startHttpCache, type CacheKey, type HttpCache, type ToySpec } from '../fixtures/nix.ts';
import { startNetCutProxy, type NetCutProxy } from '../fixtures/nix/netcut.ts';
import { parseTrust, type FleetResolved } from '../release/schema.ts';
import { resolveFleet } from '../release/resolve.ts';
import { CpClient } from './client.ts';
import { resolveConfig, type Config } from './config.ts';
import { loadHostKey } from './hostkey.ts';
import { NixfleetAgent, trustLoader } from './loop.ts';
import { listGenerations, NixBackend } from './nix.ts';
import { FileStateStore } from './state.ts';

export const HOST = 'web1';

export type Env = {
  root: string;
  toys: Record<string, string>;
  cp: FakeCp;
  proxy: NetCutProxy;
  cache: HttpCache;
  cacheKey: CacheKey;
  releaseKey: ReleaseKey;
  hostPubkey: string;
  files: { ca: string; cert: string; key: string; hostKey: string; trust: string };
  stateDir: string;
  profile: string;
  currentSystem: string;
  bootedSystem: string;
  /** A config file body for this host (JSON-able), with overrides. */
  configJson: (over?: Record<string, unknown>) => Record<string, unknown>;
  config: (over?: Record<string, unknown>) => Config;
  agent: (over?: Record<string, unknown>) => { agent: NixfleetAgent; close: () => Promise<void>; logs: string[] };
  /** Sign a fleet in which this host runs `closure` (store path) and build the target for it. */
  dispatch: (closure: string, o?: { signedAt?: string; key?: ReleaseKey; deadlineSecs?: number; fleet?: (f: FleetResolved) => void }) => { signed: SignedArtifact<FleetResolved>; target: Target };
  switchLog: () => string[];
  profileTarget: () => string;
  running: () => string;
  generations: () => number[];
  close: () => Promise<void>;
};

export function fleetFor(closureHash: string | null, hostPubkey: string | null): FleetResolved {
  const r = resolveFleet({
    hosts: { [HOST]: { system: 'x86_64-linux', channel: 'stable', tags: ['web'], closureHash, pubkey: hostPubkey }, other1: { system: 'x86_64-linux', channel: 'stable', tags: [] } },
    channels: { stable: { rolloutPolicy: 'canary' } },
    rolloutPolicies: { canary: { strategy: 'canary', waves: [{ selector: { hosts: ['other1'] } }, { selector: { tags: ['web'] } }] } },
  });
  if (!r.ok) throw new Error(`fixture fleet does not resolve: ${r.error.message}`);
  return r.value.fleet;
}

/**
 * Builds the environment. `specs` must include `{name: 'base'}`: the system that runs at the
 * start. `cached`: names of closures published to the signed HTTP cache.
 */
export async function makeEnv(specs: ToySpec[], o: { cached?: string[] } = {}): Promise<Env> {
  const root = mkdtempSync(join(tmpdir(), 'nixfleet-agent-'));
  const toys = await buildToys(root, specs);
  const base = toys['base'];
  if (base === undefined) throw new Error('specs need a "base" closure');

  const ca = createFleetCa({ commonName: 'nixfleet test CA' });
  const server = mintServerCert(ca);
  const hostCert = mintHostCert(ca, HOST);
  const pki = join(root, 'pki');
  mkdirSync(pki);
  const files = {
    ca: join(pki, 'ca.pem'),
    cert: join(pki, 'host.pem'),
    key: join(pki, 'host.key'),
    hostKey: join(pki, 'ssh_host_ed25519_key'),
    trust: join(root, 'trust.json'),
  };
  writeFileSync(files.ca, ca.certPem);
  writeFileSync(files.cert, hostCert.certPem);
  writeFileSync(files.key, hostCert.keyPem, { mode: 0o600 });
  execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', HOST, '-f', files.hostKey]);
  const hostPubkey = readFileSync(`${files.hostKey}.pub`, 'utf8').trim();

  const releaseKey = mintReleaseKey();
  const cacheKey = await generateCacheKey(root, 'nixfleet-test-cache-1');
  writeTrustFile(root, trustFor(releaseKey, { cacheKeys: [cacheKey.publicKey] }));
  const cacheDir = join(root, 'cache');
  const cachedPaths = (o.cached ?? []).map((n) => toys[n]!);
  if (cachedPaths.length > 0) await copyToFileCache(cacheDir, cachedPaths, cacheKey.secretKeyFile);
  else mkdirSync(cacheDir);
  const cache = await startHttpCache(cacheDir);

  const cp = await startFakeCp({ tls: { cert: server.certPem, key: server.keyPem, ca: ca.certPem }, hostPubkeys: { [HOST]: hostPubkey } });
  const proxy = await startNetCutProxy({ targetPort: cp.port, markerFile: networkCutMarker(root) });

  // The host as it is before the first target: base runs, was booted, is the profile.
  const stateDir = join(root, 'state');
  const profiles = join(root, 'profiles');
  mkdirSync(profiles);
  const profile = join(profiles, 'system');
  const currentSystem = join(root, 'current-system');
  const bootedSystem = join(root, 'booted-system');
  const set = await run('nix-env', ['-p', profile, '--option', 'substituters', '', '--set', base]);
  if (set.code !== 0) throw new Error(set.stderr);
  symlinkSync(base, currentSystem);
  symlinkSync(base, bootedSystem);

  const configJson = (over: Record<string, unknown> = {}) => ({
    hostname: HOST,
    cpUrl: `https://127.0.0.1:${proxy.port}`,
    tls: { certFile: files.cert, keyFile: files.key, caFile: files.ca },
    trustFile: files.trust,
    hostKeyFile: files.hostKey,
    stateDir,
    profilePath: profile,
    currentSystemPath: currentSystem,
    bootedSystemPath: bootedSystem,
    platform: 'nixos',
    substituters: [cache.url],
    pollIntervalSecs: 1,
    pollJitterPct: 0,
    confirmDeadlineSecs: 30,
    retryIntervalSecs: 0.25,
    requestTimeoutSecs: 5,
    commandTimeoutSecs: 120,
    ...over,
  });
  const config = (over: Record<string, unknown> = {}) => {
    const r = resolveConfig(configJson(over), { hostname: HOST, platform: 'nixos' });
    if (!r.ok) throw new Error(r.error.message);
    return r.value;
  };
  const agent = (over: Record<string, unknown> = {}) => {
    const c = config(over);
    const logs: string[] = [];
    const log = (m: string) => {
      logs.push(m);
      if (process.env['AGENT_TEST_VERBOSE']) process.stderr.write(`[agent] ${m}\n`);
    };
    const loadTrust = trustLoader(c.trustFile, parseTrust);
    const backend = new NixBackend({
      platform: c.platform,
      profilePath: c.profilePath,
      currentSystemPath: c.currentSystemPath,
      bootedSystemPath: c.bootedSystemPath,
      substituters: c.substituters,
      cacheKeys: () => {
        const t = loadTrust();
        return t.ok ? t.value.cacheKeys : [];
      },
      nixBinDir: c.nixBinDir,
      agentServicePaths: c.agentServicePaths,
      commandTimeoutSecs: c.commandTimeoutSecs,
      log,
    });
    const hk = loadHostKey(files.hostKey);
    if (!hk.ok) throw new Error(hk.error.message);
    const client = new CpClient({
      cpUrl: c.cpUrl,
      tls: { cert: readFileSync(files.cert, 'utf8'), key: readFileSync(files.key, 'utf8'), ca: readFileSync(files.ca, 'utf8') },
      requestTimeoutSecs: c.requestTimeoutSecs,
      maxArtifactBytes: c.maxArtifactBytes,
    });
    const a = new NixfleetAgent({ config: c, backend, store: new FileStateStore(c.stateDir), client, hostKey: hk.value, loadTrust, log });
    return { agent: a, close: () => client.close(), logs };
  };

  let lastSignedMs = 0;
  const dispatch: Env['dispatch'] = (closure, d = {}) => {
    const fleet = fleetFor(basenameOf(closure), hostPubkey);
    d.fleet?.(fleet);
    // Each dispatch is a newer artefact: strictly increasing whole seconds (equal signedAt with
    // other bytes would be EQUIVOCATION, rightly), never more than a few seconds ahead.
    lastSignedMs = Math.max(Math.floor(Date.now() / 1000) * 1000, lastSignedMs + 1000);
    const signedAt = d.signedAt ?? new Date(lastSignedMs).toISOString().replace('.000Z', 'Z');
    const signed = signFleet(fleet, d.key ?? releaseKey, signedAt);
    const target: Target = {
      closureHash: basenameOf(closure),
      rolloutId: `stable@${signed.sha256.slice(0, 12)}`,
      channel: 'stable',
      wave: 1,
      signedAt,
      freshnessWindowMinutes: 180,
      artifactSha256: signed.sha256,
      confirmDeadline: new Date(Date.now() + (d.deadlineSecs ?? 120) * 1000).toISOString(),
    };
    return { signed, target };
  };

  return {
    root,
    toys,
    cp,
    proxy,
    cache,
    cacheKey,
    releaseKey,
    hostPubkey,
    files,
    stateDir,
    profile,
    currentSystem,
    bootedSystem,
    configJson,
    config,
    agent,
    dispatch,
    switchLog: () => readSwitchLog(root),
    profileTarget: () => readlinkSync(join(profiles, readlinkSync(profile))),
    running: () => readlinkSync(currentSystem),
    generations: () => listGenerations(profile).map((g) => g.generation),
    close: async () => {
      await proxy.close();
      await cp.close();
      await cache.close();
      // Profiles are GC roots: drop them with the directory so the toy closures can be collected.
      if (existsSync(root)) rmSync(root, { recursive: true, force: true });
    },
  };
}

/** Publishes a target + its signed artefact on the fake CP. */
export function publish(env: Env, d: { signed: SignedArtifact<FleetResolved>; target: Target }): Target {
  env.cp.setArtifact(d.signed.bytes, d.signed.signature);
  env.cp.setTarget(d.target);
  return d.target;
}
