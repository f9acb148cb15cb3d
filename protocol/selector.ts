/**
 * Host selectors (SPEC §2.2): the artefact form (every rule present, v1 defaults filled), the form
 * a human writes in a fleet description (every rule optional, unknown fields refused), and the
 * one matching rule both use.
 *
 * Pure module: no I/O.
 */
import { Type, type Static } from '@sinclair/typebox';
import type { Host } from './fleet.ts';
import { Nullable } from './vocab.ts';

/**
 * Host selector (SPEC §2.2): OR over the rules that are set — `all` ∨ name in `hosts` ∨ same
 * `channel` ∨ has every tag of `tags` (when non-empty) ∨ has any tag of `tagsAny`. An empty
 * selector matches nothing.
 *
 * Our addition (optional, omitted when absent, ignored by v1 readers): `and` and `not`.
 * Match = (OR of the base rules if any base rule is set, else `true` when `and`/`not` is set)
 * ∧ every selector of `and` ∧ ¬`not`. So `{not: {tags: ["db"]}}` is "every host but db".
 * In an artefact, missing rules read as unset (false / [] / null); unknown fields are kept.
 */
export const SelectorSchema = Type.Recursive(
  (This) =>
    Type.Object({
      all: Type.Boolean({ default: false }),
      hosts: Type.Array(Type.String(), { default: [] }),
      tags: Type.Array(Type.String(), { default: [] }),
      tagsAny: Type.Array(Type.String(), { default: [] }),
      channel: Nullable(Type.String(), { default: null }),
      and: Type.Optional(Type.Array(This)),
      // NixFleet v1's mkFleet writes `not: null` (and `and: []`): both read as unset.
      not: Type.Optional(Nullable(This)),
    }),
  { $id: 'Selector' },
);
export type Selector = Static<typeof SelectorSchema>;

/** Selector as written by a human: every field optional (default false / [] / null). */
export const SelectorInputSchema = Type.Recursive(
  (This) =>
    Type.Object(
      {
        all: Type.Optional(Type.Boolean()),
        hosts: Type.Optional(Type.Array(Type.String())),
        tags: Type.Optional(Type.Array(Type.String())),
        tagsAny: Type.Optional(Type.Array(Type.String())),
        channel: Type.Optional(Nullable(Type.String())),
        and: Type.Optional(Type.Array(This)),
        not: Type.Optional(This),
      },
      { additionalProperties: false },
    ),
  { $id: 'SelectorInput' },
);
export type SelectorInput = Static<typeof SelectorInputSchema>;

/**
 * Does `sel` match host `name`? OR over the base rules that are set (SPEC §2.2), then our `and` /
 * `not` additions (see `SelectorSchema`). An empty selector matches nothing.
 */
export function matchesSelector(sel: Selector | SelectorInput, name: string, host: Pick<Host, 'tags' | 'channel'>): boolean {
  const tags = sel.tags ?? [];
  const tagsAny = sel.tagsAny ?? [];
  const hostsList = sel.hosts ?? [];
  const channel = sel.channel ?? null;
  // `and: []` and `not: null` (NixFleet v1's mkFleet writes them) are unset rules.
  const and = sel.and ?? [];
  const not = sel.not ?? null;
  const anyBase = sel.all === true || hostsList.length > 0 || tags.length > 0 || tagsAny.length > 0 || channel !== null;
  let base: boolean;
  if (anyBase) {
    base =
      sel.all === true ||
      hostsList.includes(name) ||
      (channel !== null && host.channel === channel) ||
      (tags.length > 0 && tags.every((t) => host.tags.includes(t))) ||
      tagsAny.some((t) => host.tags.includes(t));
  } else base = and.length > 0 || not !== null;
  if (!base) return false;
  if (!and.every((s) => matchesSelector(s, name, host))) return false;
  if (not !== null && matchesSelector(not, name, host)) return false;
  return true;
}
