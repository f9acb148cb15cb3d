/**
 * `nixfleet` against the REAL control plane (fixtures/cp-testing.ts: SQLite store, Hono app,
 * HTTPS with mutual TLS on loopback, a controlled clock), with simulated agents checking in,
 * confirming and sending signed reports over their own host certificates. Issue 6 acceptance:
 *
 * - `status --json` lists every host with channel, current, declared and status;
 * - `pause` stops dispatch (a host that checks in gets no target), `resume` lets it continue;
 * - `rollout trace` shows each host's transitions with wave, time and reason; `--follow` ends
 *   when the rollout converges;
 * - `quarantine clear` lets a quarantined closure be dispatched again;
 * - `audit export` of a finished rollout verifies with `audit verify`; editing one line makes it
 *   fail and name that line;
 * - a host certificate as the CLI identity is refused with a clear message; an unreachable CP
 *   gives exit 3 and one line;
 * - `mint-host-cert` / `mint-operator-cert` certificates are accepted by the CP for their own role
 *   only; `pki init` refuses to overwrite the CA.
 */
import { X509Certificate } from 'node:crypto';
import { copyFileSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import type { CheckinResponse, HostReport } from '../protocol/api.ts';
import type { WhoamiResponse } from '../protocol/enrol.ts';
import { Client, confirmedRecord, hostKeyOf, makeEnv, report, startCp, type Env, type RunningCp } from '../fixtures/cp-testing.ts';
import { fakeClosure, sampleFleet } from '../fixtures/artifacts.ts';
import type { FleetResolved } from '../protocol/schema.ts';
import { documentedJsonFields, isOneLine, runCli } from '../fixtures/cli-testing.ts';
import type { StatusReport, TraceRow } from './views.ts';

const HOSTS = ['host-0000', 'host-0001', 'host-0002', 'host-0003'] as const;
const WAVE_OF: Record<string, number> = { 'host-0000': 0, 'host-0001': 1, 'host-0002': 0, 'host-0003': 1 };

type SimAgent = {
  name: string;
  current: string;
  client: Client;
  checkin(probesOk?: boolean): Promise<CheckinResponse>;
  report(event: HostReport['event'], rolloutId: string | null, closure: string | null): Promise<number>;
  /** Report started + switched, then confirm with passing probes (what a healthy agent does). */
  activate(t: NonNullable<CheckinResponse['target']>): Promise<void>;
};

async function simAgents(env: Env, cp: RunningCp): Promise<Record<string, SimAgent>> {
  const out: Record<string, SimAgent> = {};
  const certs = await Promise.all(HOSTS.map((name) => env.hostCert(name)));
  HOSTS.forEach((name, index) => {
    const client = new Client(cp.url, env.ca.certPem, certs[index]!);
    const key = hostKeyOf(index, name);
    const a: SimAgent = {
      name,
      current: fakeClosure(name, 0),
      client,
      async checkin(probesOk = true) {
        const r = await client.call('POST', '/v1/agent/checkin', {
          hostname: name,
          currentClosure: a.current,
          bootId: 'boot-1',
          probes: [{ name: 'http', ok: probesOk, observedAt: new Date(env.clock.ms).toISOString() }],
          failedUnits: [],
          lastOutcome: null,
        });
        assert.is(r.status, 200, `${name} checkin: ${JSON.stringify(r.body)}`);
        return r.body as CheckinResponse;
      },
      async report(event, rolloutId, closure) {
        const rep = report(name, event, rolloutId, closure, env.clock.ms, event);
        const r = await client.call('POST', '/v1/agent/report', { report: rep, signature: key.sign(rep) });
        return r.status;
      },
      async activate(t) {
        assert.is(await a.report('activation-started', t.rolloutId, t.closureHash), 202);
        a.current = t.closureHash;
        assert.is(await a.report('activation-switched', t.rolloutId, t.closureHash), 202);
        const rec = confirmedRecord(name, t.rolloutId, t.closureHash, env.clock.ms);
        const r = await client.call('POST', '/v1/agent/confirm', {
          hostname: name,
          rolloutId: t.rolloutId,
          closureHash: t.closureHash,
          bootId: 'boot-1',
          confirmed: { record: rec, signature: key.sign(rec) },
          probes: [{ name: 'http', ok: true, observedAt: new Date(env.clock.ms).toISOString() }],
          failedUnits: [],
        });
        assert.is(r.status, 204, `${name} confirm: ${JSON.stringify(r.body)}`);
      },
    };
    out[name] = a;
  });
  return out;
}

const t = suite('nixfleet against the real control plane');
const env = await makeEnv('nixfleet-cli-cp-');
const ops = join(env.dir, 'operator');
let cp: RunningCp;
let agents: Record<string, SimAgent>;
const fleets: string[] = [];

function fleetGen(gens: Partial<Record<string, number>> = {}, gen = 1): FleetResolved {
  const f = sampleFleet({ hosts: 4, waves: 2, closures: true, withPubkeys: true });
  for (const h of HOSTS) f.hosts[h]!.closureHash = fakeClosure(h, gens[h] ?? gen);
  return f;
}

/** Publish a fleet a minute after the last one (signedAt must move forward), load it, keep a copy for audit verify. */
async function publish(f: FleetResolved): Promise<void> {
  env.clock.advance(60_000);
  env.publish(f);
  await cp.cp.pollNow();
  const copy = join(env.dir, `fleet-${fleets.length + 1}.json`);
  copyFileSync(join(env.releasesDir, 'fleet.resolved.json'), copy);
  fleets.push(copy);
}

const cliEnv = () => ({
  HOME: env.dir,
  NIXFLEET_URL: cp.url,
  NIXFLEET_CERT: join(ops, 'alice.pem'),
  NIXFLEET_KEY: join(ops, 'alice.key'),
  NIXFLEET_CA: join(ops, 'ca.pem'),
});
const cli = (args: string[], over: Record<string, string> = {}, extra: Parameters<typeof runCli>[1] = {}) =>
  runCli(args, { cwd: env.dir, env: { ...cliEnv(), ...over }, now: env.clock.now, ...extra });

/** One agent round: every host checks in and activates any target; then a reconcile pass. */
async function round(): Promise<void> {
  for (const h of HOSTS) {
    const r = await agents[h]!.checkin();
    if (r.target !== null) await agents[h]!.activate(r.target);
  }
  await cp.cp.reconcileNow();
}

const rolloutOf = async (gen: number): Promise<string> => {
  const want = fakeClosure('host-0000', gen);
  const r = Object.values((await cp.store.loadObserved()).rollouts).find((x) => x.hosts['host-0000']?.closure === want);
  assert.ok(r, `rollout of generation ${gen}`);
  return r!.id;
};

t.before(async () => {
  mkdirSync(ops, { recursive: true });
  const alice = await env.operatorCert('alice');
  const web = await env.hostCert('host-0001');
  writeFileSync(join(ops, 'ca.pem'), env.ca.certPem);
  writeFileSync(join(ops, 'alice.pem'), alice.certPem);
  writeFileSync(join(ops, 'alice.key'), alice.keyPem);
  writeFileSync(join(ops, 'host-0001.pem'), web.certPem);
  writeFileSync(join(ops, 'host-0001.key'), web.keyPem);
  cp = await startCp(env);
  agents = await simAgents(env, cp);
  // The hosts check in first under a fleet that deploys nothing (a first contact would otherwise
  // be dispatched at once), then generation 1 is published: every host starts Queued.
  const empty = fleetGen();
  for (const h of HOSTS) empty.hosts[h]!.closureHash = null;
  await publish(empty);
  for (const h of HOSTS) await agents[h]!.checkin();
  await publish(fleetGen());
  for (const h of HOSTS) await agents[h]!.checkin();
});

t.after(async () => {
  for (const a of Object.values(agents ?? {})) await a.client.close();
  await cp?.stop();
  env.cleanup();
});

t('status --json lists every host with channel, current, declared and status', async () => {
  const r = await cli(['status', '--json']);
  assert.is(r.code, 0, r.stderr);
  const s = JSON.parse(r.stdout) as StatusReport;
  assert.equal(s.hosts.map((h) => h.hostname), [...HOSTS]);
  for (const h of s.hosts) {
    assert.is(h.channel, 'stable');
    assert.is(h.currentClosure, fakeClosure(h.hostname, 0));
    assert.is(h.declaredClosure, fakeClosure(h.hostname, 1));
    assert.is(h.status, 'queued');
    assert.is(h.online, true);
  }
  assert.is(s.unhealthy, false);
  const table = await cli(['status']);
  assert.is(table.code, 0);
  assert.match(table.stdout, /^HOST +CHANNEL +CURRENT +DECLARED +STATUS +SEEN\nhost-0000 +stable .*… queued +just now\n/);
});

t('pause stops dispatch (a host that checks in gets no target); resume lets it continue', async () => {
  const p = await cli(['pause', 'stable', '--reason', 'change freeze']);
  assert.is(p.code, 0, p.stderr);
  assert.match(p.stdout, /^channel stable paused by operator:alice: change freeze/);
  await cp.cp.reconcileNow();
  for (const h of HOSTS) assert.is((await agents[h]!.checkin()).target, null, `${h} gets nothing while paused`);
  await cp.cp.reconcileNow();
  for (const h of HOSTS) assert.is((await agents[h]!.checkin()).target, null, `${h} still nothing`);
  const list = await cli(['rollout', 'list', '--json']);
  assert.equal(JSON.parse(list.stdout).rollouts.map((r: { state: string }) => r.state), ['Paused']);
  const held = JSON.parse((await cli(['status', '--json'])).stdout) as StatusReport;
  assert.equal(held.hosts.map((h) => [h.status, h.rolloutState]), HOSTS.map(() => ['held', 'Paused']));

  const r = await cli(['resume', 'stable']);
  assert.is(r.code, 0, r.stderr);
  assert.is(r.stdout, 'channel stable resumed; dispatch continues\n');
  await cp.cp.reconcileNow();
  for (const h of HOSTS) {
    const target = (await agents[h]!.checkin()).target;
    if (WAVE_OF[h] === 0) assert.ok(target !== null && target.closureHash === fakeClosure(h, 1), `${h} (wave 0) gets its target after resume`);
    else assert.is(target, null, `${h} (wave 1) waits for wave 0`);
  }
});

t('rollout trace --follow redraws progress until the rollout converges (exit 0)', async () => {
  const id = await rolloutOf(1);
  let rounds = 0;
  const r = await cli(['rollout', 'trace', id, '--follow', '--interval-secs', '1'], {}, { sleep: async () => void (rounds++, await round()) });
  assert.is(r.code, 0, r.stderr);
  assert.ok(rounds >= 2 && rounds <= 6, `converged after ${rounds} rounds`);
  assert.match(r.stdout, new RegExp(`${id}: ✓ converged[^\\n]*\\n  wave 0  \\[#{20}\\] 2/2  2 converged\\n  wave 1  \\[#{20}\\] 2/2  2 converged\\n$`));
  assert.match(r.stdout, /wave 1  host-0003  \S+ → Dispatched/);
});

t('rollout trace shows each host transitions with wave, time and reason', async () => {
  const id = await rolloutOf(1);
  const r = await cli(['rollout', 'trace', id, '--json']);
  assert.is(r.code, 0, r.stderr);
  const trace = JSON.parse(r.stdout) as { rolloutId: string; state: string; events: TraceRow[] };
  assert.is(trace.rolloutId, id);
  assert.is(trace.state, 'Converged');
  for (const h of HOSTS) {
    const mine = trace.events.filter((e) => e.hostname === h);
    assert.ok(mine.length >= 3, `${h} has its transitions`);
    for (const e of mine) {
      assert.is(e.wave, WAVE_OF[h], `${h} wave`);
      assert.ok(Number.isFinite(Date.parse(e.at)), 'time');
      assert.ok(e.reason.length > 0, `${h} ${e.from} → ${e.to} has a reason`);
    }
    assert.equal(mine.map((e) => e.to).slice(-1), ['Converged'], `${h} ends Converged`);
    assert.ok(mine.some((e) => e.to === 'Dispatched') && mine.some((e) => e.to === 'Healthy'));
  }
  const human = await cli(['rollout', 'trace', id]);
  assert.is(human.code, 0);
  assert.match(human.stdout, new RegExp(`^rollout ${id.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}: ✓ converged`));
  assert.match(human.stdout, /\n\S+Z +\S+.* +1 +host-0001 +\S+ → \S+ +\S/);
  // A channel name means the channel's current rollout; an unknown one lists the ids that exist.
  const byChannel = await cli(['rollout', 'trace', 'stable', '--json']);
  assert.is(byChannel.code, 0, byChannel.stderr);
  assert.is(JSON.parse(byChannel.stdout).rolloutId, id);
  const unknown = await cli(['rollout', 'trace', 'nope']);
  assert.is(unknown.code, 1);
  assert.match(unknown.stderr, new RegExp(`no rollout of channel "nope" \\(ID is <channel>@<targetRef> or a channel name\\); rollouts: .*${id.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}`));
  const unknownId = await cli(['rollout', 'show', 'stable@0000']);
  assert.is(unknownId.code, 1);
  assert.match(unknownId.stderr, /; rollouts: stable@/);
  const show = await cli(['rollout', 'show', id]);
  assert.is(show.code, 0);
  assert.match(show.stdout, /\n1 +host-0003 +✓ converged/);
  const status = await cli(['status']);
  assert.is(status.code, 0);
  assert.is((status.stdout.match(/✓ converged/g) ?? []).length, 4);
});

t('a failing host quarantines its closure (status exits 1); quarantine clear lets it be dispatched again', async () => {
  // Generation 2: host-0000 confirms, then its probes fail: health gate → Failed, closure quarantined.
  await publish(fleetGen({}, 2));
  await cp.cp.reconcileNow();
  const bad = fakeClosure('host-0000', 2);
  const t0 = (await agents['host-0000']!.checkin()).target;
  assert.ok(t0 !== null && t0.closureHash === bad);
  await agents['host-0000']!.activate(t0!);
  assert.is(await agents['host-0000']!.report('probe-failed', t0!.rolloutId, bad), 202);
  await cp.cp.reconcileNow();
  const failed = await cli(['status', '--json']);
  assert.is(failed.code, 1, 'status gates CI: a host failed');
  assert.is((JSON.parse(failed.stdout) as StatusReport).hosts.find((h) => h.hostname === 'host-0000')!.status, 'failed');
  const q = await cli(['quarantine', 'list', '--json']);
  assert.is(q.code, 0, q.stderr);
  assert.equal(JSON.parse(q.stdout).quarantines.map((x: { channel: string; closureHash: string }) => [x.channel, x.closureHash]), [['stable', bad]]);
  // The agent rolls itself back.
  agents['host-0000']!.current = fakeClosure('host-0000', 1);
  await agents['host-0000']!.checkin(true);

  // Generation 3 changes host-0002 only: host-0000's target is still the quarantined closure.
  await publish(fleetGen({ 'host-0002': 3 }, 2));
  await cp.cp.reconcileNow();
  assert.is((await agents['host-0000']!.checkin()).target, null, 'quarantined closure is not dispatched');
  await cp.cp.reconcileNow();
  assert.is((await agents['host-0000']!.checkin()).target, null);
  const held = await cli(['status']);
  assert.is(held.code, 1);
  assert.match(held.stdout, /\nhost-0000 +stable .*✗ quarantined/);

  const clear = await cli(['quarantine', 'clear', 'stable', bad]);
  assert.is(clear.code, 0, clear.stderr);
  assert.match(clear.stdout, /^cleared 1 quarantine of /);
  await cp.cp.reconcileNow();
  const again = (await agents['host-0000']!.checkin()).target;
  assert.ok(again !== null && again.closureHash === bad, 'dispatched again after clear');
  const twice = await cli(['quarantine', 'clear', 'stable', bad]);
  assert.is(twice.code, 1, 'nothing left to clear');
  assert.ok(isOneLine(twice.stderr));
});

t('audit export of a finished rollout verifies with audit verify; editing one line fails naming it', async () => {
  const r = await cli(['audit', 'export', '--out', 'audit.jsonl']);
  assert.is(r.code, 0, r.stderr);
  const m = /^wrote (\d+) entries \(seq 1\.\.(\d+)/.exec(r.stdout);
  assert.ok(m && Number(m[1]) > 20, r.stdout);
  const v = await cli(['audit', 'verify', 'audit.jsonl', '--fleet', fleets.join(',')]);
  assert.is(v.code, 0, v.stderr);
  const summary = JSON.parse((await cli(['audit', 'verify', 'audit.jsonl', '--fleet', fleets.join(','), '--json'])).stdout);
  assert.is(summary.complete, true);
  assert.ok(summary.reports.verified >= 12, `host statements verified: ${JSON.stringify(summary.reports)}`);
  assert.is(summary.reports.unchecked, 0);

  const lines = readFileSync(join(env.dir, 'audit.jsonl'), 'utf8').split('\n');
  const target = lines.findIndex((l) => l.includes('"kind":"host.state"') && l.includes('"to":"Converged"'));
  assert.ok(target > 0);
  lines[target] = lines[target]!.replace('"to":"Converged"', '"to":"Failed"');
  writeFileSync(join(env.dir, 'edited.jsonl'), lines.join('\n'));
  const bad = await cli(['audit', 'verify', 'edited.jsonl', '--fleet', fleets.join(',')]);
  assert.is(bad.code, 1);
  assert.ok(isOneLine(bad.stderr), bad.stderr);
  assert.match(bad.stderr, new RegExp(`^nixfleet audit verify: line ${target + 1} \\(seq \\d+\\): hash does not match`));

  const partial = await cli(['audit', 'export', '--since', '10']);
  assert.is(partial.code, 0);
  const pv = await cli(['audit', 'verify', '-', '--fleet', fleets.join(',')], {}, { stdin: async () => partial.stdout });
  assert.is(pv.code, 0, pv.stderr);
  assert.match(pv.stdout, /seq 10\.\..*partial export/);
});

t('--json output of every read command has exactly the documented field names', async () => {
  const keys = (o: object) => Object.keys(o).sort();
  const same = (actual: object, command: string, only?: string[]) => {
    const documented = documentedJsonFields(command).filter((f) => only === undefined || only.includes(f));
    assert.equal(keys(actual), [...documented].sort(), command);
  };
  const status = JSON.parse((await cli(['status', '--json'])).stdout) as StatusReport;
  assert.equal(keys(status), ['certs', 'counts', 'hosts', 'unhealthy']);
  same(status.hosts[0]!, 'status');
  same(JSON.parse((await cli(['hosts', '--json'])).stdout).hosts[0], 'hosts');
  const list = JSON.parse((await cli(['rollout', 'list', '--json'])).stdout).rollouts;
  same(list[0], 'rollout list');
  const id = list[0].id as string;
  same(JSON.parse((await cli(['rollout', 'show', id, '--json'])).stdout), 'rollout show');
  const trace = JSON.parse((await cli(['rollout', 'trace', id, '--json'])).stdout);
  assert.equal(keys(trace), ['events', 'rolloutId', 'state']);
  same(trace.events[0], 'rollout trace');
  same(JSON.parse((await cli(['quarantine', 'list', '--json'])).stdout).quarantines[0] ?? Object.fromEntries(documentedJsonFields('quarantine list').map((f) => [f, 0])), 'quarantine list');
  same(JSON.parse((await cli(['pause', 'stable', '--json'])).stdout), 'pause');
  same(JSON.parse((await cli(['resume', 'stable', '--json'])).stdout), 'resume');
});

t('whoami: the identity the CP sees, as text and --json, for an operator and a host certificate', async () => {
  const r = await cli(['whoami', '--json']);
  assert.is(r.code, 0, r.stderr);
  const w = JSON.parse(r.stdout) as WhoamiResponse;
  const alice = new X509Certificate(readFileSync(join(ops, 'alice.pem'), 'utf8'));
  assert.equal([w.name, w.role, w.serial, w.certState, w.issuer.commonName, w.revokedBefore], ['alice', 'operator', alice.serialNumber.toUpperCase(), 'valid', 'test fleet CA', null]);
  const text = await cli(['whoami']);
  assert.is(text.code, 0, text.stderr);
  assert.match(text.stdout, /^alice \(OU operator\), serial [0-9A-F]+\nvalid \S+ to \S+ \(valid\)\nissued by test fleet CA \(sha256 [0-9A-F:]+\)\n$/);
  const h = await cli(['whoami', '--json'], { NIXFLEET_CERT: join(ops, 'host-0001.pem'), NIXFLEET_KEY: join(ops, 'host-0001.key') });
  assert.is(h.code, 0, h.stderr);
  assert.equal([(JSON.parse(h.stdout) as WhoamiResponse).name, (JSON.parse(h.stdout) as WhoamiResponse).role], ['host-0001', 'host']);
});

t('a host certificate as the CLI identity is refused with a clear message (exit 1)', async () => {
  const r = await cli(['status'], { NIXFLEET_CERT: join(ops, 'host-0001.pem'), NIXFLEET_KEY: join(ops, 'host-0001.key') });
  assert.is(r.code, 1);
  assert.ok(isOneLine(r.stderr), r.stderr);
  assert.match(r.stderr, /CN=host-0001, OU=host is a host certificate; operator commands need an operator certificate/);
  const p = await cli(['pause', 'stable'], { NIXFLEET_CERT: join(ops, 'host-0001.pem'), NIXFLEET_KEY: join(ops, 'host-0001.key') });
  assert.is(p.code, 1);
  assert.is((await cp.store.getPause('stable')), null, 'nothing paused');
});

t('an unreachable CP: exit 3 and one line', async () => {
  const s = createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  const port = (s.address() as AddressInfo).port;
  await new Promise((r) => s.close(r));
  const r = await cli(['rollout', 'list'], { NIXFLEET_URL: `https://localhost:${port}` });
  assert.is(r.code, 3);
  assert.ok(isOneLine(r.stderr), r.stderr);
  assert.match(r.stderr, /cannot reach the control plane/);
});

t('mint-host-cert / mint-operator-cert: the CP accepts each for its own role only; pki init refuses to overwrite', async () => {
  const pki = join(env.dir, 'pki');
  mkdirSync(pki);
  writeFileSync(join(pki, 'ca.pem'), env.ca.certPem);
  writeFileSync(join(pki, 'ca.key'), env.ca.keyPem, { mode: 0o600 });
  const init = await cli(['pki', 'init', '--pki-dir', pki]);
  assert.is(init.code, 1);
  assert.match(init.stderr, /already exists/);
  assert.is(readFileSync(join(pki, 'ca.key'), 'utf8'), env.ca.keyPem);

  // Minted at the real time: the CP's TLS layer checks validity against the real clock.
  const real = { now: () => Date.now() };
  assert.is((await cli(['mint-operator-cert', 'bob', '--pki-dir', pki, '--out-dir', 'minted'], {}, real)).code, 0);
  assert.is((await cli(['mint-host-cert', 'host-0002', '--pki-dir', pki, '--out-dir', 'minted'], {}, real)).code, 0);
  const minted = (n: string) => ({ certPem: readFileSync(join(env.dir, 'minted', `${n}.pem`), 'utf8'), keyPem: readFileSync(join(env.dir, 'minted', `${n}.key`), 'utf8') });
  const asBob = { NIXFLEET_CERT: join(env.dir, 'minted', 'bob.pem'), NIXFLEET_KEY: join(env.dir, 'minted', 'bob.key') };
  const asHost = { NIXFLEET_CERT: join(env.dir, 'minted', 'host-0002.pem'), NIXFLEET_KEY: join(env.dir, 'minted', 'host-0002.key') };

  const hostsAsBob = await cli(['hosts', '--json'], asBob);
  assert.is(hostsAsBob.code, 0, hostsAsBob.stderr);
  assert.is(JSON.parse(hostsAsBob.stdout).hosts.length, 4);
  assert.is((await cli(['hosts'], asHost)).code, 1, 'a host certificate is no operator');

  const hostClient = new Client(cp.url, env.ca.certPem, minted('host-0002'));
  const opClient = new Client(cp.url, env.ca.certPem, minted('bob'));
  try {
    const body = { hostname: 'host-0002', currentClosure: agents['host-0002']!.current, bootId: 'boot-1', probes: [], failedUnits: [], lastOutcome: null };
    assert.is((await hostClient.call('POST', '/v1/agent/checkin', body)).status, 200, 'minted host cert checks in as itself');
    assert.is((await hostClient.call('POST', '/v1/agent/checkin', { ...body, hostname: 'host-0003' })).status, 403, '…and only as itself');
    assert.is((await opClient.call('POST', '/v1/agent/checkin', body)).status, 403, 'an operator cannot check in');
  } finally {
    await hostClient.close();
    await opClient.close();
  }
});

t.run();
