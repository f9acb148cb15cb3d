# `lib.mkFleet`: a fleet description (an attribute set, or a list of them to merge) to the
# `fleet.resolved` value of SPEC §2.2. Builtins only, so `nix eval` needs no nixpkgs (SPEC §9).
# The first failed check of release/README.md (SPEC §3.1) is an evaluation error
# "nixfleet.mkFleet: <CODE>: <message>" (same code and message as `nixfleet-release resolve`);
# warnings (a selector that matches nothing, …) go to stderr through `builtins.trace`.
# The rules live in ./resolve.nix.
desc:
let
  r = import ./resolve.nix desc;
in
if !r.ok then throw "nixfleet.mkFleet: ${r.error.code}: ${r.error.message}"
else builtins.foldl' (acc: w: builtins.trace "warning: nixfleet.mkFleet: ${w}" acc) r.fleet r.warnings
