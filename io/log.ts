/**
 * The one logger factory of the long-running programs (control plane and agent): pino writing one
 * JSON object per line on stderr (journald-friendly), e.g.
 *
 *   {"level":"info","time":"2026-12-02T00:00:00.000Z","program":"nixfleet-control-plane","event":"artifact.accepted","kind":"fleet",…}
 *
 * `event` is a stable dotted name (docs/operations.md lists them); the other keys are its fields.
 * Expected failures carry their stable `code`. Stack traces go to the log only at `debug` level,
 * never to a client or a terminal. Values under secret-looking keys are replaced by `[redacted]`.
 * Control characters in strings are escaped by the JSON encoding itself; C1 controls and DEL,
 * which JSON leaves as they are, are escaped too (`escapeControl`), so host-sent text cannot
 * drive an operator's terminal through a log line.
 *
 * Levels: the program's configured level, overridden by `NIXFLEET_LOG_LEVEL` (the test runner
 * sets it to `silent` so that the suites stay quiet; set it to `debug` to see everything).
 */
import pino from 'pino';
import { escapeControl } from './text.ts';

export const LOG_LEVELS = ['debug', 'info', 'warn', 'error', 'silent'] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];

export type LogFields = Record<string, unknown>;

/** One method per level; `event` is a stable dotted name, `fields` its data. */
export interface Logger {
  debug(event: string, fields?: LogFields): void;
  info(event: string, fields?: LogFields): void;
  warn(event: string, fields?: LogFields): void;
  error(event: string, fields?: LogFields): void;
  /** Whether lines at `level` are written (a caller on a hot path builds its fields only then); absent: assume so. */
  enabled?(level: 'debug' | 'info' | 'warn' | 'error'): boolean;
}

/** Keys whose values never reach a log line (at any depth up to two). */
const SECRET_KEYS = ['password', 'passphrase', 'secret', 'token', 'privateKey', 'key', 'authorization', 'cookie'] as const;
const REDACT = SECRET_KEYS.flatMap((k) => [k, `*.${k}`, `*.*.${k}`]);

export const isLogLevel = (s: unknown): s is LogLevel => typeof s === 'string' && (LOG_LEVELS as readonly string[]).includes(s);

/** The effective level: `NIXFLEET_LOG_LEVEL` when set to a known level, else the configured one. */
export function effectiveLevel(configured: LogLevel, env: Readonly<Record<string, string | undefined>> = process.env): LogLevel {
  const fromEnv = env['NIXFLEET_LOG_LEVEL'];
  return isLogLevel(fromEnv) ? fromEnv : configured;
}

export type LoggerOptions = {
  program: string;
  level: LogLevel;
  /** Where lines go (one call per line, with its newline); default stderr, synchronously. */
  write?: (line: string) => void;
  /** Clock for the `time` field; default the real one. */
  now?: () => number;
};

/** Strings escaped (C1 / DEL), errors reduced to their message, nested values kept as they are. */
function clean(fields: LogFields): LogFields {
  const out: LogFields = {};
  for (const [k, v] of Object.entries(fields)) {
    if (k === 'stack') out[k] = v; // our own code's frames, at debug only
    else if (typeof v === 'string') out[k] = escapeControl(v);
    else if (v instanceof Error) out[k] = escapeControl(v.message);
    else out[k] = v;
  }
  return out;
}

/** A pino logger behind the `Logger` interface. */
export function createLogger(o: LoggerOptions): Logger {
  const now = o.now ?? Date.now;
  const write = o.write;
  const destination = write !== undefined ? { write: (s: string) => write(s) } : pino.destination({ fd: 2, sync: true });
  const p = pino(
    {
      level: o.level,
      base: { program: o.program },
      messageKey: 'event',
      timestamp: () => `,"time":"${new Date(now()).toISOString()}"`,
      formatters: { level: (label) => ({ level: label }) },
      redact: { paths: REDACT, censor: '[redacted]' },
    },
    destination,
  );
  const at =
    (lvl: 'debug' | 'info' | 'warn' | 'error') =>
    (event: string, fields?: LogFields): void => {
      if (!p.isLevelEnabled(lvl)) return;
      p[lvl](fields === undefined ? {} : clean(fields), event);
    };
  return { debug: at('debug'), info: at('info'), warn: at('warn'), error: at('error'), enabled: (lvl) => p.isLevelEnabled(lvl) };
}

/** A logger that writes nothing (tests, and code paths given no logger). */
export const silentLogger: Logger = { debug() {}, info() {}, warn() {}, error() {}, enabled: () => false };

/** A thrown value for a log line: its message at error level; the stack only for `debug`. */
export function errorFields(e: unknown): { error: string; stack?: string } {
  if (e instanceof Error) return e.stack !== undefined ? { error: e.message, stack: e.stack } : { error: e.message };
  return { error: String(e) };
}

/** Log an unexpected error: the message at `error`, the stack (if any) at `debug` under the same event. */
export function logBug(log: Logger, event: string, e: unknown, fields: LogFields = {}): void {
  const { error, stack } = errorFields(e);
  log.error(event, { ...fields, error });
  if (stack !== undefined) log.debug(event, { ...fields, stack });
}
