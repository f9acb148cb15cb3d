/**
 * The CLI's HTTP/mTLS client and online commands against a small stand-in HTTPS server with real
 * mutual TLS (certificates from pki/pki.ts). It pins the mapping of answers to exit codes and
 * lines, the --follow loop and audit paging. The real control plane is exercised in
 * cli/real-cp.test.ts.
 */
import { createServer } from 'node:https';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { existsSync, writeFileSync, readFileSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import type { TLSSocket } from 'node:tls';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import type { AuditEntry, HostView, RolloutDetail, TraceEvent } from '../protocol/api.ts';
import { GENESIS_HASH, auditEntryHash } from '../protocol/audit-chain.ts';
import { createFleetCa, mintHostCert, mintOperatorCert, mintServerCert } from '../pki/pki.ts';
import { isOneLine, runCli, tempDir } from '../fixtures/cli-testing.ts';

const tmp = tempDir();
const ca = await createFleetCa({ commonName: 'test CA' });
const otherCa = await createFleetCa({ commonName: 'other CA' });
const server = await mintServerCert(ca);
const op = await mintOperatorCert(ca, 'alice');
const hostCert = await mintHostCert(ca, 'web1');
const w = (name: string, text: string) => {
  writeFileSync(join(tmp.dir, name), text);
  return join(tmp.dir, name);
};
w('ca.pem', ca.certPem);
w('other-ca.pem', otherCa.certPem);
w('op.pem', op.certPem);
w('op.key', op.keyPem);
w('host.pem', hostCert.certPem);
w('host.key', hostCert.keyPem);
w('srv.pem', server.certPem);
w('srv.key', server.keyPem);
const opOther = await mintOperatorCert(otherCa, 'bob');
w('op-other.pem', opOther.certPem);
w('op-other.key', opOther.keyPem);
const opOld = await mintOperatorCert(ca, 'carol', { notBefore: new Date(Date.now() - 10 * 86_400_000), validityDays: 2 });
w('op-old.pem', opOld.certPem);
w('op-old.key', opOld.keyPem);

/** `null`: drop the connection without an answer (a CP restarting under a --follow). */
type Handler = (req: IncomingMessage, body: string, ou: string | undefined) => { status: number; body: unknown } | null;
let handler: Handler = () => ({ status: 404, body: { error: { code: 'NOT_FOUND', message: 'no route' } } });
const requests: string[] = [];

const srv = createServer({ cert: server.certPem, key: server.keyPem, ca: ca.certPem, requestCert: true, rejectUnauthorized: true }, (req: IncomingMessage, res: ServerResponse) => {
  let body = '';
  req.on('data', (d) => (body += d));
  req.on('end', () => {
    requests.push(`${req.method} ${req.url} ${req.headers['x-nixfleet-protocol'] ?? ''}`);
    const ou = (req.socket as TLSSocket).getPeerCertificate().subject?.OU as string | undefined;
    const r = ou !== 'operator' ? { status: 403, body: { error: { code: 'FORBIDDEN_ROLE', message: `this route needs a certificate with OU operator; yours has OU ${ou}` } } } : handler(req, body, ou);
    if (r === null) {
      req.socket.destroy();
      return;
    }
    res.writeHead(r.status, { 'content-type': 'application/json' });
    res.end(JSON.stringify(r.body));
  });
});
await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
const url = `https://127.0.0.1:${(srv.address() as AddressInfo).port}`;
test.after(async () => {
  await new Promise((r) => srv.close(r));
  tmp.cleanup();
});

const conn = ['--url', url, '--cert', 'op.pem', '--key', 'op.key', '--ca', 'ca.pem'];
const NOW = Date.parse('2026-03-01T12:00:00Z');
const io = { cwd: tmp.dir, env: { HOME: tmp.dir }, now: () => NOW };

const hostView = (hostname: string, over: Partial<HostView> = {}): HostView => ({
  hostname,
  channel: 'stable',
  declaredClosure: 'x-new',
  currentClosure: 'x-new',
  lastCheckinAt: '2026-03-01T11:59:00Z',
  bootId: 'b',
  online: true,
  pendingReboot: false,
  failedUnits: [],
  probes: [],
  lastOutcome: null,
  rollout: null,
  dispatch: null,
  ...over,
});

test('an unreachable CP: exit 3, one line, no stack trace', async () => {
  const closed = createServer();
  await new Promise<void>((r) => closed.listen(0, '127.0.0.1', r));
  const port = (closed.address() as AddressInfo).port;
  await new Promise((r) => closed.close(r));
  const r = await runCli(['status', '--url', `https://127.0.0.1:${port}`, '--cert', 'op.pem', '--key', 'op.key', '--ca', 'ca.pem'], io);
  assert.is(r.code, 3);
  assert.match(r.stderr, /^nixfleet status: cannot reach the control plane at https:\/\/127\.0\.0\.1:\d+: connection refused/);
  assert.ok(isOneLine(r.stderr), r.stderr);
  assert.is(r.stdout, '');
});

test('a CP whose certificate is not from --ca: exit 3 naming TLS', async () => {
  // Our own certificate comes from that other CA, so the local check passes and the handshake fails.
  const r = await runCli(['hosts', '--url', url, '--cert', 'op-other.pem', '--key', 'op-other.key', '--ca', 'other-ca.pem'], io);
  assert.is(r.code, 3, r.stderr);
  assert.match(r.stderr, /TLS handshake failed/);
  assert.ok(isOneLine(r.stderr));
});

test('local identity mistakes are exit 2 with the reason, before any connection (not "cannot reach")', async () => {
  const before = requests.length;
  const expired = await runCli(['status', '--url', url, '--cert', 'op-old.pem', '--key', 'op-old.key', '--ca', 'ca.pem'], io);
  assert.is(expired.code, 2);
  assert.match(expired.stderr, /EXPIRED: --cert \S*op-old\.pem \(CN=carol, OU=operator[^)]*\) expired on 20/);
  const wrongKey = await runCli(['status', '--url', url, '--cert', 'op.pem', '--key', 'host.key', '--ca', 'ca.pem'], io);
  assert.is(wrongKey.code, 2);
  assert.match(wrongKey.stderr, /KEY_MISMATCH: --key \S*host\.key does not belong to --cert \S*op\.pem \(CN=alice/);
  const foreign = await runCli(['status', '--url', url, '--cert', 'op.pem', '--key', 'op.key', '--ca', 'other-ca.pem'], io);
  assert.is(foreign.code, 2);
  assert.match(foreign.stderr, /NOT_ISSUED_BY_CA: --cert \S*op\.pem .* was not issued by the fleet CA \(CN=other CA/);
  const server = await runCli(['status', '--url', url, '--cert', 'srv.pem', '--key', 'srv.key', '--ca', 'ca.pem'], io);
  assert.is(server.code, 2);
  assert.match(server.stderr, /WRONG_PURPOSE: --cert \S*srv\.pem .* is not valid for clientAuth: its extended key usage is serverAuth/);
  for (const r of [expired, wrongKey, foreign, server]) {
    assert.ok(isOneLine(r.stderr), r.stderr);
    assert.not.match(r.stderr, /cannot reach/);
  }
  assert.is(requests.length, before);
});

test('check-config: the identity summary without connecting; a problem is exit 2', async () => {
  const before = requests.length;
  const ok = await runCli(['check-config', '--url', url, '--cert', 'op.pem', '--key', 'op.key', '--ca', 'ca.pem'], io);
  assert.is(ok.code, 0, ok.stderr);
  assert.match(ok.stdout, /--cert \S*op\.pem \(CN=alice, OU=operator[^)]*\): clientAuth, --key matches, issued by --ca \S*ca\.pem, valid until 20/);
  assert.match(ok.stdout, /configuration ok \(not connected/);
  const bad = await runCli(['check-config', '--url', url, '--cert', 'op-old.pem', '--key', 'op-old.key', '--ca', 'ca.pem'], io);
  assert.is(bad.code, 2);
  assert.match(bad.stderr, /EXPIRED/);
  assert.is(requests.length, before);
});

test('a host certificate as the CLI identity: exit 1 and a clear message', async () => {
  const r = await runCli(['status', '--url', url, '--cert', 'host.pem', '--key', 'host.key', '--ca', 'ca.pem'], io);
  assert.is(r.code, 1);
  assert.match(r.stderr, /refused this identity: CN=web1, OU=host is a host certificate; operator commands need an operator certificate \(OU=operator\): nixfleet mint-operator-cert NAME/);
  assert.ok(isOneLine(r.stderr));
});

test('settings errors are usage errors (exit 2): http URL, unreadable cert, missing ca', async () => {
  const http = await runCli(['hosts', '--url', 'http://127.0.0.1:1', '--cert', 'op.pem', '--key', 'op.key', '--ca', 'ca.pem'], io);
  assert.is(http.code, 2);
  assert.match(http.stderr, /must be https:\/\//);
  const noCert = await runCli(['hosts', '--url', url, '--cert', 'nope.pem', '--key', 'op.key', '--ca', 'ca.pem'], io);
  assert.is(noCert.code, 2);
  assert.match(noCert.stderr, /cannot read --cert .*nope\.pem: ENOENT/);
  const zero = await runCli(['hosts', ...conn, '--timeout-secs', '0'], io);
  assert.is(zero.code, 2);
  assert.match(zero.stderr, /--timeout-secs must be at least 1/);
  const noCa = await runCli(['hosts', '--url', url, '--cert', 'op.pem', '--key', 'op.key'], io);
  assert.is(noCa.code, 2);
  assert.match(noCa.stderr, /missing --ca/);
});

test('settings from the environment reach the client; protocol header sent', async () => {
  handler = () => ({ status: 200, body: { hosts: [hostView('web1')] } });
  requests.length = 0;
  const r = await runCli(['hosts', '--json'], { ...io, env: { HOME: tmp.dir, NIXFLEET_URL: url, NIXFLEET_CERT: 'op.pem', NIXFLEET_KEY: 'op.key', NIXFLEET_CA: 'ca.pem' } });
  assert.is(r.code, 0, r.stderr);
  assert.is(JSON.parse(r.stdout).hosts[0].hostname, 'web1');
  assert.equal(requests, ['GET /v1/hosts 1']);
});

test('CP errors: 404 → exit 1 with its message, 503 → not ready', async () => {
  handler = () => ({ status: 404, body: { error: { code: 'UNKNOWN_ROLLOUT', message: 'no rollout "x@y"' } } });
  const r = await runCli(['rollout', 'show', 'x@y', ...conn], io);
  assert.is(r.code, 1);
  assert.is(r.stderr, 'nixfleet rollout show: no rollout "x@y"\n');
  handler = () => ({ status: 503, body: { error: { code: 'NOT_READY', message: 'no verified fleet artefact yet' } } });
  const n = await runCli(['status', ...conn], io);
  assert.is(n.code, 1);
  assert.match(n.stderr, /not ready yet \(NOT_READY: no verified fleet artefact yet\)/);
});

test('status: exit 0 when healthy, 1 when a host failed or is quarantined; --json rows', async () => {
  let hosts = [hostView('web1'), hostView('web2', { online: false })];
  let quarantines: unknown[] = [];
  handler = (req) => ({ status: 200, body: req.url === '/v1/hosts' ? { hosts } : req.url === '/v1/rollouts' ? { rollouts: [] } : { quarantines } });
  const ok = await runCli(['status', ...conn], io);
  assert.is(ok.code, 0, ok.stderr);
  assert.match(ok.stdout, /web2 +stable .*⚠ stale/);
  hosts = [hostView('web1'), hostView('web2', { currentClosure: 'x-old', declaredClosure: 'x-bad' })];
  quarantines = [{ channel: 'stable', closureHash: 'x-bad', rolloutId: null, reason: 'r', since: '2026-03-01T11:00:00Z' }];
  const onlyOther = await runCli(['status', '--json', '--channel', 'other', ...conn], io);
  assert.is(onlyOther.code, 0, '--channel filters before judging health');
  assert.equal(JSON.parse(onlyOther.stdout).hosts, []);
  const bad = await runCli(['status', '--json', ...conn], io);
  assert.is(bad.code, 1);
  const j = JSON.parse(bad.stdout);
  assert.is(j.unhealthy, true);
  assert.equal(j.hosts.map((h: { status: string }) => h.status), ['converged', 'quarantined']);
});

test('rollout trace --follow redraws until converged (exit 0) and stops on halted (exit 1)', async () => {
  const detail = (state: RolloutDetail['state'], states: RolloutDetail['hosts'][number]['state'][]): RolloutDetail => ({
    id: 'stable@abc',
    channel: 'stable',
    state,
    currentWave: states.findIndex((s) => s !== 'Converged') === -1 ? states.length - 1 : states.findIndex((s) => s !== 'Converged'),
    signedAt: '2026-03-01T11:00:00Z',
    artifactSha256: 'f'.repeat(64),
    openedAt: '2026-03-01T11:00:00Z',
    updatedAt: '2026-03-01T11:00:00Z',
    reason: state === 'Halted' ? 'web2 failed' : null,
    hostCounts: {},
    hosts: states.map((s, i) => ({ hostname: `web${i + 1}`, wave: i, state: s, since: '2026-03-01T11:00:00Z', closureHash: 'x', reason: null })),
  });
  const steps: [RolloutDetail, TraceEvent[]][] = [
    [detail('Executing', ['Dispatched', 'Queued']), [{ at: '2026-03-01T11:00:00Z', subject: 'host', hostname: 'web1', from: 'Queued', to: 'Dispatched', reason: 'wave 0' }]],
    [detail('Executing', ['Converged', 'Healthy']), [{ at: '2026-03-01T11:05:00Z', subject: 'host', hostname: 'web2', from: 'ConfirmWindow', to: 'Healthy', reason: 'confirmed' }]],
    [detail('Converged', ['Converged', 'Converged']), [{ at: '2026-03-01T11:10:00Z', subject: 'rollout', hostname: null, from: 'Executing', to: 'Converged', reason: 'all waves soaked' }]],
  ];
  let step = 0;
  let events: TraceEvent[] = [];
  handler = (req) => {
    const [d, ev] = steps[Math.min(step, steps.length - 1)]!;
    if (req.url!.endsWith('/trace')) {
      events = [...events, ...ev.filter((e) => !events.includes(e))];
      return { status: 200, body: { rolloutId: d.id, events } };
    }
    return { status: 200, body: d };
  };
  let sleeps = 0;
  const r = await runCli(['rollout', 'trace', 'stable@abc', '--follow', ...conn], { ...io, sleep: async () => void (sleeps++, step++) });
  assert.is(r.code, 0, r.stderr);
  assert.is(sleeps, 2);
  assert.match(r.stdout, /wave 0  web1  Queued → Dispatched  wave 0\n/);
  assert.match(r.stdout, /wave -  \(rollout\)  Executing → Converged  all waves soaked\n/);
  assert.match(r.stdout, /stable@abc: ✓ converged\n  wave 0  \[#{20}\] 1\/1  1 converged\n  wave 1  \[#{20}\] 1\/1  1 converged\n$/);
  assert.ok(!r.stdout.includes('\x1b['), 'no escapes when not a TTY');

  step = 0;
  events = [];
  const tty = await runCli(['rollout', 'trace', 'stable@abc', '--follow', ...conn], { ...io, isTTY: true, columns: 30, env: { HOME: tmp.dir, NO_COLOR: '1' }, sleep: async () => void step++ });
  assert.is(tty.code, 0);
  assert.ok(!/\x1b\[[0-9;]*m/.test(tty.stdout), 'NO_COLOR: no colour');
  // On a terminal the progress block is redrawn in place: cursor up over it, erase, redraw.
  assert.is(tty.stdout.split('\x1b[3A\x1b[J').length, 3, JSON.stringify(tty.stdout));
  const lastBlock = tty.stdout.split('\x1b[3A\x1b[J').pop()!.split('\n').filter((l) => l.startsWith('stable@') || l.includes('wave '));
  const progress = lastBlock.slice(-3);
  assert.is(progress.length, 3);
  for (const l of progress) assert.ok([...l].length <= 30, `progress line fits 30 columns: ${JSON.stringify(l)}`);

  steps.push([detail('Halted', ['Converged', 'Failed']), [{ at: '2026-03-01T11:06:00Z', subject: 'host', hostname: 'web2', from: 'Healthy', to: 'Failed', reason: 'probe failed' }]]);
  step = 3;
  events = [];
  const halted = await runCli(['rollout', 'trace', 'stable@abc', '--follow', '--json', ...conn], io);
  assert.is(halted.code, 1);
  assert.match(halted.stderr, /rollout stable@abc halted: web2 failed/);
  const lines = halted.stdout.trim().split('\n').map((l) => JSON.parse(l));
  assert.is(lines.length, 1);
  assert.equal(lines[0], { at: '2026-03-01T11:06:00Z', subject: 'host', hostname: 'web2', from: 'Healthy', to: 'Failed', reason: 'probe failed', wave: 1 });
});

test('--follow rides out a few dropped connections (exit 3 after five in a row); superseded ends it with exit 1', async () => {
  const converged = {
    id: 'stable@abc', channel: 'stable', state: 'Converged', currentWave: 0, signedAt: '2026-03-01T11:00:00Z', artifactSha256: 'f'.repeat(64),
    openedAt: '2026-03-01T11:00:00Z', updatedAt: '2026-03-01T11:00:00Z', reason: null, hostCounts: {}, hosts: [],
  };
  let drops = 2;
  handler = (req) => (drops > 0 ? null : { status: 200, body: req.url!.endsWith('/trace') ? { rolloutId: 'stable@abc', events: [] } : converged });
  let sleeps = 0;
  const r = await runCli(['rollout', 'trace', 'stable@abc', '--follow', ...conn], { ...io, sleep: async () => void (sleeps++, drops--) });
  assert.is(r.code, 0, r.stderr);
  assert.is(sleeps, 2);
  handler = (req) => ({ status: 200, body: req.url!.endsWith('/trace') ? { rolloutId: 'stable@abc', events: [] } : { ...converged, state: 'Superseded' } });
  const superseded = await runCli(['rollout', 'trace', 'stable@abc', '--follow', ...conn], io);
  assert.is(superseded.code, 1);
  assert.match(superseded.stderr, /stable@abc was superseded by a newer signed release/);
  handler = () => null;
  drops = 100;
  const gone = await runCli(['rollout', 'trace', 'stable@abc', '--follow', ...conn], { ...io, sleep: async () => {} });
  assert.is(gone.code, 3);
  assert.ok(isOneLine(gone.stderr), gone.stderr);
});

test('audit export pages through the log and writes what audit verify accepts', async () => {
  const entries: AuditEntry[] = [];
  let prev = GENESIS_HASH;
  for (let seq = 1; seq <= 2500; seq++) {
    const base = { seq, at: new Date(NOW - (2500 - seq) * 1000).toISOString(), kind: 'host.state', actor: 'cp', subject: `h${seq % 7}`, data: { n: seq }, prevHash: prev };
    const e = { ...base, hash: auditEntryHash(base) };
    entries.push(e);
    prev = e.hash;
  }
  requests.length = 0;
  handler = (req) => {
    const q = new URL(req.url!, 'https://x').searchParams;
    const after = Number(q.get('after'));
    const limit = Number(q.get('limit'));
    const page = entries.filter((e) => e.seq > after).slice(0, limit);
    const last = page[page.length - 1];
    return { status: 200, body: { entries: page, nextAfter: last && last.seq < entries.length ? last.seq : null } };
  };
  const r = await runCli(['audit', 'export', '--out', 'audit.jsonl', ...conn], io);
  assert.is(r.code, 0, r.stderr);
  assert.match(r.stdout, /^wrote 2500 entries \(seq 1\.\.2500, head [0-9a-f]{64}\) to /);
  assert.equal(requests, ['GET /v1/audit?after=0&limit=1000 1', 'GET /v1/audit?after=1000&limit=1000 1', 'GET /v1/audit?after=2000&limit=1000 1']);
  const v = await runCli(['audit', 'verify', 'audit.jsonl'], io);
  assert.is(v.code, 0, v.stderr);
  assert.match(v.stdout, /2500 entries, seq 1\.\.2500 \(from genesis\)/);

  const dash = await runCli(['audit', 'export', '--out', '-', ...conn], io);
  assert.is(dash.code, 0, dash.stderr);
  assert.is(dash.stdout, readFileSync(join(tmp.dir, 'audit.jsonl'), 'utf8'), '--out - is stdout, the same lines');
  assert.not.ok(existsSync(join(tmp.dir, '-')), 'no file named "-"');
  const since = await runCli(['audit', 'export', '--since', '2400', ...conn], io);
  assert.is(since.stdout.trim().split('\n').length, 101);
  const sinceTime = await runCli(['audit', 'export', '--since', new Date(NOW - 9_000).toISOString(), ...conn], io);
  assert.is(sinceTime.stdout.trim().split('\n').length, 10);
  const partial = await runCli(['audit', 'verify', '-'], { ...io, stdin: async () => sinceTime.stdout });
  assert.is(partial.code, 0);
  assert.match(partial.stdout, /partial export/);
  assert.ok(readFileSync(join(tmp.dir, 'audit.jsonl'), 'utf8').endsWith('\n'));
});

test.run();
