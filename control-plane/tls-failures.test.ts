/**
 * TLS handshake failures (tls-failures.ts): OpenSSL / errno codes map to a bounded set of
 * reasons; every failure is counted, at most one line per reason per interval is logged, with
 * the number not logged meanwhile.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { lineLogger } from '../fixtures/logs.ts';
import { TLS_FAILURE_REASONS, tlsFailureHandler, tlsFailureReason } from './tls-failures.ts';

test('reasons from the codes Node reports', () => {
  const cases: [string, string, string][] = [
    ['ERR_SSL_PEER_DID_NOT_RETURN_A_CERTIFICATE', 'peer did not return a certificate', 'no_certificate'],
    ['ERR_SSL_TLSV1_ALERT_UNKNOWN_CA', 'tlsv1 alert unknown ca', 'unknown_ca'],
    ['ERR_SSL_SSLV3_ALERT_CERTIFICATE_EXPIRED', 'sslv3 alert certificate expired', 'certificate_expired'],
    ['ERR_SSL_HTTP_REQUEST', 'http request', 'not_tls'],
    ['ERR_SSL_WRONG_VERSION_NUMBER', 'wrong version number', 'not_tls'],
    ['ERR_SSL_UNSUPPORTED_PROTOCOL', 'unsupported protocol', 'protocol_version'],
    ['ERR_SSL_NO_SHARED_CIPHER', 'no shared cipher', 'no_shared_cipher'],
    ['ECONNRESET', 'socket hang up', 'reset'],
    ['ERR_SOMETHING_NEW', 'who knows', 'other'],
  ];
  for (const [code, message, want] of cases) assert.is(tlsFailureReason({ code, message }), want, code);
  assert.ok(TLS_FAILURE_REASONS.every((r) => /^[a-z_]+$/.test(r)));
});

test('every failure is counted; one log line per reason per interval, with how many were suppressed', () => {
  let now = 0;
  const counted: string[] = [];
  const lines: string[] = [];
  const onError = tlsFailureHandler({ log: lineLogger((l) => void lines.push(l)), count: (r) => void counted.push(r), now: () => now, intervalMs: 10_000 });
  const noCert = Object.assign(new Error('peer did not return a certificate'), { code: 'ERR_SSL_PEER_DID_NOT_RETURN_A_CERTIFICATE' });
  for (let i = 0; i < 50; i++) onError(noCert, '192.0.2.1');
  onError(Object.assign(new Error('http request'), { code: 'ERR_SSL_HTTP_REQUEST' }), '192.0.2.2');
  assert.is(counted.length, 51);
  assert.is(lines.length, 2, lines.join('\n'));
  assert.match(lines[0]!, /^warn tls\.handshake-failed .*"reason":"no_certificate".*"suppressed":0/);
  now = 10_000;
  onError(noCert, '192.0.2.1');
  assert.is(lines.length, 3);
  assert.match(lines[2]!, /"suppressed":49/);
});

test.run();
