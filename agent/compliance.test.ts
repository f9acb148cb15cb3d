/**
 * The agent's runtime compliance checks (agent/compliance.ts, issue 15), each kind interpreted
 * against a real temporary directory standing in for the host's root (hostCheckIo(root)) and, for
 * commands, real processes; `systemctl` is answered by a scripted exec.
 */
import { chmodSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { CATALOGUE, type RuntimeCheck } from '../protocol/compliance.ts';
import { collectEvidence, hostCheckIo, listeningOn, runCheck, type CheckIo } from './compliance.ts';

const s = suite('runtime checks');
let root = '';
s.before.each(() => {
  root = mkdtempSync(join(tmpdir(), 'nixfleet-compliance-'));
});
s.after.each(() => rmSync(root, { recursive: true, force: true }));

const put = (path: string, text: string, mode?: number) => {
  mkdirSync(dirname(join(root, path)), { recursive: true });
  writeFileSync(join(root, path), text);
  if (mode !== undefined) chmodSync(join(root, path), mode);
};
const check = (c: RuntimeCheck, io: CheckIo = hostCheckIo(root)) => runCheck(c, io);

const TCP = `  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 00000000:0016 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1 1 0000000000000000 100 0 0 10 0
   1: 0100007F:1F90 0100007F:D3A2 01 00000000:00000000 00:00000000 00000000     0        0 2 1 0000000000000000 20 4 30 10 -1
`;

s('file: a matching line passes with the line as evidence; none fails; a missing file fails', async () => {
  put('/etc/ssh/sshd_config', 'Port 22\nPermitRootLogin no\n');
  const ctl = CATALOGUE.find((c) => c.id === 'ssh-no-root-login')!.runtime!;
  assert.equal(await check(ctl), { result: 'pass', observed: 'PermitRootLogin no' });
  put('/etc/ssh/sshd_config', 'PermitRootLogin yes\n');
  assert.is((await check(ctl)).result, 'fail');
  rmSync(join(root, 'etc/ssh/sshd_config'));
  assert.equal(await check(ctl), { result: 'fail', observed: '/etc/ssh/sshd_config is missing' });
});

s('file: notMatches, exists: false, forbidden mode bits', async () => {
  put('/etc/nix/nix.conf', 'require-sigs = true\n');
  const sigs = CATALOGUE.find((c) => c.id === 'nix-signed-substituters')!.runtime!;
  assert.is((await check(sigs)).result, 'pass');
  put('/etc/nix/nix.conf', 'require-sigs = false\n');
  assert.equal(await check(sigs), { result: 'fail', observed: 'require-sigs = false' });
  assert.is((await check({ kind: 'file', path: '/etc/hosts.equiv', exists: false })).result, 'pass');
  put('/etc/hosts.equiv', '+');
  assert.is((await check({ kind: 'file', path: '/etc/hosts.equiv', exists: false })).result, 'fail');
  put('/etc/shadow', 'x', 0o640);
  assert.is((await check({ kind: 'file', path: '/etc/shadow', forbiddenMode: '007' })).result, 'pass');
  chmodSync(join(root, 'etc/shadow'), 0o644);
  assert.equal(await check({ kind: 'file', path: '/etc/shadow', forbiddenMode: '007' }), { result: 'fail', observed: '/etc/shadow has mode 0644' });
});

s('sysctl: allowed values pass, others and missing keys fail', async () => {
  put('/proc/sys/kernel/kptr_restrict', '2\n');
  assert.equal(await check({ kind: 'sysctl', key: 'kernel.kptr_restrict', allowed: ['1', '2'] }), { result: 'pass', observed: 'kernel.kptr_restrict = 2' });
  put('/proc/sys/kernel/kptr_restrict', '0\n');
  assert.is((await check({ kind: 'sysctl', key: 'kernel.kptr_restrict', allowed: ['1', '2'] })).result, 'fail');
  assert.is((await check({ kind: 'sysctl', key: 'kernel.nope', allowed: ['1'] })).result, 'fail');
});

s('listening: /proc/net/tcp LISTEN sockets by port', async () => {
  assert.ok(listeningOn(TCP, 22, 'tcp'));
  assert.not.ok(listeningOn(TCP, 8080, 'tcp'), 'an established connection is not a listener');
  put('/proc/net/tcp', TCP);
  assert.equal(await check({ kind: 'listening', protocol: 'tcp', port: 23, expect: 'closed' }), { result: 'pass', observed: 'tcp/23 closed' });
  assert.equal(await check({ kind: 'listening', protocol: 'tcp', port: 22, expect: 'closed' }), { result: 'fail', observed: 'tcp/22 open' });
  assert.is((await check({ kind: 'listening', protocol: 'udp', port: 53, expect: 'closed' })).result, 'error', 'no /proc/net/udp at all: cannot tell');
});

s('world-writable: found under the directory, symlinks not followed', async () => {
  put('/etc/a.conf', 'x', 0o644);
  put('/etc/sub/b.conf', 'x', 0o644);
  assert.is((await check({ kind: 'world-writable', under: '/etc' })).result, 'pass');
  chmodSync(join(root, 'etc/sub/b.conf'), 0o666);
  assert.equal(await check({ kind: 'world-writable', under: '/etc' }), { result: 'fail', observed: '1 world-writable: /etc/sub/b.conf' });
});

s('exec: exit code and stdout, run without a shell; a hang is an error at its timeout; a missing binary is an error', async () => {
  assert.equal(await check({ kind: 'exec', argv: ['sh', '-c', 'echo hardened; exit 0'], stdoutMatches: 'harden' }), { result: 'pass', observed: 'harden' });
  assert.equal(await check({ kind: 'exec', argv: ['sh', '-c', 'exit 3'] }), { result: 'fail', observed: 'exit 3 (want 0)' });
  assert.is((await check({ kind: 'exec', argv: ['sh', '-c', 'exit 3'], expectExit: 3 })).result, 'pass');
  assert.is((await check({ kind: 'exec', argv: ['echo', '$(id)'], stdoutMatches: '^\\$\\(id\\)$' })).result, 'pass', 'no shell expansion');
  const hang = await check({ kind: 'exec', argv: ['sleep', '30'], timeoutMs: 200 });
  assert.is(hang.result, 'error');
  assert.is((await check({ kind: 'exec', argv: ['/nonexistent/binary'] })).result, 'error');
});

s('systemd via systemctl is-active; a throwing io is an error outcome, never an exception', async () => {
  const io = (stdout: string): CheckIo => ({ ...hostCheckIo(root), exec: async () => ({ code: stdout === 'active\n' ? 0 : 3, stdout, error: null }) });
  const unit: RuntimeCheck = { kind: 'systemd', unit: 'auditd.service', activeState: 'active' };
  assert.equal(await check(unit, io('active\n')), { result: 'pass', observed: 'auditd.service is active' });
  assert.equal(await check(unit, io('inactive\n')), { result: 'fail', observed: 'auditd.service is inactive' });
  const broken: CheckIo = { ...hostCheckIo(root), exec: () => Promise.reject(new Error('boom')) };
  assert.equal(await check(unit, broken), { result: 'error', observed: 'boom' });
});

s('collectEvidence: one record per control with a runtime half, with the context', async () => {
  put('/etc/ssh/sshd_config', 'PermitRootLogin no\nPasswordAuthentication no\n');
  const controls = CATALOGUE.filter((c) => ['ssh-no-root-login', 'ssh-no-password-auth', 'sudo-requires-password'].includes(c.id));
  const recs = await collectEvidence(controls, hostCheckIo(root), { hostname: 'web1', closure: null, bootId: 'b', rolloutId: 'stable@x', nowIso: () => '2026-05-01T12:00:00Z' });
  assert.equal(
    recs.map((r) => [r.control, r.result, r.rolloutId]),
    [
      ['ssh-no-root-login', 'pass', 'stable@x'],
      ['ssh-no-password-auth', 'pass', 'stable@x'],
    ],
  );
});

s.run();
