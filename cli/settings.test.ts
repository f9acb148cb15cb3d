import { mkdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { CONFIG_FLAG, CONNECTION_FLAGS } from './framework.ts';
import { defaultConfigPath, resolveFlags, settingEnvName, settingFlagName } from './settings.ts';
import { isOneLine, runCli, tempDir } from '../fixtures/cli-testing.ts';

const FLAGS = [...CONNECTION_FLAGS, CONFIG_FLAG];
const tmp = tempDir();
test.after(() => tmp.cleanup());

function home(name: string): string {
  const h = join(tmp.dir, name);
  mkdirSync(join(h, '.config', 'nixfleet'), { recursive: true });
  return h;
}

test('names: flags are kebab-case, env is NIXFLEET_ + SCREAMING_SNAKE', () => {
  assert.is(settingFlagName('timeoutSecs'), 'timeout-secs');
  assert.is(settingEnvName('timeoutSecs'), 'NIXFLEET_TIMEOUT_SECS');
  assert.is(settingEnvName('pkiDir'), 'NIXFLEET_PKI_DIR');
});

test('config path: XDG_CONFIG_HOME (absolute only), else HOME/.config', () => {
  assert.is(defaultConfigPath({ HOME: '/h', XDG_CONFIG_HOME: '/x' }), '/x/nixfleet/config.json');
  assert.is(defaultConfigPath({ HOME: '/h', XDG_CONFIG_HOME: 'relative' }), '/h/.config/nixfleet/config.json');
  assert.is(defaultConfigPath({ HOME: '/h' }), '/h/.config/nixfleet/config.json');
  assert.is(defaultConfigPath({}), null);
});

test('precedence: flag, then env, then config file, then default', () => {
  const h = home('prec');
  writeFileSync(
    join(h, '.config', 'nixfleet', 'config.json'),
    JSON.stringify({ url: 'https://file:1', cert: 'certs/op.pem', key: '/abs/op.key', ca: 'ca.pem', timeoutSecs: 7 }),
  );
  const env = { HOME: h, NIXFLEET_URL: 'https://env:2', NIXFLEET_KEY: 'rel/env.key' };
  const r = resolveFlags(FLAGS, { url: 'https://flag:3' }, { env, cwd: '/work' });
  assert.ok(r.ok);
  if (!r.ok) return;
  assert.is(r.value['url'], 'https://flag:3');
  assert.is(r.value['key'], '/work/rel/env.key', 'env path relative to cwd');
  assert.is(r.value['cert'], join(h, '.config', 'nixfleet', 'certs/op.pem'), 'file path relative to the file');
  assert.is(r.value['timeout-secs'], 7);

  const noFlag = resolveFlags(FLAGS, {}, { env, cwd: '/work' });
  assert.ok(noFlag.ok && noFlag.value['url'] === 'https://env:2');
  const noEnv = resolveFlags(FLAGS, {}, { env: { HOME: h }, cwd: '/work' });
  assert.ok(noEnv.ok && noEnv.value['url'] === 'https://file:1');
  const envTimeout = resolveFlags(FLAGS, {}, { env: { HOME: h, NIXFLEET_TIMEOUT_SECS: '3' }, cwd: '/' });
  assert.ok(envTimeout.ok && envTimeout.value['timeout-secs'] === 3);
});

test('XDG_CONFIG_HOME wins over HOME; --config and NIXFLEET_CONFIG name the file', () => {
  const h = home('xdg');
  const xdg = join(tmp.dir, 'xdg-config');
  mkdirSync(join(xdg, 'nixfleet'), { recursive: true });
  const full = { cert: '/c', key: '/k', ca: '/a' };
  writeFileSync(join(h, '.config', 'nixfleet', 'config.json'), JSON.stringify({ ...full, url: 'https://home' }));
  writeFileSync(join(xdg, 'nixfleet', 'config.json'), JSON.stringify({ ...full, url: 'https://xdg' }));
  const other = join(tmp.dir, 'other.json');
  writeFileSync(other, JSON.stringify({ ...full, url: 'https://other' }));
  const get = (raw: Record<string, string>, env: Record<string, string>) => {
    const r = resolveFlags(FLAGS, raw, { env, cwd: tmp.dir });
    return r.ok ? r.value['url'] : r.error.message;
  };
  assert.is(get({}, { HOME: h, XDG_CONFIG_HOME: xdg }), 'https://xdg');
  assert.is(get({}, { HOME: h }), 'https://home');
  assert.is(get({ config: 'other.json' }, { HOME: h, XDG_CONFIG_HOME: xdg }), 'https://other');
  assert.is(get({}, { HOME: h, NIXFLEET_CONFIG: other }), 'https://other');
});

test('missing connection setting: usage error naming flag, env and config key', () => {
  const r = resolveFlags(FLAGS, { url: 'https://x', cert: 'c', key: 'k' }, { env: { HOME: home('missing') }, cwd: '/' });
  assert.ok(!r.ok);
  if (r.ok) return;
  assert.is(r.error.code, 'USAGE');
  assert.match(r.error.message, /missing --ca \(or NIXFLEET_CA, or "ca" in the config file/);
});

test('bad config files are usage errors with the path', () => {
  const h = home('bad');
  const p = join(h, '.config', 'nixfleet', 'config.json');
  const cases: [string, RegExp][] = [
    ['{nope', /is not valid JSON/],
    ['[]', /: \$: must be an object/],
    ['{"uri": "x"}', /\$\.uri: unknown setting \(known: url, cert/],
    ['{"timeoutSecs": "10"}', /\$\.timeoutSecs: must be an integer/],
  ];
  for (const [text, re] of cases) {
    writeFileSync(p, text);
    const r = resolveFlags(FLAGS, {}, { env: { HOME: h }, cwd: '/' });
    assert.ok(!r.ok, text);
    if (r.ok) continue;
    assert.is(r.error.code, 'USAGE');
    assert.match(r.error.message, re);
    assert.ok(r.error.message.includes(p));
  }
  const explicitMissing = resolveFlags(FLAGS, { config: join(tmp.dir, 'nope.json') }, { env: {}, cwd: '/' });
  assert.ok(!explicitMissing.ok && /cannot read config file .*ENOENT/.test(explicitMissing.error.message));
  const envMissing = resolveFlags(FLAGS, { url: 'u', cert: 'c', key: 'k', ca: 'a' }, { env: { NIXFLEET_CONFIG: join(tmp.dir, 'nope.json') }, cwd: '/' });
  assert.ok(envMissing.ok && envMissing.value['timeout-secs'] === 10, 'NIXFLEET_CONFIG naming a missing file = no file');
});

test('config init writes absolute paths with mode 0600, refuses to overwrite, --force overwrites', async () => {
  const h = join(tmp.dir, 'init-home');
  const env = { HOME: h };
  const argv = ['config', 'init', '--url', 'https://cp:8443', '--cert', 'op.pem', '--key', 'op.key', '--ca', 'ca.pem', '--timeout-secs', '5'];
  const r = await runCli(argv, { env, cwd: '/srv' });
  assert.is(r.code, 0, r.stderr);
  const path = join(h, '.config', 'nixfleet', 'config.json');
  assert.is(r.stdout, `wrote ${path}\n`);
  assert.equal(JSON.parse(readFileSync(path, 'utf8')), { url: 'https://cp:8443', cert: '/srv/op.pem', key: '/srv/op.key', ca: '/srv/ca.pem', timeoutSecs: 5 });
  assert.is(statSync(path).mode & 0o777, 0o600);

  const again = await runCli(argv, { env, cwd: '/srv' });
  assert.is(again.code, 1);
  assert.match(again.stderr, /already exists \(use --force to overwrite\)/);
  assert.ok(isOneLine(again.stderr));

  const forced = await runCli(['config', 'init', '--url', 'https://new', '--force'], { env, cwd: '/srv' });
  assert.is(forced.code, 0);
  assert.equal(JSON.parse(readFileSync(path, 'utf8')), { url: 'https://new' });

  const written = resolveFlags(FLAGS, { cert: 'x', key: 'y', ca: 'z' }, { env, cwd: '/' });
  assert.ok(written.ok && written.value['url'] === 'https://new', 'other commands read what config init wrote');

  const empty = await runCli(['config', 'init'], { env, cwd: '/srv' });
  assert.is(empty.code, 2);
});

test.run();
