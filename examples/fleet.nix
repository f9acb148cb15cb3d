# A small fleet: 4 hosts, 2 channels, a canary wave then the rest. Plain data (a fleet
# description, protocol/schema.ts `FleetDescription`), so it can be resolved with no nixpkgs:
#
#   nix-instantiate --eval --strict --json --expr 'import ./lib/mkFleet.nix (import ./examples/fleet.nix)'
#
# or, from a fleet repository's flake: `nixfleet.lib.mkFleet (import ./fleet.nix)`.
{
  hosts = {
    web1 = { system = "x86_64-linux"; channel = "stable"; tags = [ "web" "canary" ]; };
    web2 = { system = "x86_64-linux"; channel = "stable"; tags = [ "web" ]; };
    db1 = { system = "x86_64-linux"; channel = "stable"; tags = [ "db" ]; };
    mac1 = { system = "aarch64-darwin"; channel = "edge"; tags = [ "workstation" ]; };
  };

  channels = {
    # Workstations take a release first; production follows once they have converged.
    edge = { rolloutPolicy = "all-at-once"; };
    stable = {
      rolloutPolicy = "canary";
      compliance = { frameworks = [ "iso27001" ]; mode = "permissive"; };
    };
  };

  rolloutPolicies = {
    canary = {
      strategy = "canary";
      waves = [
        { selector = { tags = [ "canary" ]; }; soakMinutes = 30; }
        { selector = { not = { tags = [ "canary" ]; }; }; soakMinutes = 10; }
      ];
      healthGate = { systemdFailedUnits = { max = 0; }; };
      onHealthFailure = "rollback-and-halt";
    };
    all-at-once = {
      waves = [ { selector = { all = true; }; } ];
    };
  };

  # Inside stable: the database moves before the second web server.
  edges = [ { gates = "db1"; gated = "web2"; reason = "schema migrations first"; } ];
  channelEdges = [ { gates = "edge"; gated = "stable"; reason = "workstations first"; } ];
  disruptionBudgets = [ { selector = { tags = [ "web" ]; }; maxInFlight = 1; } ];
}
