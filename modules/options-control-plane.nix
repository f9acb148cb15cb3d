# Option specs of `services.nixfleet-control-plane` (plain data, builtins only).
#
# `settings` mirrors control-plane/config.ts key for key (same names, same defaults): the module
# writes them to the JSON file given to `nixfleet-control-plane --config`. nix-tests/options.test.ts
# fails when a config key has no option here or an option here is not a config key, and
# docs/nixos.md is generated from this file (`npx tsx nix-tests/nixos-doc.ts --write`).
# `service` holds the options that only the module has (unit, firewall, package).
# Type tags: see ./lib.nix.
{
  service = {
    enable = {
      type = "bool";
      default = false;
      description = "Run the nixfleet control plane (a keyless caching router for signed intent, SPEC §5).";
    };
    package = {
      type = "package";
      defaultText = "nixfleet.packages.\${system}.nixfleet-control-plane";
      description = "The nixfleet-control-plane package.";
    };
    openFirewall = {
      type = "bool";
      default = false;
      description = "Open `listenPort` in the firewall.";
    };
  };

  settings = {
    listenHost = {
      type = "str";
      default = "127.0.0.1";
      description = "Address the HTTPS (mutual TLS) server listens on.";
    };
    listenPort = {
      type = "port";
      default = 8443;
      description = "TCP port of the HTTPS server. Below 1024 the unit gets CAP_NET_BIND_SERVICE and nothing else.";
    };
    tlsCertFile = {
      type = "path";
      example = "/run/secrets/nixfleet-cp/server.crt";
      description = "PEM server certificate (not a CA certificate). Must be readable by the service's dynamic user (public material).";
    };
    tlsKeyFile = {
      type = "path";
      example = "/run/secrets/nixfleet-cp/server.key";
      description = "PEM server private key: the only private key the control plane may hold. Passed through systemd `LoadCredential`, so it may stay root-only (mode 0400).";
    };
    clientCaFile = {
      type = "path";
      example = "/etc/nixfleet/fleet-ca.crt";
      description = "PEM fleet CA certificate(s) that client certificates (hosts, operators) must chain to. Certificate only: the CA key never goes to the control plane.";
    };
    trustFile = {
      type = "path";
      example = "/etc/nixfleet/trust.json";
      description = "trust.json (SPEC §2.3): the release public keys. Re-read on change.";
    };
    source = {
      type = "json";
      example = { type = "url"; fleetUrl = "https://git.example.org/ops/fleet/raw/main/releases/fleet.resolved.json"; };
      description = ''
        Where the signed release files come from (SPEC §2.4), one of
        `{ type = "dir"; dir = "/path"; }`,
        `{ type = "url"; fleetUrl; fleetSigUrl?; revocationsUrl?; revocationsSigUrl?; caFile?; }` (HTTP(S), ETag polling) or
        `{ type = "git"; remote; ref ? "main"; path ? "releases"; }`.
      '';
    };
    revocations = {
      type = "bool";
      default = false;
      description = "Require a signed revocations.json before becoming ready, and enforce it.";
    };
    dbPath = {
      type = "path";
      default = "/var/lib/nixfleet-control-plane/state.db";
      description = "SQLite database (WAL). The default lives in the unit's StateDirectory; the control plane can be rebuilt from an empty one.";
    };
    store = {
      type = { nullOr = "json"; };
      default = null;
      example = { postgres = { host = "/run/postgresql"; database = "nixfleet"; user = "nixfleet-control-plane"; }; };
      description = ''
        The store. null: SQLite at `dbPath` (one control plane). Several control plane replicas share
        a PostgreSQL database: `{ postgres = { url = "postgres://user@db/nixfleet"; passwordFile = "/run/secrets/pg"; }; }` or
        `{ postgres = { host; port ? 5432; database; user; passwordFile?; tls? = { caFile?; certFile?; keyFile?; }; poolSize ? 10; }; }`.
        The password only ever comes from `passwordFile`. With a local server, for example:
        `services.postgresql = { enable = true; ensureDatabases = [ "nixfleet" ]; ensureUsers = [ { name = "nixfleet-control-plane"; } ]; };`
        and a unix-socket connection as above (peer authentication; give the database to that user).
        One replica leads (reconcile loop, confirm deadlines) through a lease in the database; see `leaseSecs`.
      '';
    };
    enrolment = {
      type = { nullOr = "json"; };
      default = null;
      example = { issuerCertFile = "/etc/nixfleet/issuance.pem"; issuerKeyFile = "/run/secrets/issuance.key"; listenPort = 8444; usedTokensFile = "/var/lib/nixfleet-control-plane/used-tokens.json"; };
      description = ''
        Issue 16: `{ issuerCertFile; issuerKeyFile; listenHost?; listenPort; certValiditySecs ? 2592000; usedTokensFile; maxTokenTtlSecs ? 86400; refusalAuditWindowSecs ? 60; }`.
        Hosts enrol (SSH host key declared in the signed fleet, or a bootstrap token) and renew their certificates,
        issued by the host-issuance intermediate (`nixfleet pki init-issuance`), which can only issue OU=host client
        certificates; the fleet root CA key is refused. `usedTokensFile` keeps used tokens outside the database.
        null: no enrolment.
      '';
    };
    clientIssuers = {
      type = { nullOr = "json"; };
      default = null;
      description = "Issue 16: `{ host = [ PEM files ]; operator = [ PEM files ]; }`: a client certificate must be issued directly by one of its role's issuers. null: operators the certificates of clientCaFile; hosts those and the enrolment issuer.";
    };
    leaseSecs = {
      type = "ints.positive";
      default = 10;
      description = "Replicas on PostgreSQL: the leader lease. The leader renews it every leaseSecs/3; when it dies another replica takes over within leaseSecs + leaseSecs/3 (and a paused leader is fenced off).";
    };
    retentionDays = {
      type = "ints.unsigned";
      default = 90;
      description = "Reports and signed evidence, finished rollouts (not the newest of a channel) with their controls, audit entries and witnessed audit heads older than this are pruned by the leader; the audit chain keeps its anchor (the first kept entry chains to it). 0 keeps everything.";
    };
    retentionIntervalSecs = {
      type = "ints.positive";
      default = 3600;
      description = "How often the leader prunes (retentionDays).";
    };
    cacheDir = {
      type = { nullOr = "path"; };
      default = null;
      description = "Where the git source keeps its clone; null means `<dbPath>.git-cache`.";
    };
    pollIntervalSecs = {
      type = "ints.positive";
      default = 60;
      description = "Seconds between polls of the artefact source.";
    };
    reconcileIntervalSecs = {
      type = "ints.positive";
      default = 10;
      description = "Seconds between reconcile ticks (check-ins also trigger one).";
    };
    reconcileDebounceMs = {
      type = "ints.unsigned";
      default = 1000;
      description = "Coalescing delay, in milliseconds, for the reconciles that check-ins request.";
    };
    confirmDeadlineSecs = {
      type = "ints.positive";
      default = 120;
      description = "Seconds from dispatch within which a host must confirm, else it is Reverted for that rollout.";
    };
    agentPollIntervalSecs = {
      type = "ints.positive";
      default = 60;
      description = "`nextCheckinSecs` sent to agents.";
    };
    keepAliveSecs = {
      type = "ints.positive";
      default = 10;
      description = "Seconds an idle agent connection is kept open. Shorter than the agents' poll interval (60 s), so that the control plane does not hold one idle mTLS connection per host (about 45 KiB of native memory each); a poll then reconnects, usually with a resumed TLS session.";
    };
    offlineAfterSecs = {
      type = "ints.positive";
      default = 180;
      description = "A host not seen for this long is offline (SPEC §4).";
    };
    complianceStaleAfterSecs = {
      type = "ints.positive";
      default = 86400;
      description = "Compliance evidence older than this shows as stale in the compliance view.";
    };
    quietCheckins = {
      type = "bool";
      default = true;
      description = "A check-in that changes nothing the CP decides on is answered without a new decision; its check-in time is written in batches (at most 2 s later). false: every check-in is decided and written before its answer. A store shared by replicas always decides in full.";
    };
    offlineGraceSecs = {
      type = "ints.unsigned";
      default = 1800;
      description = "Offline hosts stop blocking their wave after this grace.";
    };
    maxBodyBytes = {
      type = "ints.positive";
      default = 65536;
      description = "Largest request body accepted.";
    };
    maxArtifactBytes = {
      type = "ints.positive";
      default = 16777216;
      description = "Largest artefact accepted from the source (checked before parsing).";
    };
    retryAfterSecs = {
      type = "ints.positive";
      default = 5;
      description = "`Retry-After` sent with 503 while not ready.";
    };
    fetchTimeoutMs = {
      type = "ints.positive";
      default = 30000;
      description = "Per-fetch timeout, in milliseconds, for URL and git sources.";
    };
    logLevel = {
      type = { enum = [ "debug" "info" "warn" "error" ]; };
      default = "info";
      description = "Least severe log level written to the journal (one JSON object per line; event names in docs/operations.md).";
    };
    metricsListen = {
      type = { nullOr = "json"; };
      default = null;
      example = { host = "127.0.0.1"; port = 9469; };
      description = ''
        A second, plain-HTTP listener serving only `/healthz`, `/readyz` and `/metrics`, for
        Prometheus and load balancers that hold no fleet certificate: `{ host ? "127.0.0.1"; port; }`.
        null: none (`/metrics` is then only served over mutual TLS).
      '';
    };
    reportQuotaPerHour = {
      type = "ints.positive";
      default = 120;
      description = "Reports stored per host per rolling hour; more are refused with 429 REPORT_QUOTA (counted, audited once per burst).";
    };
  };
}
