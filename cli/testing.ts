/**
 * Test helpers for the CLI: run `nixfleet` in-process with captured output, an injected clock and
 * a private HOME, so no test reads the real ~/.config.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { COMMANDS } from './commands.ts';
import type { ExitCode, Io } from './framework.ts';
import { run } from './run.ts';
import { generateKeyPair, signBytes, toOpenSshEd25519 } from '../release/crypto.ts';
import type { KeyPair } from '../release/crypto.ts';
import { canonicalBytes } from '../release/jcs.ts';
import type { FleetResolved } from '../release/schema.ts';

export type Captured = { code: ExitCode; stdout: string; stderr: string };

export type FakeIo = Partial<Omit<Io, 'stdout' | 'stderr'>>;

export async function runCli(argv: string[], io: FakeIo = {}): Promise<Captured> {
  let stdout = '';
  let stderr = '';
  const code = await run(COMMANDS, argv, {
    stdout: (s) => void (stdout += s),
    stderr: (s) => void (stderr += s),
    env: io.env ?? {},
    cwd: io.cwd ?? process.cwd(),
    isTTY: io.isTTY ?? false,
    columns: io.columns ?? null,
    now: io.now ?? (() => Date.parse('2026-01-01T12:00:00Z')),
    sleep: io.sleep ?? (async () => {}),
    stdin: io.stdin ?? (async () => ''),
  });
  return { code, stdout, stderr };
}

/** A fresh temporary directory; call the returned cleanup in `after`. */
export function tempDir(prefix = 'nixfleet-cli-'): { dir: string; cleanup: () => void } {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  return { dir, cleanup: () => rmSync(dir, { recursive: true, force: true }) };
}

/** stderr is exactly one line (the CLI's promise: no stack traces). */
export function isOneLine(s: string): boolean {
  return s.endsWith('\n') && !s.slice(0, -1).includes('\n');
}


/** A small valid fleet (one channel, given hosts in one wave) with each host's ssh-ed25519 key. */
export function smallFleet(hosts: Record<string, KeyPair | null>, signedAt: string | null, channel = 'stable'): FleetResolved {
  const names = Object.keys(hosts).sort();
  return {
    schemaVersion: 1,
    hosts: Object.fromEntries(
      names.map((h) => [
        h,
        {
          system: 'x86_64-linux',
          tags: [],
          channel,
          closureHash: `${'a'.repeat(32)}-nixos-system-${h}-25.05`,
          pubkey: hosts[h] ? toOpenSshEd25519(hosts[h]!.publicKey, `root@${h}`) : null,
        },
      ]),
    ),
    channels: {
      [channel]: { rolloutPolicy: 'all', freshnessWindow: 180, signingIntervalMinutes: 60, reconcileIntervalMinutes: 30, compliance: { frameworks: [], mode: 'disabled' } },
    },
    rolloutPolicies: {
      all: {
        strategy: 'all-at-once',
        waves: [{ selector: { all: true, hosts: [], tags: [], tagsAny: [], channel: null }, soakMinutes: 0 }],
        healthGate: {},
        onHealthFailure: 'halt',
      },
    },
    waves: { [channel]: [{ hosts: names, soakMinutes: 0 }] },
    edges: [],
    channelEdges: [],
    disruptionBudgets: [],
    meta: { schemaVersion: 1, signedAt, ciCommit: 'c0ffee', signatureAlgorithm: 'ed25519' },
  };
}

/** Canonical bytes and raw signature of an artefact value. */
export function signArtifact(value: unknown, key: KeyPair = generateKeyPair('ed25519')): { bytes: Uint8Array; sig: Uint8Array; key: KeyPair } {
  const bytes = canonicalBytes(value);
  if (!bytes.ok) throw new Error(bytes.error.message);
  return { bytes: bytes.value, sig: signBytes(bytes.value, key), key };
}

/** The `--json` field names a command documents (docs/cli.md), to compare with real output. */
export function documentedJsonFields(command: string): string[] {
  const c = COMMANDS.find((x) => x.name === command);
  if (!c?.json) throw new Error(`bug: ${command} documents no --json output`);
  return c.json.fields.map((f) => f.name);
}
