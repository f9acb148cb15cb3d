# Rules shared by the two fleet entry points: ours (./resolve.nix, the JSON-shaped fleet
# description of protocol/schema.ts) and the NixFleet v1 one (./nixfleet-v1.nix, v1's module-shaped
# fleet definitions). Builtins only (SPEC §9). Where the two entry points differ (messages, defaults,
# how selectors combine), the difference stays in the entry point and is named in
# docs/migrating-from-nixfleet.md; what is here is the same rule for both.
let
  b = builtins;
in
rec {
  optional = cond: x: if cond then [ x ] else [ ];
  optionalAttrs = cond: set: if cond then set else { };
  concatMap = f: xs: b.concatLists (map f xs);
  indexed = xs: b.genList (i: { inherit i; v = b.elemAt xs i; }) (b.length xs);
  # Keeps the first occurrence, in order.
  unique = b.foldl' (acc: x: if b.elem x acc then acc else acc ++ [ x ]) [ ];

  # The base rules of a selector (SPEC §2.2): all ∨ listed name ∨ same channel ∨ has every tag of a
  # non-empty `tags` ∨ has any tag of `tagsAny`. Both entry points OR these; they differ in how
  # `and` / `not` combine with them (see each entry point).
  baseMatches = sel: name: host:
    sel.all
    || b.elem name sel.hosts
    || (sel.channel != null && sel.channel == host.channel)
    || (sel.tags != [ ] && b.all (t: b.elem t host.tags) sel.tags)
    || b.any (t: b.elem t host.tags) sel.tagsAny;

  # Hosts whose channel differs across a host edge (`gates` / `gated`; hosts looked up by name).
  crossesChannels = hosts: e: hosts.${e.gates}.channel != hosts.${e.gated}.channel;

  # SPEC §2.2: freshnessWindow ≥ 2 × signingIntervalMinutes, so one missed signing strands no host.
  freshnessTooShort = ch: ch.freshnessWindow < 2 * ch.signingIntervalMinutes;

  # Names of `new` already present in `acc` (merging fleet files: hosts and channels are strict).
  collisions = acc: new: b.filter (n: acc ? ${n}) (b.attrNames new);

  # resolve.ts findCycle: DFS from each node in sorted order, successors (gates → gated) sorted; the
  # first back edge found gives the cycle as a path [n, …, n], or null. Only nodes on some edge can
  # be on a cycle. Whether a cycle exists does not depend on the edge direction, so the v1 entry
  # uses the same search for its yes/no check.
  findCycle = edgeList:
    let
      succ = b.mapAttrs (_: es: b.sort b.lessThan (map (e: e.gated) es)) (b.groupBy (e: e.gates) edgeList);
      nodes = b.attrNames (b.listToAttrs (concatMap (e: [ { name = e.gates; value = null; } { name = e.gated; value = null; } ]) edgeList));
      visit = st: n:
        let
          entered = st // { onStack = st.onStack // { ${n} = true; }; stack = st.stack ++ [ n ]; };
          after = b.foldl' (s: m:
            if s.cycle != null then s
            else if s.onStack ? ${m} then s // { cycle = (dropUntil m s.stack) ++ [ m ]; }
            else if s.done ? ${m} then s
            else visit s m) entered (succ.${n} or [ ]);
        in
        if after.cycle != null then after
        else after // { onStack = removeAttrs after.onStack [ n ]; stack = st.stack; done = after.done // { ${n} = true; }; };
      dropUntil = m: xs: if b.head xs == m then xs else dropUntil m (b.tail xs);
      final = b.foldl' (s: n: if s.cycle != null || s.done ? ${n} then s else visit s n)
        { onStack = { }; stack = [ ]; done = { }; cycle = null; } nodes;
    in
    final.cycle;
}
