/**
 * Optional network namespaces for hosts (Linux `ip netns`, needs root). Layout, all created and
 * removed by us:
 *
 *   root namespace: bridge nf<id>b with 10.213.<k>.1/24  ← the CP, the binary cache and the forge
 *                   listen here (a local address of the root namespace, so tests reach it too)
 *   host i:         namespace nf<id>-<i>, veth nf<id>h<i> (root side, on the bridge) ↔ eth0 inside
 *                   the namespace with 10.213.<k>.<10+i>/24
 *
 * `cutOff(i)` downs the root side of host i's veth: the host can no longer reach anything.
 * Nothing here touches any interface or address we did not create.
 */
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { registerLink, registerNamespace, removeNetwork } from './proc.ts';

export type NetnsAvailability = { ok: true } | { ok: false; reason: string };

let cached: NetnsAvailability | null = null;

/** Can we create namespaces, veths and a bridge here? Tries it once with throw-away names. */
export function netnsAvailable(): NetnsAvailability {
  if (cached !== null) return cached;
  if (process.env['NIXFLEET_E2E_NO_NETNS'] === '1') return (cached = { ok: false, reason: 'NIXFLEET_E2E_NO_NETNS=1' });
  if (process.platform !== 'linux') return (cached = { ok: false, reason: `platform ${process.platform} has no ip netns` });
  if (process.getuid?.() !== 0) return (cached = { ok: false, reason: 'network namespaces need root' });
  const id = randomBytes(3).toString('hex');
  const ns = `nfprobe${id}`;
  const br = `nfprb${id}`;
  try {
    execFileSync('ip', ['netns', 'add', ns], { stdio: 'pipe' });
    execFileSync('ip', ['link', 'add', br, 'type', 'bridge'], { stdio: 'pipe' });
    cached = { ok: true };
  } catch (e) {
    cached = { ok: false, reason: `ip netns / bridge unavailable: ${String((e as { stderr?: Buffer }).stderr ?? e).trim()}` };
  } finally {
    try {
      execFileSync('ip', ['link', 'del', br], { stdio: 'ignore' });
    } catch {
      // not created
    }
    try {
      execFileSync('ip', ['netns', 'del', ns], { stdio: 'ignore' });
    } catch {
      // not created
    }
  }
  return cached;
}

function ip(args: string[]): void {
  execFileSync('ip', args, { stdio: 'pipe' });
}

function usedSubnets(): Set<number> {
  const out = execFileSync('ip', ['-4', '-o', 'addr'], { encoding: 'utf8' });
  const used = new Set<number>();
  for (const m of out.matchAll(/inet 10\.213\.(\d+)\./g)) used.add(Number(m[1]));
  return used;
}

export class Network {
  readonly id: string;
  readonly bridge: string;
  /** Address the servers listen on, reachable from every host namespace. */
  readonly serverIp: string;
  private readonly subnet: number;
  private readonly hosts = new Map<number, { ns: string; veth: string; ip: string }>();

  private constructor(id: string, subnet: number) {
    this.id = id;
    this.subnet = subnet;
    this.bridge = `nf${id}b`;
    this.serverIp = `10.213.${subnet}.1`;
  }

  static create(): Network {
    const id = randomBytes(3).toString('hex');
    const used = usedSubnets();
    let subnet = -1;
    for (let k = 1 + (randomBytes(1)[0]! % 200); k < 255; k++) {
      if (!used.has(k)) {
        subnet = k;
        break;
      }
    }
    if (subnet < 0) throw new Error('no free 10.213.x.0/24 subnet for the e2e bridge');
    const n = new Network(id, subnet);
    registerLink(n.bridge);
    ip(['link', 'add', n.bridge, 'type', 'bridge']);
    ip(['addr', 'add', `${n.serverIp}/24`, 'dev', n.bridge]);
    ip(['link', 'set', n.bridge, 'up']);
    return n;
  }

  /** Create host i's namespace; returns the namespace name (for `ip netns exec`). */
  addHost(i: number): string {
    if (i < 0 || i > 200) throw new Error('host index out of range');
    const ns = `nf${this.id}-${i}`;
    const veth = `nf${this.id}h${i}`;
    const peer = `nf${this.id}p${i}`;
    const addr = `10.213.${this.subnet}.${10 + i}`;
    registerNamespace(ns);
    registerLink(veth);
    ip(['netns', 'add', ns]);
    ip(['link', 'add', veth, 'type', 'veth', 'peer', 'name', peer]);
    ip(['link', 'set', peer, 'netns', ns]);
    ip(['-n', ns, 'link', 'set', peer, 'name', 'eth0']);
    ip(['-n', ns, 'addr', 'add', `${addr}/24`, 'dev', 'eth0']);
    ip(['-n', ns, 'link', 'set', 'eth0', 'up']);
    ip(['-n', ns, 'link', 'set', 'lo', 'up']);
    ip(['link', 'set', veth, 'master', this.bridge]);
    ip(['link', 'set', veth, 'up']);
    this.hosts.set(i, { ns, veth, ip: addr });
    return ns;
  }

  /** Cut host i off the network (as if its cable were pulled). */
  cutOff(i: number): void {
    const h = this.hosts.get(i);
    if (h === undefined) throw new Error(`host ${i} has no namespace`);
    ip(['link', 'set', h.veth, 'down']);
  }

  reconnect(i: number): void {
    const h = this.hosts.get(i);
    if (h === undefined) throw new Error(`host ${i} has no namespace`);
    ip(['link', 'set', h.veth, 'up']);
  }

  /** Remove every namespace and link of this network. */
  destroy(): void {
    removeNetwork([...this.hosts.values()].map((h) => h.ns), [...[...this.hosts.values()].map((h) => h.veth), this.bridge]);
    this.hosts.clear();
  }

  /** Is eth0 inside host i's namespace up? (a closure may have downed it) */
  hostLinkUp(i: number): boolean {
    const h = this.hosts.get(i);
    if (h === undefined) throw new Error(`host ${i} has no namespace`);
    const out = execFileSync('ip', ['-n', h.ns, '-o', 'link', 'show', 'eth0'], { encoding: 'utf8' });
    return /[<,]UP[,>]/.test(out);
  }
}
