import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { removeFileDurable, writeFileAtomic } from './atomic-file.ts';

const dir = mkdtempSync(join(tmpdir(), 'nixfleet-atomic-'));
test.after(() => rmSync(dir, { recursive: true, force: true }));

test('replaces the file whole, with the requested mode, and leaves no temporary file', () => {
  const f = join(dir, 'state.json');
  writeFileSync(f, 'old');
  writeFileAtomic(f, 'new contents', { mode: 0o600 });
  assert.is(readFileSync(f, 'utf8'), 'new contents');
  assert.is(statSync(f).mode & 0o777, 0o600);
  assert.equal(readdirSync(dir).filter((n) => n.includes('.tmp-')), []);
});

test('creates the directory when asked, and only then', () => {
  const nested = join(dir, 'a', 'b', 'c.bin');
  assert.throws(() => writeFileAtomic(nested, new Uint8Array([1, 2, 3])));
  writeFileAtomic(nested, new Uint8Array([1, 2, 3]), { mkdirMode: 0o700 });
  assert.equal([...readFileSync(nested)], [1, 2, 3]);
  assert.is(statSync(join(dir, 'a', 'b')).mode & 0o777, 0o700);
});

test('a failed write keeps the old file and cleans up its temporary file', () => {
  const target = join(dir, 'is-a-dir');
  writeFileAtomic(join(target, 'x'), 'x', { mkdirMode: 0o700 });
  // Renaming a file over a non-empty directory fails: the directory must survive untouched.
  assert.throws(() => writeFileAtomic(target, 'y'));
  assert.is(readFileSync(join(target, 'x'), 'utf8'), 'x');
  assert.equal(readdirSync(dir).filter((n) => n.includes('.tmp-')), []);
});

test('removeFileDurable removes a file and ignores a missing one', () => {
  const f = join(dir, 'gone');
  writeFileAtomic(f, 'x');
  removeFileDurable(f);
  assert.equal(readdirSync(dir).includes('gone'), false);
  removeFileDurable(f);
});

test.run();
