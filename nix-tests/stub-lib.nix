# A small stand-in for nixpkgs' `lib` and module system, builtins only, so the tests can evaluate
# modules/*.nix on a machine without nixpkgs (CI). It implements only what our modules use:
# mkOption / types (with value checks), mkIf / mkMerge / mkDefault / mkOptionDefault / mkForce
# (priorities), and a lazy evaluator `evalModule` that
#   - gives each declared option the highest-priority active definition (user definitions have
#     priority 100, mkDefault 1000, mkOptionDefault and option defaults 1500), type-checked;
#   - merges every other config path (attribute sets by key, lists concatenated);
#   - pushes mkIf down attribute by attribute, as the real module system does, so a condition on
#     an option does not recurse into itself.
# It is NOT the real module system (no submodules, no imports, no option merging by type); the
# tests say so where it matters.
let
  b = builtins;
  wrapper = v: b.isAttrs v && b.elem (v._type or null) [ "if" "merge" "override" ];
  unique = xs: b.attrNames (b.listToAttrs (map (x: { name = x; value = null; }) xs));

  lib = rec {
    types = {
      bool = { name = "bool"; check = b.isBool; };
      int = { name = "int"; check = b.isInt; };
      ints = {
        positive = { name = "ints.positive"; check = v: b.isInt v && v > 0; };
        unsigned = { name = "ints.unsigned"; check = v: b.isInt v && v >= 0; };
      };
      port = { name = "port"; check = v: b.isInt v && v >= 0 && v <= 65535; };
      number = { name = "number"; check = v: b.isInt v || b.isFloat v; };
      str = { name = "str"; check = b.isString; };
      strMatching = re: { name = "strMatching ${re}"; check = v: b.isString v && b.match re v != null; };
      package = { name = "package"; check = v: b.isString v || (b.isAttrs v && v ? outPath); };
      anything = { name = "anything"; check = _: true; };
      attrsOf = t: { name = "attrsOf (${t.name})"; check = v: b.isAttrs v && b.all t.check (b.attrValues v); };
      listOf = t: { name = "listOf (${t.name})"; check = v: b.isList v && b.all t.check v; };
      nullOr = t: { name = "nullOr (${t.name})"; check = v: v == null || t.check v; };
      enum = vs: { name = "enum ${b.toJSON vs}"; check = v: b.elem v vs; };
    };
    mkOption = o: o // { _type = "option"; };
    mkIf = condition: content: { _type = "if"; inherit condition content; };
    mkMerge = contents: { _type = "merge"; inherit contents; };
    mkOverride = priority: content: { _type = "override"; inherit priority content; };
    mkForce = mkOverride 50;
    mkDefault = mkOverride 1000;
    mkOptionDefault = mkOverride 1500;
    optional = c: x: if c then [ x ] else [ ];
    optionals = c: xs: if c then xs else [ ];
    optionalAttrs = c: s: if c then s else { };
    inherit (b) elem;
    hasPrefix = p: s: b.substring 0 (b.stringLength p) s == p;
    removePrefix = p: s: if hasPrefix p s then b.substring (b.stringLength p) (-1) s else s;
    escapeShellArg = s: "'" + b.replaceStrings [ "'" ] [ "'\\''" ] s + "'";
    literalExpression = text: { _type = "literalExpression"; inherit text; };
  };

  # Definitions at `path` inside a config value: [{ value; conds; prio; }], wrappers above the
  # path pushed down; wrappers at the leaf are discharged (conditions first, as the real system).
  defsAt = path: v:
    if path == [ ] then discharge v
    else if wrapper v then
      (if v._type == "merge" then b.concatLists (map (defsAt path) v.contents)
       else if v._type == "if" then map (d: d // { conds = [ v.condition ] ++ d.conds; }) (defsAt path v.content)
       else map (d: d // { prio = v.priority; }) (defsAt path v.content))
    else if b.isAttrs v && v ? ${b.head path} then defsAt (b.tail path) v.${b.head path}
    else [ ];
  discharge = v:
    if wrapper v then
      (if v._type == "merge" then b.concatLists (map discharge v.contents)
       else if v._type == "if" then (if v.condition then discharge v.content else [ ])
       else map (d: d // { prio = v.priority; }) (discharge v.content))
    else [ { value = v; conds = [ ]; prio = 100; } ];
  # The raw (still wrapped) values at `path`, forcing no condition: for attribute names only.
  rawAt = path: v:
    if path == [ ] then [ v ]
    else if wrapper v then
      (if v._type == "merge" then b.concatLists (map (rawAt path) v.contents) else rawAt path v.content)
    else if b.isAttrs v && v ? ${b.head path} then rawAt (b.tail path) v.${b.head path}
    else [ ];

  # Attribute names a (possibly wrapped) config value has, without forcing any condition.
  keysOf = v:
    if wrapper v then (if v._type == "merge" then b.concatLists (map keysOf v.contents) else keysOf v.content)
    else if b.isAttrs v && !(v ? outPath) then b.attrNames v
    else [ ];
  attrsLike = v:
    if wrapper v then (if v._type == "merge" then b.any attrsLike v.contents else attrsLike v.content)
    else b.isAttrs v && !(v ? outPath);

  # Drop inactive mkIf, unwrap the rest (for leaf values that hold wrappers inside).
  absent = { _absent = true; };
  isAbsent = v: b.isAttrs v && v ? _absent;
  clean = v:
    if wrapper v then
      (if v._type == "if" then (if v.condition then clean v.content else absent)
       else if v._type == "override" then clean v.content
       else mergeValues (b.filter (x: !(isAbsent x)) (map clean v.contents)))
    else if b.isAttrs v && !(v ? outPath) then
      b.removeAttrs (b.mapAttrs (_: clean) v) (b.filter (k: isAbsent (clean v.${k})) (b.attrNames v))
    else if b.isList v then map clean v
    else v;
  mergeValues = vs:
    if vs == [ ] then absent
    else if b.all b.isList vs then b.concatLists vs
    else if b.length vs == 1 then b.head vs
    else if b.all b.isAttrs vs then
      b.listToAttrs (map (k: { name = k; value = mergeValues (map (v: v.${k}) (b.filter (v: v ? ${k}) vs)); }) (unique (b.concatMap b.attrNames vs)))
    else throw "stub-lib: conflicting definitions ${b.toJSON vs}";

  isOption = o: b.isAttrs o && (o._type or null) == "option";
  optionAt = path: opts: if path == [ ] then opts else if b.isAttrs opts && opts ? ${b.head path} then optionAt (b.tail path) opts.${b.head path} else null;

  # evalModule { module; user; } -> { options; config; }: `module` is a NixOS-style module
  # function, `user` a plain attribute set of definitions (priority 100; may use mkForce etc.).
  evalModule = { module, user, pkgs }:
    let
      m = module { config = final; inherit lib pkgs; };
      defs = path: b.filter (d: b.all (c: c) d.conds) (defsAt path m.config ++ defsAt path user);
      optionValue = path: o:
        let
          ds = defs path;
          best = b.foldl' (acc: d: if d.prio < acc then d.prio else acc) 1500 ds;
          winners = b.filter (d: d.prio == best) ds;
          v =
            if ds != [ ] && (best < 1500 || !(o ? default)) then clean (b.head winners).value
            else if o ? default then o.default
            else throw "stub-lib: option ${b.concatStringsSep "." path} is used but not defined";
        in
        if !(o.type.check v) then throw "stub-lib: option ${b.concatStringsSep "." path}: ${b.toJSON v} is not a ${o.type.name}" else v;
      view = path:
        let o = optionAt path m.options; in
        if isOption o then optionValue path o
        else
          let
            raw = rawAt path m.config ++ rawAt path user;
            keys = unique (b.concatMap keysOf raw ++ (if b.isAttrs o then b.attrNames o else [ ]));
          in
          if o != null || (raw != [ ] && b.all attrsLike raw) then
            # Lazy in every key (a leaf may depend on `config` itself); inactive leaves stay as an
            # `absent` marker, removed by `strip` when a test reads a subtree.
            b.listToAttrs (map (k: { name = k; value = view (path ++ [ k ]); }) keys)
          else
            let
              ds = defs path;
              best = b.foldl' (acc: d: if d.prio < acc then d.prio else acc) 1500 ds;
            in
            clean (mergeValues (map (d: d.value) (b.filter (d: d.prio == best) ds)));
      final = view [ ];
    in
    { inherit (m) options; config = final; };
in
{
  inherit lib evalModule;
  # A config subtree without the markers of inactive definitions (JSON-able); an attribute set
  # whose every attribute was inactive disappears too (null at the top).
  strip = let
    go = v:
      if isAbsent v then absent
      else if b.isAttrs v && !(v ? outPath) then
        let
          kept = b.filter (x: !(isAbsent x.value)) (map (k: { name = k; value = go v.${k}; }) (b.attrNames v));
        in
        if kept == [ ] && v != { } then absent else b.listToAttrs kept
      else if b.isList v then map go v
      else v;
  in v: let r = go v; in if isAbsent r then null else r;
  # Option tree -> { "a.b.c" = { type; default?; }; } (JSON-able).
  optionList = let
    go = prefix: opts: b.concatMap (k:
      let o = opts.${k}; p = if prefix == "" then k else "${prefix}.${k}"; in
      if isOption o then [ { name = p; value = { type = o.type.name; } // (if o ? default then { inherit (o) default; } else { }); } ]
      else go p o) (b.attrNames opts);
  in opts: b.listToAttrs (go "" opts);
}
