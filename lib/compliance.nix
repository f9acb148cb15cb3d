# Compliance at CI time (issue 15), builtins only (SPEC §9): the built-in control catalogue (read
# from ./compliance-catalogue.json, generated from protocol/compliance.ts by `npm run schemas`;
# scripts/json-schemas.test.ts fails when it drifts), each host's static control results computed
# from its NixOS configuration, and the static gate that `nixfleet-release resolve
# --compliance-report` applies (release/static-gate.ts: same rules, same messages, same output).
#
#   staticReport { nixosConfigurations; controls ? [ ]; }
#     -> { schemaVersion = 1; controls; hosts.<host>.<control> = { result = "pass"|"fail"; observed; }; }
#     `nix eval --json .#complianceReport > report.json` gives the file `resolve` takes.
#   resolveWithReport report desc   -> like ./resolve.nix, with the static gate applied
#   mkFleetWithReport report desc    -> like ./mkFleet.nix (throws "nixfleet.mkFleet: CODE: message")
#
# A control's static predicate reads `config.<option>` (an attribute path; a quoted segment may
# hold dots: boot.kernel.sysctl."kernel.kptr_restrict"); a missing option counts as `default`.
# It passes when the value equals `equals`, or is one of `oneOf`.
let
  b = builtins;
  inherit (import ./rules.nix) concatMap;
  catalogue = (b.fromJSON (b.readFile ./compliance-catalogue.json)).controls;
  q = b.toJSON;

  # "a.b.\"c.d\"" -> [ "a" "b" "c.d" ]
  splitOption = s:
    map (m: let x = b.head m; in if b.substring 0 1 x == "\"" then b.substring 1 (b.stringLength x - 2) x else x)
      (b.filter b.isList (b.split "(\"[^\"]*\"|[^.\"]+)" s));

  # The option's value, or { missing = true; } when a segment is absent or its value throws.
  lookup = config: path:
    b.foldl' (acc: k:
      if acc ? missing then acc
      else let v = acc.value; in
        if b.isAttrs v && v ? ${k} then
          (let t = b.tryEval v.${k}; in if t.success then { value = t.value; } else { missing = true; })
        else { missing = true; }) { value = config; } path;

  # A short rendering of a value (a configuration value may hold functions or derivations).
  scalar = v: b.isString v || b.isInt v || b.isBool v || v == null || b.isFloat v;
  render = v:
    if scalar v then q v
    else if b.isList v && b.all scalar v then q v
    else if b.isList v then "<list of ${toString (b.length v)}>"
    else if b.isFunction v then "<function>"
    else "<attribute set>";

  evalStatic = config: p:
    let
      found = lookup config (splitOption p.option);
      value = if found ? missing then (p.default or null) else found.value;
      pass = if p ? equals then value == p.equals else b.elem value (p.oneOf or [ ]);
      want = if p ? equals then q p.equals else "one of ${b.concatStringsSep ", " (map q (p.oneOf or [ ]))}";
    in
    {
      result = if pass then "pass" else "fail";
      observed = "${p.option} = ${render value}${if found ? missing then " (not set: default)" else ""}${if pass then "" else "; want ${want}"}";
    };

  staticReport = { nixosConfigurations, controls ? [ ] }:
    let withStatic = b.filter (c: c.static != null) (catalogue ++ controls); in
    {
      schemaVersion = 1;
      inherit controls;
      hosts = b.mapAttrs (_: sys: b.listToAttrs (map (c: { name = c.id; value = evalStatic sys.config c.static; }) withStatic)) nixosConfigurations;
    };

  # The controls of a channel with these frameworks (protocol/compliance.ts controlsForFrameworks).
  controlsFor = all: frameworks:
    b.filter (c: b.any (f: b.elem (b.head (b.match "([^:]*):.*" f)) frameworks) c.frameworks) all;

  notInReport = "no result in the static compliance report";

  applyGate = report: r:
    let
      fleet = r.fleet;
      all = catalogue ++ report.controls;
      failures = concatMap (host:
        let
          channel = fleet.hosts.${host}.channel;
          inherit (fleet.channels.${channel}.compliance) mode frameworks;
          checked = b.filter (c: c.static != null) (controlsFor all frameworks);
          res = c: report.hosts.${host}.${c.id} or null;
        in
        if mode == "disabled" then [ ]
        else map (c: {
          inherit host channel mode;
          control = c.id;
          observed = if res c == null then notInReport else (res c).observed;
        }) (b.filter (c: res c == null || (res c).result != "pass") checked)) (b.attrNames fleet.hosts);
      line = f: "host ${q f.host} (channel ${q f.channel}, ${f.mode}): static control ${q f.control} failed: ${f.observed}";
      enforced = b.filter (f: f.mode == "enforce") failures;
      permissive = b.filter (f: f.mode == "permissive") failures;
      n = b.length enforced;
    in
    if n > 0 then {
      ok = false;
      error = { code = "COMPLIANCE_STATIC_FAILED"; message = line (b.head enforced) + (if n > 1 then " (and ${toString (n - 1)} more in enforce channels)" else ""); };
    }
    else {
      ok = true;
      fleet = fleet // {
        compliance = {
          inherit (report) controls;
          staticFailures = map (f: { inherit (f) host channel control observed; }) permissive;
        };
      };
      warnings = r.warnings ++ map line permissive;
    };

  resolveWithReport = report: desc:
    let r = import ./resolve.nix desc; in
    if !r.ok then r else applyGate report r;
in
{
  inherit catalogue staticReport resolveWithReport splitOption;
  mkFleetWithReport = report: desc:
    let r = resolveWithReport report desc; in
    if !r.ok then throw "nixfleet.mkFleet: ${r.error.code}: ${r.error.message}"
    else b.foldl' (acc: w: b.trace "warning: nixfleet.mkFleet: ${w}" acc) r.fleet r.warnings;
}
