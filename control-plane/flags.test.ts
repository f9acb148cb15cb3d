/** control-plane/flags.ts: settings as flags over (or instead of) the config file (issue 18). */
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { resolveConfig } from './config.ts';
import { CP_FLAGS, cpFlagsHelp, mergeCpFlags } from './flags.ts';

const t = suite('control-plane flags');

const ALL = { 'tls-cert': 'cp.pem', 'tls-key': 'cp.key', 'client-ca': 'ca.pem', 'trust-file': 'trust.json', 'source-dir': 'releases', db: 'cp.sqlite' };

t('flags alone give a schema-valid configuration', () => {
  const m = mergeCpFlags(null, { ...ALL, 'listen-port': '0', 'listen-host': '0.0.0.0', 'log-level': 'debug' });
  assert.ok(m.ok);
  if (!m.ok) return;
  assert.equal(m.value, { tlsCertFile: 'cp.pem', tlsKeyFile: 'cp.key', clientCaFile: 'ca.pem', trustFile: 'trust.json', source: { type: 'dir', dir: 'releases' }, dbPath: 'cp.sqlite', listenPort: 0, listenHost: '0.0.0.0', logLevel: 'debug' });
  const r = resolveConfig(m.value);
  assert.ok(r.ok, r.ok ? '' : r.error.message);
});

t('without --config, every missing required setting is named by its flag', () => {
  const m = mergeCpFlags(null, { 'tls-cert': 'cp.pem' });
  assert.not.ok(m.ok);
  if (m.ok) return;
  assert.is(m.error.code, 'USAGE');
  for (const f of CP_FLAGS.filter((x) => x.required && x.flag !== 'tls-cert')) assert.ok(m.error.message.includes(`missing --${f.flag} ${f.arg}`), f.flag);
  assert.not.ok(m.error.message.includes('missing --tls-cert'));
});

t('flags override the file; with a file, what it lacks is left to resolveConfig (exit 1, every field)', () => {
  const m = mergeCpFlags({ tlsCertFile: 'file.pem', listenPort: 9000, pollIntervalSecs: 5 }, { 'tls-cert': 'flag.pem' });
  assert.ok(m.ok);
  if (!m.ok) return;
  assert.equal(m.value, { tlsCertFile: 'flag.pem', listenPort: 9000, pollIntervalSecs: 5 });
  const r = resolveConfig(m.value);
  assert.not.ok(r.ok);
  if (!r.ok) assert.match(r.error.message, /\$\.tlsKeyFile: is required/);
});

t('bad values are usage errors naming the flag', () => {
  for (const [flag, v, re] of [
    ['listen-port', '99999', /--listen-port must be a port number 0–65535, not "99999"/],
    ['listen-port', '-1', /--listen-port must be a port number/],
    ['listen-port', '80x', /--listen-port must be a port number/],
    ['log-level', 'loud', /--log-level must be one of debug, info, warn, error, not "loud"/],
    ['db', '', /--db needs a PATH/],
  ] as const) {
    const m = mergeCpFlags(null, { ...ALL, [flag]: v });
    assert.not.ok(m.ok, `${flag} ${v}`);
    if (!m.ok) assert.match(m.error.message, re);
  }
});

t('--help lists every flag with its argument', () => {
  const h = cpFlagsHelp();
  for (const f of CP_FLAGS) assert.match(h, `--${f.flag} ${f.arg}`);
});

t.run();
