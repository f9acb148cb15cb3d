/**
 * Shared vocabularies: the string formats every side (CP, agent, CLI, release) checks the same
 * way. Each is defined ONCE here, as a predicate and as a TypeBox schema (which also becomes the
 * JSON Schema users see); no other module may carry its own copy of these regular expressions.
 *
 * Pure module: no I/O.
 */
import { FormatRegistry, Type, type SchemaOptions, type StringOptions, type TSchema, type TUnsafe } from '@sinclair/typebox';

// ---------------------------------------------------------------------------------------------
// RFC 3339 timestamps
//
// Rule: `YYYY-MM-DDTHH:MM:SS[.frac](Z|±HH:MM)` with an UPPER-CASE `T` and `Z`, calendar-checked
// (no 2026-02-30, hour ≤ 23, minute ≤ 59, second ≤ 60 for a leap second, offset ≤ 23:59).
// RFC 3339 §5.6 lets a producer write `t` / `z`, but also lets a specification "further limit the
// date/time syntax so that the letters 'T' and 'Z' … must always be upper case". We do: every
// nixfleet producer writes `Date.prototype.toISOString()` (upper case), the NixFleet v1 artefacts
// do too, JSON Schema's `date-time` tooling agrees on upper case, and a signed artefact should
// have one spelling of a time, not two. Where SPEC §2.2 says "RFC 3339, UTC" (`meta.signedAt`)
// only `Z` is accepted (an offset, even `+00:00`, is refused: the artefact says UTC).
// lib/resolve.nix mirrors this rule for pins' `expiresAt`.
// ---------------------------------------------------------------------------------------------

const RFC3339 = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d+)?(?:Z|[+-]\d{2}:\d{2})$/;

function daysInMonth(y: number, mo: number): number {
  if (mo === 2) return (y % 4 === 0 && y % 100 !== 0) || y % 400 === 0 ? 29 : 28;
  return mo === 4 || mo === 6 || mo === 9 || mo === 11 ? 30 : 31;
}

/** Two decimal digits at `i` (the regular expression has checked they are digits). */
const two = (s: string, i: number): number => (s.charCodeAt(i) - 48) * 10 + (s.charCodeAt(i + 1) - 48);

/** Is `s` an RFC 3339 timestamp by the rule above (`utcOnly`: only the `Z` form)? */
export function isTimestamp(s: string, utcOnly = false): boolean {
  if (!RFC3339.test(s)) return false;
  const zulu = s.charCodeAt(s.length - 1) === 90; // 'Z'
  if (utcOnly && !zulu) return false;
  const y = two(s, 0) * 100 + two(s, 2);
  const mo = two(s, 5);
  const d = two(s, 8);
  if (mo < 1 || mo > 12 || d < 1 || d > daysInMonth(y, mo)) return false;
  if (two(s, 11) > 23 || two(s, 14) > 59 || two(s, 17) > 60) return false;
  return zulu || (two(s, s.length - 5) <= 23 && two(s, s.length - 2) <= 59);
}

/** RFC 3339 timestamp (rule above) → epoch milliseconds, or null. A leap second counts as :59. */
export function parseTimestamp(s: string, utcOnly = false): number | null {
  if (!isTimestamp(s, utcOnly)) return null;
  // Date.parse reads this ISO form exactly; only the leap second and long fractions need help.
  const frac = /^\.\d+/.exec(s.slice(19))?.[0] ?? '';
  const zone = s.slice(19 + frac.length);
  const ms = Date.parse(`${s.slice(0, 17)}${s.slice(17, 19) === '60' ? '59' : s.slice(17, 19)}${frac.slice(0, 4)}${zone}`);
  return Number.isFinite(ms) ? ms : null;
}

// The JSON Schema `date-time` format, checked with the whole rule above (upper case, calendar):
// one regular expression run per timestamp on the hot path (check-in bodies carry several).
FormatRegistry.Set('date-time', (s) => isTimestamp(s));

/** An RFC 3339 timestamp, any offset (format `date-time`, checked with the rule above). */
export const Timestamp = (opts: StringOptions = {}) => Type.String({ format: 'date-time', errorMessage: 'must be an RFC 3339 timestamp', ...opts });

/** An RFC 3339 timestamp in UTC (`…Z`), SPEC §2.2 `meta.signedAt`. */
export const TimestampUtc = (opts: StringOptions = {}) =>
  Type.String({ format: 'date-time', pattern: 'Z$', errorMessage: 'must be an RFC 3339 UTC timestamp (…Z)', ...opts });

// ---------------------------------------------------------------------------------------------
// Nix store basenames (`<hash>-<name>`), as Nix's libstore checks them (src/libstore/path.cc):
// - the hash is 32 characters of Nix's base32 alphabet `0-9a-z` WITHOUT `e o t u`;
// - the name is 1–211 characters of `A-Za-z0-9+-._?=`, and it is not `.` or `..` and does not
//   start with `.-` or `..-` (the first dash-separated component may not be `.` or `..`).
// The looser `[0-9a-z]{32}` that api-parse.ts used accepted hashes Nix can never produce.
// ---------------------------------------------------------------------------------------------

const STORE_BASENAME_SOURCE = '^[0-9abcdfghijklmnpqrsvwxyz]{32}-(?!\\.\\.?(?:-|$))[A-Za-z0-9+\\-._?=]{1,211}$';
/** A Nix store basename (rule above). */
export const STORE_BASENAME = new RegExp(STORE_BASENAME_SOURCE);
export const isStoreBasename = (s: string): boolean => STORE_BASENAME.test(s);
export const StoreBasename = (opts: StringOptions = {}) =>
  Type.String({ pattern: STORE_BASENAME_SOURCE, maxLength: 256, errorMessage: 'must be a Nix store basename (<32-char nix-base32 hash>-<name>)', ...opts });

// ---------------------------------------------------------------------------------------------
// Host names, as the PKI mints them into certificate CNs (pki/pki.ts) and the CP compares them:
// an ASCII letter or digit, then up to 62 of letters, digits, `.`, `_`, `@`, `-` (63 in all, the
// DNS label limit; dots allowed so that FQDNs such as `web1.example.com` work).
// ---------------------------------------------------------------------------------------------

const HOSTNAME_SOURCE = '^[A-Za-z0-9][A-Za-z0-9._@-]{0,62}$';
export const HOSTNAME = new RegExp(HOSTNAME_SOURCE);
export const isHostname = (s: string): boolean => HOSTNAME.test(s);
export const Hostname = (opts: StringOptions = {}) =>
  Type.String({ minLength: 1, maxLength: 63, pattern: HOSTNAME_SOURCE, errorMessage: 'must be a host name (letters, digits, . _ @ -; at most 63)', ...opts });

/** A string enum as a union of literals (JSON Schema `anyOf` of `const`s), typed as `T`. */
export const Enum = <T extends string>(values: readonly T[], opts: SchemaOptions = {}): TUnsafe<T> =>
  Type.Unsafe<T>(Type.Union(values.map((v) => Type.Literal(v)), opts));

/** `T | null` (JSON Schema `anyOf` with `null`). */
export const Nullable = <T extends TSchema>(t: T, opts: SchemaOptions = {}) => Type.Union([t, Type.Null()], opts);
