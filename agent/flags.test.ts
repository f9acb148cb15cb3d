/** agent/flags.ts: settings as flags over (or instead of) the config file (issue 18). */
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { resolveConfig } from './config.ts';
import { AGENT_FLAGS, agentFlagsHelp, mergeAgentFlags } from './flags.ts';

const t = suite('agent flags');
const HOST = { hostname: 'machine', platform: 'nixos' as const };
const ALL = { 'cp-url': 'https://cp:8443', cert: '/pki/web1.pem', key: 'web1.key', ca: '/pki/ca.pem' };

t('flags alone give a schema-valid configuration; relative paths are resolved against the working directory', () => {
  const m = mergeAgentFlags(null, { ...ALL, substituter: ['file:///cache', 'https://c2'], 'host-key': 'none', 'state-dir': 'state', hostname: 'web1', 'poll-interval-secs': '5' }, '/work/here');
  assert.ok(m.ok);
  if (!m.ok) return;
  const r = resolveConfig(m.value, HOST);
  assert.ok(r.ok, r.ok ? '' : r.error.message);
  if (!r.ok) return;
  assert.equal(r.value.tls, { certFile: '/pki/web1.pem', keyFile: '/work/here/web1.key', caFile: '/pki/ca.pem' });
  assert.is(r.value.cpUrl, 'https://cp:8443');
  assert.equal(r.value.substituters, ['file:///cache', 'https://c2']);
  assert.is(r.value.hostKeyFile, null);
  assert.is(r.value.stateDir, '/work/here/state');
  assert.is(r.value.hostname, 'web1');
  assert.is(r.value.pollIntervalSecs, 5);
  assert.is(r.value.trustFile, '/etc/nixfleet/trust.json', 'defaults stay');
});

t('without --config, every missing required setting is named by its flag', () => {
  const m = mergeAgentFlags(null, { cert: '/a.pem' }, '/');
  assert.not.ok(m.ok);
  if (m.ok) return;
  assert.is(m.error.code, 'USAGE');
  for (const f of ['--cp-url URL', '--key FILE', '--ca FILE']) assert.ok(m.error.message.includes(`missing ${f}`), f);
  assert.not.ok(m.error.message.includes('missing --cert'));
});

t('flags override the file field by field (tls too); what the file lacks is left to resolveConfig', () => {
  const file = { cpUrl: 'https://old:1', tls: { certFile: '/f/cert.pem', keyFile: '/f/key.pem', caFile: '/f/ca.pem' }, stateDir: '/f/state' };
  const m = mergeAgentFlags(file, { 'cp-url': 'https://new:2', cert: '/flag/cert.pem' }, '/');
  assert.ok(m.ok);
  if (!m.ok) return;
  assert.equal(m.value, { cpUrl: 'https://new:2', tls: { certFile: '/flag/cert.pem', keyFile: '/f/key.pem', caFile: '/f/ca.pem' }, stateDir: '/f/state' });
  assert.equal(file.tls.certFile, '/f/cert.pem', 'the file object is not changed');
  const partial = mergeAgentFlags({ cpUrl: 'https://x' }, {}, '/');
  assert.ok(partial.ok, 'a file missing tls is for resolveConfig to report');
  if (partial.ok) assert.not.ok(resolveConfig(partial.value, HOST).ok);
});

t('bad values are usage errors naming the flag', () => {
  for (const [flag, v, re] of [
    ['cp-url', 'http://cp:8443', /--cp-url must be an https:\/\/ URL \(mutual TLS\), not "http:\/\/cp:8443"/],
    ['cp-url', 'cp:8443', /--cp-url must be an https:\/\/ URL/],
    ['poll-interval-secs', '0', /--poll-interval-secs must be a number of seconds from 1 to 86400/],
    ['poll-interval-secs', 'often', /--poll-interval-secs must be a number of seconds/],
    ['cert', '', /--cert needs a FILE/],
  ] as const) {
    const m = mergeAgentFlags(null, { ...ALL, [flag]: v }, '/');
    assert.not.ok(m.ok, `${flag} ${v}`);
    if (!m.ok) assert.match(m.error.message, re);
  }
  const s = mergeAgentFlags(null, { ...ALL, substituter: ['file:///c', ''] }, '/');
  assert.not.ok(s.ok);
});

t('--help lists every flag with its argument', () => {
  const h = agentFlagsHelp();
  for (const f of AGENT_FLAGS) assert.match(h, `--${f.flag} ${f.arg}`);
});

t.run();
