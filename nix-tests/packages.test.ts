/**
 * nix/packages.nix evaluated against a stand-in `pkgs` (CI has no nixpkgs, so nothing is built
 * here; see docs/nixos.md): the file evaluates, and it asks buildNpmPackage for what the issue
 * requires — dependencies from package-lock.json, better-sqlite3's addon built from source against
 * the same Node, no build step — and exposes one package per program.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { nixEvalJson, ROOT } from './nix.ts';

// The stand-in records the arguments of every builder instead of building.
const STUB = `
let
  lib = {
    cleanSource = p: { cleanSource = toString p; };
    optionals = c: xs: if c then xs else [ ];
    licenses.mit = "mit";
    platforms = { linux = [ "x86_64-linux" ]; darwin = [ "aarch64-darwin" ]; };
  };
  pkgs = {
    inherit lib;
    nodejs_24 = "/nix/store/00000000000000000000000000000000-nodejs-24";
    python3 = "python3";
    makeWrapper = "makeWrapper";
    cctools = "cctools";
    xcbuild = "xcbuild";
    stdenv.hostPlatform.isDarwin = false;
    buildNpmPackage = args: args // { outPath = "/nix/store/11111111111111111111111111111111-nixfleet"; };
    importNpmLock = {
      __functor = _: a: { importNpmLock = toString a.npmRoot; };
      npmConfigHook = "importNpmLock-hook";
    };
    runCommand = name: attrs: script: { inherit name script; meta = attrs.meta; };
  };
  p = import ./nix/packages.nix { inherit pkgs; };
in
{
  names = builtins.attrNames p;
  main = { inherit (p.nixfleet) pname version env npmBuildScript npmDeps npmConfigHook nativeBuildInputs src; mainProgram = p.nixfleet.meta.mainProgram; nodejs = p.nixfleet.nodejs; };
  programs = builtins.mapAttrs (_: v: { inherit (v) name script; mainProgram = v.meta.mainProgram; }) { inherit (p) nixfleet-agent nixfleet-control-plane nixfleet-release; };
}`;

test('nix/packages.nix: one npm build from the lockfile, better-sqlite3 from source, one package per program', () => {
  const r = nixEvalJson(STUB) as {
    names: string[];
    main: Record<string, unknown> & { env: Record<string, string>; npmDeps: { importNpmLock: string }; src: { cleanSource: string } };
    programs: Record<string, { name: string; script: string; mainProgram: string }>;
  };
  assert.equal(r.names, ['default', 'nixfleet', 'nixfleet-agent', 'nixfleet-control-plane', 'nixfleet-release']);
  const manifest = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { version: string; bin: Record<string, string> };
  assert.is(r.main['pname'], 'nixfleet');
  assert.is(r.main['version'], manifest.version);
  // `npm run build`: the esbuild bundles in dist/ that bin/*.js run (issue 18).
  assert.is(r.main['npmBuildScript'], 'build');
  assert.is(r.main['npmConfigHook'], 'importNpmLock-hook');
  // The lockfile root and the source are the repository itself.
  assert.is(r.main.npmDeps.importNpmLock, ROOT);
  assert.is(r.main.src.cleanSource, ROOT);
  assert.equal(r.main.env, { npm_config_build_from_source: 'true', npm_config_nodedir: '/nix/store/00000000000000000000000000000000-nodejs-24' });
  assert.is(r.main['nodejs'], '/nix/store/00000000000000000000000000000000-nodejs-24');
  assert.equal(r.main['nativeBuildInputs'], ['python3']);
  // Every program of package.json "bin" has its package, exposing that one binary.
  // The agent ships as the esbuild bundle on plain node (SPEC §8 idle memory), not via tsx.
  const agent = r.programs['nixfleet-agent']!;
  assert.is(agent.mainProgram, 'nixfleet-agent');
  assert.ok(agent.script.includes('agent/bundle.ts $out/lib/nixfleet-agent.mjs'), agent.script);
  assert.ok(/makeWrapper \S+\/bin\/node \$out\/bin\/nixfleet-agent --add-flags "--max-semi-space-size=1 --max-old-space-size=64 \$out\/lib\/nixfleet-agent.mjs"/.test(agent.script), agent.script);
  for (const name of Object.keys(manifest.bin).filter((n) => n !== 'nixfleet' && n !== 'nixfleet-agent')) {
    const p = r.programs[name];
    assert.ok(p, name);
    assert.is(p!.mainProgram, name);
    assert.ok(p!.script.includes(`ln -s /nix/store/11111111111111111111111111111111-nixfleet/bin/${name} $out/bin/${name}`), p!.script);
  }
});

test.run();
