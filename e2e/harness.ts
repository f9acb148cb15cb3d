/**
 * The end-to-end fleet (issue 7): everything a real deployment has, as real processes on loopback
 * (or in network namespaces we create), under one temp root that is removed at the end.
 *
 *   forge       bare git repo + working clone + raw-file HTTP endpoint (forge.ts)
 *   CI step     `nixfleet-release keygen / resolve / push / sign` as processes, commits releases/ (ci.ts)
 *   cache       signed file:// Nix binary cache served over HTTP (fixtures/nix.ts)
 *   PKI         fleet CA, CP server cert, operator cert, host certs (pki/pki.ts)
 *   CP          `nixfleet-control-plane serve --config` with its own SQLite file
 *   agents      `nixfleet-agent run --config`, one process per host: own certificate, host key,
 *               state dir, Nix profile, trust.json, toy closures whose activation scripts write
 *               under the host's own directory (fixtures/nix/toys.nix)
 *
 * Waits poll the CP's operator API, the agents' profiles and files (wait.ts); `stop()` kills
 * every process group and removes the temp root even when a test failed (proc.ts also does it on
 * exit and on SIGINT).
 */
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readlinkSync, writeFileSync } from 'node:fs';
import { createServer as createNetServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type {
  AuditEntry,
  AuditResponse,
  HostView,
  HostsResponse,
  RolloutDetail,
  RolloutSummary,
  RolloutsResponse,
  TraceResponse,
} from '../protocol/api.ts';
import { createFleetCa, mintHostCert, mintOperatorCert, mintServerCert, type FleetCa, type MintedCert } from '../pki/pki.ts';
import { startNetCutProxy } from '../fixtures/nix/netcut.ts';
import {
  basenameOf,
  buildToys,
  generateCacheKey,
  newNonce,
  readSwitchLog,
  startHttpCache,
  type CacheKey,
  type HttpCache,
  type ToyVariant,
} from '../fixtures/nix.ts';
import { generateKeyPair, toOpenSshEd25519 } from '../protocol/crypto.ts';
import { toPkcs8Pem } from '../io/keyfile.ts';
import type { FleetDescription, Revocation, Trust } from '../protocol/schema.ts';
import { Ci, type ReleaseOutput } from './ci.ts';
import { Forge } from './forge.ts';
import { Network, netnsAvailable } from './netns.ts';
import { ApiClient } from './opclient.ts';
import { crashProc, registerTempRoot, removeTempRoot, run, spawnProc, stopProc, tailLog, tsxArgs, type Proc } from './proc.ts';
import { waitFor, type WaitOpts } from './wait.ts';

export { waitFor, holdFor, scaled } from './wait.ts';

/** One closure flavour every host gets built (per host, since toy scripts write under the host's dir). */
export type ClosureLabel = string;

export type HostSpec = {
  name: string;
  channel: string;
  tags?: string[];
  /** Put this host in its own network namespace (needs `ip netns`; see `netnsAvailable()`). */
  netns?: boolean;
};

export type FleetOptions = {
  /** Short name for the temp dir and logs. */
  name: string;
  hosts: HostSpec[];
  /** Channels, policies, edges, budgets of the fleet description; hosts are filled from `hosts`. */
  description: Omit<FleetDescription, 'hosts'>;
  /**
   * Closure flavours to build for every host: label → variant (default `{v1: 'ok', v2: 'ok'}`), or
   * `{variant, kernel}` for a closure whose toy kernel differs (issue 14: deferred to the boot).
   */
  closures?: Record<ClosureLabel, ToyVariant | { variant: ToyVariant; kernel: string }>;
  /** Overrides of the CP configuration (control-plane/config.ts). */
  cp?: Record<string, unknown>;
  /** Overrides of every agent's configuration (agent/config.ts). */
  agent?: Record<string, unknown>;
  /** Issue 15: the static compliance report every release resolves with (fleet controls travel in it). */
  complianceReport?: unknown;
};

export type HostHandle = {
  readonly name: string;
  readonly index: number;
  readonly spec: HostSpec;
  readonly dir: string;
  readonly stateDir: string;
  readonly profile: string;
  readonly configFile: string;
  readonly cert: MintedCert;
  /** OpenSSH ed25519 public key of the host key (in the fleet). */
  readonly pubkey: string;
  /** Network namespace, when the host has one. */
  readonly netns: string | null;
  /** label → store path of this host's closure. */
  readonly closures: Record<ClosureLabel, string>;
  proc: Proc | null;
  /** Extra config merged over the generated one at the next start. */
  configOverrides: Record<string, unknown>;
  /** CP URL this agent uses (a proxy may sit in front of the CP). */
  cpUrl: string;
};

/** A generation as `nix-env --list-generations` prints it. */
export type Generation = { number: number; current: boolean; path: string | null };

/** Pick a free TCP port on `host` (bind :0, read, close). */
export async function freePort(host = '127.0.0.1'): Promise<number> {
  const s = createNetServer();
  await new Promise<void>((r, j) => {
    s.once('error', j);
    s.listen(0, host, () => r());
  });
  const a = s.address();
  await new Promise<void>((r) => s.close(() => r()));
  if (a === null || typeof a === 'string') throw new Error('no port');
  return a.port;
}

/** A plain TCP forwarder (listenHost:port → 127.0.0.1:targetPort), for hosts in namespaces. */
function writeJson(path: string, value: unknown): void {
  writeFileSync(path, JSON.stringify(value, null, 2) + '\n');
}

export class Fleet {
  readonly root: string;
  readonly opts: FleetOptions;
  readonly hosts: HostHandle[] = [];
  readonly nonce = newNonce();
  network: Network | null = null;
  /** Address the servers (forge, cache, CP) are reached at from the hosts. */
  serverHost = '127.0.0.1';
  ca!: FleetCa;
  serverCert!: MintedCert;
  operatorCert!: MintedCert;
  cacheKey!: CacheKey;
  cacheDir = '';
  cache!: HttpCache;
  /** Cache URL as the agents use it (a forwarder in front of `cache` for namespaced hosts). */
  cacheUrl = '';
  forge!: Forge;
  ci!: Ci;
  trust!: Trust;
  cpPort = 0;
  cpDir = '';
  cpConfigFile = '';
  cpDbPath = '';
  cp: Proc | null = null;
  /** Extra CP config merged at the next `startCp()`. */
  cpOverrides: Record<string, unknown> = {};
  op!: ApiClient;
  lastRelease: ReleaseOutput | null = null;
  private closers: (() => Promise<void>)[] = [];
  private stopped = false;

  private constructor(opts: FleetOptions) {
    this.opts = opts;
    this.root = mkdtempSync(join(tmpdir(), `nixfleet-e2e-${opts.name}-`));
    registerTempRoot(this.root);
  }

  /** Build everything except the processes: PKI, keys, closures, cache, forge, CI. */
  static async create(opts: FleetOptions): Promise<Fleet> {
    const f = new Fleet(opts);
    try {
      await f.setup();
    } catch (e) {
      await f.stop();
      throw e;
    }
    return f;
  }

  private async setup(): Promise<void> {
    const o = this.opts;
    if (o.hosts.some((h) => h.netns === true)) {
      const a = netnsAvailable();
      if (!a.ok) throw new Error(`network namespaces requested but unavailable: ${a.reason}`);
      this.network = Network.create();
      this.serverHost = this.network.serverIp;
    }

    // PKI (pki/pki.ts). The CA key stays in the operator's directory, never in the CP's.
    const pki = join(this.root, 'operator');
    mkdirSync(pki, { recursive: true });
    this.ca = await createFleetCa({ commonName: `nixfleet e2e ${o.name}` });
    this.serverCert = await mintServerCert(this.ca, { hostnames: [this.serverHost] });
    this.operatorCert = await mintOperatorCert(this.ca, 'e2e-operator');
    writeFileSync(join(pki, 'ca.pem'), this.ca.certPem);
    writeFileSync(join(pki, 'ca.key'), this.ca.keyPem, { mode: 0o600 });
    writeFileSync(join(pki, 'operator.pem'), this.operatorCert.certPem);
    writeFileSync(join(pki, 'operator.key'), this.operatorCert.keyPem, { mode: 0o600 });

    // Binary cache: CI pushes to file:// with the cache signing key; agents fetch over HTTP.
    const cacheRoot = join(this.root, 'cache');
    this.cacheDir = join(cacheRoot, 'store');
    mkdirSync(this.cacheDir, { recursive: true });
    this.cacheKey = await generateCacheKey(cacheRoot, `nixfleet-e2e-${this.nonce}-1`);
    this.cache = await startHttpCache(this.cacheDir);
    this.closers.push(() => this.cache.close());
    this.cacheUrl = this.cache.url;
    if (this.network !== null) {
      const port = Number(new URL(this.cache.url).port);
      const fwd = await startNetCutProxy({ targetPort: port, listenHost: this.serverHost });
      this.closers.push(fwd.close);
      this.cacheUrl = `http://${this.serverHost}:${fwd.port}`;
    }

    // Forge + CI.
    this.forge = await Forge.create(this.root, this.serverHost);
    this.closers.push(() => this.forge.close());
    this.ci = new Ci(this.root, this.forge, `file://${this.cacheDir}`, this.cacheKey.secretKeyFile);
    const releasePub = await this.ci.keygen();
    this.trust = {
      schemaVersion: 1,
      ciReleaseKey: { current: { algorithm: 'ed25519', public: releasePub } },
      cacheKeys: [this.cacheKey.publicKey],
      fleetCaPem: this.ca.certPem,
    };

    // CP directory: server cert + key, CA *certificate*, trust.json, database.
    this.cpDir = join(this.root, 'cp');
    mkdirSync(this.cpDir, { recursive: true });
    writeFileSync(join(this.cpDir, 'server.pem'), this.serverCert.certPem);
    writeFileSync(join(this.cpDir, 'server.key'), this.serverCert.keyPem, { mode: 0o600 });
    writeFileSync(join(this.cpDir, 'fleet-ca.pem'), this.ca.certPem);
    writeJson(join(this.cpDir, 'trust.json'), this.trust);
    this.cpDbPath = join(this.cpDir, 'cp.sqlite');
    this.cpConfigFile = join(this.cpDir, 'config.json');
    this.cpPort = await freePort(this.serverHost);
    this.op = new ApiClient(this.cpUrl, { caPem: this.ca.certPem, certPem: this.operatorCert.certPem, keyPem: this.operatorCert.keyPem });
    this.closers.push(() => this.op.close());

    // Hosts: certificate, host key, trust, closures.
    const labels = o.closures ?? { v1: 'ok', v2: 'ok' };
    for (const [index, spec] of o.hosts.entries()) {
      const dir = join(this.root, 'hosts', spec.name);
      mkdirSync(join(dir, 'state'), { recursive: true });
      mkdirSync(join(dir, 'profiles'), { recursive: true });
      const cert = await mintHostCert(this.ca, spec.name);
      writeFileSync(join(dir, 'host.pem'), cert.certPem);
      writeFileSync(join(dir, 'host.key'), cert.keyPem, { mode: 0o600 });
      writeFileSync(join(dir, 'ca.pem'), this.ca.certPem);
      writeJson(join(dir, 'trust.json'), this.trust);
      // The host's Ed25519 key (signs its reports), PKCS#8 PEM — one of the two formats the agent reads.
      const hk = generateKeyPair('ed25519');
      writeFileSync(join(dir, 'ssh_host_ed25519_key'), toPkcs8Pem({ algorithm: 'ed25519', secretKey: hk.secretKey }), { mode: 0o600 });
      const pubkey = toOpenSshEd25519(hk.publicKey, `root@${spec.name}`);
      writeFileSync(join(dir, 'ssh_host_ed25519_key.pub'), pubkey + '\n');
      const netns = spec.netns === true && this.network !== null ? this.network.addHost(index) : null;
      this.hosts.push({
        name: spec.name,
        index,
        spec,
        dir,
        stateDir: join(dir, 'state'),
        profile: join(dir, 'profiles', 'system'),
        configFile: join(dir, 'agent.json'),
        cert,
        pubkey,
        netns,
        closures: {},
        proc: null,
        configOverrides: {},
        cpUrl: this.cpUrl,
      });
    }
    await this.buildClosures(Object.entries(labels).map(([label, variant]) => ({ label, variant })));
  }

  /** Build (or re-realise: the builds are deterministic) closures for every host. */
  async buildClosures(specs: { label: ClosureLabel; variant: ToyVariant | { variant: ToyVariant; kernel: string } }[]): Promise<void> {
    // Two hosts at a time: this machine has two cores.
    const queue = [...this.hosts];
    const worker = async () => {
      for (let h = queue.shift(); h !== undefined; h = queue.shift()) {
        const built = await buildToys(
          h.dir,
          specs.map((s) => (typeof s.variant === 'string' ? { name: `${h.name}-${s.label}`, variant: s.variant } : { name: `${h.name}-${s.label}`, ...s.variant })),
          this.nonce,
        );
        for (const s of specs) (h.closures as Record<string, string>)[s.label] = built[`${h.name}-${s.label}`]!;
      }
    };
    await Promise.all([worker(), worker()]);
  }

  get cpUrl(): string {
    return `https://${this.serverHost}:${this.cpPort}`;
  }

  host(name: string): HostHandle {
    const h = this.hosts.find((x) => x.name === name);
    if (h === undefined) throw new Error(`no host ${name}`);
    return h;
  }

  /** Store basename of `label` for `host`. */
  closure(host: string, label: ClosureLabel): string {
    const p = this.host(host).closures[label];
    if (p === undefined) throw new Error(`no closure ${label} for ${host}`);
    return basenameOf(p);
  }

  /** The fleet description: `opts.description` plus every host with its channel, tags and host key. */
  description(): FleetDescription {
    const hosts: FleetDescription['hosts'] = {};
    for (const h of this.hosts) {
      hosts[h.name] = { system: 'x86_64-linux', channel: h.spec.channel, tags: h.spec.tags ?? [], pubkey: h.pubkey };
    }
    return { ...this.opts.description, hosts };
  }

  /**
   * A release through the CI step: `labels` maps host → closure label (a string applies to all).
   * Rebuilds the closures (deterministic, no-op when present), then resolve / push / sign / commit.
   * Afterwards the new top-level closures are deleted from the local store when nothing uses them,
   * so the agents must really fetch them from the signed binary cache.
   */
  async release(labels: ClosureLabel | Record<string, ClosureLabel>, extra: { revocations?: Revocation[]; now?: string; message?: string; description?: FleetDescription } = {}): Promise<ReleaseOutput> {
    const labelOf = (h: string): ClosureLabel => (typeof labels === 'string' ? labels : (labels[h] ?? (() => {
      throw new Error(`release: no closure label for ${h}`);
    })()));
    const needed = new Map<ClosureLabel, ToyVariant | { variant: ToyVariant; kernel: string }>();
    const variants = this.opts.closures ?? { v1: 'ok', v2: 'ok' };
    for (const h of this.hosts) {
      const l = labelOf(h.name);
      const v = variants[l];
      if (v === undefined) throw new Error(`release: closure label ${l} is not in FleetOptions.closures`);
      needed.set(l, v);
    }
    await this.buildClosures([...needed].map(([label, variant]) => ({ label, variant })));
    const closures: Record<string, string> = {};
    for (const h of this.hosts) closures[h.name] = this.closure(h.name, labelOf(h.name));
    const out = await this.ci.release({
      fleet: extra.description ?? this.description(),
      closures,
      ...(this.opts.complianceReport !== undefined ? { complianceReport: this.opts.complianceReport } : {}),
      ...(extra.revocations !== undefined ? { revocations: extra.revocations } : {}),
      ...(extra.now !== undefined ? { now: extra.now } : {}),
      ...(extra.message !== undefined ? { message: extra.message } : {}),
      beforeCommit: async () => {
        // Before the CP can see the release: evict the new top-level closures that no profile
        // uses yet, so that agents must fetch them from the signed binary cache. Only the
        // top-level path: its components may belong to the running generation (then `--delete`
        // refuses, which is fine).
        for (const h of this.hosts) await run('nix-store', ['--delete', `/nix/store/${closures[h.name]!}`]);
      },
    });
    this.lastRelease = out;
    return out;
  }

  // -------------------------------------------------------------------------------------------
  // Control plane
  // -------------------------------------------------------------------------------------------

  cpConfig(): Record<string, unknown> {
    return {
      listenHost: this.serverHost,
      listenPort: this.cpPort,
      tlsCertFile: join(this.cpDir, 'server.pem'),
      tlsKeyFile: join(this.cpDir, 'server.key'),
      clientCaFile: join(this.cpDir, 'fleet-ca.pem'),
      trustFile: join(this.cpDir, 'trust.json'),
      source: {
        type: 'url',
        fleetUrl: this.forge.rawUrl('releases/fleet.resolved.json'),
        revocationsUrl: this.forge.rawUrl('releases/revocations.json'),
      },
      revocations: true,
      dbPath: this.cpDbPath,
      pollIntervalSecs: 1,
      reconcileIntervalSecs: 1,
      reconcileDebounceMs: 100,
      confirmDeadlineSecs: 30,
      agentPollIntervalSecs: 1,
      // Offline past the grace releases a host's wave (SPEC §4). Agents poll every second, but on
      // a loaded machine a host realising its closure can stay silent for many seconds: the grace
      // is wide enough that only a test that cuts a host off (offline.test.ts sets its own) sees it.
      offlineAfterSecs: 15,
      offlineGraceSecs: 60,
      retryAfterSecs: 1,
      fetchTimeoutMs: 5000,
      logLevel: 'debug',
      ...this.opts.cp,
      ...this.cpOverrides,
    };
  }

  /** Start the CP and wait until it has verified and loaded the committed release. */
  async startCp(opts: { waitReady?: boolean } = {}): Promise<void> {
    if (this.cp !== null && !this.cp.hasExited()) throw new Error('CP already running');
    writeJson(this.cpConfigFile, this.cpConfig());
    this.cp = spawnProc({
      name: 'cp',
      cmd: process.execPath,
      args: tsxArgs('control-plane/main.ts', ['serve', '--config', this.cpConfigFile]),
      logFile: join(this.cpDir, 'cp.log'),
    });
    if (opts.waitReady !== false) await this.waitCpReady();
  }

  async waitCpReady(what = 'the CP to be ready (verified fleet + revocations loaded)'): Promise<void> {
    await this.waitFor(what, async (observe) => {
      if (this.cp?.hasExited() === true) throw new Error(`CP exited: ${tailLog(this.cp.logFile, 30)}`);
      const r = await this.op.call<{ ready: boolean; reasons: string[] }>('GET', '/readyz');
      observe({ status: r.status, body: r.body });
      return r.status === 200;
    }, { timeoutMs: 60_000 });
  }

  async stopCp(): Promise<void> {
    if (this.cp !== null) await stopProc(this.cp);
    this.cp = null;
  }

  async crashCp(): Promise<void> {
    if (this.cp !== null) await crashProc(this.cp);
    this.cp = null;
  }

  // -------------------------------------------------------------------------------------------
  // Agents
  // -------------------------------------------------------------------------------------------

  agentConfig(h: HostHandle): Record<string, unknown> {
    return {
      hostname: h.name,
      cpUrl: h.cpUrl,
      tls: { certFile: join(h.dir, 'host.pem'), keyFile: join(h.dir, 'host.key'), caFile: join(h.dir, 'ca.pem') },
      trustFile: join(h.dir, 'trust.json'),
      hostKeyFile: join(h.dir, 'ssh_host_ed25519_key'),
      stateDir: h.stateDir,
      profilePath: h.profile,
      // The toy activation scripts point <hostDir>/current-system at themselves (fixtures/nix/toys.nix).
      currentSystemPath: join(h.dir, 'current-system'),
      bootedSystemPath: join(h.dir, 'booted-system'),
      // Issue 14: a simulated machine — its boot id is a file, its reboot command a recorder.
      bootIdFile: join(h.dir, 'boot_id'),
      rebootCommand: ['/bin/sh', '-c', `echo reboot >> '${join(h.dir, 'reboots')}'`],
      platform: 'nixos',
      substituters: [this.cacheUrl],
      pollIntervalSecs: 1,
      pollJitterPct: 0,
      maxBackoffFactor: 2,
      confirmDeadlineSecs: 20,
      retryIntervalSecs: 0.5,
      requestTimeoutSecs: 5,
      commandTimeoutSecs: 120,
      // Issue 15: the toy host's root for the file checks of runtime compliance controls.
      complianceRoot: h.dir,
      ...this.opts.agent,
      ...h.configOverrides,
    };
  }

  async startAgent(name: string): Promise<void> {
    const h = this.host(name);
    if (h.proc !== null && !h.proc.hasExited()) throw new Error(`agent ${name} already running`);
    writeJson(h.configFile, this.agentConfig(h));
    if (!existsSync(join(h.dir, 'boot_id'))) writeFileSync(join(h.dir, 'boot_id'), 'boot-1\n');
    const node = [process.execPath, ...tsxArgs('agent/main.ts', ['run', '--config', h.configFile])];
    const [cmd, ...args] = h.netns !== null ? ['ip', 'netns', 'exec', h.netns, ...node] : node;
    // Each host is its own machine: its own Nix narinfo disk cache (~/.cache/nix), so that agents
    // realising at the same moment do not race on one SQLite file, as they never would in a fleet.
    h.proc = spawnProc({ name: `agent-${name}`, cmd: cmd!, args, logFile: join(h.dir, 'agent.log'), env: { XDG_CACHE_HOME: join(h.dir, 'xdg-cache') } });
  }

  async startAgents(names: string[] = this.hosts.map((h) => h.name)): Promise<void> {
    for (const n of names) await this.startAgent(n);
  }

  async stopAgent(name: string): Promise<void> {
    const h = this.host(name);
    if (h.proc !== null) await stopProc(h.proc);
    h.proc = null;
  }

  /** SIGKILL the agent's whole process group (a crash, e.g. between switch and confirm). */
  async crashAgent(name: string): Promise<void> {
    const h = this.host(name);
    if (h.proc !== null) await crashProc(h.proc);
    h.proc = null;
  }

  /** SIGSTOP the agent's process group: the host goes silent (no check-ins), as if powered off. */
  freezeAgent(name: string): void {
    const h = this.host(name);
    if (h.proc === null) throw new Error(`agent ${name} is not running`);
    process.kill(-h.proc.pid, 'SIGSTOP');
  }

  thawAgent(name: string): void {
    const h = this.host(name);
    if (h.proc === null) throw new Error(`agent ${name} is not running`);
    process.kill(-h.proc.pid, 'SIGCONT');
  }

  // -------------------------------------------------------------------------------------------
  // Observations
  // -------------------------------------------------------------------------------------------

  async hostsView(): Promise<HostView[]> {
    return (await this.op.get<HostsResponse>('/v1/hosts')).hosts;
  }

  async hostView(name: string): Promise<HostView> {
    const v = (await this.hostsView()).find((h) => h.hostname === name);
    if (v === undefined) throw new Error(`CP does not list host ${name}`);
    return v;
  }

  async rollouts(channel?: string): Promise<RolloutSummary[]> {
    const q = channel !== undefined ? `?channel=${encodeURIComponent(channel)}` : '';
    return (await this.op.get<RolloutsResponse>(`/v1/rollouts${q}`)).rollouts;
  }

  async rollout(id: string): Promise<RolloutDetail> {
    return this.op.get<RolloutDetail>(`/v1/rollouts/${encodeURIComponent(id)}`);
  }

  async trace(id: string): Promise<TraceResponse> {
    return this.op.get<TraceResponse>(`/v1/rollouts/${encodeURIComponent(id)}/trace`);
  }

  /** One sample of the CP's Prometheus metrics (0 when absent). Labels must all match. */
  async metric(name: string, labels: Record<string, string> = {}): Promise<number> {
    const r = await this.op.call('GET', '/metrics');
    if (r.status !== 200) throw new Error(`/metrics → ${r.status}`);
    let sum = 0;
    for (const line of r.raw.toString('utf8').split('\n')) {
      const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{([^}]*)\})?\s+(\S+)/.exec(line);
      if (m === null || m[1] !== name) continue;
      const ls = Object.fromEntries([...(m[3] ?? '').matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)].map((x) => [x[1]!, x[2]!]));
      if (Object.entries(labels).every(([k, v]) => ls[k] === v)) sum += Number(m[4]);
    }
    return sum;
  }

  /** The whole audit log, paging through `after`. */
  async audit(): Promise<AuditEntry[]> {
    const out: AuditEntry[] = [];
    let after = 0;
    for (let i = 0; i < 10_000; i++) {
      const r = await this.op.get<AuditResponse>(`/v1/audit?after=${after}&limit=1000`);
      out.push(...r.entries);
      if (r.nextAfter === null || r.entries.length === 0) return out;
      after = r.nextAfter;
    }
    throw new Error('audit log paging did not end');
  }

  /** The rollout of `channel` whose hosts are dispatched `label` closures (newest first). */
  async rolloutFor(channel: string, label: ClosureLabel): Promise<RolloutDetail | undefined> {
    for (const r of (await this.rollouts(channel)).sort((a, b) => b.openedAt.localeCompare(a.openedAt))) {
      const d = await this.rollout(r.id);
      const hostsOfChannel = this.hosts.filter((h) => h.spec.channel === channel);
      if (d.hosts.length > 0 && d.hosts.every((x) => hostsOfChannel.some((h) => h.name === x.hostname && x.closureHash === this.closure(h.name, label)))) return d;
    }
    return undefined;
  }

  /** `nix-env -p PROFILE --list-generations`. */
  async generations(name: string): Promise<Generation[]> {
    const h = this.host(name);
    if (!existsSync(h.profile)) return [];
    const r = await run('nix-env', ['-p', h.profile, '--list-generations']);
    if (r.code !== 0) throw new Error(`nix-env --list-generations ${h.profile}: ${r.stderr}`);
    const gens: Generation[] = [];
    for (const line of r.stdout.split('\n')) {
      const m = /^\s*(\d+)\s+\S+\s+\S+\s*(\(current\))?/.exec(line);
      if (m === null) continue;
      const n = Number(m[1]);
      let path: string | null = null;
      try {
        path = readlinkSync(`${h.profile}-${n}-link`);
      } catch {
        path = null;
      }
      gens.push({ number: n, current: m[2] !== undefined, path });
    }
    return gens;
  }

  /** Store path the host's profile points at now (null when it has none). */
  profileTarget(name: string): string | null {
    const h = this.host(name);
    try {
      const link = readlinkSync(h.profile); // system-N-link
      return readlinkSync(join(h.dir, 'profiles', link));
    } catch {
      return null;
    }
  }

  /** Label of the closure the host's profile points at (or the raw path, or null). */
  profileLabel(name: string): string | null {
    const t = this.profileTarget(name);
    if (t === null) return null;
    const h = this.host(name);
    for (const [l, p] of Object.entries(h.closures)) if (p === t) return l;
    return t;
  }

  /** What the toy activation scripts of this host recorded: "<host>-<label> <action>". */
  switchLog(name: string): string[] {
    return readSwitchLog(this.host(name).dir);
  }

  /** The host's running system (the toy's `current-system` symlink), as a label. */
  currentLabel(name: string): string | null {
    const h = this.host(name);
    try {
      const t = readlinkSync(join(h.dir, 'current-system'));
      for (const [l, p] of Object.entries(h.closures)) if (p === t) return l;
      return t;
    } catch {
      return null;
    }
  }

  /** Bounded wait with every process's log tail attached to the timeout error. */
  waitFor<T>(what: string, probe: Parameters<typeof waitFor<T>>[1], opts: WaitOpts = {}): Promise<T> {
    return waitFor(what, probe, { intervalMs: 500, timeoutMs: 90_000, diagnostics: () => this.diagnostics(), ...opts });
  }

  /** Wait until every listed host runs `label` (profile + current-system) and the CP reports it. */
  async waitConverged(label: ClosureLabel, names: string[] = this.hosts.map((h) => h.name), opts: WaitOpts = {}): Promise<void> {
    await this.waitFor(`${names.join(', ')} to run ${label} (profile, current-system and CP view)`, async (observe) => {
      const view = await this.hostsView();
      const seen = names.map((n) => ({
        host: n,
        profile: this.profileLabel(n),
        running: this.currentLabel(n),
        cp: view.find((v) => v.hostname === n)?.currentClosure ?? null,
        state: view.find((v) => v.hostname === n)?.rollout?.state ?? null,
      }));
      observe(seen);
      return seen.every((s) => s.profile === label && s.running === label && s.cp === this.closure(s.host, label));
    }, opts);
  }

  async diagnostics(): Promise<string> {
    const parts: string[] = [];
    if (this.cp !== null) parts.push(`--- cp.log (tail)\n${tailLog(this.cp.logFile, 40)}`);
    for (const h of this.hosts) parts.push(`--- agent ${h.name} (tail)\n${tailLog(join(h.dir, 'agent.log'), 15)}`);
    return parts.join('\n');
  }

  /** Kill every process, close servers, remove namespaces and the temp root. Idempotent. */
  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    for (const h of this.hosts) if (h.proc !== null) await stopProc(h.proc, 2000);
    if (this.cp !== null) await stopProc(this.cp, 2000);
    for (const c of this.closers.reverse()) await c().catch(() => undefined);
    this.network?.destroy();
    removeTempRoot(this.root);
  }
}

/** Read a JSON file under a host's state dir (e.g. the agent's records), or null. */
export function readStateJson(h: HostHandle, file: string): unknown {
  const p = join(h.stateDir, file);
  if (!existsSync(p)) return null;
  return JSON.parse(readFileSync(p, 'utf8')) as unknown;
}

