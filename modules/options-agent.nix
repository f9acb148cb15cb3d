# Option specs of `services.nixfleet-agent` (plain data, builtins only), shared by the NixOS module
# (./agent.nix) and the nix-darwin module (./darwin-agent.nix).
#
# `settings` mirrors agent/config.ts key for key (same names, same defaults): the module writes
# them to the JSON file given to `nixfleet-agent run --config`. nix-tests/options.test.ts fails
# when a config key has no option here or an option here is not a config key, and docs/nixos.md
# is generated from this file (`npx tsx nix-tests/nixos-doc.ts --write`).
# `moduleDefault` marks the few defaults that depend on the host and are set by the module itself.
# `service` holds the options that only the module has.
# Type tags: see ./lib.nix.
{
  service = {
    enable = {
      type = "bool";
      default = true;
      description = ''
        Run the nixfleet agent. On by default: importing this module makes the host a fleet member,
        and a fleet member whose configuration disables its agent is refused at build time (the
        agent guard), because deploying it would cut the host off from the control plane.
      '';
    };
    leaving = {
      type = "bool";
      default = false;
      description = ''
        The host is deliberately leaving the fleet: allows `enable = false`. Mark the host
        `leaving = true` in the fleet description too, or the running agent refuses the closure.
      '';
    };
    package = {
      type = "package";
      defaultText = "nixfleet.packages.\${system}.nixfleet-agent";
      description = "The nixfleet-agent package.";
    };
  };

  settings = {
    hostname = {
      type = "str";
      moduleDefault = true;
      defaultText = "config.networking.hostName";
      example = "web1";
      description = "Must equal the CN of the host certificate and the host's name in the signed fleet.";
    };
    cpUrl = {
      type = "str";
      example = "https://fleet.example.org:8443";
      description = "Base URL of the control plane (`https://`; plain `http://` only with `allowPlainHttp`).";
    };
    cpUrls = {
      type = { listOf = "str"; };
      default = [ ];
      example = [ "https://fleet2.example.org:8443" ];
      description = "Further control plane replicas (several CPs on one PostgreSQL), tried in order after cpUrl when the current one is unreachable or answers 502/503/504; the agent stays with the one that answers. Empty: cpUrl only (or a load balancer in front of the replicas).";
    };
    allowPlainHttp = {
      type = "bool";
      default = false;
      description = "Allow an `http://` cpUrl (tests only: the agent then has no mutual TLS).";
    };
    tls = {
      description = "Mutual-TLS material of the host.";
      options = {
        certFile = {
          type = "path";
          example = "/var/lib/nixfleet-pki/host.crt";
          description = "PEM host certificate (CN = hostname, OU host), issued by the fleet CA.";
        };
        keyFile = {
          type = "path";
          example = "/var/lib/nixfleet-pki/host.key";
          description = "PEM private key of the host certificate (keep it root-only; never a Nix path literal).";
        };
        caFile = {
          type = "path";
          example = "/etc/nixfleet/fleet-ca.crt";
          description = "PEM fleet CA certificate the control plane's server certificate must chain to.";
        };
      };
    };
    trustFile = {
      type = "path";
      default = "/etc/nixfleet/trust.json";
      description = "trust.json (SPEC §2.3): release keys and Nix cache keys. Re-read on change.";
    };
    hostKeyFile = {
      type = { nullOr = "path"; };
      default = "/etc/ssh/ssh_host_ed25519_key";
      description = "Ed25519 key (OpenSSH or PKCS#8 PEM) that signs the host's reports; null: reports are unsigned.";
    };
    enrol = {
      type = { nullOr = "json"; };
      default = null;
      example = { url = "https://cp.example.org:8444"; };
      description = ''
        Issue 16: `{ url; tokenFile ? null; renewAtFraction ? 0.5; }`. With no certificate in `tls.certFile`,
        the agent enrols at the control plane's enrolment listener `url` with a new ECDSA P-256 key, proving
        itself with its SSH host key (`hostKeyFile`, declared in the signed fleet) or a one-time bootstrap
        token (`tokenFile`, from `nixfleet enroll token`; removed after use), and renews before expiry.
        `tls.certFile` and `tls.keyFile` must then be writable by the agent (e.g. under `stateDir`).
        null: the certificate is managed by hand.
      '';
    };
    stateDir = {
      type = "path";
      default = "/var/lib/nixfleet";
      description = "State (last accepted artefact, last confirmed target, quarantine, pending activation). On NixOS it must be under /var/lib (systemd StateDirectory).";
    };
    profilePath = {
      type = "path";
      default = "/nix/var/nix/profiles/system";
      description = "System profile the agent sets before switching.";
    };
    currentSystemPath = {
      type = "path";
      default = "/run/current-system";
      description = "The running system.";
    };
    bootedSystemPath = {
      type = "path";
      default = "/run/booted-system";
      description = "The booted system (switch inhibitors compare kernel, initrd, systemd and dbus with it).";
    };
    bootIdFile = {
      type = "path";
      default = "/proc/sys/kernel/random/boot_id";
      description = "Where the id of the current boot is read: a new boot after an activation deferred to the next boot is told apart by it (a host that boots back into its old system is rolled back and Reverted).";
    };
    rebootCommand = {
      type = { listOf = "str"; };
      moduleDefault = true;
      defaultText = "[ \"/run/current-system/sw/bin/systemctl\" \"reboot\" ] (NixOS) or [ \"/sbin/shutdown\" \"-r\" \"now\" ] (nix-darwin)";
      example = [ "/run/current-system/sw/bin/systemctl" "reboot" ];
      description = "argv (no shell) the agent runs to reboot into an activation deferred to the next boot, when the channel's signed rebootPolicy is automatic (only for a target that passed the channel's change window; the host holds its disruption-budget slot while PendingReboot).";
    };
    platform = {
      type = { enum = [ "nixos" "darwin" ]; };
      moduleDefault = true;
      defaultText = "\"nixos\" (NixOS module) or \"darwin\" (nix-darwin module)";
      example = "nixos";
      description = "How to activate: switch-to-configuration (NixOS) or activate (nix-darwin).";
    };
    substituters = {
      type = { listOf = "str"; };
      default = [ ];
      description = "Binary caches to realise closures from; empty: Nix's configured substituters. Signatures are checked against trust.json cacheKeys.";
    };
    nixBinDir = {
      type = { nullOr = "path"; };
      default = null;
      description = "Directory holding nix-store / nix-env; null: PATH (the module puts the system's Nix on the unit's PATH).";
    };
    agentServicePaths = {
      type = { listOf = "str"; };
      moduleDefault = true;
      defaultText = "[ \"etc/systemd/system/nixfleet-agent.service\" ] (NixOS) or [ \"Library/LaunchDaemons/org.nixfleet.agent.plist\" ] (nix-darwin)";
      example = [ "etc/systemd/system/nixfleet-agent.service" ];
      description = "Paths inside a system closure that prove it contains the agent's own service (the run-time agent guard).";
    };
    pollIntervalSecs = {
      type = "number";
      default = 60;
      description = "Seconds between check-ins (the control plane's nextCheckinSecs takes precedence).";
    };
    pollJitterPct = {
      type = "ints.unsigned";
      default = 20;
      description = "± percentage of random jitter on every poll interval (0–50).";
    };
    maxBackoffFactor = {
      type = "ints.positive";
      default = 8;
      description = "Exponential backoff on errors, capped at this multiple of the poll interval.";
    };
    confirmDeadlineSecs = {
      type = "number";
      default = 120;
      description = "The agent's own cap on the confirm window from the start of the switch (the control plane's deadline also applies).";
    };
    retryIntervalSecs = {
      type = "number";
      default = 5;
      description = "Pause between two probe / confirm attempts inside the confirm window.";
    };
    quarantineHours = {
      type = "number";
      default = 24;
      description = "A closure that failed here is refused for this long.";
    };
    requestTimeoutSecs = {
      type = "number";
      default = 30;
      description = "Timeout of one request to the control plane.";
    };
    commandTimeoutSecs = {
      type = "number";
      default = 1800;
      description = "Nix realise and switch scripts are killed after this.";
    };
    maxArtifactBytes = {
      type = "ints.positive";
      default = 16777216;
      description = "Largest artefact accepted (checked before parsing).";
    };
    complianceIntervalSecs = {
      type = "number";
      default = 21600;
      description = "How often the runtime compliance checks of the channel's frameworks run, besides after each activation (before its confirm).";
    };
    complianceRoot = {
      type = "str";
      default = "/";
      description = "The root the file and world-writable compliance checks read under (/ on a host).";
    };
    probes = {
      type = { listOf = "json"; };
      default = [ ];
      example = [
        { name = "failed-units"; kind = "systemd-failed-units"; ignore = [ ]; }
        { name = "web"; kind = "http"; url = "http://127.0.0.1:80/healthz"; expectStatus = 200; intervalSecs = 30; timeoutSecs = 5; }
      ];
      description = ''
        Local health probes, run before every confirm and periodically for check-ins. Each is
        `{ name; kind; intervalSecs ? 30; timeoutSecs ? 10; … }` with kind `systemd-failed-units`
        (`ignore`), `http` (`url`, `expectStatus`), `tcp` (`host`, `port`) or `exec` (`command`, an argv list).
      '';
    };
    logLevel = {
      type = { enum = [ "debug" "info" "warn" "error" ]; };
      default = "info";
      description = "Least severe log level written to the journal (one JSON object per line; event names in docs/operations.md).";
    };
    metricsFile = {
      type = { nullOr = "path"; };
      default = null;
      example = "/var/lib/prometheus-node-exporter-text-files/nixfleet.prom";
      description = "Prometheus text file the agent rewrites after every cycle, for node_exporter's textfile collector; null: none.";
    };
  };
}
