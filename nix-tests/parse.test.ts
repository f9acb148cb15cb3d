/**
 * Acceptance (issue 8): `nix-instantiate --parse` succeeds on every `.nix` file of the repository.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { allNixFiles, nixInstantiate } from './nix.ts';

const files = allNixFiles();

test('the repository has the Nix files of the packaging (flake, lib, modules, example)', () => {
  for (const f of ['flake.nix', 'lib/default.nix', 'lib/mkFleet.nix', 'lib/resolve.nix', 'modules/agent.nix', 'modules/control-plane.nix', 'modules/darwin-agent.nix', 'examples/fleet.nix']) {
    assert.ok(files.includes(f), `${f} is missing (found: ${files.join(', ')})`);
  }
});

test('nix-instantiate --parse accepts every .nix file', () => {
  const failures: string[] = [];
  for (const f of files) {
    const r = nixInstantiate(['--parse', f]);
    if (!r.ok) failures.push(`${f}:\n${r.stderr}`);
  }
  assert.equal(failures, [], failures.join('\n'));
});

test('the parse check does fail on a syntax error (it is not vacuous)', () => {
  const r = nixInstantiate(['--parse', '--expr', '{ a = 1; ']);
  assert.not.ok(r.ok);
  assert.match(r.stderr, /syntax error/);
});

test.run();
