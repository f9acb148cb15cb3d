# Turns the plain option specs of ./options-*.nix (builtins-only data, also read by the docs
# generator and the drift test in nix-tests/options.test.ts) into NixOS / nix-darwin options, and
# the option values back into the program's JSON config.
#
# A spec is `{ type; default?; defaultText?; example?; description; }`, or a group
# `{ options = { … }; description; }` (a nested JSON object, e.g. the agent's `tls`).
# Type tags: "bool" "int" "ints.positive" "ints.unsigned" "port" "number" "str" "path" "package"
# "json", { nullOr = T; }, { listOf = T; }, { enum = [ … ]; }.
# "path" is an absolute path *string*: a Nix path literal (./key.pem) is refused on purpose, so a
# private key can never be copied into the world-readable Nix store by accident.
{ lib }:
let
  inherit (lib) types;
in
rec {
  toType = t:
    if t == "bool" then types.bool
    else if t == "int" then types.int
    else if t == "ints.positive" then types.ints.positive
    else if t == "ints.unsigned" then types.ints.unsigned
    else if t == "port" then types.port
    else if t == "number" then types.number
    else if t == "str" then types.str
    else if t == "path" then types.strMatching "/.*"
    else if t == "package" then types.package
    else if t == "json" then types.attrsOf types.anything
    else if builtins.isAttrs t && t ? nullOr then types.nullOr (toType t.nullOr)
    else if builtins.isAttrs t && t ? listOf then types.listOf (toType t.listOf)
    else if builtins.isAttrs t && t ? enum then types.enum t.enum
    else throw "nixfleet modules/lib.nix: unknown option type tag ${builtins.toJSON t}";

  # { name = spec; } -> { name = mkOption …; } (groups become nested option sets).
  mkOptions = specs: builtins.mapAttrs (_: s:
    if s ? options then mkOptions s.options
    else lib.mkOption ({
      type = toType s.type;
      inherit (s) description;
    }
    // lib.optionalAttrs (s ? default) { inherit (s) default; }
    // lib.optionalAttrs (s ? defaultText) { defaultText = lib.literalExpression s.defaultText; }
    // lib.optionalAttrs (s ? example) { inherit (s) example; })) specs;

  # The program's JSON config: exactly the settings keys (nested for groups), nulls written as
  # null (the programs read null as "none", e.g. the agent's hostKeyFile = null: unsigned reports).
  toSettings = specs: cfg: builtins.mapAttrs (name: s: if s ? options then toSettings s.options cfg.${name} else cfg.${name}) specs;

  # What the NixOS and the nix-darwin agent modules share: option defaults taken from the host
  # configuration, and the build-time agent guard (SPEC §6): a fleet host that disables the agent
  # is refused unless it is leaving the fleet.
  agentBase = { config, pkgs, packages, platform, agentServicePath, rebootCommand }:
    let cfg = config.services.nixfleet-agent;
    in {
      services.nixfleet-agent = {
        package = lib.mkIf (packages != null) (lib.mkDefault packages.${pkgs.stdenv.hostPlatform.system}.nixfleet-agent);
        hostname = lib.mkOptionDefault config.networking.hostName;
        platform = lib.mkOptionDefault platform;
        agentServicePaths = lib.mkOptionDefault [ agentServicePath ];
        rebootCommand = lib.mkOptionDefault rebootCommand;
      };

      assertions = [
        {
          assertion = cfg.enable || cfg.leaving;
          message = ''
            nixfleet agent guard: services.nixfleet-agent.enable = false on a fleet host. Deploying this
            configuration would remove the agent and cut the host off from the control plane. To remove
            the host on purpose, set services.nixfleet-agent.leaving = true and mark it `leaving = true`
            in the fleet description.
          '';
        }
      ];
    };
}
