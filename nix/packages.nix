# The four programs, from one npm build (SPEC §9). `npm run build` (scripts/build.mjs, esbuild)
# bundles each program into dist/*.mjs, which bin/*.js run on plain node (the TypeScript sources
# through tsx remain the fallback); the only native code is better-sqlite3's addon, compiled here
# from source against this Node (no prebuilt download).
#
# Not evaluated in this repository's CI (it has Nix but no nixpkgs and no network to a cache);
# see docs/nixos.md.
{ pkgs }:
let
  inherit (pkgs) lib;
  nodejs = pkgs.nodejs_24; # Node 24 LTS (Node 20 reached its end of life in April 2026)
  root = ../.; # the repository (the flake's own source)
  manifest = builtins.fromJSON (builtins.readFile (root + "/package.json"));

  nixfleet = pkgs.buildNpmPackage {
    pname = "nixfleet";
    inherit (manifest) version;
    inherit nodejs;
    src = lib.cleanSource root;

    # Dependencies straight from package-lock.json (its integrity hashes), no npmDepsHash to keep.
    npmDeps = pkgs.importNpmLock { npmRoot = root; };
    npmConfigHook = pkgs.importNpmLock.npmConfigHook;

    # better-sqlite3: prebuild-install is told to build, node-gyp uses this Node's headers.
    env = {
      npm_config_build_from_source = "true";
      npm_config_nodedir = "${nodejs}";
    };
    nativeBuildInputs = [ pkgs.python3 ] ++ lib.optionals pkgs.stdenv.hostPlatform.isDarwin [ pkgs.cctools pkgs.xcbuild ];

    npmBuildScript = "build"; # dist/*.mjs (shipped: .npmignore keeps dist/); `npm test` is this repository's check, not the package's

    meta = {
      description = "Signed-GitOps fleet management for NixOS and nix-darwin";
      license = lib.licenses.mit;
      mainProgram = "nixfleet";
      platforms = lib.platforms.linux ++ lib.platforms.darwin;
    };
  };

  # One package per program, each exposing only its own binary.
  program = name: pkgs.runCommand name { meta = nixfleet.meta // { mainProgram = name; }; } ''
    mkdir -p $out/bin
    ln -s ${nixfleet}/bin/${name} $out/bin/${name}
  '';

  # The agent runs on every host and must stay small while idle (SPEC §8: ≤ 80 MB resident): it
  # ships as one esbuild bundle (agent/bundle.ts) on plain node with a small young generation,
  # not through the tsx loader (~30 MB more). bench/agent.bench.ts measures both launch modes.
  agentFlags = "--max-semi-space-size=1 --max-old-space-size=64";
  nixfleet-agent = pkgs.runCommand "nixfleet-agent"
    {
      nativeBuildInputs = [ nodejs pkgs.makeWrapper ];
      meta = nixfleet.meta // { mainProgram = "nixfleet-agent"; };
    } ''
    mkdir -p $out/bin $out/lib
    cd ${nixfleet}/lib/node_modules/nixfleet
    node --import tsx agent/bundle.ts $out/lib/nixfleet-agent.mjs
    makeWrapper ${nodejs}/bin/node $out/bin/nixfleet-agent --add-flags "${agentFlags} $out/lib/nixfleet-agent.mjs"
  '';
in
{
  inherit nixfleet;
  default = nixfleet;
  inherit nixfleet-agent;
  nixfleet-control-plane = program "nixfleet-control-plane";
  nixfleet-release = program "nixfleet-release";
}
