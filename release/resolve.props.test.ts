import fc from 'fast-check';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { canonicalize } from '../protocol/jcs.ts';
import { resolveFleet } from './resolve.ts';
import { matchesSelector, type FleetDescription, type SelectorInput } from '../protocol/schema.ts';

const name = fc.stringMatching(/^[a-z][a-z0-9]{0,5}$/);
const tag = fc.constantFrom('a', 'b', 'c', 'd');
const selector: fc.Arbitrary<SelectorInput> = fc.record({ all: fc.boolean(), tags: fc.array(tag, { maxLength: 2 }), tagsAny: fc.array(tag, { maxLength: 2 }), not: fc.record({ tags: fc.array(tag, { maxLength: 1 }) }) }, { requiredKeys: [] });
const description: fc.Arbitrary<FleetDescription> = fc
  .record({
    channels: fc.uniqueArray(name, { minLength: 1, maxLength: 3 }),
    hosts: fc.uniqueArray(fc.record({ name, tags: fc.array(tag, { maxLength: 3 }), ch: fc.nat() }), { selector: (h) => h.name, maxLength: 15 }),
    waves: fc.array(fc.record({ selector, soakMinutes: fc.nat(60) }), { minLength: 1, maxLength: 4 }),
  })
  .map(({ channels, hosts, waves }) => {
    const d: FleetDescription = { hosts: {}, channels: {}, rolloutPolicies: { p: { waves } } };
    for (const c of channels) d.channels[c] = { rolloutPolicy: 'p' };
    for (const h of hosts) d.hosts[h.name] = { system: 'x86_64-linux', channel: channels[h.ch % channels.length]!, tags: h.tags };
    return d;
  });

function reverseKeys<T extends Record<string, unknown>>(o: T): T {
  const out: Record<string, unknown> = {};
  for (const k of Object.keys(o).reverse()) out[k] = o[k];
  return out as T;
}

const props = suite('resolve properties');

props('every host lands in exactly one wave of its own channel: the first matching one, else the last', () => {
  fc.assert(
    fc.property(description, (d) => {
      const r = resolveFleet(d);
      assert.ok(r.ok);
      if (!r.ok) return;
      const { fleet } = r.value;
      for (const [h, host] of Object.entries(fleet.hosts)) {
        const places = Object.entries(fleet.waves).flatMap(([ch, ws]) => ws.flatMap((w, i) => (w.hosts.includes(h) ? [[ch, i] as const] : [])));
        assert.is(places.length, 1, h);
        const [ch, i] = places[0]!;
        assert.is(ch, host.channel);
        const waves = fleet.rolloutPolicies['p']!.waves;
        const first = waves.findIndex((w) => matchesSelector(w.selector, h, host));
        assert.is(i, first === -1 ? waves.length - 1 : first);
      }
      for (const ws of Object.values(fleet.waves)) for (const w of ws) assert.equal(w.hosts, [...w.hosts].sort());
    }),
    { numRuns: 300 },
  );
});

props('the output does not depend on the key order of the description', () => {
  fc.assert(
    fc.property(description, (d) => {
      const shuffled: FleetDescription = { ...d, hosts: reverseKeys(d.hosts), channels: reverseKeys(d.channels) };
      const a = resolveFleet(d);
      const b = resolveFleet(shuffled);
      assert.ok(a.ok && b.ok);
      if (a.ok && b.ok) {
        assert.is((canonicalize(a.value.fleet) as { value: string }).value, (canonicalize(b.value.fleet) as { value: string }).value);
        assert.equal(a.value.warnings, b.value.warnings);
      }
    }),
    { numRuns: 200 },
  );
});

props.run();
