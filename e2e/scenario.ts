/**
 * Shared scaffolding for the scenario files: which components a scenario needs, a uvu suite whose
 * `after` hook always tears the fleet down, the operator CLI as a real process, and a few
 * reusable checks (audit-derived in-flight counts, CP-side host state).
 *
 * A scenario whose components are not in the tree is registered as a *skipped* uvu test whose
 * name says what is missing — never as a pass.
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { suite, type Test } from 'uvu';
import type { AuditEntry } from '../protocol/api.ts';
import type { Fleet } from './harness.ts';
import { REPO, run, tsxArgs, type RunResult } from './proc.ts';

export type Component = 'release-cli' | 'push' | 'control-plane' | 'agent' | 'cli' | 'netns';

const FILES: Record<Exclude<Component, 'netns'>, string> = {
  'release-cli': 'release/main.ts',
  push: 'release/push.ts',
  'control-plane': 'control-plane/main.ts',
  agent: 'agent/main.ts',
  cli: 'cli/main.ts',
};

/** Components (by the file that provides them) that are not in the tree. */
export function missing(needs: readonly Component[]): string[] {
  return needs.filter((c) => c !== 'netns' && !existsSync(join(REPO, FILES[c]))).map((c) => `${c} (${FILES[c as Exclude<Component, 'netns'>]})`);
}

/**
 * A suite for one scenario file. When a needed component is missing, every test of the file is
 * registered with `.skip` and a name that says why.
 */
export function scenarioSuite(name: string, needs: readonly Component[]): { s: Test; skipReason: string | null; register: (title: string, fn: () => Promise<void>) => void } {
  const s = suite(name);
  const gone = missing(needs);
  const skipReason = gone.length > 0 ? `missing component: ${gone.join(', ')}` : null;
  const register = (title: string, fn: () => Promise<void>) => {
    if (skipReason !== null) {
      s.skip(`${title} — SKIPPED (${skipReason})`, () => undefined);
      console.log(`skip: ${name}: ${title}: ${skipReason}`);
    } else s(title, fn);
  };
  return { s, skipReason, register };
}

/** Run the operator CLI (`nixfleet …`) against the fleet's CP with the operator certificate. */
export function nixfleetCli(fleet: Fleet, args: readonly string[], extraEnv: NodeJS.ProcessEnv = {}): Promise<RunResult> {
  return run(process.execPath, tsxArgs('cli/main.ts', args), {
    env: {
      NIXFLEET_URL: fleet.cpUrl,
      NIXFLEET_CERT: join(fleet.root, 'operator', 'operator.pem'),
      NIXFLEET_KEY: join(fleet.root, 'operator', 'operator.key'),
      NIXFLEET_CA: join(fleet.root, 'operator', 'ca.pem'),
      NIXFLEET_PKI_DIR: join(fleet.root, 'operator'),
      NIXFLEET_CONFIG: join(fleet.root, 'operator', 'cli-config.json'),
      ...extraEnv,
    },
    timeoutMs: 60_000,
  });
}

const IN_FLIGHT = new Set(['Dispatched', 'Activating', 'ConfirmWindow', 'Healthy']);

/** A host-state change read from an audit entry, if it is one. */
export function hostStateChange(e: AuditEntry): { host: string; rollout: string | null; to: string; from: string | null } | null {
  if (e.kind !== 'host.state') return null;
  const d = (e.data ?? {}) as Record<string, unknown>;
  const host = typeof d['hostname'] === 'string' ? d['hostname'] : typeof d['host'] === 'string' ? d['host'] : e.subject.includes(':') ? null : e.subject;
  const to = typeof d['to'] === 'string' ? d['to'] : typeof d['state'] === 'string' ? d['state'] : null;
  if (host === null || to === null) return null;
  const rollout = typeof d['rolloutId'] === 'string' ? d['rolloutId'] : e.subject.includes('@') ? e.subject : null;
  const from = typeof d['from'] === 'string' ? d['from'] : null;
  return { host, rollout, to, from };
}

/**
 * Replays the audit log's host-state changes and returns the largest number of hosts (of
 * `hosts`) simultaneously in flight, with the moment it happened.
 */
export function maxInFlight(entries: readonly AuditEntry[], hosts: readonly string[]): { max: number; at: number | null; changes: number } {
  const state = new Map<string, string>();
  let max = 0;
  let at: number | null = null;
  let changes = 0;
  for (const e of entries) {
    const c = hostStateChange(e);
    if (c === null || !hosts.includes(c.host)) continue;
    changes++;
    state.set(c.host, c.to);
    const n = [...state.values()].filter((s) => IN_FLIGHT.has(s)).length;
    if (n > max) {
      max = n;
      at = e.seq;
    }
  }
  return { max, at, changes };
}

/** Seq of the first audit entry that puts `host` in state `to` (optionally within a rollout). */
export function firstSeq(entries: readonly AuditEntry[], host: string, to: string, rollout?: string): number | null {
  for (const e of entries) {
    const c = hostStateChange(e);
    if (c !== null && c.host === host && c.to === to && (rollout === undefined || c.rollout === null || c.rollout === rollout)) return e.seq;
  }
  return null;
}
