import { readFileSync } from 'node:fs';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { canonicalBytes, canonicalize, parseJsonStrict } from './jcs.ts';
import { pathToFileURL } from 'node:url';
import { interopDir, withInterop } from '../fixtures/interop.ts';

const INTEROP = (): URL => pathToFileURL(interopDir() + '/');
const enc = (s: string) => new TextEncoder().encode(s);
const code = (r: ReturnType<typeof parseJsonStrict>) => (r.ok ? 'OK' : r.error.code);
const canon = (text: string): string => {
  const p = parseJsonStrict(text);
  if (!p.ok) throw new Error(p.error.message);
  const c = canonicalize(p.value);
  if (!c.ok) throw new Error(c.error.message);
  return c.value;
};

const parse = suite('parseJsonStrict');

parse('accepts plain JSON like JSON.parse', () => {
  const text = '{"a":[1,-2,3.5e2,0,true,false,null,"x\\n\\u00e9\\ud83d\\ude00"],"b":{"c":{}},"d":[]}';
  const r = parseJsonStrict(enc(text));
  assert.ok(r.ok);
  if (r.ok) assert.equal(r.value, JSON.parse(text));
});

parse('refuses duplicate keys at any depth, even with different escapes of the same name', () => {
  assert.is(code(parseJsonStrict('{"a":1,"a":2}')), 'DUPLICATE_KEY');
  assert.is(code(parseJsonStrict('{"x":[{"k":1,"k":1}]}')), 'DUPLICATE_KEY');
  assert.is(code(parseJsonStrict('{"a":1,"\\u0061":2}')), 'DUPLICATE_KEY');
  assert.is(code(parseJsonStrict('{"__proto__":1,"__proto__":2}')), 'DUPLICATE_KEY');
  assert.is(code(parseJsonStrict(enc('{"toString":1,"constructor":2,"hasOwnProperty":3}'))), 'OK');
  const r = parseJsonStrict('{"hosts":{"h1":{},"h1":{}}}');
  assert.ok(!r.ok && r.error.message.includes('"h1"') && r.error.message.includes('$.hosts'));
  assert.is(code(parseJsonStrict('{"a":{"b":1},"c":{"b":1}}')), 'OK'); // same name in sibling objects is fine
});

parse('refuses lone surrogates (escaped, or raw in string input)', () => {
  assert.is(code(parseJsonStrict('"\\ud800"')), 'NOT_CANONICALIZABLE');
  assert.is(code(parseJsonStrict('"\\udc00\\ud800"')), 'NOT_CANONICALIZABLE');
  assert.is(code(parseJsonStrict('{"\\ud800x":1}')), 'NOT_CANONICALIZABLE');
  assert.is(code(parseJsonStrict('"\ud800"')), 'NOT_CANONICALIZABLE');
  assert.is(code(parseJsonStrict(enc('"\\ud800"'))), 'NOT_CANONICALIZABLE');
  assert.is(code(parseJsonStrict('"\\ud83d\\ude00"')), 'OK');
});

parse('refuses what is not JSON: NaN, Infinity, trailing data, comments, BOM, bad UTF-8', () => {
  for (const t of ['NaN', 'Infinity', '-Infinity', '{"a":NaN}', '{} {}', '{"a":1,}', '[1,]', '// x\n1', '01', '1.', '.5', '+1', "'a'", '"\t"', '{a:1}', '', '   ', '"\\x41"', '[', '{"a"', 'tru', '\ufeff{}']) {
    assert.is(code(parseJsonStrict(t)), 'PARSE_ERROR', t);
  }
  assert.is(code(parseJsonStrict(Uint8Array.of(0x22, 0xff, 0x22))), 'PARSE_ERROR');
  assert.is(code(parseJsonStrict(Uint8Array.of(0xef, 0xbb, 0xbf, 0x7b, 0x7d))), 'PARSE_ERROR');
});

parse('numbers: overflow is not canonicalizable; integersOnly refuses fractions and unsafe integers', () => {
  assert.is(code(parseJsonStrict('1e400')), 'NOT_CANONICALIZABLE');
  assert.is(code(parseJsonStrict('-1e400')), 'NOT_CANONICALIZABLE');
  assert.is(code(parseJsonStrict('1.5')), 'OK');
  assert.is(code(parseJsonStrict('1.5', { integersOnly: true })), 'NOT_CANONICALIZABLE');
  assert.is(code(parseJsonStrict('{"a":[0.1]}', { integersOnly: true })), 'NOT_CANONICALIZABLE');
  assert.is(code(parseJsonStrict('9007199254740993', { integersOnly: true })), 'NOT_CANONICALIZABLE');
  assert.is(code(parseJsonStrict('1e2', { integersOnly: true })), 'OK');
  assert.is(code(parseJsonStrict('-0', { integersOnly: true })), 'OK');
});

parse('size limit is checked before parsing, in UTF-8 bytes', () => {
  assert.is(code(parseJsonStrict('"aaaa"', { maxBytes: 6 })), 'OK');
  assert.is(code(parseJsonStrict('"aaaaa"', { maxBytes: 6 })), 'TOO_LARGE');
  assert.is(code(parseJsonStrict('"éé"', { maxBytes: 5 })), 'TOO_LARGE'); // 6 bytes in UTF-8
  assert.is(code(parseJsonStrict(enc('{"a":1,"a":2}'), { maxBytes: 4 })), 'TOO_LARGE');
});

parse('deep nesting is a parse error, not a stack overflow', () => {
  assert.is(code(parseJsonStrict('['.repeat(100) + ']'.repeat(100))), 'OK');
  assert.is(code(parseJsonStrict('['.repeat(100_000) + ']'.repeat(100_000))), 'PARSE_ERROR');
  assert.is(code(parseJsonStrict('{"a":'.repeat(600) + '1' + '}'.repeat(600), { maxDepth: 512 })), 'PARSE_ERROR');
});

parse('__proto__ is an ordinary member and does not touch the prototype', () => {
  const r = parseJsonStrict('{"__proto__":{"polluted":true},"a":1}');
  assert.ok(r.ok);
  if (!r.ok) return;
  const v = r.value as Record<string, unknown>;
  assert.is(Object.getPrototypeOf(v), Object.prototype);
  assert.equal(Object.keys(v), ['__proto__', 'a']);
  assert.is(({} as Record<string, unknown>)['polluted'], undefined);
  assert.is(canon('{"__proto__":{"polluted":true},"a":1}'), '{"__proto__":{"polluted":true},"a":1}');
});

const jcs = suite('canonicalize (RFC 8785)');

withInterop(jcs)('interop jcs-golden gives the .canonical bytes', () => {
  const input = readFileSync(new URL('jcs-golden.json', INTEROP()));
  const want = readFileSync(new URL('jcs-golden.canonical', INTEROP()), 'utf8');
  const p = parseJsonStrict(input);
  assert.ok(p.ok);
  if (!p.ok) return;
  const c = canonicalBytes(p.value);
  assert.ok(c.ok);
  if (c.ok) assert.is(new TextDecoder().decode(c.value), want);
});

jcs('keys sort by UTF-16 code units; "10" before "2"', () => {
  assert.is(canon('{"2":1,"10":2,"b":3,"a":4,"B":5}'), '{"10":2,"2":1,"B":5,"a":4,"b":3}');
  // RFC 8785 §3.2.3: U+FB33 sorts after U+1F600 (surrogates D83D DE00) in UTF-16 order, though
  // its code point is smaller.
  assert.is(canon('{"\\ufb33":1,"\\ud83d\\ude00":2,"\\u20ac":3}'), '{"\u20ac":3,"\ud83d\ude00":2,"\ufb33":1}');
});

jcs('ECMAScript number form, no "/" escaping, minimal string escapes', () => {
  assert.is(canon('[1E2,1.0,-0,0.000001,1e-7,1e21,123456789012345678901]'), '[100,1,0,0.000001,1e-7,1e+21,123456789012345680000]');
  assert.is(canon('"a/b\\/c\\u00e9\\u001f\\t"'), '"a/b/c\u00e9\\u001f\\t"');
});

jcs('refuses values JCS cannot represent', () => {
  for (const v of [NaN, Infinity, -Infinity, { a: NaN }, ['\ud800'], undefined, () => 1, 10n]) {
    const r = canonicalize(v);
    assert.ok(!r.ok && r.error.code === 'NOT_CANONICALIZABLE', String(v));
  }
  const cyclic: Record<string, unknown> = {};
  cyclic['self'] = cyclic;
  assert.ok(!canonicalize(cyclic).ok);
});

parse.run();
jcs.run();
