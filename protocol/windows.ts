/**
 * Per-channel rollout controls (issue 14; our additions to `fleet.resolved.json`, SPEC §10):
 * `rebootPolicy`, `onDrift`, `progressDeadlineMinutes` and `changeWindow` (weekday/time ranges in
 * an IANA time zone, and freeze periods). They are signed with the fleet, omitted when absent (a
 * NixFleet v1 reader ignores them; a v1 artefact has none, and reads with the defaults below), and
 * evaluated purely: `changeWindowAt(window, nowMs)` takes the time as a parameter.
 *
 * `Intl.DateTimeFormat` is the only time-zone database we use: it is pure given its inputs
 * (no clock is read), so the reconciler and the agent may call it.
 *
 * Pure module: no I/O.
 */
import { Type, type Static, type TSchema } from '@sinclair/typebox';
import { Count, NonEmpty } from './artifact.ts';
import { Enum, parseTimestamp, Timestamp } from './vocab.ts';

const REBOOT_POLICY_NAMES = ['manual', 'automatic'] as const;
/** `manual`: the operator reboots (the host stays PendingReboot); `automatic`: the agent reboots itself inside the change window. */
export type RebootPolicy = (typeof REBOOT_POLICY_NAMES)[number];
export const REBOOT_POLICIES: readonly RebootPolicy[] = REBOOT_POLICY_NAMES;

const ON_DRIFT_NAMES = ['report', 'redeploy'] as const;
/** `report`: a drifted host is shown and audited; `redeploy`: the reconciler dispatches its declared closure again (gates and budgets apply). */
export type OnDrift = (typeof ON_DRIFT_NAMES)[number];
export const ON_DRIFT: readonly OnDrift[] = ON_DRIFT_NAMES;

const WEEKDAY_NAMES = ['mon', 'tue', 'wed', 'thu', 'fri', 'sat', 'sun'] as const;
export type Weekday = (typeof WEEKDAY_NAMES)[number];
export const WEEKDAYS: readonly Weekday[] = WEEKDAY_NAMES;

/** Defaults of the optional channel controls (a channel that does not set them, e.g. a v1 artefact). */
export const CHANNEL_CONTROL_DEFAULTS = Object.freeze({
  rebootPolicy: 'manual' as RebootPolicy,
  onDrift: 'report' as OnDrift,
  progressDeadlineMinutes: 30,
});

/** `HH:MM`, 00:00–23:59; an end may also be `24:00`. */
export const CLOCK_TIME_SOURCE = '^(([01][0-9]|2[0-3]):[0-5][0-9]|24:00)$';
const ClockTime = () => Type.String({ pattern: CLOCK_TIME_SOURCE, errorMessage: 'must be a time HH:MM (00:00–24:00)' });

const Strict = <P extends Record<string, TSchema>>(props: P) => Type.Object(props, { additionalProperties: false });

/**
 * One allowed range: on each of `days` (local to the window's time zone) from `start` to `end`.
 * `end ≤ start` crosses midnight: the range runs into the next day (it belongs to its start day).
 */
const rangeProps = { days: Type.Array(Enum(WEEKDAYS, { errorMessage: `must be one of ${WEEKDAYS.join(', ')}` })), start: ClockTime(), end: ClockTime() };
export const WindowRangeSchema = Type.Object(rangeProps);
export type WindowRange = Static<typeof WindowRangeSchema>;

/** A freeze: no new dispatch from `from` (inclusive) to `until` (exclusive), whatever the ranges say. */
const freezeProps = { from: Timestamp(), until: Timestamp(), reason: Type.String() };
export const FreezeSchema = Type.Object(freezeProps);
export type Freeze = Static<typeof FreezeSchema>;

/**
 * A channel's change window as signed. `allow` empty = every time is allowed (only the freezes
 * close it). `timeZone`: an IANA name (`Europe/Paris`, `UTC`); an unknown zone closes the window
 * (fail safe) and the parser refuses it.
 */
export const ChangeWindowSchema = Type.Object({ timeZone: NonEmpty(), allow: Type.Array(WindowRangeSchema), freezes: Type.Array(FreezeSchema) });
export type ChangeWindow = Static<typeof ChangeWindowSchema>;

/** As written in a fleet description: `allow` and `freezes` default to []; unknown fields refused. */
export const ChangeWindowInputSchema = Strict({
  timeZone: NonEmpty(),
  allow: Type.Optional(Type.Array(Strict(rangeProps))),
  freezes: Type.Optional(Type.Array(Strict(freezeProps))),
});
export type ChangeWindowInput = Static<typeof ChangeWindowInputSchema>;

/** The optional channel fields, as in the signed artefact (omitted when absent). */
export const channelControlProps = {
  rebootPolicy: Type.Optional(Enum(REBOOT_POLICIES)),
  onDrift: Type.Optional(Enum(ON_DRIFT)),
  progressDeadlineMinutes: Type.Optional(Count(1)),
  changeWindow: Type.Optional(ChangeWindowSchema),
  /** A rollout of the channel starts only after this many distinct operators approved it (`nixfleet rollout approve`). */
  requireApprovals: Type.Optional(Count(1)),
};

/** The same, as written in a fleet description (copied as written into the artefact; `changeWindow` gets its [] defaults). */
export const channelControlInputProps = { ...channelControlProps, changeWindow: Type.Optional(ChangeWindowInputSchema) };

/** The resolved form of a description's change window (what `resolve` and lib/resolve.nix write). */
export function toChangeWindow(w: ChangeWindowInput): ChangeWindow {
  return {
    timeZone: w.timeZone,
    allow: (w.allow ?? []).map((r) => ({ days: [...r.days], start: r.start, end: r.end })),
    freezes: (w.freezes ?? []).map((f) => ({ from: f.from, until: f.until, reason: f.reason })),
  };
}

// --- evaluation ---------------------------------------------------------------------------------

const formatters = new Map<string, Intl.DateTimeFormat | null>();

/** A formatter for the zone, memoised; null for a zone Intl does not know. */
function formatterOf(timeZone: string): Intl.DateTimeFormat | null {
  let f = formatters.get(timeZone);
  if (f === undefined) {
    try {
      f = new Intl.DateTimeFormat('en-US', { timeZone, weekday: 'short', hour: '2-digit', minute: '2-digit', hourCycle: 'h23' });
    } catch {
      f = null;
    }
    formatters.set(timeZone, f);
  }
  return f;
}

/** Is `timeZone` an IANA zone this runtime knows? */
export const isTimeZone = (timeZone: string): boolean => formatterOf(timeZone) !== null;

const SHORT_DAY: Record<string, number> = { Mon: 0, Tue: 1, Wed: 2, Thu: 3, Fri: 4, Sat: 5, Sun: 6 };

/** Local weekday (0 = mon) and minute of the day at `nowMs` in `timeZone`; null for an unknown zone. */
export function localTime(timeZone: string, nowMs: number): { day: number; minute: number } | null {
  const f = formatterOf(timeZone);
  if (f === null) return null;
  let day = -1;
  let hour = 0;
  let minute = 0;
  for (const p of f.formatToParts(new Date(nowMs))) {
    if (p.type === 'weekday') day = SHORT_DAY[p.value] ?? -1;
    else if (p.type === 'hour') hour = Number(p.value) % 24;
    else if (p.type === 'minute') minute = Number(p.value);
  }
  return day < 0 ? null : { day, minute: hour * 60 + minute };
}

const minutesOf = (hhmm: string): number => Number(hhmm.slice(0, 2)) * 60 + Number(hhmm.slice(3, 5));

function inRange(r: WindowRange, day: number, minute: number): boolean {
  const start = minutesOf(r.start);
  const end = minutesOf(r.end);
  const has = (d: number) => r.days.includes(WEEKDAYS[(d + 7) % 7]!);
  if (end > start) return has(day) && minute >= start && minute < end;
  // Crosses midnight (end ≤ start): the evening of a listed day, or the morning after it.
  return (has(day) && minute >= start) || (has(day - 1) && minute < end);
}

export type WindowVerdict = { open: true; reason: string } | { open: false; reason: string };

/**
 * Is a change allowed at `nowMs`? No window = always. A freeze that covers `nowMs` closes it; then
 * `allow` empty = open, else open only inside one of its ranges (local time of `timeZone`).
 */
export function changeWindowAt(window: ChangeWindow | undefined, nowMs: number): WindowVerdict {
  if (window === undefined) return { open: true, reason: 'no change window' };
  for (const f of window.freezes) {
    const from = parseTimestamp(f.from);
    const until = parseTimestamp(f.until);
    if (from !== null && until !== null && nowMs >= from && nowMs < until) {
      return { open: false, reason: `change freeze ${f.from} – ${f.until}${f.reason !== '' ? `: ${f.reason}` : ''}` };
    }
  }
  if (window.allow.length === 0) return { open: true, reason: 'no freeze in effect' };
  const local = localTime(window.timeZone, nowMs);
  if (local === null) return { open: false, reason: `unknown time zone ${JSON.stringify(window.timeZone)}: change window closed` };
  const r = window.allow.find((x) => inRange(x, local.day, local.minute));
  if (r !== undefined) return { open: true, reason: `inside change window ${r.days.join(',')} ${r.start}–${r.end} ${window.timeZone}` };
  const ranges = window.allow.map((x) => `${x.days.join(',')} ${x.start}–${x.end}`).join('; ');
  return { open: false, reason: `outside the change window (${ranges} ${window.timeZone})` };
}
