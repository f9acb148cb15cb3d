# `lib.nixfleetV1 = { mkFleet, mergeFleets }`: NixFleet v1 (the Rust project arcanesys/nixfleet)
# fleet definitions, taken as they are, to the same `fleet.resolved` value v1's own mkFleet gives
# (byte-identical after JCS), with the same failures (evaluation errors) for the same invalid
# fleets. Builtins only, like the rest of lib/ (SPEC §9): v1 declares its schema with the nixpkgs
# module system; here the subset it uses (str, int, bool, attrs, unspecified, enum, nullOr,
# listOf, attrsOf, submodule with defaults) is checked by a small interpreter of the same option
# declarations, so no nixpkgs is needed.
#
# What v1 does that our own mkFleet (./resolve.nix) does not, and every rule where the two differ,
# is listed in docs/migrating-from-nixfleet.md; rules that are the same live in ./rules.nix.
#
#   mkFleet definition          → definition with defaults // { resolved; revocations; bootstrapNonces; }
#   mergeFleets [ fragment … ]  → mkFleet of the merged fragments
#
# A definition is an attribute set (v1's fixtures and docs never use module functions or `imports`;
# those are refused with a clear message). Checks are eager: any failure throws as soon as
# `resolved` (or any attribute of the result) is evaluated, so `builtins.tryEval x.resolved` sees
# it, as v1's test harness expects.
let
  b = builtins;
  rules = import ./rules.nix;
  inherit (rules) optional optionalAttrs concatMap indexed unique;

  # ---------------------------------------------------------------------------------------------
  # Option types: the nixpkgs `types.*` v1 uses, as data. Descriptions are nixpkgs' own.
  # ---------------------------------------------------------------------------------------------

  leaf = desc: check: { kind = "leaf"; inherit desc check; };
  str = leaf "string" b.isString;
  int = leaf "signed integer" b.isInt;
  bool = leaf "boolean" b.isBool;
  attrs = leaf "attribute set" b.isAttrs;
  unspecified = leaf "unspecified value" (_: true); # never forces the value (host configurations)
  enum = vals: leaf "one of ${b.concatStringsSep ", " (map b.toJSON vals)}" (v: b.elem v vals);
  nullOr = elem: { kind = "nullOr"; inherit elem; desc = "null or ${elem.desc}"; };
  listOf = elem: { kind = "listOf"; inherit elem; desc = "list of ${elem.desc}"; };
  attrsOf = elem: { kind = "attrsOf"; inherit elem; desc = "attribute set of ${elem.desc}"; };
  submodule = options: { kind = "submodule"; inherit options; desc = "submodule"; };
  # An option: `opt type` is required, `optD type default` has a default.
  opt = type: { inherit type; };
  optD = type: default: { inherit type default; };

  # v1's schema (lib/mk-fleet.nix there): same options, same defaults, same required ones.
  selectorType = submodule {
    tags = optD (listOf str) [ ];
    tagsAny = optD (listOf str) [ ];
    hosts = optD (listOf str) [ ];
    channel = optD (nullOr str) null;
    all = optD bool false;
    and = optD (listOf selectorType) [ ];
    not = optD (nullOr selectorType) null;
  };
  pinType = submodule {
    commit = opt str;
    reason = opt str;
    expiresAt = optD (nullOr str) null;
  };
  hostType = submodule {
    system = opt str;
    configuration = opt unspecified;
    tags = optD (listOf str) [ ];
    channel = opt str;
    pubkey = optD (nullOr str) null;
    pin = optD (nullOr pinType) null;
  };
  tagType = submodule {
    description = optD str "";
    pin = optD (nullOr pinType) null;
  };
  waveType = submodule {
    selector = opt selectorType;
    soakMinutes = optD int 0;
  };
  policyType = submodule {
    strategy = opt (enum [ "canary" "all-at-once" "staged" ]);
    waves = optD (listOf waveType) [ ];
    healthGate = optD attrs { };
    onHealthFailure = optD (enum [ "halt" "rollback-and-halt" ]) "rollback-and-halt";
  };
  channelType = submodule {
    description = optD str "";
    pin = optD (nullOr pinType) null;
    rolloutPolicy = opt str;
    reconcileIntervalMinutes = optD int 30;
    signingIntervalMinutes = optD int 60;
    freshnessWindow = opt int;
    compliance = optD (submodule {
      mode = optD (enum [ "disabled" "permissive" "enforce" ]) "enforce";
      frameworks = optD (listOf str) [ ];
    }) { };
  };
  hostEdgeType = submodule {
    gated = opt str;
    gates = opt str;
    reason = optD str "";
  };
  channelEdgeType = submodule {
    gates = optD (nullOr str) null;
    gated = optD (nullOr str) null;
    before = optD (nullOr str) null; # deprecated alias of gates
    after = optD (nullOr str) null; # deprecated alias of gated
    reason = optD str "";
  };
  budgetType = submodule {
    selector = opt selectorType;
    maxInFlight = optD (nullOr int) null;
    maxInFlightPct = optD (nullOr int) null;
  };
  revocationType = submodule {
    hostname = opt str;
    notBefore = opt str;
    reason = optD (nullOr str) null;
    revokedBy = optD (nullOr str) null;
  };
  bootstrapNonceType = submodule {
    nonce = opt str;
    hostname = opt str;
    expiresAt = opt str;
    mintedAt = optD (nullOr str) null;
    mintedBy = optD (nullOr str) null;
  };
  # v1's default list of known compliance frameworks (a fleet may override it).
  v1Frameworks = [ "anssi-bp028" "nis2" "dora" "iso27001" ];
  fleetType = submodule {
    hosts = optD (attrsOf hostType) { };
    tags = optD (attrsOf tagType) { };
    channels = optD (attrsOf channelType) { };
    rolloutPolicies = optD (attrsOf policyType) { };
    edges = optD (listOf hostEdgeType) [ ];
    channelEdges = optD (listOf channelEdgeType) [ ];
    disruptionBudgets = optD (listOf budgetType) [ ];
    complianceFrameworks = optD (listOf str) v1Frameworks;
    revocations = optD (listOf revocationType) [ ];
    bootstrapNonces = optD (listOf bootstrapNonceType) [ ];
  };

  # Problems with a value of a type, as the module system words them, in declaration order.
  join = path: k: if path == "" then k else "${path}.${k}";
  wrongType = type: path: [ "A definition for option `${path}' is not of type `${type.desc}'." ];
  typeIssues = type: path: v:
    if type.kind == "leaf" then (if type.check v then [ ] else wrongType type path)
    else if type.kind == "nullOr" then (if v == null then [ ] else typeIssues type.elem path v)
    else if type.kind == "listOf" then
      (if !(b.isList v) then wrongType type path
       else concatMap ({ i, v }: typeIssues type.elem "${path}.[definition 1-entry ${toString (i + 1)}]" v) (indexed v))
    else if type.kind == "attrsOf" then
      (if !(b.isAttrs v) then wrongType type path
       else concatMap (k: typeIssues type.elem (join path k) v.${k}) (b.attrNames v))
    else # submodule
      (if !(b.isAttrs v) then wrongType type path
       else
         map (k: "The option `${join path k}' does not exist.") (b.filter (k: !(type.options ? ${k})) (b.attrNames v))
         ++ concatMap (k:
           let o = type.options.${k}; in
           if v ? ${k} then typeIssues o.type (join path k) v.${k}
           else optional (!(o ? default)) "The option `${join path k}' was accessed but has no value defined. Try setting the option.")
           (b.attrNames type.options));

  # The value with every default filled (only called on a value without issues).
  withDefaults = type: v:
    if type.kind == "leaf" then v
    else if type.kind == "nullOr" then (if v == null then null else withDefaults type.elem v)
    else if type.kind == "listOf" then map (withDefaults type.elem) v
    else if type.kind == "attrsOf" then b.mapAttrs (_: withDefaults type.elem) v
    # A default goes through its type too (a submodule's `{ }` gets the submodule's own defaults).
    else b.mapAttrs (k: o: withDefaults o.type (if v ? ${k} then v.${k} else o.default)) type.options;

  # lib.generators.toPretty {} (multi-line), for the evidence shown in static-compliance messages.
  keywords = [ "if" "then" "else" "assert" "with" "let" "in" "rec" "inherit" "or" ];
  nixName = n: if b.match "[a-zA-Z_][a-zA-Z0-9_'-]*" n != null && !(b.elem n keywords) then n else nixStr n;
  # Single-line form: toPretty escapes backslash, double quote and dollar-brace; a newline becomes \n.
  nixStr = s: "\"" + b.replaceStrings [ "\\" "\"" "\${" "\n" ] [ "\\\\" "\\\"" "\\\${" "\\n" ] s + "\"";
  pretty = indent: v:
    let ind = indent + "  "; in
    if b.isAttrs v then
      (if v == { } then "{ }" else "{" + b.concatStringsSep "" (map (n: "\n${ind}${nixName n} = ${pretty ind v.${n}};") (b.attrNames v)) + "\n${indent}}")
    else if b.isList v then
      (if v == [ ] then "[ ]" else "[" + b.concatStringsSep "" (map (x: "\n${ind}${pretty ind x}") v) + "\n${indent}]")
    else if b.isString v then nixStr v
    else if v == null then "null"
    else if b.isBool v then (if v then "true" else "false")
    else if b.isFunction v then "<function>"
    else toString v;

  # ---------------------------------------------------------------------------------------------
  # Selectors: v1 gives `not` precedence over `and`, and `and` over the base rules (a selector with
  # `not` set matches exactly the hosts its `not` does not match). Ours ANDs the three instead.
  # ---------------------------------------------------------------------------------------------

  matches = s: name: host:
    if s.not != null then !(matches s.not name host)
    else if s.and != [ ] then b.all (sub: matches sub name host) s.and
    else rules.baseMatches s name host;
  # Over every host of the fleet, whatever its channel, in name order (v1 resolveSelector).
  selectHosts = cfg: sel: b.filter (n: matches sel n cfg.hosts.${n}) (b.attrNames cfg.hosts);

  # Static compliance over each host's NixOS configuration: controls of type static or both whose
  # static evidence says passed = false.
  staticFailures = cfg: channelNames: withMode:
    concatMap (hostName:
      let
        host = cfg.hosts.${hostName};
        probes = host.configuration.config.compliance.evidence.probes or { };
        staticOrBoth = b.filter (p: b.elem (probes.${p}.type or "runtime") [ "static" "both" ]) (b.attrNames probes);
        failed = b.filter (p: let ev = probes.${p}.staticEvidence or null; in ev != null && (ev.passed or true) == false) staticOrBoth;
        evidence = p: pretty "" (probes.${p}.staticEvidence.evidence or { });
      in
      map (p:
        if withMode then "host '${hostName}' (channel '${host.channel}', ${cfg.channels.${host.channel}.compliance.mode}): static control '${p}' failed - ${evidence p}"
        else "[compliance:permissive] host '${hostName}' (channel '${host.channel}'): static control '${p}' failed - ${evidence p}") failed)
      (b.filter (n: b.elem cfg.hosts.${n}.channel channelNames) (b.attrNames cfg.hosts));

  channelsInMode = cfg: mode: b.filter (n: cfg.channels.${n}.compliance.mode == mode) (b.attrNames cfg.channels);

  pinnedTags = cfg: host: b.filter (t: cfg.tags ? ${t} && cfg.tags.${t}.pin != null) host.tags;

  normalizeChannelEdge = e: {
    gates = if e.gates != null then e.gates else e.before;
    gated = if e.gated != null then e.gated else e.after;
    inherit (e) reason;
  };

  # ---------------------------------------------------------------------------------------------
  # v1's invariants: every violation is collected, in v1's order and words, into one error.
  # ---------------------------------------------------------------------------------------------

  invariantErrors = cfg:
    let
      hostNames = b.attrNames cfg.hosts;
      channelNames = b.attrNames cfg.channels;
      isHost = n: cfg.hosts ? ${n};
      isChannel = n: cfg.channels ? ${n};
      channelEdges = map normalizeChannelEdge cfg.channelEdges;
      # Edges whose two ends are set (a missing end is a shape error of its own).
      wholeChannelEdges = b.filter (e: e.gates != null && e.gated != null) channelEdges;
      configurationOk = c:
        b.isAttrs c && c ? config && c.config ? system && c.config.system ? build && c.config.system.build ? toplevel;
    in
    concatMap (n: optional (!(isChannel cfg.hosts.${n}.channel)) "host '${n}' references unknown channel '${cfg.hosts.${n}.channel}'") hostNames
    ++ concatMap (n: optional (!(cfg.rolloutPolicies ? ${cfg.channels.${n}.rolloutPolicy}))
      "channel '${n}' references unknown rollout policy '${cfg.channels.${n}.rolloutPolicy}'") channelNames
    ++ concatMap (e:
      optional (!(isHost e.gated)) "edge.gated references unknown host '${e.gated}'"
      ++ optional (!(isHost e.gates)) "edge.gates references unknown host '${e.gates}'"
      ++ optional (isHost e.gated && isHost e.gates && rules.crossesChannels cfg.hosts e)
        "edge.gated '${e.gated}' (channel '${cfg.hosts.${e.gated}.channel}') and edge.gates '${e.gates}' (channel '${cfg.hosts.${e.gates}.channel}') are on different channels; use channelEdges for cross-channel ordering")
      cfg.edges
    ++ concatMap (e:
      optional (e.gates != null && e.before != null) "channelEdges entry sets both `gates` and `before` - pick one (canonical: `gates`)"
      ++ optional (e.gated != null && e.after != null) "channelEdges entry sets both `gated` and `after` - pick one (canonical: `gated`)"
      ++ optional (e.gates == null && e.before == null) "channelEdges entry must set `gates` (or legacy alias `before`)"
      ++ optional (e.gated == null && e.after == null) "channelEdges entry must set `gated` (or legacy alias `after`)")
      cfg.channelEdges
    ++ concatMap (e:
      optional (!(isChannel e.gates)) "channelEdges.gates references unknown channel '${e.gates}'"
      ++ optional (!(isChannel e.gated)) "channelEdges.gated references unknown channel '${e.gated}'"
      ++ optional (e.gates == e.gated) "channelEdges entry has gates == gated ('${e.gates}'); use a wave-staged policy for intra-channel ordering instead")
      wholeChannelEdges
    ++ concatMap (n: optional (!(configurationOk cfg.hosts.${n}.configuration))
      "host '${n}' configuration is not a valid nixosConfiguration (missing config.system.build.toplevel)") hostNames
    ++ concatMap (c: map (f: "channel '${c}' references unknown compliance framework '${f}'")
      (b.filter (f: !(b.elem f cfg.complianceFrameworks)) cfg.channels.${c}.compliance.frameworks)) channelNames
    ++ optional (rules.findCycle cfg.edges != null) "edges form a cycle; the DAG invariant is violated"
    ++ optional (rules.findCycle wholeChannelEdges != null) "channelEdges form a cycle; cross-channel ordering must be a DAG"
    ++ concatMap (c: let ch = cfg.channels.${c}; in optional (rules.freshnessTooShort ch)
      "channel '${c}': freshnessWindow (${toString ch.freshnessWindow}) must be ≥ 2 × signingIntervalMinutes (${toString ch.signingIntervalMinutes})") channelNames
    ++ staticFailures cfg (channelsInMode cfg "enforce") true
    ++ concatMap (n:
      let host = cfg.hosts.${n}; tags = pinnedTags cfg host; in
      optional (host.pin == null && b.length tags > 1)
        "host '${n}' is in multiple tags with pins (${b.concatStringsSep ", " tags}) - disambiguate by lifting one of these pins to a host-level declaration on '${n}', or removing the pin from one of the tags")
      hostNames;

  warningsOf = cfg:
    concatMap (p: concatMap (w: optional (selectHosts cfg w.selector == [ ])
      "rollout policy '${p}' has a wave with a selector that resolves to zero hosts") cfg.rolloutPolicies.${p}.waves) (b.attrNames cfg.rolloutPolicies)
    ++ concatMap (d:
      let
        n = b.length (selectHosts cfg d.selector);
        pctMax = let x = n * d.maxInFlightPct / 100; in if x < 1 then 1 else x;
        effectiveMax = if d.maxInFlight != null then d.maxInFlight else if d.maxInFlightPct != null then pctMax else n;
      in
      optional (n >= 10 && effectiveMax == 1) "disruption budget with maxInFlight=1 on ${toString n} hosts will take long to complete") cfg.disruptionBudgets
    ++ staticFailures cfg (channelsInMode cfg "permissive") false;

  # Pin precedence: the host's own, else the first of its tags (in the host's order) with a pin,
  # else its channel's. Two pinned tags without a host pin is an invariant violation above.
  pinOf = cfg: host:
    let tags = pinnedTags cfg host; in
    if host.pin != null then host.pin
    else if tags != [ ] then cfg.tags.${b.head tags}.pin
    else cfg.channels.${host.channel}.pin;

  resolve = cfg:
    let
      errs = invariantErrors cfg;
      resolved = {
        schemaVersion = 1;
        # signatureAlgorithm is absent until signing (absent means ed25519), as in our mkFleet.
        meta = { schemaVersion = 1; signedAt = null; ciCommit = null; };
        hosts = b.mapAttrs (_: h:
          let pin = pinOf cfg h; in
          { inherit (h) system tags channel pubkey; closureHash = null; } // optionalAttrs (pin != null) { inherit pin; })
          cfg.hosts;
        channels = b.mapAttrs (_: c: { inherit (c) rolloutPolicy reconcileIntervalMinutes signingIntervalMinutes freshnessWindow compliance; }) cfg.channels;
        inherit (cfg) rolloutPolicies edges;
        waves = b.mapAttrs (_: c: map (w: { hosts = selectHosts cfg w.selector; inherit (w) soakMinutes; }) cfg.rolloutPolicies.${c.rolloutPolicy}.waves) cfg.channels;
        channelEdges = map normalizeChannelEdge cfg.channelEdges;
        disruptionBudgets = map (d: { inherit (d) selector maxInFlight maxInFlightPct; }) cfg.disruptionBudgets;
      };
    in
    if errs != [ ] then throw ("nixfleet invariant violations:\n  - " + b.concatStringsSep "\n  - " errs)
    else b.foldl' (acc: w: b.trace "warning: ${w}" acc) resolved (warningsOf cfg);

  mkFleet = input:
    let
      issues =
        if !(b.isAttrs input) then [ "nixfleetV1.mkFleet: a fleet definition must be an attribute set (module functions are not supported)" ]
        else typeIssues fleetType "" input;
      cfg = withDefaults fleetType input;
    in
    if issues != [ ] then throw (b.head issues)
    else cfg // { resolved = resolve cfg; };

  # Fragments: hosts, tags and channels must not collide; a later rollout policy replaces an earlier
  # one of the same name; edges, channel edges and budgets concatenate; complianceFrameworks are the
  # union (when any fragment sets them). Other attributes of a fragment are not carried over (v1).
  mergeFleets = fragments:
    let
      field = i: input: name: default:
        let v = input.${name} or default; in
        if b.typeOf v == b.typeOf default then v
        else throw "mergeFleets: `${name}' of fleet fragment ${toString (i + 1)} must be ${if b.isList default then "a list" else "an attribute set"}";
      mergeStrict = kind: acc: new:
        let clash = rules.collisions acc new; in
        if clash != [ ] then throw "mergeFleets: ${kind} '${b.head clash}' is defined in multiple inputs" else acc // new;
      step = acc: { i, v }:
        if !(b.isAttrs v) then throw "mergeFleets: fleet fragment ${toString (i + 1)} must be an attribute set"
        else
          let
            hosts = mergeStrict "host" acc.hosts (field i v "hosts" { });
            tags = mergeStrict "tag" acc.tags (field i v "tags" { });
            channels = mergeStrict "channel" acc.channels (field i v "channels" { });
          in
          # Checked in this order, so that a clash of hosts is reported before one of channels.
          b.seq hosts (b.seq tags (b.seq channels {
          inherit hosts tags channels;
          rolloutPolicies = acc.rolloutPolicies // field i v "rolloutPolicies" { };
          edges = acc.edges ++ field i v "edges" [ ];
          channelEdges = acc.channelEdges ++ field i v "channelEdges" [ ];
          disruptionBudgets = acc.disruptionBudgets ++ field i v "disruptionBudgets" [ ];
        }));
      empty = { hosts = { }; tags = { }; channels = { }; rolloutPolicies = { }; edges = [ ]; channelEdges = [ ]; disruptionBudgets = [ ]; };
      merged = b.foldl' step empty (indexed fragments);
      frameworks = concatMap ({ i, v }: field i v "complianceFrameworks" [ ]) (indexed fragments);
    in
    if !(b.isList fragments) then throw "mergeFleets: expects a list of fleet fragments"
    else mkFleet (merged // optionalAttrs (frameworks != [ ]) { complianceFrameworks = unique frameworks; });
in
{
  inherit mkFleet mergeFleets;
}
