{
  description = "nixfleet: signed-GitOps fleet management for NixOS and nix-darwin";

  # Only `packages` and the modules' default packages use nixpkgs. `lib` (mkFleet) is builtins only
  # and never forces this input, so `nix eval .#lib…` works without nixpkgs (SPEC §9).
  # nixos-unstable: a current nixpkgs with nodejs_24 (nix/packages.nix); pin it with your flake.lock.
  inputs.nixpkgs.url = "github:NixOS/nixpkgs/nixos-unstable";

  outputs = { self, nixpkgs }:
    let
      systems = [ "x86_64-linux" "aarch64-linux" "x86_64-darwin" "aarch64-darwin" ];
      forAllSystems = f: builtins.listToAttrs (map (system: { name = system; value = f system; }) systems);
    in
    {
      # lib.mkFleet, lib.resolveFleet, lib.mkFleetJSON, lib.nixfleetV1: see lib/default.nix.
      lib = import ./lib { };

      # nixfleet (operator CLI), nixfleet-agent, nixfleet-control-plane, nixfleet-release.
      packages = forAllSystems (system: import ./nix/packages.nix { pkgs = nixpkgs.legacyPackages.${system}; });

      nixosModules = {
        agent = import ./modules/agent.nix { packages = self.packages; };
        control-plane = import ./modules/control-plane.nix { packages = self.packages; };
      };

      darwinModules.agent = import ./modules/darwin-agent.nix { packages = self.packages; };
    };
}
