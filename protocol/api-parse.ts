/**
 * Request-body validation for every route that takes a body (SPEC §5: every body is validated).
 * Each `parseX(u: unknown)` reports every bad field path, not just the first, and returns a value
 * with exactly the fields of the API type (unknown fields are dropped, so nothing unvalidated is
 * stored). Pure.
 */
import { err, ok, type Result } from './result.ts';
import type {
  CheckinRequest,
  ConfirmRequest,
  ConfirmedRecord,
  HostReport,
  LastOutcome,
  PauseRequest,
  ProbeResult,
  QuarantineClearRequest,
  ReportEvent,
  ReportRequest,
  SignedConfirmedRecord,
} from './api.ts';

/** One bad field: where (a JSON Pointer-like path) and what is wrong. */
export type Issue = { path: string; message: string };

export type ValidationError = { code: 'INVALID_BODY'; message: string; issues: Issue[] };

const MAX_STRING = 4096;
const MAX_LIST = 256;

class V {
  readonly issues: Issue[] = [];
  fail(path: string, message: string): void {
    if (this.issues.length < 50) this.issues.push({ path, message });
  }
  obj(u: unknown, path: string): Record<string, unknown> | null {
    if (typeof u !== 'object' || u === null || Array.isArray(u)) {
      this.fail(path, 'must be an object');
      return null;
    }
    return u as Record<string, unknown>;
  }
  str(o: Record<string, unknown>, k: string, path: string, opts: { max?: number; pattern?: RegExp; min?: number } = {}): string {
    const v = o[k];
    const p = `${path}/${k}`;
    if (typeof v !== 'string') {
      this.fail(p, 'must be a string');
      return '';
    }
    if (v.length < (opts.min ?? 1)) this.fail(p, 'must not be empty');
    else if (v.length > (opts.max ?? MAX_STRING)) this.fail(p, `must be at most ${opts.max ?? MAX_STRING} characters`);
    else if (opts.pattern !== undefined && !opts.pattern.test(v)) this.fail(p, `has an invalid format`);
    return v;
  }
  strOrNull(o: Record<string, unknown>, k: string, path: string, opts: { max?: number; pattern?: RegExp } = {}): string | null {
    if (o[k] === null) return null;
    return this.str(o, k, path, opts);
  }
  time(o: Record<string, unknown>, k: string, path: string): string {
    const v = this.str(o, k, path, { max: 64 });
    if (v !== '' && !RFC3339.test(v)) this.fail(`${path}/${k}`, 'must be an RFC 3339 time');
    return v;
  }
  bool(o: Record<string, unknown>, k: string, path: string): boolean {
    const v = o[k];
    if (typeof v !== 'boolean') {
      this.fail(`${path}/${k}`, 'must be a boolean');
      return false;
    }
    return v;
  }
  arr(o: Record<string, unknown>, k: string, path: string): unknown[] {
    const v = o[k];
    if (!Array.isArray(v)) {
      this.fail(`${path}/${k}`, 'must be an array');
      return [];
    }
    if (v.length > MAX_LIST) {
      this.fail(`${path}/${k}`, `must have at most ${MAX_LIST} entries`);
      return [];
    }
    return v;
  }
  oneOf<T extends string>(o: Record<string, unknown>, k: string, path: string, values: readonly T[]): T {
    const v = o[k];
    if (typeof v !== 'string' || !(values as readonly string[]).includes(v)) {
      this.fail(`${path}/${k}`, `must be one of ${values.join(', ')}`);
      return values[0]!;
    }
    return v as T;
  }
  done<T>(value: T): Result<T, ValidationError> {
    if (this.issues.length === 0) return ok(value);
    const first = this.issues[0]!;
    return err({ code: 'INVALID_BODY', message: `invalid request body: ${first.path || '/'} ${first.message}${this.issues.length > 1 ? ` (+${this.issues.length - 1} more)` : ''}`, issues: this.issues });
  }
}

const RFC3339 = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,9})?(Z|[+-]\d{2}:\d{2})$/;
/** A host name as the PKI mints it (pki/pki.ts). */
export const HOSTNAME = /^[A-Za-z0-9][A-Za-z0-9._@-]{0,62}$/;
/** A Nix store basename: 32-char hash, dash, name (alphabet checked loosely: lower-case alphanumerics). */
export const STORE_BASENAME = /^[0-9a-z]{32}-[A-Za-z0-9+._?=-]{1,211}$/;
const ROLLOUT_ID = /^[^\s]{1,512}$/;
const B64 = /^[A-Za-z0-9+/]{86}==$/; // 64 raw bytes

const OUTCOMES: readonly LastOutcome['outcome'][] = ['confirmed', 'rolled-back', 'activation-failed', 'activation-deferred', 'refused'];
export const REPORT_EVENTS: readonly ReportEvent[] = [
  'activation-started',
  'activation-switched',
  'activation-failed',
  'activation-deferred',
  'rolled-back',
  'stale-target',
  'closure-quarantined',
  'verify-failed',
  'probe-failed',
];

function probe(v: V, u: unknown, path: string): ProbeResult {
  const o = v.obj(u, path);
  if (o === null) return { name: '', ok: false, observedAt: '' };
  const out: ProbeResult = { name: v.str(o, 'name', path, { max: 256 }), ok: v.bool(o, 'ok', path), observedAt: v.time(o, 'observedAt', path) };
  if (o['message'] !== undefined) out.message = v.str(o, 'message', path, { min: 0 });
  return out;
}

function lastOutcome(v: V, u: unknown, path: string): LastOutcome | null {
  if (u === null) return null;
  const o = v.obj(u, path);
  if (o === null) return null;
  return {
    rolloutId: v.str(o, 'rolloutId', path, { pattern: ROLLOUT_ID, max: 512 }),
    closureHash: v.str(o, 'closureHash', path, { pattern: STORE_BASENAME, max: 256 }),
    outcome: v.oneOf(o, 'outcome', path, OUTCOMES),
    at: v.time(o, 'at', path),
  };
}

function confirmedRecord(v: V, u: unknown, path: string): SignedConfirmedRecord | null {
  if (u === null) return null;
  const o = v.obj(u, path);
  if (o === null) return null;
  const r = v.obj(o['record'], `${path}/record`);
  const signature = v.str(o, 'signature', path, { pattern: B64, max: 88 });
  if (r === null) return null;
  const rp = `${path}/record`;
  const record: ConfirmedRecord = {
    hostname: v.str(r, 'hostname', rp, { pattern: HOSTNAME, max: 63 }),
    rolloutId: v.str(r, 'rolloutId', rp, { pattern: ROLLOUT_ID, max: 512 }),
    closureHash: v.str(r, 'closureHash', rp, { pattern: STORE_BASENAME, max: 256 }),
    confirmedAt: v.time(r, 'confirmedAt', rp),
  };
  return { record, signature };
}

function failedUnits(v: V, o: Record<string, unknown>): string[] {
  return v.arr(o, 'failedUnits', '').map((x, i) => {
    if (typeof x !== 'string' || x.length === 0 || x.length > 256) v.fail(`/failedUnits/${i}`, 'must be a unit name');
    return String(x);
  });
}

export function parseCheckinRequest(u: unknown): Result<CheckinRequest, ValidationError> {
  const v = new V();
  const o = v.obj(u, '');
  if (o === null) return v.done(null as never);
  const req: CheckinRequest = {
    hostname: v.str(o, 'hostname', '', { pattern: HOSTNAME, max: 63 }),
    currentClosure: v.strOrNull(o, 'currentClosure', '', { pattern: STORE_BASENAME, max: 256 }),
    bootId: v.str(o, 'bootId', '', { max: 128 }),
    probes: v.arr(o, 'probes', '').map((p, i) => probe(v, p, `/probes/${i}`)),
    failedUnits: failedUnits(v, o),
    lastOutcome: lastOutcome(v, o['lastOutcome'], '/lastOutcome'),
  };
  if (o['agentVersion'] !== undefined) req.agentVersion = v.str(o, 'agentVersion', '', { max: 64 });
  if (o['pendingReboot'] !== undefined) req.pendingReboot = v.bool(o, 'pendingReboot', '');
  if (o['lastConfirmed'] !== undefined) req.lastConfirmed = confirmedRecord(v, o['lastConfirmed'], '/lastConfirmed');
  return v.done(req);
}

export function parseConfirmRequest(u: unknown): Result<ConfirmRequest, ValidationError> {
  const v = new V();
  const o = v.obj(u, '');
  if (o === null) return v.done(null as never);
  const req: ConfirmRequest = {
    hostname: v.str(o, 'hostname', '', { pattern: HOSTNAME, max: 63 }),
    rolloutId: v.str(o, 'rolloutId', '', { pattern: ROLLOUT_ID, max: 512 }),
    closureHash: v.str(o, 'closureHash', '', { pattern: STORE_BASENAME, max: 256 }),
    bootId: v.str(o, 'bootId', '', { max: 128 }),
  };
  if (o['confirmed'] !== undefined) {
    const c = confirmedRecord(v, o['confirmed'], '/confirmed');
    if (c !== null) req.confirmed = c;
  }
  if (o['probes'] !== undefined) req.probes = v.arr(o, 'probes', '').map((p, i) => probe(v, p, `/probes/${i}`));
  if (o['failedUnits'] !== undefined) req.failedUnits = failedUnits(v, o);
  return v.done(req);
}

export function parseReportRequest(u: unknown): Result<ReportRequest, ValidationError> {
  const v = new V();
  const o = v.obj(u, '');
  if (o === null) return v.done(null as never);
  const r = v.obj(o['report'], '/report');
  const signature = o['signature'] === null ? null : v.str(o, 'signature', '', { pattern: B64, max: 88 });
  if (r === null) return v.done(null as never);
  const report: HostReport = {
    hostname: v.str(r, 'hostname', '/report', { pattern: HOSTNAME, max: 63 }),
    event: v.oneOf(r, 'event', '/report', REPORT_EVENTS),
    rolloutId: v.strOrNull(r, 'rolloutId', '/report', { pattern: ROLLOUT_ID, max: 512 }),
    closureHash: v.strOrNull(r, 'closureHash', '/report', { pattern: STORE_BASENAME, max: 256 }),
    at: v.time(r, 'at', '/report'),
    message: v.str(r, 'message', '/report', { min: 0 }),
  };
  if (r['details'] !== undefined) {
    const d = v.obj(r['details'], '/report/details');
    if (d !== null) report.details = d;
  }
  // The signature covers the report as sent: keep any extra fields for verification by
  // re-reading them from the raw value (the caller verifies over JCS of `rawReport`).
  return v.done({ report, signature });
}

export function parsePauseRequest(u: unknown): Result<PauseRequest, ValidationError> {
  const v = new V();
  if (u === undefined) return ok({});
  const o = v.obj(u, '');
  if (o === null) return v.done(null as never);
  const out: PauseRequest = {};
  if (o['reason'] !== undefined) out.reason = v.str(o, 'reason', '', { max: 1024, min: 0 });
  return v.done(out);
}

export function parseQuarantineClearRequest(u: unknown): Result<QuarantineClearRequest, ValidationError> {
  const v = new V();
  const o = v.obj(u, '');
  if (o === null) return v.done(null as never);
  const out: QuarantineClearRequest = { channel: v.str(o, 'channel', '', { max: 256 }) };
  if (o['closureHash'] !== undefined) out.closureHash = v.str(o, 'closureHash', '', { pattern: STORE_BASENAME, max: 256 });
  return v.done(out);
}
