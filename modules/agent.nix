# NixOS module: services.nixfleet-agent (SPEC §6).
#
# The agent runs as root only because activation needs it (nix-env on the system profile,
# switch-to-configuration). It therefore gets no mount-namespace sandboxing (ProtectSystem,
# PrivateTmp, ProtectHome would make activation scripts see a different /etc, /tmp or /home), but
# every hardening that does not change what activation sees.
#
# The agent guard at build time: a host that imports this module is a fleet member; a
# configuration that disables the agent (or its unit) is refused unless the host is leaving.
#
# Argument: the flake's `packages` (for the default package), or null outside the flake.
{ packages ? null }:
{ config, lib, pkgs, ... }:
let
  cfg = config.services.nixfleet-agent;
  spec = import ./options-agent.nix;
  h = import ./lib.nix { inherit lib; };
  unit = "nixfleet-agent";
  configFile = pkgs.writeText "nixfleet-agent.json" (builtins.toJSON (h.toSettings spec.settings cfg));
  unitCfg = config.systemd.services.${unit} or { };
  stateDirName = lib.removePrefix "/var/lib/" cfg.stateDir;
in
{
  options.services.nixfleet-agent = h.mkOptions (spec.service // spec.settings);

  config = lib.mkMerge [
    (h.agentBase {
      inherit config pkgs packages;
      platform = "nixos";
      agentServicePath = "etc/systemd/system/${unit}.service";
      rebootCommand = [ "/run/current-system/sw/bin/systemctl" "reboot" ];
    })

    {
      assertions = [
        {
          assertion = !cfg.enable || ((unitCfg.enable or true) && lib.elem "multi-user.target" (unitCfg.wantedBy or [ ]));
          message = "nixfleet agent guard: systemd.services.${unit} is disabled or no longer wanted by multi-user.target; the agent would not run after the switch.";
        }
        {
          assertion = !cfg.enable || (lib.hasPrefix "/var/lib/" cfg.stateDir && stateDirName != "");
          message = "services.nixfleet-agent.stateDir must be under /var/lib/ (it is the unit's StateDirectory, mode 0700).";
        }
      ];
    }

    (lib.mkIf cfg.enable {
      systemd.services.${unit} = {
        description = "nixfleet agent";
        wantedBy = [ "multi-user.target" ];
        wants = [ "network-online.target" ];
        after = [ "network-online.target" ];
        # nix-store / nix-env for realising and setting the profile (nixBinDir = null: PATH).
        path = [ config.nix.package pkgs.coreutils ];
        # A switch replaces this unit while the agent is running it: restart rather than stop and
        # start, and only kill the main process, so the switch script it started runs to its end.
        # After the restart the persisted pending-activation record decides (confirm or roll back).
        stopIfChanged = false;
        serviceConfig = {
          ExecStart = "${cfg.package}/bin/nixfleet-agent run --config ${configFile}";
          KillMode = "process";
          Restart = "always";
          RestartSec = 5;
          User = "root";
          StateDirectory = stateDirName;
          StateDirectoryMode = "0700";
          UMask = "0077";
          # No namespace sandboxing (see the header), and no address-family or system-call filter:
          # switch scripts inherit them. Only what activation cannot notice:
          NoNewPrivileges = true;
          LockPersonality = true;
          RestrictRealtime = true;
          SystemCallArchitectures = "native";
        };
      };
    })
  ];
}
