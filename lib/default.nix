# The flake's `lib` output. It takes no nixpkgs: everything here is builtins only (SPEC §9).
{ }:
{
  # description -> fleet.resolved (SPEC §2.2); warnings traced to stderr.
  mkFleet = import ./mkFleet.nix;
  # description -> { ok = true; fleet; warnings; } | { ok = false; error = { code; message; }; }
  resolveFleet = import ./resolve.nix;
  # fleet.resolved as JSON text (JCS canonicalisation is done by `nixfleet-release sign`).
  mkFleetJSON = desc: builtins.toJSON (import ./mkFleet.nix desc);
}
