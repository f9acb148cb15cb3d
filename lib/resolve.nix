# The fleet resolver in pure Nix (builtins only: no nixpkgs, no `lib`), so that `nix eval` of a
# fleet works on a machine with nothing but Nix (SPEC §9).
#
# Input: a fleet description (release/schema.ts `FleetDescription`), as an attribute set, or a list
# of them (fleet files merged; a host or channel declared twice is an error).
# Output: `{ fleet; warnings; }` where `fleet` is the `fleet.resolved` value of SPEC §2.2 with
# `meta.signedAt = null`. `builtins.toJSON fleet`, canonicalised with JCS, is byte-identical to what
# `nixfleet-release resolve` writes for the same description (checked by nix-tests/mkfleet.test.ts).
#
# Every invariant of SPEC §3.1 is an evaluation error (`throw`) whose message starts with
# "nixfleet.mkFleet: "; a selector that matches nothing is a warning. The rules and their order
# mirror release/resolve.ts: when you change one, change the other (the golden and negative
# fixtures under fixtures/fleets/ hold both to the same behaviour).
desc:
let
  b = builtins;

  fail = msg: throw "nixfleet.mkFleet: ${msg}";
  firstError = errs: if errs == [ ] then null else b.head errs;
  throwFirst = errs: value: let e = firstError errs; in if e == null then value else fail e;

  optional = cond: x: if cond then [ x ] else [ ];
  optionalAttrs = cond: set: if cond then set else { };
  concatMap = f: xs: b.concatLists (map f xs);
  showList = xs: b.concatStringsSep ", " xs;
  show = v: if b.isString v then "\"${v}\"" else b.toJSON v;

  # --- shapes ------------------------------------------------------------------------------------

  typeName = v: if b.isInt v || b.isFloat v then "number" else if b.isAttrs v then "object" else if b.isList v then "array" else b.typeOf v;
  isInteger = b.isInt;
  isNat = v: b.isInt v && v >= 0;
  isStringList = v: b.isList v && b.all b.isString v;

  # Errors of one field: `req path set name pred what` (required) / `opt` (may be absent).
  fieldErr = path: set: name: pred: what:
    optional (!(pred set.${name})) "${path}.${name}: expected ${what}, got ${typeName set.${name}}";
  req = path: set: name: pred: what:
    if !(set ? ${name}) then [ "${path}.${name}: required" ] else fieldErr path set name pred what;
  opt = path: set: name: pred: what: if set ? ${name} then fieldErr path set name pred what else [ ];
  oneOf = values: v: b.isString v && b.elem v values;

  strategies = [ "canary" "staged" "all-at-once" ];
  onHealthFailures = [ "halt" "rollback-and-halt" ];
  complianceModes = [ "disabled" "permissive" "enforce" ];
  # release/schema.ts KNOWN_FRAMEWORKS
  knownFrameworks = [ "anssi-bp028" "bsi-grundschutz" "cis" "dora" "hipaa" "iso27001" "nis2" "pci-dss" "soc2" ];

  selectorErrors = path: s:
    if !(b.isAttrs s) then [ "${path}: expected an object, got ${typeName s}" ]
    else
      opt path s "all" b.isBool "a boolean"
      ++ opt path s "hosts" isStringList "an array of strings"
      ++ opt path s "tags" isStringList "an array of strings"
      ++ opt path s "tagsAny" isStringList "an array of strings"
      ++ opt path s "channel" (v: v == null || b.isString v) "a string or null"
      ++ (if s ? and then
            (if b.isList s.and then concatMap (i: selectorErrors "${path}.and[${toString i}]" (b.elemAt s.and i)) (b.genList (i: i) (b.length s.and))
             else [ "${path}.and: expected an array, got ${typeName s.and}" ])
          else [ ])
      ++ (if s ? not then selectorErrors "${path}.not" s.not else [ ]);

  indexed = xs: b.genList (i: { inherit i; v = b.elemAt xs i; }) (b.length xs);

  hostErrors = path: h:
    if !(b.isAttrs h) then [ "${path}: expected an object, got ${typeName h}" ]
    else
      req path h "system" b.isString "a string"
      ++ opt path h "tags" isStringList "an array of strings"
      ++ opt path h "pubkey" (v: v == null || b.isString v) "a string or null"
      ++ opt path h "closureHash" (v: v == null || b.isString v) "a string or null"
      ++ opt path h "leaving" b.isBool "a boolean"
      # A missing channel is an invariant of its own (SPEC §3.1), checked after the shapes.
      ++ opt path h "channel" (v: v == null || b.isString v) "a string";

  channelErrors = path: c:
    if !(b.isAttrs c) then [ "${path}: expected an object, got ${typeName c}" ]
    else
      req path c "rolloutPolicy" b.isString "a string"
      ++ opt path c "freshnessWindow" isNat "a non-negative integer"
      ++ opt path c "signingIntervalMinutes" isNat "a non-negative integer"
      ++ opt path c "reconcileIntervalMinutes" isNat "a non-negative integer"
      ++ (if c ? compliance then
            (if !(b.isAttrs c.compliance) then [ "${path}.compliance: expected an object, got ${typeName c.compliance}" ]
             else opt "${path}.compliance" c.compliance "frameworks" isStringList "an array of strings"
               ++ opt "${path}.compliance" c.compliance "mode" (oneOf complianceModes) "one of ${showList complianceModes}")
          else [ ]);

  policyErrors = path: p:
    if !(b.isAttrs p) then [ "${path}: expected an object, got ${typeName p}" ]
    else
      opt path p "strategy" (oneOf strategies) "one of ${showList strategies}"
      ++ opt path p "onHealthFailure" (oneOf onHealthFailures) "one of ${showList onHealthFailures}"
      ++ opt path p "healthGate" b.isAttrs "an object"
      ++ (if !(p ? waves) then [ "${path}.waves: required" ]
          else if !(b.isList p.waves) then [ "${path}.waves: expected an array, got ${typeName p.waves}" ]
          else concatMap ({ i, v }:
            let wp = "${path}.waves[${toString i}]"; in
            if !(b.isAttrs v) then [ "${wp}: expected an object, got ${typeName v}" ]
            else (if v ? selector then selectorErrors "${wp}.selector" v.selector else [ "${wp}.selector: required" ])
              ++ opt wp v "soakMinutes" isNat "a non-negative integer") (indexed p.waves));

  listErrors = path: xs: itemErrors:
    if !(b.isList xs) then [ "${path}: expected an array, got ${typeName xs}" ]
    else concatMap ({ i, v }: let ip = "${path}[${toString i}]"; in
      if b.isAttrs v then itemErrors ip v else [ "${ip}: expected an object, got ${typeName v}" ]) (indexed xs);

  edgeErrors = p: e: req p e "gated" b.isString "a string" ++ req p e "gates" b.isString "a string"
    ++ opt p e "reason" (v: v == null || b.isString v) "a string or null";
  budgetErrors = p: d:
    (if d ? selector then selectorErrors "${p}.selector" d.selector else [ "${p}.selector: required" ])
    ++ opt p d "maxInFlight" (v: v == null || isInteger v) "an integer or null"
    ++ opt p d "maxInFlightPct" (v: v == null || b.isInt v || b.isFloat v) "a number or null";
  pinErrors = p: x: req p x "host" b.isString "a string" ++ req p x "commit" b.isString "a string"
    ++ req p x "reason" b.isString "a string" ++ opt p x "expiresAt" b.isString "a string";

  descErrors = path: d:
    if !(b.isAttrs d) then [ "${path}: expected an object, got ${typeName d}" ]
    else
      (if !(d ? hosts) then [ "${path}hosts: required" ] else if !(b.isAttrs d.hosts) then [ "${path}hosts: expected an object" ]
       else concatMap (n: hostErrors "${path}hosts.${n}" d.hosts.${n}) (b.attrNames d.hosts))
      ++ (if !(d ? channels) then [ "${path}channels: required" ] else if !(b.isAttrs d.channels) then [ "${path}channels: expected an object" ]
       else concatMap (n: channelErrors "${path}channels.${n}" d.channels.${n}) (b.attrNames d.channels))
      ++ (if !(d ? rolloutPolicies) then [ "${path}rolloutPolicies: required" ] else if !(b.isAttrs d.rolloutPolicies) then [ "${path}rolloutPolicies: expected an object" ]
       else concatMap (n: policyErrors "${path}rolloutPolicies.${n}" d.rolloutPolicies.${n}) (b.attrNames d.rolloutPolicies))
      ++ (if d ? edges then listErrors "${path}edges" d.edges edgeErrors else [ ])
      ++ (if d ? channelEdges then listErrors "${path}channelEdges" d.channelEdges edgeErrors else [ ])
      ++ (if d ? disruptionBudgets then listErrors "${path}disruptionBudgets" d.disruptionBudgets budgetErrors else [ ])
      ++ (if d ? pins then listErrors "${path}pins" d.pins pinErrors else [ ]);

  # --- merge -------------------------------------------------------------------------------------

  descs = if b.isList desc then desc else [ desc ];
  shapeErrors =
    if b.isList desc then concatMap ({ i, v }: descErrors "[${toString i}]." v) (indexed desc)
    else descErrors "" desc;

  # Union of one map over every file; a name declared twice is an error (SPEC §3.1).
  mergeMaps = field: what:
    b.foldl' (acc: d:
      let
        m = d.${field};
        dup = b.filter (n: acc ? ${n}) (b.attrNames m);
      in
      if dup != [ ] then fail "duplicate ${what} ${show (b.head dup)} across merged fleet files" else acc // m) { } descs;
  concatField = field: concatMap (d: d.${field} or [ ]) descs;

  merged = throwFirst shapeErrors {
    hosts = mergeMaps "hosts" "host";
    channels = mergeMaps "channels" "channel";
    rolloutPolicies = mergeMaps "rolloutPolicies" "rollout policy";
    edges = concatField "edges";
    channelEdges = concatField "channelEdges";
    disruptionBudgets = concatField "disruptionBudgets";
    pins = concatField "pins";
  };

  # --- normalise (defaults of release/schema.ts) ---------------------------------------------------

  toSelector = s:
    {
      all = s.all or false;
      hosts = s.hosts or [ ];
      tags = s.tags or [ ];
      tagsAny = s.tagsAny or [ ];
      channel = s.channel or null;
    }
    // optionalAttrs (s ? and && s.and != null) { and = map toSelector s.and; }
    // optionalAttrs (s ? not && s.not != null) { not = toSelector s.not; };

  # SPEC §2.2 plus our `and` / `not` (release/schema.ts `Selector`).
  matches = sel: name: host:
    let
      baseSet = sel.all || sel.hosts != [ ] || sel.tags != [ ] || sel.tagsAny != [ ] || sel.channel != null;
      base =
        if baseSet then
          sel.all
          || b.elem name sel.hosts
          || (sel.channel != null && sel.channel == host.channel)
          || (sel.tags != [ ] && b.all (t: b.elem t host.tags) sel.tags)
          || b.any (t: b.elem t host.tags) sel.tagsAny
        else sel ? and || sel ? not;
    in
    base
    && b.all (s: matches s name host) (sel.and or [ ])
    && !(sel ? not && matches sel.not name host);

  pinsByHost = b.groupBy (p: p.host) merged.pins;

  hosts = b.mapAttrs (name: h:
    {
      system = h.system;
      tags = h.tags or [ ];
      channel = h.channel;
      closureHash = h.closureHash or null;
      pubkey = h.pubkey or null;
    }
    // optionalAttrs (pinsByHost ? ${name}) {
      pin = let p = b.head pinsByHost.${name}; in
        { inherit (p) commit reason; } // optionalAttrs (p ? expiresAt) { inherit (p) expiresAt; };
    }
    // optionalAttrs (h.leaving or false) { leaving = true; }) merged.hosts;

  channels = b.mapAttrs (_: c: {
    rolloutPolicy = c.rolloutPolicy;
    freshnessWindow = c.freshnessWindow or 180;
    signingIntervalMinutes = c.signingIntervalMinutes or 60;
    reconcileIntervalMinutes = c.reconcileIntervalMinutes or 30;
    compliance = {
      frameworks = (c.compliance or { }).frameworks or [ ];
      mode = (c.compliance or { }).mode or "disabled";
    };
  }) merged.channels;

  rolloutPolicies = b.mapAttrs (_: p: {
    strategy = p.strategy or "all-at-once";
    waves = map (w: { selector = toSelector w.selector; soakMinutes = w.soakMinutes or 0; }) p.waves;
    healthGate = p.healthGate or { };
    onHealthFailure = p.onHealthFailure or "halt";
  }) merged.rolloutPolicies;

  edges = map (e: { inherit (e) gated gates; reason = e.reason or null; }) merged.edges;
  channelEdges = map (e: { inherit (e) gates gated; reason = e.reason or null; }) merged.channelEdges;
  disruptionBudgets = map (d: {
    selector = toSelector d.selector;
    maxInFlight = d.maxInFlight or null;
    maxInFlightPct = d.maxInFlightPct or null;
  }) merged.disruptionBudgets;

  hostNames = b.attrNames hosts; # sorted
  channelNames = b.attrNames channels;

  # --- waves -------------------------------------------------------------------------------------

  # For each channel, the policy's waves in order; a host goes to the FIRST wave whose selector
  # matches it, a host no wave matches to the last wave; host lists sorted by name; empty waves kept.
  wavesOf = cname:
    let
      policy = rolloutPolicies.${channels.${cname}.rolloutPolicy};
      members = b.filter (n: hosts.${n}.channel == cname) hostNames;
      n = b.length policy.waves;
      firstMatch = name: i:
        if i >= n - 1 then n - 1
        else if matches (b.elemAt policy.waves i).selector name hosts.${name} then i
        else firstMatch name (i + 1);
      byWave = b.groupBy (name: toString (firstMatch name 0)) members;
    in
    b.genList (i: {
      hosts = byWave.${toString i} or [ ];
      soakMinutes = (b.elemAt policy.waves i).soakMinutes;
    }) n;

  # --- invariants (SPEC §3.1) --------------------------------------------------------------------

  # Names that can reach themselves through `succ` (a cycle), sorted.
  cyclic = nodes: succ:
    let
      reach = start: map (x: x.key) (b.genericClosure {
        startSet = map (k: { key = k; }) (succ start);
        operator = x: map (k: { key = k; }) (succ x.key);
      });
    in
    b.filter (n: b.elem n (reach n)) nodes;

  edgeSucc = list: from: to:
    let g = b.groupBy (e: e.${from}) list; in n: map (e: e.${to}) (g.${n} or [ ]);

  hostEdgeCycle = cyclic hostNames (edgeSucc edges "gates" "gated");
  channelEdgeCycle = cyclic channelNames (edgeSucc channelEdges "gates" "gated");

  invariantErrors =
    concatMap (n: optional (!(merged.hosts.${n} ? channel) || merged.hosts.${n}.channel == null)
      "host ${show n} has no channel") hostNames
    ++ concatMap (n: let c = merged.hosts.${n}.channel; in
      optional (!(channels ? ${c})) "host ${show n}: unknown channel ${show c}") (b.filter (n: merged.hosts.${n}.channel or null != null) hostNames)
    ++ concatMap (c: optional (!(rolloutPolicies ? ${channels.${c}.rolloutPolicy}))
      "channel ${show c}: unknown rollout policy ${show channels.${c}.rolloutPolicy}") channelNames
    ++ concatMap (c: let ch = channels.${c}; in optional (ch.freshnessWindow < 2 * ch.signingIntervalMinutes)
      "channel ${show c}: freshnessWindow (${toString ch.freshnessWindow} min) must be at least 2 × signingIntervalMinutes (${toString ch.signingIntervalMinutes} min)") channelNames
    ++ concatMap (c: map (f: "channel ${show c}: unknown compliance framework ${show f} (known: ${showList knownFrameworks})")
      (b.filter (f: !(b.elem f knownFrameworks)) channels.${c}.compliance.frameworks)) channelNames
    ++ concatMap (p: optional (rolloutPolicies.${p}.waves == [ ]) "rollout policy ${show p} has no waves") (b.attrNames rolloutPolicies)
    ++ concatMap (e: concatMap (end: optional (!(hosts ? ${e.${end}})) "edge ${show e.gates} -> ${show e.gated}: unknown host ${show e.${end}}") [ "gates" "gated" ]) edges
    ++ concatMap (e: optional (hosts ? ${e.gates} && hosts ? ${e.gated} && hosts.${e.gates}.channel != hosts.${e.gated}.channel)
      "edge ${show e.gates} -> ${show e.gated} crosses channels (${show hosts.${e.gates}.channel} and ${show hosts.${e.gated}.channel}): host edges order hosts inside one channel") edges
    ++ optional (hostEdgeCycle != [ ]) "cycle in host edges through ${showList (map show hostEdgeCycle)}"
    ++ concatMap (e: concatMap (end: optional (!(channels ? ${e.${end}})) "channel edge ${show e.gates} -> ${show e.gated}: unknown channel ${show e.${end}}") [ "gates" "gated" ]) channelEdges
    ++ optional (channelEdgeCycle != [ ]) "cycle in channel edges through ${showList (map show channelEdgeCycle)}"
    ++ concatMap (p: optional (!(hosts ? ${p.host})) "pin for unknown host ${show p.host}") merged.pins
    ++ concatMap (n: optional (b.length pinsByHost.${n} > 1) "host ${show n} has ${toString (b.length pinsByHost.${n})} pins (at most one)") (b.attrNames pinsByHost)
    ++ concatMap ({ i, v }: optional (
        (v.maxInFlight != null && v.maxInFlight < 1) || (v.maxInFlightPct != null && v.maxInFlightPct <= 0))
      "disruptionBudgets[${toString i}] can never admit a host (maxInFlight ${show v.maxInFlight}, maxInFlightPct ${show v.maxInFlightPct})") (indexed disruptionBudgets);

  warnings =
    concatMap (c:
      let policy = rolloutPolicies.${channels.${c}.rolloutPolicy};
          members = b.filter (n: hosts.${n}.channel == c) hostNames; in
      concatMap ({ i, v }: optional (!(b.any (n: matches v.selector n hosts.${n}) members))
        "channel ${show c}: wave ${toString i} of rollout policy ${show channels.${c}.rolloutPolicy} matches no host") (indexed policy.waves)) channelNames
    ++ concatMap ({ i, v }: optional (!(b.any (n: matches v.selector n hosts.${n}) hostNames))
      "disruptionBudgets[${toString i}]: selector matches no host") (indexed disruptionBudgets);

  fleet = throwFirst invariantErrors {
    schemaVersion = 1;
    inherit hosts channels rolloutPolicies edges channelEdges disruptionBudgets;
    waves = b.listToAttrs (map (c: { name = c; value = wavesOf c; }) channelNames);
    meta = { schemaVersion = 1; signedAt = null; ciCommit = null; };
  };
in
{
  inherit fleet warnings;
}
