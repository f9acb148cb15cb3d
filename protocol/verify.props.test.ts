import fc from 'fast-check';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { signFleet } from '../fixtures/artifacts.ts';
import { mintReleaseKey, trustFor } from '../fixtures/keys.ts';
import { resolveFleet } from '../release/resolve.ts';
import type { FleetDescription } from './schema.ts';
import { signBytes } from './crypto.ts';
import { canonicalBytes } from './jcs.ts';
import { VERIFY_ERROR_CODES, verifyArtifact } from './verify.ts';

const ed = mintReleaseKey('ed25519', 11);
const ec = mintReleaseKey('ecdsa-p256', 12);
const T0 = '2026-03-01T12:00:00Z';
const t0 = Date.parse(T0);

// Arbitrary fleet descriptions: names and tags from small alphabets so selectors actually hit.
const name = fc.stringMatching(/^[a-z][a-z0-9-]{0,8}$/);
const tag = fc.constantFrom('web', 'db', 'eu', 'us', 'canary', 'gpu', 'é-unicode', 'x/y');
const selector = fc.record(
  { all: fc.boolean(), hosts: fc.array(name, { maxLength: 2 }), tags: fc.array(tag, { maxLength: 2 }), tagsAny: fc.array(tag, { maxLength: 2 }) },
  { requiredKeys: [] },
);
const description: fc.Arbitrary<FleetDescription> = fc
  .record({
    channels: fc.uniqueArray(name, { minLength: 1, maxLength: 3 }),
    hosts: fc.uniqueArray(fc.record({ name, tags: fc.array(tag, { maxLength: 3 }), ch: fc.nat(), system: fc.constantFrom('x86_64-linux', 'aarch64-darwin') }), { selector: (h) => h.name, maxLength: 12 }),
    waves: fc.array(fc.record({ selector, soakMinutes: fc.nat(600) }), { minLength: 1, maxLength: 4 }),
    freshness: fc.integer({ min: 120, max: 10_000 }),
    commit: fc.option(fc.string(), { nil: undefined }),
  })
  .map(({ channels, hosts, waves, freshness }) => {
    const known = new Set(hosts.map((h) => h.name));
    const d: FleetDescription = {
      hosts: {},
      channels: {},
      rolloutPolicies: { p: { strategy: 'staged', waves: waves.map((w) => ({ ...w, selector: { ...w.selector, hosts: (w.selector.hosts ?? []).filter((h) => known.has(h)) } })) } },
    };
    for (const c of channels) d.channels[c] = { rolloutPolicy: 'p', freshnessWindow: freshness };
    for (const h of hosts) d.hosts[h.name] = { system: h.system, channel: channels[h.ch % channels.length]!, tags: h.tags };
    return d;
  });

const resolved = description.map((d) => {
  const r = resolveFleet(d);
  if (!r.ok) throw new Error(`generator produced an invalid fleet: ${r.error.code} ${r.error.message}`);
  return r.value.fleet;
});

const props = suite('verify properties');

props('sign → verify holds for arbitrary generated fleets (ed25519 and p256)', () => {
  fc.assert(
    fc.property(resolved, fc.boolean(), fc.integer({ min: -60, max: 120 * 60 }), (fleet, useEc, skewSecs) => {
      const key = useEc ? ec : ed;
      const s = signFleet(fleet, key, T0);
      const r = verifyArtifact({ kind: 'fleet', bytes: s.bytes, signature: s.signature, trust: trustFor(key), nowMs: t0 + skewSecs * 1000, lastAccepted: null });
      assert.ok(r.ok, r.ok ? '' : `${r.error.code}: ${r.error.message}`);
      if (r.ok) assert.equal(r.value.fleet!.hosts, s.value.hosts);
    }),
    { numRuns: 150 },
  );
});

props('modelIsCanonical: JCS(model) is exactly the verified bytes when it is set, and it is unset when the schema filled a default', () => {
  fc.assert(
    fc.property(resolved, fc.constantFrom('none', 'edges', 'tags', 'closureHash'), (fleet, drop) => {
      const s = signFleet(fleet, ed, T0);
      let bytes = s.bytes;
      let signature = s.signature;
      if (drop !== 'none') {
        // A NixFleet v1 artefact may leave out what has a default; the model then has it filled.
        const v = JSON.parse(new TextDecoder().decode(s.bytes)) as Record<string, unknown> & { hosts: Record<string, Record<string, unknown>> };
        const first = Object.keys(v.hosts)[0];
        if (drop === 'edges') delete v['edges'];
        else if (first !== undefined) delete v.hosts[first]![drop];
        else return;
        const c = canonicalBytes(v);
        if (!c.ok) throw new Error(c.error.message);
        bytes = c.value;
        signature = signBytes(bytes, ed.privateKey);
      }
      const r = verifyArtifact({ kind: 'fleet', bytes, signature, trust: trustFor(ed), nowMs: t0, lastAccepted: null });
      assert.ok(r.ok, r.ok ? '' : r.error.message);
      if (!r.ok) return;
      assert.is(r.value.modelIsCanonical, drop === 'none');
      const again = canonicalBytes(r.value.fleet);
      assert.ok(again.ok);
      if (r.value.modelIsCanonical) assert.ok(again.ok && Buffer.from(again.value).equals(r.value.canonical), 'JCS(model) = canonical');
      // The one-pass canonical check located the host entries exactly when the model is the bytes' value.
      assert.is(r.value.hostSpans !== undefined, r.value.modelIsCanonical);
      if (r.value.hostSpans !== undefined) assert.is(r.value.hostSpans.length, 4 * Object.keys(r.value.fleet!.hosts).length);
      else assert.not.ok(again.ok && Buffer.from(again.value).equals(r.value.canonical), 'a filled model is not the bytes');
    }),
    { numRuns: 150 },
  );
});

props('any single-bit change of the artefact or of the signature is refused', () => {
  fc.assert(
    fc.property(resolved, fc.boolean(), fc.nat(), fc.nat(7), (fleet, inSig, pos, bit) => {
      const s = signFleet(fleet, ed, T0);
      const bytes = Uint8Array.from(s.bytes);
      const sig = Uint8Array.from(s.signature);
      if (inSig) sig[pos % 64]! ^= 1 << bit;
      else bytes[pos % bytes.length]! ^= 1 << bit;
      const r = verifyArtifact({ kind: 'fleet', bytes, signature: sig, trust: trustFor(ed), nowMs: t0, lastAccepted: null });
      // We verify over the JCS of the received text, so only a flip that keeps the parsed value
      // identical could pass (e.g. `\u001f` → `\u001F`); generated fleets hold no escapes, so
      // every flip must be refused.
      assert.ok(!r.ok, `flip at ${inSig ? 'sig' : 'bytes'}[${pos % (inSig ? 64 : bytes.length)}] bit ${bit} was accepted`);
      assert.ok(['BAD_SIGNATURE', 'PARSE_ERROR', 'DUPLICATE_KEY', 'NOT_CANONICALIZABLE'].includes(r.error.code), r.error.code);
    }),
    { numRuns: 300 },
  );
});

props('verifyArtifact never throws on arbitrary bytes: it returns an error code', () => {
  const one = resolveFleet({ hosts: { a: { system: 's', channel: 'c' } }, channels: { c: { rolloutPolicy: 'p' } }, rolloutPolicies: { p: { waves: [{ selector: { all: true } }] } } });
  if (!one.ok) throw new Error(one.error.message);
  const validText = new TextDecoder().decode(signFleet(one.value.fleet, ed, T0).bytes);
  const mutatedText = fc.tuple(fc.nat(), fc.nat(), fc.string({ maxLength: 5 })).map(([a, b, ins]) => {
    const i = a % validText.length;
    const j = Math.min(validText.length, i + (b % 10));
    return new TextEncoder().encode(validText.slice(0, i) + ins + validText.slice(j));
  });
  fc.assert(
    fc.property(fc.oneof(fc.uint8Array({ maxLength: 300 }), mutatedText, fc.jsonValue().map((j) => new TextEncoder().encode(JSON.stringify(j)))), fc.uint8Array({ minLength: 0, maxLength: 70 }), fc.constantFrom('fleet' as const, 'revocations' as const), (bytes, sig, kind) => {
      const r = verifyArtifact({ kind, bytes, signature: sig, trust: trustFor(ed), nowMs: t0, lastAccepted: { signedAt: T0, sha256: '00' } });
      assert.ok(!r.ok && VERIFY_ERROR_CODES.includes(r.error.code) && typeof r.error.message === 'string');
    }),
    { numRuns: 1500 },
  );
});

props.run();
