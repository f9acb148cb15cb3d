# Evaluates one of modules/*.nix with the stand-in lib of ./stub-lib.nix (no nixpkgs) and returns
# what the tests look at, as JSON. `argsFile`: JSON { module; user; } where `module` is
# "agent" | "control-plane" | "darwin-agent" and `user` the host's definitions
# (`{ "_mkForce": X }` anywhere means lib.mkForce X).
{ argsFile }:
let
  b = builtins;
  s = import ./stub-lib.nix;
  args = b.fromJSON (b.readFile argsFile);
  force = v:
    if b.isAttrs v then (if v ? _mkForce then s.lib.mkForce (force v._mkForce) else b.mapAttrs (_: force) v)
    else if b.isList v then map force v else v;
  # writeText keeps the file's text visible in the store path it returns: "@@name@@text@@".
  pkgs = {
    writeText = name: text: { outPath = "@@${name}@@${text}@@"; };
    coreutils = "/nix/store/00000000000000000000000000000000-coreutils";
    git = "/nix/store/00000000000000000000000000000000-git";
    stdenv.hostPlatform.system = "x86_64-linux";
  };
  r = s.evalModule {
    module = import (./.. + "/modules/${args.module}.nix") { packages = null; };
    user = force args.user;
    inherit pkgs;
  };
  at = path: b.foldl' (v: k: if b.isAttrs v && v ? ${k} then v.${k} else null) r.config path;
in
{
  options = s.optionList r.options;
  assertions = map (a: { inherit (a) assertion message; }) (let a = s.strip (at [ "assertions" ]); in if a == null then [ ] else a);
  systemd = s.strip (at [ "systemd" "services" ]);
  launchd = s.strip (at [ "launchd" "daemons" ]);
  firewall = s.strip (at [ "networking" "firewall" ]);
  activation = s.strip (at [ "system" "activationScripts" ]);
}
