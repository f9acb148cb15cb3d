# nix-darwin module: services.nixfleet-agent as a launchd daemon (SPEC §6). Same options as the
# NixOS module (./options-agent.nix), same build-time agent guard.
#
# The daemon's label is org.nixfleet.agent, so the closure holds
# Library/LaunchDaemons/org.nixfleet.agent.plist: what the agent's run-time guard looks for.
#
# Argument: the flake's `packages` (for the default package), or null outside the flake.
{ packages ? null }:
{ config, lib, pkgs, ... }:
let
  cfg = config.services.nixfleet-agent;
  spec = import ./options-agent.nix;
  h = import ./lib.nix { inherit lib; };
  label = "org.nixfleet.agent";
  configFile = pkgs.writeText "nixfleet-agent.json" (builtins.toJSON (h.toSettings spec.settings cfg));
  logFile = "/var/log/nixfleet-agent.log";
in
{
  options.services.nixfleet-agent = h.mkOptions (spec.service // spec.settings);

  config = lib.mkMerge [
    (h.agentBase {
      inherit config pkgs packages;
      platform = "darwin";
      agentServicePath = "Library/LaunchDaemons/${label}.plist";
      rebootCommand = [ "/sbin/shutdown" "-r" "now" ];
    })

    {
      assertions = [
        {
          assertion = cfg.hostname != null && cfg.hostname != "";
          message = "services.nixfleet-agent.hostname must be set (networking.hostName is empty).";
        }
      ];
    }

    (lib.mkIf cfg.enable {
      # Root-only state directory, created at activation.
      system.activationScripts.postActivation.text = ''
        mkdir -p ${lib.escapeShellArg cfg.stateDir}
        chmod 0700 ${lib.escapeShellArg cfg.stateDir}
      '';

      launchd.daemons.nixfleet-agent = {
        path = [ config.nix.package pkgs.coreutils ];
        serviceConfig = {
          Label = label;
          ProgramArguments = [ "${cfg.package}/bin/nixfleet-agent" "run" "--config" "${configFile}" ];
          RunAtLoad = true;
          KeepAlive = true;
          ThrottleInterval = 5;
          UserName = "root";
          Umask = 63; # 0077
          StandardOutPath = logFile;
          StandardErrorPath = logFile;
        };
      };
    })
  ];
}
