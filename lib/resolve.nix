# The fleet resolver in pure Nix (builtins only: no nixpkgs, no `lib`), so that `nix eval` of a
# fleet works on a machine with nothing but Nix (SPEC §9).
#
# Input: a fleet description (release/schema.ts `FleetDescription`) as an attribute set, or a list
# of them (fleet files, merged).
# Output: `{ fleet; warnings; }`: `fleet` is the `fleet.resolved` value of SPEC §2.2 with
# `meta.signedAt = null`; `builtins.toJSON fleet`, canonicalised with JCS, is byte-identical to
# what `nixfleet-release resolve` writes for the same description (nix-tests/mkfleet.test.ts holds
# the two to the golden and negative fixtures under fixtures/fleets/).
#
# The rules, defaults, check order, codes and messages are those of release/README.md
# ("Fleet description → fleet.resolved.json") and release/resolve.ts; the shape check mirrors
# `parseFleetDescription` in release/schema.ts (same paths, same messages). The first failing check
# is an evaluation error: `throw "nixfleet.mkFleet: <CODE>: <message>"`.
desc:
let
  b = builtins;

  fail = code: msg: throw "nixfleet.mkFleet: ${code}: ${msg}";
  optional = cond: x: if cond then [ x ] else [ ];
  optionalAttrs = cond: set: if cond then set else { };
  concatMap = f: xs: b.concatLists (map f xs);
  indexed = xs: b.genList (i: { inherit i; v = b.elemAt xs i; }) (b.length xs);
  isObj = b.isAttrs;

  # ---------------------------------------------------------------------------------------------
  # Shape (release/schema.ts parseFleetDescription): lists of { path; message; } in its order.
  # ---------------------------------------------------------------------------------------------

  # JS `/^[A-Za-z_$][\w$-]*$/` (\w is ASCII) decides between `.key` and `["key"]`.
  fieldPath = path: k: if b.match "[A-Za-z_$][A-Za-z0-9_$-]*" k != null then "${path}.${k}" else "${path}[${b.toJSON k}]";
  issue = path: message: [ { inherit path message; } ];

  maxSafe = 9007199254740991;
  str = o: k: path: nonEmpty:
    if !(b.isString (o.${k} or null)) then issue (fieldPath path k) (if o ? ${k} then "must be a string" else "is required")
    else optional (nonEmpty && o.${k} == "") { path = fieldPath path k; message = "must not be empty"; };
  nullableStr = o: k: path:
    optional (o ? ${k} && o.${k} != null && !(b.isString o.${k})) { path = fieldPath path k; message = "must be a string or null"; };
  int = o: k: path: min: max:
    let v = o.${k} or null; in
    if !(b.isInt v) || v > maxSafe || v < -maxSafe then issue (fieldPath path k) (if o ? ${k} then "must be an integer" else "is required")
    else optional (v < min || (max != null && v > max)) {
      path = fieldPath path k;
      message = if max == null then "must be ≥ ${toString min}" else "must be between ${toString min} and ${toString max}";
    };
  nullableInt = o: k: path: min: max: if (o.${k} or null) == null then [ ] else int o k path min max;
  bool = o: k: path: optional (o ? ${k} && !(b.isBool o.${k})) { path = fieldPath path k; message = "must be a boolean"; };
  oneOf = o: k: path: allowed:
    optional (!(b.isString (o.${k} or null)) || !(b.elem o.${k} allowed)) {
      path = fieldPath path k;
      message = if o ? ${k} then "must be one of ${b.concatStringsSep ", " allowed}" else "is required";
    };
  strArray = o: k: path:
    if !(b.isList o.${k}) then issue (fieldPath path k) "must be an array of strings"
    else concatMap ({ i, v }: optional (!(b.isString v)) { path = "${fieldPath path k}[${toString i}]"; message = "must be a string"; }) (indexed o.${k});
  # `when o k check`: run check only when the field is present (JS `!== undefined`).
  when = o: k: errs: if o ? ${k} then errs else [ ];
  unknownFields = o: path: known: map (k: { path = fieldPath path k; message = "unknown field"; }) (b.filter (k: !(b.elem k known)) (b.attrNames o));
  objAt = o: k: path: f:
    if !(isObj (o.${k} or null)) then issue (fieldPath path k) (if o ? ${k} then "must be an object" else "is required") else f o.${k};
  arrAt = o: k: path: f:
    if !(b.isList (o.${k} or null)) then issue (fieldPath path k) (if o ? ${k} then "must be an array" else "is required")
    else concatMap f (indexed o.${k});
  recordAt = o: k: path: each:
    if !(isObj (o.${k} or null)) then issue (fieldPath path k) (if o ? ${k} then "must be an object" else "is required")
    else let p = fieldPath path k; in
      concatMap (key: optional (key == "") { path = p; message = "keys must not be empty"; } ++ each o.${k}.${key} (fieldPath p key)) (b.attrNames o.${k});
  objOr = v: path: f: if isObj v then f v else issue path "must be an object";

  # RFC 3339 date-time with calendar checks, as schema.ts parseTimestamp (not UTC-only for pins).
  digits = s: b.foldl' (acc: i: acc * 10 + b.fromJSON (b.substring i 1 s)) 0 (b.genList (i: i) (b.stringLength s));
  rfc3339 = "([0-9]{4})-([0-9]{2})-([0-9]{2})[Tt]([0-9]{2}):([0-9]{2}):([0-9]{2})(\\.[0-9]+)?([Zz]|[+-][0-9]{2}:[0-9]{2})";
  isTimestamp = s:
    let
      m = b.match rfc3339 s;
      n = i: digits (b.elemAt m i);
      y = n 0; mo = n 1; d = n 2;
      leap = (y - (y / 4) * 4 == 0 && y - (y / 100) * 100 != 0) || y - (y / 400) * 400 == 0;
      dim = if mo == 2 then (if leap then 29 else 28) else if b.elem mo [ 4 6 9 11 ] then 30 else 31;
    in
    m != null && mo >= 1 && mo <= 12 && n 3 <= 23 && n 4 <= 59 && n 5 <= 60 && d >= 1 && d <= dim;
  timestamp = o: k: path:
    let s = str o k path false; in
    if s != [ ] then s else optional (!(isTimestamp o.${k})) { path = fieldPath path k; message = "must be an RFC 3339 timestamp"; };

  selectorIssues = u: path:
    objOr u path (u:
      unknownFields u path [ "all" "hosts" "tags" "tagsAny" "channel" "and" "not" ]
      ++ bool u "all" path
      ++ when u "hosts" (strArray u "hosts" path)
      ++ when u "tags" (strArray u "tags" path)
      ++ when u "tagsAny" (strArray u "tagsAny" path)
      ++ nullableStr u "channel" path
      ++ when u "and" (arrAt u "and" path ({ i, v }: selectorIssues v "${path}.and[${toString i}]"))
      ++ when u "not" (selectorIssues u.not "${path}.not"));

  healthGateIssues = u: path:
    objOr u path (u:
      when u "systemdFailedUnits" (objAt u "systemdFailedUnits" path (s: int s "max" "${path}.systemdFailedUnits" 0 null))
      ++ when u "complianceProbes" (objAt u "complianceProbes" path (s:
        optional (!(b.isBool (s.required or null))) { path = "${path}.complianceProbes.required"; message = "must be a boolean"; })));

  descIssues = u:
    if !(isObj u) then issue "$" "must be an object"
    else
      unknownFields u "$" [ "hosts" "channels" "rolloutPolicies" "edges" "channelEdges" "disruptionBudgets" "pins" ]
      ++ recordAt u "hosts" "$" (v: p: objOr v p (v:
        unknownFields v p [ "system" "channel" "tags" "pubkey" "closureHash" "leaving" ]
        ++ str v "system" p true
        ++ str v "channel" p true
        ++ when v "tags" (strArray v "tags" p)
        ++ nullableStr v "pubkey" p
        ++ nullableStr v "closureHash" p
        ++ bool v "leaving" p))
      ++ recordAt u "channels" "$" (v: p: objOr v p (v:
        unknownFields v p [ "rolloutPolicy" "freshnessWindow" "signingIntervalMinutes" "reconcileIntervalMinutes" "compliance" ]
        ++ str v "rolloutPolicy" p true
        ++ when v "freshnessWindow" (int v "freshnessWindow" p 1 null)
        ++ when v "signingIntervalMinutes" (int v "signingIntervalMinutes" p 1 null)
        ++ when v "reconcileIntervalMinutes" (int v "reconcileIntervalMinutes" p 1 null)
        ++ when v "compliance" (objAt v "compliance" p (co:
          unknownFields co "${p}.compliance" [ "frameworks" "mode" ]
          ++ when co "frameworks" (strArray co "frameworks" "${p}.compliance")
          ++ when co "mode" (oneOf co "mode" "${p}.compliance" complianceModes)))))
      ++ recordAt u "rolloutPolicies" "$" (v: p: objOr v p (v:
        unknownFields v p [ "strategy" "waves" "healthGate" "onHealthFailure" ]
        ++ arrAt v "waves" p ({ i, v }:
          let wp = "${p}.waves[${toString i}]"; in
          objOr v wp (w:
            unknownFields w wp [ "selector" "soakMinutes" ]
            ++ selectorIssues (w.selector or null) "${wp}.selector"
            ++ when w "soakMinutes" (int w "soakMinutes" wp 0 null)))
        ++ optional (b.isList (v.waves or null) && v.waves == [ ]) { path = "${p}.waves"; message = "must hold at least one wave"; }
        ++ when v "strategy" (oneOf v "strategy" p strategies)
        ++ when v "healthGate" (
          (if isObj v.healthGate then unknownFields v.healthGate "${p}.healthGate" [ "systemdFailedUnits" "complianceProbes" ] else [ ])
          ++ healthGateIssues v.healthGate "${p}.healthGate")
        ++ when v "onHealthFailure" (oneOf v "onHealthFailure" p onHealthFailures)))
      ++ when u "edges" (arrAt u "edges" "$" ({ i, v }: let p = "$.edges[${toString i}]"; in objOr v p (e:
        unknownFields e p [ "gated" "gates" "reason" ] ++ str e "gated" p true ++ str e "gates" p true ++ nullableStr e "reason" p)))
      ++ when u "channelEdges" (arrAt u "channelEdges" "$" ({ i, v }: let p = "$.channelEdges[${toString i}]"; in objOr v p (e:
        unknownFields e p [ "gated" "gates" "reason" ] ++ str e "gates" p true ++ str e "gated" p true ++ nullableStr e "reason" p)))
      ++ when u "disruptionBudgets" (arrAt u "disruptionBudgets" "$" ({ i, v }: let p = "$.disruptionBudgets[${toString i}]"; in objOr v p (d:
        unknownFields d p [ "selector" "maxInFlight" "maxInFlightPct" ]
        ++ selectorIssues (d.selector or null) "${p}.selector"
        ++ nullableInt d "maxInFlight" p 0 null
        ++ nullableInt d "maxInFlightPct" p 0 100)))
      ++ when u "pins" (arrAt u "pins" "$" ({ i, v }: let p = "$.pins[${toString i}]"; in objOr v p (x:
        unknownFields x p [ "host" "commit" "reason" "expiresAt" ]
        ++ str x "host" p true ++ str x "commit" p true ++ str x "reason" p false
        ++ when x "expiresAt" (timestamp x "expiresAt" p))));

  strategies = [ "canary" "staged" "all-at-once" ];
  onHealthFailures = [ "halt" "rollback-and-halt" ];
  complianceModes = [ "disabled" "permissive" "enforce" ];
  # release/schema.ts KNOWN_FRAMEWORKS
  knownFrameworks = [ "anssi-bp028" "bsi-grundschutz" "cis" "dora" "hipaa" "iso27001" "nis2" "pci-dss" "soc2" ];

  schemaMessage = issues:
    let
      n = b.length issues;
      first = b.genList (i: let x = b.elemAt issues i; in "${x.path}: ${x.message}") (if n < 5 then n else 5);
    in
    "invalid fleet description: ${b.concatStringsSep "; " first}${if n > 5 then " (and ${toString (n - 5)} more)" else ""}";

  # ---------------------------------------------------------------------------------------------
  # Checks 1–3: host without channel, shape, duplicates across merged files.
  # ---------------------------------------------------------------------------------------------

  descs = if b.isList desc then desc else [ desc ];

  # Check 1 runs before the shape check (release/README.md): missing, null or "".
  hostsWithoutChannel = concatMap (d:
    if !(isObj d) || !(isObj (d.hosts or null)) then [ ]
    else b.filter (n: let h = d.hosts.${n}; in isObj h && ((h.channel or null) == null || h.channel == "")) (b.attrNames d.hosts)) descs;

  shapeIssues = concatMap descIssues descs;

  mergeMaps = field: code: what:
    b.foldl' (acc: d:
      let dup = b.filter (n: acc ? ${n}) (b.attrNames d.${field}); in
      if dup != [ ] then fail code "${what} \"${b.head dup}\" is defined in more than one fleet file" else acc // d.${field}) { } descs;
  concatField = field: concatMap (d: d.${field} or [ ]) descs;

  merged =
    if hostsWithoutChannel != [ ] then fail "HOST_WITHOUT_CHANNEL" "host \"${b.head hostsWithoutChannel}\" has no channel"
    else if shapeIssues != [ ] then fail "SCHEMA_INVALID" (schemaMessage shapeIssues)
    else {
      hosts = mergeMaps "hosts" "DUPLICATE_HOST" "host";
      channels = mergeMaps "channels" "DUPLICATE_CHANNEL" "channel";
      rolloutPolicies = mergeMaps "rolloutPolicies" "DUPLICATE_POLICY" "rollout policy";
      edges = concatField "edges";
      channelEdges = concatField "channelEdges";
      disruptionBudgets = concatField "disruptionBudgets";
      pins = concatField "pins";
    };

  # ---------------------------------------------------------------------------------------------
  # Normalise: the defaults of release/README.md.
  # ---------------------------------------------------------------------------------------------

  toSelector = s:
    {
      all = s.all or false;
      hosts = s.hosts or [ ];
      tags = s.tags or [ ];
      tagsAny = s.tagsAny or [ ];
      channel = s.channel or null;
    }
    // optionalAttrs (s ? and) { and = map toSelector s.and; }
    // optionalAttrs (s ? not) { not = toSelector s.not; };

  # release/schema.ts matchesSelector: OR over the base rules that are set, then `and`, then `not`.
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
      inherit (h) system channel;
      tags = h.tags or [ ];
      closureHash = h.closureHash or null;
      pubkey = h.pubkey or null;
    }
    // optionalAttrs (pinsByHost ? ${name}) {
      pin = let p = b.head pinsByHost.${name}; in
        { inherit (p) commit reason; } // optionalAttrs (p ? expiresAt) { inherit (p) expiresAt; };
    }
    // optionalAttrs (h.leaving or false) { leaving = true; }) merged.hosts;

  channels = b.mapAttrs (_: c: {
    inherit (c) rolloutPolicy;
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

  hostNames = b.attrNames hosts; # sorted (byte order; host names are ASCII, so = UTF-16 order)
  channelNames = b.attrNames channels;
  policyNames = b.attrNames rolloutPolicies;

  # Every selector with a label, in document order (waves per policy, then budgets).
  allSelectors =
    concatMap (p: map ({ i, v }: { where = "rollout policy \"${p}\" wave ${toString i}"; sel = v.selector; }) (indexed rolloutPolicies.${p}.waves)) policyNames
    ++ map ({ i, v }: { where = "disruption budget ${toString i}"; sel = v.selector; }) (indexed disruptionBudgets);
  # A selector and every selector nested in its `and` / `not`.
  flatten = s: [ s ] ++ concatMap flatten (s.and or [ ]) ++ (if s ? not then flatten s.not else [ ]);

  # ---------------------------------------------------------------------------------------------
  # Checks 4–13 (release/README.md), in order; the first failure is thrown.
  # ---------------------------------------------------------------------------------------------

  # Names that can reach themselves (a cycle; a self-edge is one), sorted.
  cyclic = nodes: succ:
    let
      reach = start: map (x: x.key) (b.genericClosure {
        startSet = map (k: { key = k; }) (succ start);
        operator = x: map (k: { key = k; }) (succ x.key);
      });
    in
    b.filter (n: b.elem n (reach n)) nodes;
  successors = list: let g = b.groupBy (e: e.gates) list; in n: map (e: e.gated) (g.${n} or [ ]);

  checks = [
    {
      code = "UNKNOWN_CHANNEL";
      errors =
        map (n: "host \"${n}\": unknown channel \"${hosts.${n}.channel}\"") (b.filter (n: !(channels ? ${hosts.${n}.channel})) hostNames)
        ++ concatMap (x: map (s: "${x.where}: selector names unknown channel \"${s.channel}\"")
          (b.filter (s: s.channel != null && !(channels ? ${s.channel})) (flatten x.sel))) allSelectors
        ++ concatMap (e: map (c: "channel edge \"${e.gates}\" -> \"${e.gated}\": unknown channel \"${c}\"")
          (b.filter (c: !(channels ? ${c})) [ e.gates e.gated ])) channelEdges;
    }
    {
      code = "UNKNOWN_POLICY";
      errors = map (c: "channel \"${c}\": unknown rollout policy \"${channels.${c}.rolloutPolicy}\"")
        (b.filter (c: !(rolloutPolicies ? ${channels.${c}.rolloutPolicy})) channelNames);
    }
    {
      code = "UNKNOWN_HOST";
      errors =
        concatMap (e: map (n: "edge \"${e.gates}\" -> \"${e.gated}\": unknown host \"${n}\"")
          (b.filter (n: !(hosts ? ${n})) [ e.gated e.gates ])) edges
        ++ map (p: "pin: unknown host \"${p.host}\"") (b.filter (p: !(hosts ? ${p.host})) merged.pins)
        ++ concatMap (x: concatMap (s: map (n: "${x.where}: selector names unknown host \"${n}\"")
          (b.filter (n: !(hosts ? ${n})) s.hosts)) (flatten x.sel)) allSelectors;
    }
    {
      code = "UNKNOWN_FRAMEWORK";
      errors = concatMap (c: map (f: "channel \"${c}\": unknown compliance framework \"${f}\" (known: ${b.concatStringsSep ", " knownFrameworks})")
        (b.filter (f: !(b.elem f knownFrameworks)) channels.${c}.compliance.frameworks)) channelNames;
    }
    {
      code = "FRESHNESS_WINDOW";
      errors = map (c: let ch = channels.${c}; in
        "channel \"${c}\": freshnessWindow ${toString ch.freshnessWindow} is less than 2 × signingIntervalMinutes (${toString ch.signingIntervalMinutes})")
        (b.filter (c: channels.${c}.freshnessWindow < 2 * channels.${c}.signingIntervalMinutes) channelNames);
    }
    {
      code = "DUPLICATE_PIN";
      errors = map (n: "host \"${n}\" has more than one pin") (b.filter (n: b.length pinsByHost.${n} > 1) (b.attrNames pinsByHost));
    }
    {
      code = "CROSS_CHANNEL_EDGE";
      errors = map (e: "edge \"${e.gates}\" -> \"${e.gated}\" crosses channels (\"${hosts.${e.gates}.channel}\" and \"${hosts.${e.gated}.channel}\")")
        (b.filter (e: hosts.${e.gates}.channel != hosts.${e.gated}.channel) edges);
    }
    {
      code = "HOST_EDGE_CYCLE";
      errors = let c = cyclic hostNames (successors edges); in
        optional (c != [ ]) "cycle in host edges through ${b.concatStringsSep ", " (map (n: "\"${n}\"") c)}";
    }
    {
      code = "CHANNEL_EDGE_CYCLE";
      errors = let c = cyclic channelNames (successors channelEdges); in
        optional (c != [ ]) "cycle in channel edges through ${b.concatStringsSep ", " (map (n: "\"${n}\"") c)}";
    }
    {
      code = "BUDGET_NEVER_ADMITS";
      errors = map ({ i, v }: "disruption budget ${toString i} can never admit a host (maxInFlight ${b.toJSON v.maxInFlight}, maxInFlightPct ${b.toJSON v.maxInFlightPct})")
        (b.filter ({ i, v }: v.maxInFlight == 0 || v.maxInFlightPct == 0) (indexed disruptionBudgets));
    }
  ];

  firstFailing = b.foldl' (found: c: if found != null then found else if c.errors != [ ] then c else null) null checks;

  # ---------------------------------------------------------------------------------------------
  # Waves: per channel, the policy's waves in order; a host goes to the FIRST wave whose selector
  # matches it, a host no wave matches to the last one; names sorted; empty waves kept.
  # ---------------------------------------------------------------------------------------------

  placement = b.listToAttrs (map (c:
    let
      policyName = channels.${c}.rolloutPolicy;
      policy = rolloutPolicies.${policyName};
      members = b.filter (n: hosts.${n}.channel == c) hostNames;
      n = b.length policy.waves;
      firstMatch = name: i:
        if i >= n then null
        else if matches (b.elemAt policy.waves i).selector name hosts.${name} then i
        else firstMatch name (i + 1);
      found = map (name: { inherit name; i = firstMatch name 0; }) members;
      byWave = b.groupBy (x: toString (if x.i == null then n - 1 else x.i)) found;
    in
    {
      name = c;
      value = {
        waves = b.genList (i: {
          hosts = map (x: x.name) (byWave.${toString i} or [ ]);
          inherit (b.elemAt policy.waves i) soakMinutes;
        }) n;
        warnings =
          map (x: "channel ${c}: host ${x.name} matches no wave of policy ${policyName}; placed in the last wave") (b.filter (x: x.i == null) found)
          ++ map (i: "channel ${c}: wave ${toString i} of policy ${policyName} matches no host")
            (b.filter (i: !(byWave ? ${toString i})) (b.genList (i: i) n));
      };
    }) channelNames);

  warnings =
    concatMap (c: placement.${c}.warnings) channelNames
    ++ map ({ i, v }: "disruption budget ${toString i}: selector matches no host")
      (b.filter ({ i, v }: !(b.any (n: matches v.selector n hosts.${n}) hostNames)) (indexed disruptionBudgets));

  fleet =
    if firstFailing != null then fail firstFailing.code (b.head firstFailing.errors)
    else {
      schemaVersion = 1;
      inherit hosts channels rolloutPolicies edges channelEdges disruptionBudgets;
      waves = b.mapAttrs (_: p: p.waves) placement;
      meta = { schemaVersion = 1; signedAt = null; ciCommit = null; };
    };
in
{
  inherit fleet;
  warnings = b.seq fleet warnings;
}
