/**
 * The scripted CI step of the e2e fleet (SPEC §1, §3): on a commit of the fleet description in the
 * forge's working clone it runs, as real processes of `nixfleet-release`,
 *
 *   resolve --fleet fleet/fleet.json --out build/fleet.resolved.json
 *   push    --cache file://<cache> --signing-key <cache key> --closures build/closures.json
 *   sign    --in build/fleet.resolved.json --key <release key> --closures build/closures.json
 *           --ci-commit <sha> --revocations fleet/revocations.json --out-dir releases
 *
 * and commits `releases/fleet.resolved.json{,.sig}` and `releases/revocations.json{,.sig}`.
 * The release key lives beside the forge (in the CI's own directory), never in the repository and
 * never on the CP.
 */
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { FleetDescription, Revocation } from '../protocol/schema.ts';
import type { Forge } from './forge.ts';
import { REPO, runOk, tsxArgs } from './proc.ts';

/** Run `nixfleet-release <args>` as a real process; throws with its stderr on failure. */
export async function releaseTool(args: readonly string[], cwd?: string, env: NodeJS.ProcessEnv = {}): Promise<string> {
  const r = await runOk(process.execPath, tsxArgs('release/main.ts', args), { cwd: cwd ?? REPO, timeoutMs: 300_000, env });
  return r.stdout;
}

export type ReleaseInput = {
  fleet: FleetDescription;
  /** host → store basename of its closure (what `sign --closures` injects). */
  closures: Record<string, string>;
  revocations?: Revocation[];
  /** `--now` for sign (to make stale / back-dated artefacts); default: the real clock. */
  now?: string;
  message?: string;
  /** Issue 15: the static compliance report `resolve` takes (`--compliance-report`). */
  complianceReport?: unknown;
  /** Runs after signing, before the release commit is pushed (the harness evicts closures here). */
  beforeCommit?: () => Promise<void>;
};

export type ReleaseOutput = {
  /** Commit of the fleet description (what `meta.ciCommit` names). */
  sourceCommit: string;
  /** Commit that added the signed release files. */
  releaseCommit: string;
  fleetBytes: Buffer;
  fleetSig: Buffer;
  revocationsBytes: Buffer;
  revocationsSig: Buffer;
  /** The signed slice index `sign` writes beside the fleet (issue 19), or null when absent. */
  indexBytes: Buffer | null;
  indexSig: Buffer | null;
};

export class Ci {
  readonly dir: string;
  readonly keyFile: string;
  publicKey = '';
  constructor(
    readonly root: string,
    readonly forge: Forge,
    /** Nix store URL of the binary cache CI pushes to (file://…). */
    readonly pushCacheUrl: string,
    /** The cache's signing key (`nix key generate-secret`), held by CI. */
    readonly cacheSigningKey: string,
  ) {
    this.dir = join(root, 'ci');
    this.keyFile = join(this.dir, 'release.key');
    mkdirSync(this.dir, { recursive: true });
  }

  /** `nixfleet-release keygen` → the public key (base64) for trust.json. */
  async keygen(): Promise<string> {
    const out = await releaseTool(['keygen', '--out', this.keyFile]);
    this.publicKey = out.trim().split('\n').pop()!.trim();
    if (!/^[A-Za-z0-9+/]{43}=$/.test(this.publicKey)) throw new Error(`keygen printed no ed25519 public key: ${JSON.stringify(out)}`);
    return this.publicKey;
  }

  /** A developer commits the fleet description; CI resolves, pushes, signs and commits the release. */
  async release(input: ReleaseInput, key: string = this.keyFile): Promise<ReleaseOutput> {
    const f = this.forge;
    f.write('fleet/fleet.json', JSON.stringify(input.fleet, null, 2) + '\n');
    const revocations = {
      schemaVersion: 1,
      revocations: input.revocations ?? [],
      meta: { schemaVersion: 1, signedAt: null, ciCommit: null },
    };
    f.write('fleet/revocations.json', JSON.stringify(revocations, null, 2) + '\n');
    const sourceCommit = await f.commit(input.message ?? 'fleet: update');

    const build = join(this.dir, 'build');
    mkdirSync(build, { recursive: true });
    const resolved = join(build, 'fleet.resolved.json');
    const closuresFile = join(build, 'closures.json');
    writeFileSync(closuresFile, JSON.stringify(input.closures, null, 2) + '\n');
    const reportArgs: string[] = [];
    if (input.complianceReport !== undefined) {
      writeFileSync(join(build, 'compliance-report.json'), JSON.stringify(input.complianceReport, null, 2) + '\n');
      reportArgs.push('--compliance-report', join(build, 'compliance-report.json'));
    }
    await releaseTool(['resolve', '--fleet', join(f.work, 'fleet/fleet.json'), '--out', resolved, ...reportArgs]);
    // The CI runner's own Nix disk cache, not the one of whoever runs the tests.
    await releaseTool(['push', '--cache', this.pushCacheUrl, '--signing-key', this.cacheSigningKey, '--closures', closuresFile], REPO, {
      XDG_CACHE_HOME: join(this.dir, 'xdg-cache'),
    });
    const signArgs = [
      'sign',
      '--in', resolved,
      '--key', key,
      '--closures', closuresFile,
      '--ci-commit', sourceCommit,
      '--revocations', join(f.work, 'fleet/revocations.json'),
      '--out-dir', join(f.work, 'releases'),
    ];
    if (input.now !== undefined) signArgs.push('--now', input.now);
    await releaseTool(signArgs);
    if (input.beforeCommit !== undefined) await input.beforeCommit();
    const releaseCommit = await f.commit(`ci: signed release for ${sourceCommit.slice(0, 12)}`);
    return { sourceCommit, releaseCommit, ...this.readReleases() };
  }

  readReleases(): Pick<ReleaseOutput, 'fleetBytes' | 'fleetSig' | 'revocationsBytes' | 'revocationsSig' | 'indexBytes' | 'indexSig'> {
    const r = (n: string) => readFileSync(join(this.forge.work, 'releases', n));
    const maybe = (n: string) => (existsSync(join(this.forge.work, 'releases', n)) ? r(n) : null);
    return {
      fleetBytes: r('fleet.resolved.json'),
      fleetSig: r('fleet.resolved.json.sig'),
      revocationsBytes: r('revocations.json'),
      revocationsSig: r('revocations.json.sig'),
      indexBytes: maybe('fleet.index.json'),
      indexSig: maybe('fleet.index.json.sig'),
    };
  }

  /** Commit arbitrary release files as they are (tampering scenarios: bytes the CI never signed). */
  async commitReleaseFiles(files: Partial<Record<'fleet.resolved.json' | 'fleet.resolved.json.sig' | 'revocations.json' | 'revocations.json.sig' | 'fleet.index.json' | 'fleet.index.json.sig', Uint8Array>>, message: string): Promise<string> {
    for (const [name, bytes] of Object.entries(files)) this.forge.write(join('releases', name), bytes);
    return this.forge.commit(message);
  }
}
