# The flake's `lib` output. It takes no nixpkgs: everything here is builtins only (SPEC §9).
{ }:
{
  # description -> fleet.resolved (SPEC §2.2); warnings traced to stderr.
  mkFleet = import ./mkFleet.nix;
  # description -> { ok = true; fleet; warnings; } | { ok = false; error = { code; message; }; }
  resolveFleet = import ./resolve.nix;
  # fleet.resolved as JSON text (JCS canonicalisation is done by `nixfleet-release sign`).
  mkFleetJSON = desc: builtins.toJSON (import ./mkFleet.nix desc);
  # NixFleet v1 (Rust project) fleet definitions as they are: { mkFleet, mergeFleets }, each giving
  # { resolved, … } with `resolved` what v1's own mkFleet gives (docs/migrating-from-nixfleet.md).
  nixfleetV1 = import ./nixfleet-v1.nix;
  # Issue 15: { catalogue, staticReport, resolveWithReport, mkFleetWithReport, … } (./compliance.nix):
  # static compliance of nixosConfigurations at CI time, and the static gate of `resolve`.
  compliance = import ./compliance.nix;
}
