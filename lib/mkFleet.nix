# `lib.mkFleet`: a fleet description (an attribute set, or a list of them to merge) to the
# `fleet.resolved` value of SPEC §2.2. Builtins only, so `nix eval` needs no nixpkgs (SPEC §9).
# Invariant violations (SPEC §3.1) are evaluation errors; warnings (a selector that matches
# nothing) go to stderr through `builtins.trace`. The rules live in ./resolve.nix.
desc:
let
  r = import ./resolve.nix desc;
in
builtins.seq r.fleet (builtins.foldl' (acc: w: builtins.trace "warning: nixfleet.mkFleet: ${w}" acc) r.fleet r.warnings)
