# The fleet resolver in pure Nix (builtins only: no nixpkgs, no `lib`), so that `nix eval` of a
# fleet works on a machine with nothing but Nix (SPEC §9).
#
# Input: a fleet description (protocol/description.ts `FleetDescription`) as an attribute set, or a list
# of them (fleet files, merged).
# Output, like resolve.ts `resolveFleetInput`: `{ ok = true; fleet; warnings; }` or
# `{ ok = false; error = { code; message; }; }` (lib.mkFleet throws the error). `fleet` is the
# `fleet.resolved` value of SPEC §2.2 with `meta.signedAt = null`; `builtins.toJSON fleet`,
# canonicalised with JCS, is byte-identical to what `nixfleet-release resolve` writes for the same
# description (nix-tests/mkfleet.test.ts holds the two to the golden and negative fixtures under
# fixtures/fleets/, nix-tests/mkfleet.props.test.ts to random descriptions).
#
# Limits: host names should be ASCII (Nix sorts names by bytes, resolve.ts by UTF-16 code units);
# numbers must be integers (a Nix float such as 30.0 is "must be an integer", where JSON 30.0 is
# an integer to resolve.ts).
#
# The rules, defaults, check order, codes and messages are those of release/README.md
# ("Fleet description → fleet.resolved.json") and release/resolve.ts; the shape check mirrors
# `parseFleetDescription` in protocol/description.ts (same paths, same messages, same order). The first failing check
# is the error; nothing after it is evaluated.
desc:
let
  b = builtins;
  rules = import ./rules.nix;
  inherit (rules) optional optionalAttrs concatMap indexed findCycle;
  isObj = b.isAttrs;

  # ---------------------------------------------------------------------------------------------
  # Shape (protocol/description.ts parseFleetDescription): lists of { path; message; } in its order:
  # at each object its unknown fields first, then its fields in the schema's declaration order.
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

  # RFC 3339 date-time with calendar checks, as vocab.ts isTimestamp (not UTC-only for pins).
  digits = s: b.foldl' (acc: i: acc * 10 + b.fromJSON (b.substring i 1 s)) 0 (b.genList (i: i) (b.stringLength s));
  # protocol/vocab.ts: upper-case `T` and `Z` only (RFC 3339 §5.6 lets a specification require it).
  rfc3339 = "([0-9]{4})-([0-9]{2})-([0-9]{2})T([0-9]{2}):([0-9]{2}):([0-9]{2})(\\.[0-9]+)?(Z|[+-]([0-9]{2}):([0-9]{2}))";
  isTimestamp = s:
    let
      m = b.match rfc3339 s;
      n = i: digits (b.elemAt m i);
      y = n 0; mo = n 1; d = n 2;
      leap = (y - (y / 4) * 4 == 0 && y - (y / 100) * 100 != 0) || y - (y / 400) * 400 == 0;
      dim = if mo == 2 then (if leap then 29 else 28) else if b.elem mo [ 4 6 9 11 ] then 30 else 31;
    in
    m != null && mo >= 1 && mo <= 12 && n 3 <= 23 && n 4 <= 59 && n 5 <= 60 && d >= 1 && d <= dim
    && (b.elemAt m 8 == null || (n 8 <= 23 && n 9 <= 59));
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

  requiredSelector = o: path: if o ? selector then selectorIssues o.selector "${path}.selector" else issue "${path}.selector" "is required";

  healthGateIssues = u: path:
    objOr u path (u:
      when u "systemdFailedUnits" (objAt u "systemdFailedUnits" path (s:
        unknownFields s "${path}.systemdFailedUnits" [ "max" ] ++ int s "max" "${path}.systemdFailedUnits" 0 null))
      ++ when u "complianceProbes" (objAt u "complianceProbes" path (s:
        unknownFields s "${path}.complianceProbes" [ "required" ]
        ++ optional (!(b.isBool (s.required or null))) {
          path = "${path}.complianceProbes.required";
          message = if s ? required then "must be a boolean" else "is required";
        })));

  # protocol/windows.ts ChangeWindowInputSchema.
  clockTime = o: k: path:
    let s = str o k path false; in
    if s != [ ] then s else optional (b.match "([01][0-9]|2[0-3]):[0-5][0-9]|24:00" o.${k} == null) { path = fieldPath path k; message = "must be a time HH:MM (00:00–24:00)"; };
  weekdays = [ "mon" "tue" "wed" "thu" "fri" "sat" "sun" ];
  changeWindowIssues = w: path:
    unknownFields w path [ "timeZone" "allow" "freezes" ]
    ++ str w "timeZone" path true
    ++ when w "allow" (arrAt w "allow" path ({ i, v }: let rp = "${path}.allow[${toString i}]"; in objOr v rp (r:
      unknownFields r rp [ "days" "start" "end" ]
      ++ arrAt r "days" rp ({ i, v }: optional (!(b.isString v) || !(b.elem v weekdays)) {
        path = "${rp}.days[${toString i}]"; message = "must be one of ${b.concatStringsSep ", " weekdays}"; })
      ++ clockTime r "start" rp
      ++ clockTime r "end" rp)))
    ++ when w "freezes" (arrAt w "freezes" path ({ i, v }: let fp = "${path}.freezes[${toString i}]"; in objOr v fp (f:
      unknownFields f fp [ "from" "until" "reason" ]
      ++ timestamp f "from" fp
      ++ timestamp f "until" fp
      ++ str f "reason" fp false)));

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
        unknownFields v p [ "rolloutPolicy" "freshnessWindow" "signingIntervalMinutes" "reconcileIntervalMinutes" "compliance" "rebootPolicy" "onDrift" "progressDeadlineMinutes" "changeWindow" "requireApprovals" ]
        ++ str v "rolloutPolicy" p true
        ++ when v "freshnessWindow" (int v "freshnessWindow" p 1 null)
        ++ when v "signingIntervalMinutes" (int v "signingIntervalMinutes" p 1 null)
        ++ when v "reconcileIntervalMinutes" (int v "reconcileIntervalMinutes" p 1 null)
        ++ when v "compliance" (objAt v "compliance" p (co:
          unknownFields co "${p}.compliance" [ "frameworks" "mode" ]
          ++ when co "frameworks" (strArray co "frameworks" "${p}.compliance")
          ++ when co "mode" (oneOf co "mode" "${p}.compliance" complianceModes)))
        # protocol/windows.ts channelControlInputProps (issue 14)
        ++ when v "rebootPolicy" (oneOf v "rebootPolicy" p [ "manual" "automatic" ])
        ++ when v "onDrift" (oneOf v "onDrift" p [ "report" "redeploy" ])
        ++ when v "progressDeadlineMinutes" (int v "progressDeadlineMinutes" p 1 null)
        ++ when v "changeWindow" (objAt v "changeWindow" p (w: changeWindowIssues w "${p}.changeWindow"))
        ++ when v "requireApprovals" (int v "requireApprovals" p 1 null)))
      ++ recordAt u "rolloutPolicies" "$" (v: p: objOr v p (v:
        unknownFields v p [ "strategy" "waves" "healthGate" "onHealthFailure" ]
        ++ arrAt v "waves" p ({ i, v }:
          let wp = "${p}.waves[${toString i}]"; in
          objOr v wp (w:
            unknownFields w wp [ "selector" "soakMinutes" ]
            ++ requiredSelector w wp
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
        ++ requiredSelector d p
        ++ nullableInt d "maxInFlight" p 0 null
        ++ nullableInt d "maxInFlightPct" p 0 100)))
      ++ when u "pins" (arrAt u "pins" "$" ({ i, v }: let p = "$.pins[${toString i}]"; in objOr v p (x:
        unknownFields x p [ "host" "tag" "channel" "commit" "reason" "expiresAt" ]
        ++ when x "host" (str x "host" p true) ++ when x "tag" (str x "tag" p true) ++ when x "channel" (str x "channel" p true)
        ++ str x "commit" p true ++ str x "reason" p false
        ++ when x "expiresAt" (timestamp x "expiresAt" p))));

  strategies = [ "canary" "staged" "all-at-once" ];
  onHealthFailures = [ "halt" "rollback-and-halt" ];
  complianceModes = [ "disabled" "permissive" "enforce" ];
  # protocol/description.ts KNOWN_FRAMEWORKS
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
  nDescs = b.length descs;
  q = b.toJSON; # JSON.stringify of a name, as in resolve.ts messages

  # Check 1 runs before the shape check (release/README.md), file by file: missing, null or "".
  withoutChannel = d:
    if !(isObj d) || !(isObj (d.hosts or null)) then [ ]
    else b.filter (n: let h = d.hosts.${n}; in isObj h && ((h.channel or null) == null || h.channel == "")) (b.attrNames d.hosts);
  # Checks 1 and 2, file by file, as resolve.ts resolveFleetInput.
  inputError = b.foldl' (found: x:
    if found != null then found
    else
      let
        where = if nDescs > 1 then "fleet file ${toString (x.i + 1)}: " else "";
        nc = withoutChannel x.v;
        issues = descIssues x.v;
      in
      if nc != [ ] then { code = "HOST_WITHOUT_CHANNEL"; message = "${where}host ${q (b.head nc)} has no channel"; }
      else if issues != [ ] then { code = "SCHEMA_INVALID"; message = where + schemaMessage issues; }
      else null) null (indexed descs);

  # Check 3: merge file by file (hosts, then channels, then policies of each file).
  mergeOne = acc: d:
    let
      dupOf = field: rules.collisions acc.${field} d.${field};
      dh = dupOf "hosts";
      dc = dupOf "channels";
      dp = dupOf "rolloutPolicies";
    in
    if acc.error != null then acc
    else if dh != [ ] then acc // { error = { code = "DUPLICATE_HOST"; message = "host ${q (b.head dh)} is defined in more than one fleet file"; }; }
    else if dc != [ ] then acc // { error = { code = "DUPLICATE_CHANNEL"; message = "channel ${q (b.head dc)} is defined in more than one fleet file"; }; }
    else if dp != [ ] then acc // { error = { code = "DUPLICATE_POLICY"; message = "rollout policy ${q (b.head dp)} is defined in more than one fleet file"; }; }
    else acc // {
      hosts = acc.hosts // d.hosts;
      channels = acc.channels // d.channels;
      rolloutPolicies = acc.rolloutPolicies // d.rolloutPolicies;
    };
  mergedMaps = b.foldl' mergeOne { error = null; hosts = { }; channels = { }; rolloutPolicies = { }; } descs;
  concatField = field: concatMap (d: d.${field} or [ ]) descs;

  # Evaluated only when there is no earlier error (laziness keeps the order of the checks).
  earlyError = if inputError != null then inputError else mergedMaps.error;
  merged = {
      inherit (mergedMaps) hosts channels rolloutPolicies;
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

  # protocol/selector.ts matchesSelector: OR over the base rules that are set, then `and`, then `not`.
  matches = sel: name: host:
    let
      baseSet = sel.all || sel.hosts != [ ] || sel.tags != [ ] || sel.tagsAny != [ ] || sel.channel != null;
      # `and: []` is an unset rule (selector.ts), like an absent one.
      base = if baseSet then rules.baseMatches sel name host else (sel.and or [ ]) != [ ] || sel ? not;
    in
    base
    && b.all (s: matches s name host) (sel.and or [ ])
    && !(sel ? not && matches sel.not name host);

  # A host's pin (resolve.ts): its host pin, else the first tag pin of one of its tags, else its channel's pin.
  pinOf = name: h:
    let
      own = b.filter (p: (p.host or null) == name) merged.pins;
      byTag = b.filter (p: p ? tag && b.elem p.tag (h.tags or [ ])) merged.pins;
      byChannel = b.filter (p: (p.channel or null) == h.channel) merged.pins;
    in
    if own != [ ] then b.head own else if byTag != [ ] then b.head byTag else if byChannel != [ ] then b.head byChannel else null;
  pinTargetOf = p: if p ? host then { kind = "host"; name = p.host; } else if p ? tag then { kind = "tag"; name = p.tag; } else { kind = "channel"; name = p.channel; };

  hosts = b.mapAttrs (name: h:
    {
      inherit (h) system channel;
      tags = h.tags or [ ];
      closureHash = h.closureHash or null;
      pubkey = h.pubkey or null;
    }
    // optionalAttrs (pinOf name h != null) {
      pin = let p = pinOf name h; in
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
  }
  # Issue 14 controls: copied when set, omitted when absent (resolve.ts).
  // optionalAttrs (c ? rebootPolicy) { inherit (c) rebootPolicy; }
  // optionalAttrs (c ? onDrift) { inherit (c) onDrift; }
  // optionalAttrs (c ? progressDeadlineMinutes) { inherit (c) progressDeadlineMinutes; }
  // optionalAttrs (c ? requireApprovals) { inherit (c) requireApprovals; }
  // optionalAttrs (c ? changeWindow) {
    changeWindow = {
      inherit (c.changeWindow) timeZone;
      allow = map (r: { inherit (r) days start end; }) (c.changeWindow.allow or [ ]);
      freezes = map (f: { inherit (f) from until reason; }) (c.changeWindow.freezes or [ ]);
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

  # Every selector with a label, in resolve.ts order (waves per policy, then budgets).
  allSelectors =
    concatMap (p: map ({ i, v }: { where = "rollout policy ${q p} wave ${toString i}"; sel = v.selector; }) (indexed rolloutPolicies.${p}.waves)) policyNames
    ++ map ({ i, v }: { where = "disruption budget ${toString i}"; sel = v.selector; }) (indexed disruptionBudgets);
  # A selector and every selector nested in its `and` / `not`, pre-order (resolve.ts selectorRefs).
  flatten = s: [ s ] ++ concatMap flatten (s.and or [ ]) ++ (if s ? not then flatten s.not else [ ]);

  # ---------------------------------------------------------------------------------------------
  # Checks 4–14 (release/README.md), in order, with resolve.ts messages; the first failure throws.
  # ---------------------------------------------------------------------------------------------

  # findCycle (./rules.nix): the cycle as a path [n, …, n], or null.
  arrowPath = path: b.concatStringsSep " → " (map q path);

  indexedEdges = indexed edges;
  indexedPins = indexed merged.pins;
  indexedBudgets = indexed disruptionBudgets;
  hostCycle = findCycle edges;
  channelCycle = findCycle channelEdges;

  checks = [
    {
      code = "PIN_TARGET";
      errors = map ({ i, v }: "pin ${toString i} must name exactly one of host, tag, channel")
        (b.filter ({ i, v }: b.length (b.filter (k: v ? ${k}) [ "host" "tag" "channel" ]) != 1) indexedPins);
    }
    {
      code = "UNKNOWN_CHANNEL";
      errors =
        map (n: "host ${q n} names unknown channel ${q hosts.${n}.channel}") (b.filter (n: !(channels ? ${hosts.${n}.channel})) hostNames)
        ++ concatMap (x: map (s: "selector of ${x.where} names unknown channel ${q s.channel}")
          (b.filter (s: s.channel != null && !(channels ? ${s.channel})) (flatten x.sel))) allSelectors
        ++ concatMap ({ i, v }: map (c: "channel edge ${toString i} names unknown channel ${q c}")
          (b.filter (c: !(channels ? ${c})) [ v.gates v.gated ])) (indexed channelEdges)
        ++ map ({ i, v }: "pin ${toString i} names unknown channel ${q v.channel}") (b.filter ({ i, v }: v ? channel && !(channels ? ${v.channel})) indexedPins);
    }
    {
      code = "UNKNOWN_POLICY";
      errors = map (c: "channel ${q c} names unknown rollout policy ${q channels.${c}.rolloutPolicy}")
        (b.filter (c: !(rolloutPolicies ? ${channels.${c}.rolloutPolicy})) channelNames);
    }
    {
      code = "UNKNOWN_HOST";
      errors =
        concatMap ({ i, v }: map (n: "host edge ${toString i} names unknown host ${q n}")
          (b.filter (n: !(hosts ? ${n})) [ v.gates v.gated ])) indexedEdges
        ++ map ({ i, v }: "pin ${toString i} names unknown host ${q v.host}") (b.filter ({ i, v }: v ? host && !(hosts ? ${v.host})) indexedPins)
        ++ concatMap (x: concatMap (s: map (n: "selector of ${x.where} names unknown host ${q n}")
          (b.filter (n: !(hosts ? ${n})) s.hosts)) (flatten x.sel)) allSelectors;
    }
    {
      code = "UNKNOWN_FRAMEWORK";
      errors = concatMap (c: map (f: "channel ${q c} names unknown compliance framework ${q f} (known: ${b.concatStringsSep ", " knownFrameworks})")
        (b.filter (f: !(b.elem f knownFrameworks)) channels.${c}.compliance.frameworks)) channelNames;
    }
    {
      code = "FRESHNESS_WINDOW";
      errors = map (c: let ch = channels.${c}; in
        "channel ${q c}: freshnessWindow ${toString ch.freshnessWindow} min is less than 2 × signingIntervalMinutes (${toString ch.signingIntervalMinutes} min): hosts would refuse artefacts between two signings")
        (b.filter (c: rules.freshnessTooShort channels.${c}) channelNames);
    }
    {
      code = "DUPLICATE_PIN";
      # The first pin (in list order) whose host, tag or channel an earlier pin already named; then
      # the first host (sorted) without its own pin that two tag pins cover.
      errors =
        map ({ i, v }: let t = pinTargetOf v; in "${t.kind} ${q t.name} has two pins")
          (b.filter ({ i, v }: b.any (p: pinTargetOf p == pinTargetOf v) (b.genList (j: b.elemAt merged.pins j) i)) indexedPins)
        ++ concatMap (n:
          let
            h = hosts.${n};
            byTag = b.filter (p: p ? tag && b.elem p.tag h.tags) merged.pins;
          in
          optional (!(b.any (p: (p.host or null) == n) merged.pins) && b.length byTag > 1)
            "host ${q n} is covered by two tag pins (${q (b.elemAt byTag 0).tag}, ${q (b.elemAt byTag 1).tag})") hostNames;
    }
    {
      code = "CROSS_CHANNEL_EDGE";
      errors = map ({ i, v }:
        let a = hosts.${v.gates}.channel; c = hosts.${v.gated}.channel; in
        "host edge ${toString i}: ${q v.gates} (channel ${q a}) gates ${q v.gated} (channel ${q c}); host edges must stay inside one channel (use channelEdges)")
        (b.filter ({ i, v }: rules.crossesChannels hosts v) indexedEdges);
    }
    {
      code = "HOST_EDGE_CYCLE";
      errors = optional (hostCycle != null) "cycle in host edges: ${arrowPath hostCycle}";
    }
    {
      code = "CHANNEL_EDGE_CYCLE";
      errors = optional (channelCycle != null) "cycle in channel edges: ${arrowPath channelCycle}";
    }
    {
      code = "BUDGET_NEVER_ADMITS";
      errors = concatMap ({ i, v }:
        if v.maxInFlight == 0 then [ "disruption budget ${toString i} has maxInFlight 0: it could never admit a host" ]
        else if v.maxInFlightPct == 0 then [ "disruption budget ${toString i} has maxInFlightPct 0: it could never admit a host" ]
        else [ ]) indexedBudgets;
    }
    {
      code = "INVALID_PUBKEY";
      # resolve.ts OPENSSH_ED25519_LINE: "ssh-ed25519 " + the exact 68-character blob + optional comment.
      errors = map (n: "host ${q n}: pubkey is not an OpenSSH ed25519 public key line: expected \"ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAI… [comment]\" (the content of the host's /etc/ssh/ssh_host_ed25519_key.pub), not the base64 that derive-pubkey prints")
        (b.filter (n: let k = hosts.${n}.pubkey or null; in
          k != null && b.match "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAI[A-P][A-Za-z0-9+/]{42}( [^\n]*)?" k == null) hostNames);
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
          map (x: "channel ${q c}: host ${q x.name} matches no wave of policy ${q policyName}; placed in the last wave") (b.filter (x: x.i == null) found)
          ++ map (i: "channel ${q c}: wave ${toString i} of policy ${q policyName} matches no host")
            (b.filter (i: !(byWave ? ${toString i})) (b.genList (i: i) n));
      };
    }) channelNames);

  warnings =
    concatMap (c: placement.${c}.warnings) channelNames
    ++ map ({ i, v }: "disruption budget ${toString i}: selector matches no host")
      (b.filter ({ i, v }: !(b.any (n: matches v.selector n hosts.${n}) hostNames)) (indexed disruptionBudgets));

  error =
    if earlyError != null then earlyError
    else if firstFailing != null then { inherit (firstFailing) code; message = b.head firstFailing.errors; }
    else null;
in
# A result value, like resolve.ts: the caller decides whether an error throws (lib.mkFleet does).
if error != null then { ok = false; inherit error; }
else {
  ok = true;
  fleet = {
    schemaVersion = 1;
    inherit hosts channels rolloutPolicies edges channelEdges disruptionBudgets;
    waves = b.mapAttrs (_: p: p.waves) placement;
    meta = { schemaVersion = 1; signedAt = null; ciCommit = null; };
  };
  inherit warnings;
}
