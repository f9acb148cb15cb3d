/**
 * Self-tests of the e2e harness pieces that do not need the other components: the forge's raw
 * endpoint (committed bytes, ETag / 304), process-group teardown (grandchildren die too), bounded
 * waits (readable timeout), and network namespaces (a cut-off host cannot reach the servers).
 */
import { execFileSync, spawn } from 'node:child_process';
import { existsSync, mkdtempSync } from 'node:fs';
import { createServer } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { Forge } from './forge.ts';
import { Network, netnsAvailable } from './netns.ts';
import { registerTempRoot, removeTempRoot, REPO, run, spawnProc, stopProc } from './proc.ts';
import { waitFor, WaitTimeout } from './wait.ts';

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

test('forge: raw endpoint serves the committed bytes of main with a strong ETag and 304', async () => {
  const root = mkdtempSync(join(tmpdir(), 'nixfleet-e2e-forge-'));
  registerTempRoot(root);
  const forge = await Forge.create(root, '127.0.0.1');
  try {
    forge.write('releases/fleet.resolved.json', '{"a":1}');
    forge.write('releases/uncommitted.json', 'x');
    const sha = await forge.commit('release');
    assert.is(await forge.head(), sha);
    const url = forge.rawUrl('releases/fleet.resolved.json');
    const r1 = await fetch(url);
    assert.is(r1.status, 200);
    assert.is(await r1.text(), '{"a":1}');
    const etag = r1.headers.get('etag');
    assert.ok(etag !== null && /^"[0-9a-f]{64}"$/.test(etag));
    const r2 = await fetch(url, { headers: { 'if-none-match': etag! } });
    assert.is(r2.status, 304);
    // A later commit changes the bytes and the ETag.
    forge.write('releases/fleet.resolved.json', '{"a":2}');
    await forge.commit('release 2');
    const r3 = await fetch(url, { headers: { 'if-none-match': etag! } });
    assert.is(r3.status, 200);
    assert.is(await r3.text(), '{"a":2}');
    assert.is((await fetch(forge.rawUrl('releases/missing.json'))).status, 404);
    assert.is((await fetch(forge.rawUrl('README.md').replace('releases/', ''))).status, 404, 'only releases/ is served');
  } finally {
    await forge.close();
    removeTempRoot(root);
  }
});

test('proc: stopping a process kills its whole group (grandchildren included) and logs go to the file', async () => {
  const root = mkdtempSync(join(tmpdir(), 'nixfleet-e2e-proc-'));
  registerTempRoot(root);
  const pidFile = join(root, 'grandchild.pid');
  const p = spawnProc({
    name: 'sh',
    cmd: '/bin/sh',
    args: ['-c', `sleep 300 & echo $! > ${pidFile}; trap '' TERM; echo started; wait`],
    logFile: join(root, 'sh.log'),
  });
  // "started" is logged once the pid file is written and TERM is ignored (the SIGKILL path below).
  const log = join(root, 'sh.log');
  const grandchild = await waitFor('the shell to start its grandchild and ignore TERM', (observe) => {
    const text = existsSync(log) ? execFileSync('cat', [log], { encoding: 'utf8' }) : '';
    observe(text);
    return text.includes('started') ? Number(execFileSync('cat', [pidFile], { encoding: 'utf8' }).trim()) : undefined;
  }, { timeoutMs: 10_000 });
  assert.ok(alive(grandchild));
  await stopProc(p, 500); // the shell ignores TERM: SIGKILL after the grace
  await waitFor('grandchild to die with its group', () => !alive(grandchild), { timeoutMs: 10_000 });
  assert.ok(p.hasExited());
  assert.match(execFileSync('cat', [join(root, 'sh.log')], { encoding: 'utf8' }), 'started');
  removeTempRoot(root);
  assert.not.ok(existsSync(root));
});

test('wait: a condition that never holds fails with what was awaited and the last observation', async () => {
  let n = 0;
  try {
    await waitFor('the impossible', (observe) => {
      observe({ tries: ++n });
      return false;
    }, { timeoutMs: 300, intervalMs: 50 });
    assert.unreachable('should time out');
  } catch (e) {
    assert.instance(e, WaitTimeout);
    assert.match((e as Error).message, 'waiting for: the impossible');
    assert.match((e as Error).message, '"tries":');
  }
});

test('proc: SIGINT to the harness kills every registered process group and removes its temp roots', async () => {
  const child = spawn(process.execPath, ['--import', 'tsx', join(REPO, 'e2e', 'sigint-child.ts')], { cwd: REPO, stdio: ['ignore', 'pipe', 'inherit'] });
  let out = '';
  child.stdout.on('data', (d: Buffer) => (out += d.toString()));
  const exited = new Promise<number | null>((r) => child.on('exit', (code) => r(code)));
  const [pidText, root] = await waitFor('the helper to start its child', () => (out.includes('\n') ? out.trim().split(' ') : undefined), { timeoutMs: 30_000 });
  const pid = Number(pidText);
  assert.ok(alive(pid) && existsSync(root!));
  child.kill('SIGINT');
  assert.is(await exited, 130, 'exits 130 after cleaning up');
  await waitFor('the child group to be gone', () => !alive(pid), { timeoutMs: 10_000 });
  assert.not.ok(existsSync(root!), 'temp root removed');
});

const ns = netnsAvailable();
test(`netns: a cut-off host cannot reach the server address; reconnect restores it${ns.ok ? '' : ` (SKIPPED: ${ns.reason})`}`, async () => {
  if (!ns.ok) {
    console.log(`skip: network namespaces unavailable: ${ns.reason}`);
    return;
  }
  const net = Network.create();
  const server = createServer((_q, r) => r.end('pong'));
  try {
    await new Promise<void>((r) => server.listen(0, net.serverIp, () => r()));
    const port = (server.address() as { port: number }).port;
    const nsName = net.addHost(0);
    const curl = ['netns', 'exec', nsName, process.execPath, '-e', `fetch('http://${net.serverIp}:${port}/',{signal:AbortSignal.timeout(1500)}).then(r=>r.text()).then(t=>{console.log(t)},()=>{console.log('unreachable');})`];
    assert.is((await run('ip', curl)).stdout.trim(), 'pong');
    net.cutOff(0);
    assert.is((await run('ip', curl)).stdout.trim(), 'unreachable');
    net.reconnect(0);
    await waitFor('host 0 reachable again', async () => (await run('ip', curl)).stdout.trim() === 'pong', { timeoutMs: 10_000 });
    assert.ok(net.hostLinkUp(0));
  } finally {
    server.closeAllConnections();
    server.close();
    net.destroy();
  }
  const links = execFileSync('ip', ['-o', 'link'], { encoding: 'utf8' });
  assert.not.match(links, net.bridge);
});

test.run();
