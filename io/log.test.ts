/**
 * The logger factory (io/log.ts): JSON lines with level label, ISO time, program and a stable
 * event; levels filter; NIXFLEET_LOG_LEVEL overrides; secrets redacted; control characters in
 * outside text escaped; thrown errors reduced to their message (the stack only at debug).
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { captureLogger } from '../fixtures/logs.ts';
import { effectiveLevel, logBug } from './log.ts';
import { escapeControl, hasControl } from './text.ts';

test('one JSON object per line: level, time, program, event and the fields', () => {
  const c = captureLogger('nixfleet-agent', 'info', () => Date.UTC(2026, 11, 2, 1, 2, 3));
  c.log.info('agent.report', { event: 'confirmed', n: 2 });
  assert.is(c.lines.length, 1);
  assert.ok(c.lines[0]!.endsWith('\n') && !c.lines[0]!.slice(0, -1).includes('\n'));
  assert.equal(c.records()[0], { level: 'info', time: '2026-12-02T01:02:03.000Z', program: 'nixfleet-agent', event: 'agent.report', n: 2 } as unknown as Record<string, unknown>);
});

test('the level filters; NIXFLEET_LOG_LEVEL overrides the configured level', () => {
  const c = captureLogger('p', 'warn');
  c.log.debug('a');
  c.log.info('b');
  c.log.warn('c');
  c.log.error('d');
  assert.equal(c.records().map((r) => [r['level'], r['event']]), [['warn', 'c'], ['error', 'd']]);
  assert.is(effectiveLevel('info', { NIXFLEET_LOG_LEVEL: 'silent' }), 'silent');
  assert.is(effectiveLevel('info', { NIXFLEET_LOG_LEVEL: 'loud' }), 'info', 'an unknown value is ignored');
  assert.is(effectiveLevel('debug', {}), 'debug');
  const s = captureLogger('p', 'silent');
  s.log.error('x');
  assert.is(s.lines.length, 0);
});

test('secrets are redacted at any of the first three levels of nesting', () => {
  const c = captureLogger('p', 'info');
  c.log.info('x', { password: 'hunter2', store: { postgres: { password: 'pw', host: 'db' } }, token: 't' });
  const line = c.lines[0]!;
  assert.not.match(line, /hunter2|"pw"|"t"/);
  assert.match(line, /"host":"db"/);
  assert.match(line, /\[redacted\]/);
});

test('control characters from outside text are escaped, never written raw (ANSI escape injection)', () => {
  const c = captureLogger('p', 'info');
  const evil = 'boot\u001b[2J\u001b]0;owned\u0007\u009b31m\u202eid\nnext';
  c.log.warn('host.said', { bootId: evil });
  const line = c.lines[0]!;
  assert.not.ok(/[\u0000-\u0009\u000b-\u001f\u007f-\u009f\u202e]/.test(line), JSON.stringify(line));
  assert.is(line.split('\n').length, 2, 'one line (and its newline)');
  const back = c.records()[0]!['bootId'] as string;
  assert.is(back, 'boot\\x1b[2J\\x1b]0;owned\\x07\\x9b31m\\u{202e}id\\x0anext');
});

test('escapeControl leaves ordinary text (tabs, accents, CJK, emoji) alone and marks every control character', () => {
  for (const s of ['plain', 'tab\there', 'héllo wörld', '漢字', '✓ → …', '🙂']) {
    assert.is(escapeControl(s), s);
    assert.is(hasControl(s), false);
  }
  for (let cp = 0; cp < 0xa0; cp++) {
    if (cp === 9 || (cp >= 0x20 && cp < 0x7f)) continue;
    const ch = String.fromCodePoint(cp);
    assert.ok(hasControl(ch), `U+${cp.toString(16)}`);
    assert.is(escapeControl(ch), `\\x${cp.toString(16).padStart(2, '0')}`);
  }
});

test('logBug: the message at error, the stack only at debug', () => {
  const info = captureLogger('p', 'info');
  logBug(info.log, 'reconcile.failed', new TypeError('boom'), { trigger: 'timer' });
  assert.equal(info.records().map((r) => [r['level'], r['event'], r['error'], r['trigger']]), [['error', 'reconcile.failed', 'boom', 'timer']]);
  assert.not.match(info.lines.join(''), /at .*log\.test/);
  const debug = captureLogger('p', 'debug');
  logBug(debug.log, 'reconcile.failed', new TypeError('boom'));
  assert.match(String(debug.records()[1]!['stack']), /TypeError: boom/);
});

test.run();
