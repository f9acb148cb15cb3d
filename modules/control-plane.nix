# NixOS module: services.nixfleet-control-plane (SPEC §5).
#
# The control plane holds no signing key, so it runs with no identity at all: a DynamicUser, a
# read-only system, its state in StateDirectory, and the server TLS key handed in through
# LoadCredential (root-only on disk, readable only by this unit at run time).
#
# Argument: the flake's `packages` (for the default package), or null outside the flake.
{ packages ? null }:
{ config, lib, pkgs, ... }:
let
  cfg = config.services.nixfleet-control-plane;
  spec = import ./options-control-plane.nix;
  h = import ./lib.nix { inherit lib; };
  unit = "nixfleet-control-plane";
  keyCredential = "/run/credentials/${unit}.service/tls-key";

  # The key file is read through the unit's credential, never from its original (root-only) path.
  settings = h.toSettings spec.settings cfg // { tlsKeyFile = keyCredential; };
  configFile = pkgs.writeText "nixfleet-control-plane.json" (builtins.toJSON settings);
  stateUnderStateDir = lib.hasPrefix "/var/lib/${unit}/" cfg.dbPath;
in
{
  options.services.nixfleet-control-plane = h.mkOptions (spec.service // spec.settings);

  config = lib.mkIf cfg.enable {
    services.nixfleet-control-plane.package = lib.mkIf (packages != null)
      (lib.mkDefault packages.${pkgs.stdenv.hostPlatform.system}.nixfleet-control-plane);

    assertions = [
      {
        assertion = cfg.cacheDir == null || lib.hasPrefix "/var/lib/${unit}/" cfg.cacheDir;
        message = "services.nixfleet-control-plane.cacheDir must be null or live under /var/lib/${unit}/ (the only writable place of the unit).";
      }
      {
        assertion = stateUnderStateDir;
        message = "services.nixfleet-control-plane.dbPath must live under /var/lib/${unit}/ (the unit's StateDirectory; it runs as a DynamicUser with a read-only system).";
      }
    ];

    networking.firewall.allowedTCPPorts = lib.mkIf cfg.openFirewall [ cfg.listenPort ];

    systemd.services.${unit} = {
      description = "nixfleet control plane";
      wantedBy = [ "multi-user.target" ];
      wants = [ "network-online.target" ];
      after = [ "network-online.target" ];
      # The git source shells out to git.
      path = lib.optional ((cfg.source.type or null) == "git") pkgs.git;
      serviceConfig = {
        ExecStart = "${cfg.package}/bin/nixfleet-control-plane serve --config ${configFile}";
        Restart = "on-failure";
        RestartSec = 5;

        DynamicUser = true;
        StateDirectory = unit;
        StateDirectoryMode = "0700";
        LoadCredential = [ "tls-key:${cfg.tlsKeyFile}" ];
        UMask = "0077";

        NoNewPrivileges = true;
        ProtectSystem = "strict";
        ProtectHome = true;
        PrivateTmp = true;
        PrivateDevices = true;
        ProtectKernelTunables = true;
        ProtectKernelModules = true;
        ProtectKernelLogs = true;
        ProtectControlGroups = true;
        ProtectClock = true;
        ProtectHostname = true;
        ProtectProc = "invisible";
        RestrictAddressFamilies = [ "AF_INET" "AF_INET6" "AF_UNIX" ];
        RestrictNamespaces = true;
        RestrictRealtime = true;
        RestrictSUIDSGID = true;
        LockPersonality = true;
        RemoveIPC = true;
        SystemCallArchitectures = "native";
        # Node raises its own fd limit and libuv probes io_uring: a refused call must fail with
        # EPERM (and Node falls back), not kill the process with SIGSYS.
        SystemCallFilter = [ "@system-service" "~@privileged" ];
        SystemCallErrorNumber = "EPERM";
        # V8's JIT needs writable+executable memory, so MemoryDenyWriteExecute stays off.
        MemoryDenyWriteExecute = false;
        CapabilityBoundingSet = if cfg.listenPort < 1024 then [ "CAP_NET_BIND_SERVICE" ] else [ "" ];
        AmbientCapabilities = lib.mkIf (cfg.listenPort < 1024) [ "CAP_NET_BIND_SERVICE" ];
      };
    };
  };
}
