/**
 * `nixfleet-agent` as a process: --help, usage and configuration errors (exit 1, every bad field
 * listed), unreadable material and corrupt state (exit 2, one clear line, no stack trace).
 */
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { createFleetCa, mintHostCert } from '../pki/pki.ts';

const test = suite('nixfleet-agent CLI');
const dir = mkdtempSync(join(tmpdir(), 'nixfleet-agent-cli-'));
test.after(() => rmSync(dir, { recursive: true, force: true }));

const agent = (...args: string[]) => spawnSync(process.execPath, ['bin/nixfleet-agent.js', ...args], { encoding: 'utf8', timeout: 60_000 });

test('--help and usage errors', () => {
  const h = agent('--help');
  assert.is(h.status, 0);
  assert.match(h.stdout, /run\s+\[--config FILE\] \[flags\]/);
  assert.match(h.stdout, /--cp-url URL/);
  assert.is(agent().status, 0, 'no arguments prints the help');
  // Usage errors exit 2, as for every nixfleet binary but nixfleet-release (SPEC §3 fixes its codes).
  const u = agent('frobnicate');
  assert.is(u.status, 2);
  assert.match(u.stderr, /unknown command/);
  // Without --config the required settings are flags; each missing one is named (issue 18).
  const m = agent('run');
  assert.is(m.status, 2);
  for (const f of ['--cp-url URL', '--cert FILE', '--key FILE', '--ca FILE']) assert.ok(m.stderr.includes(`missing ${f}`), m.stderr);
  const b = agent('once', '--cp-url', 'http://cp:8443', '--cert', 'a.pem', '--key', 'a.key', '--ca', 'ca.pem', '--poll-interval-secs', 'often');
  assert.is(b.status, 2);
  assert.match(b.stderr, /--cp-url must be an https:\/\/ URL/);
  assert.match(b.stderr, /--poll-interval-secs must be a number of seconds/);
  assert.not.match(b.stderr, /missing --cp-url/, 'a flag given a bad value is not also missing');
  const v = agent('once', '--substituter');
  assert.is(v.status, 2);
  assert.match(v.stderr, /^nixfleet-agent: flag --substituter needs a value \(see: nixfleet-agent --help\)$/m);
  const x = agent('once', 'extra');
  assert.is(x.status, 2);
  assert.match(x.stderr, /unexpected argument "extra"/);
  const l = agent('run', '--config', '/x.json', '--log-level', 'loud');
  assert.is(l.status, 2);
  assert.match(l.stderr, /--log-level must be one of/);
});

test('an invalid configuration exits 1 and lists every bad field', () => {
  const f = join(dir, 'bad.json');
  writeFileSync(f, JSON.stringify({ cpUrl: 'ftp://x', pollIntervalSecs: 'often', tls: {} }));
  const r = agent('once', '--config', f);
  assert.is(r.status, 1);
  for (const p of ['$.cpUrl', '$.pollIntervalSecs', '$.tls.certFile']) assert.match(r.stderr, p);
  assert.not.match(r.stderr, /\n\s+at /, 'no stack trace');
  writeFileSync(f, '{nope');
  assert.is(agent('once', '--config', f).status, 1);
  assert.is(agent('once', '--config', join(dir, 'missing.json')).status, 2);
});

test('unreadable certificate or corrupt state: exit 2 with a clear line', async () => {
  const ca = await createFleetCa({ commonName: 'cli test' });
  const host = await mintHostCert(ca, 'web1');
  writeFileSync(join(dir, 'ca.pem'), ca.certPem);
  writeFileSync(join(dir, 'host.pem'), host.certPem);
  writeFileSync(join(dir, 'host.key'), host.keyPem);
  const base = { hostname: 'web1', cpUrl: 'https://127.0.0.1:1', hostKeyFile: null, stateDir: join(dir, 'state'), trustFile: join(dir, 'trust.json') };
  const f = join(dir, 'agent.json');
  writeFileSync(f, JSON.stringify({ ...base, tls: { certFile: join(dir, 'nope.pem'), keyFile: join(dir, 'host.key'), caFile: join(dir, 'ca.pem') } }));
  const r = agent('once', '--config', f);
  assert.is(r.status, 2);
  assert.match(r.stderr, /cannot read certificate/);
  writeFileSync(f, JSON.stringify({ ...base, tls: { certFile: join(dir, 'host.pem'), keyFile: join(dir, 'host.key'), caFile: join(dir, 'ca.pem') } }));
  mkdirSync(join(dir, 'state'), { recursive: true });
  writeFileSync(join(dir, 'state', 'pending.json'), '{"torn');
  const c = agent('once', '--config', f);
  assert.is(c.status, 2);
  assert.match(c.stderr, /pending\.json/);
  assert.not.match(c.stderr, /\n\s+at /, 'no stack trace');
});

test('logs are JSON lines with level, program and a stable event; metricsFile is written after the cycle', () => {
  const f = join(dir, 'agent.json');
  rmSync(join(dir, 'state'), { recursive: true, force: true });
  const metricsFile = join(dir, 'agent.prom');
  writeFileSync(
    f,
    JSON.stringify({
      hostname: 'web1',
      cpUrl: 'https://127.0.0.1:1',
      hostKeyFile: null,
      stateDir: join(dir, 'state'),
      trustFile: join(dir, 'trust.json'),
      tls: { certFile: join(dir, 'host.pem'), keyFile: join(dir, 'host.key'), caFile: join(dir, 'ca.pem') },
      metricsFile,
    }),
  );
  const r = agent('once', '--config', f, '--log-level', 'info');
  assert.is(r.status, 2, 'the check-in failed (nothing listens on port 1)');
  const lines = r.stderr.split('\n').filter((l) => l.trim() !== '');
  assert.ok(lines.length > 0);
  const records = lines.map((l) => JSON.parse(l) as Record<string, unknown>);
  const failed = records.find((x) => x['event'] === 'agent.checkin-failed');
  assert.ok(failed !== undefined, r.stderr);
  assert.equal([failed['level'], failed['program'], failed['code']], ['warn', 'nixfleet-agent', 'NETWORK']);
  assert.match(readFileSync(metricsFile, 'utf8'), /^nixfleet_agent_consecutive_failures\{host="web1"\} 1$/m);
});

test.run();
