# The few nixpkgs `lib` functions NixFleet v1's mk-fleet test harness and fixtures call
# (replaceStrings, filter, hasPrefix, hasSuffix, genAttrs, range), written on builtins so that
# suite can run here without nixpkgs (nix-tests/nixfleet-v1-suite.test.ts). Same results as
# nixpkgs' functions of the same names for the inputs they are given.
let
  b = builtins;
in {
  inherit (b) replaceStrings filter;
  hasPrefix = pre: s: b.substring 0 (b.stringLength pre) s == pre;
  hasSuffix = suf: s:
    let n = b.stringLength s; m = b.stringLength suf;
    in n >= m && b.substring (n - m) m s == suf;
  genAttrs = names: f: b.listToAttrs (map (name: { inherit name; value = f name; }) names);
  range = first: last: if first > last then [ ] else b.genList (i: first + i) (last - first + 1);
}
