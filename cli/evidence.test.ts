/**
 * The evidence packet (issue 15) against the real CP over mutual TLS (both store backends): two
 * releases in force over the period (the artefact history of store migration 5), host-signed
 * evidence and an activation report; `evidence export` writes the packet, `evidence verify`
 * passes offline with the per-framework summary, `--json` and the HTML page (checked for content);
 * then each tamper — a flipped byte in any file, a removed record (with or without a recomputed
 * manifest), a record re-signed with another host's key, a forged release, an audit row edited —
 * fails with its stable code, naming the file.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { fakeClosure, sampleFleet } from '../fixtures/artifacts.ts';
import { runCli } from '../fixtures/cli-testing.ts';
import { Client, hostKeyOf, makeEnv, report, startCp, operatorCliEnv } from '../fixtures/cp-testing.ts';
import { mintReleaseKey } from '../fixtures/keys.ts';
import type { EvidenceRecord } from '../protocol/compliance.ts';
import type { CheckinResponse } from '../protocol/api.ts';
import { auditEntryHash } from '../protocol/audit-chain.ts';
import type { AuditHead } from '../protocol/audit-witness.ts';
import { sha256Hex } from '../protocol/crypto.ts';
import { PACKET_FILES, PACKET_FORMAT, type Manifest } from '../protocol/evidence-packet.ts';
import { canonicalize } from '../protocol/jcs.ts';
import { readTar, writeTar, type TarFile } from '../protocol/tar.ts';
import { signArtifact } from '../fixtures/artifacts.ts';
import { verifyEvidencePacket, type PacketErrorCode, type PacketSummary } from './evidence-verify.ts';

const t = suite('nixfleet evidence export / verify');

type Setup = { packet: Uint8Array; dir: string; cli: (args: string[]) => ReturnType<typeof runCli>; trustFile: string; names: string[] };
let setup: Setup | null = null;
let teardown: (() => Promise<void>) | null = null;

const enc = new TextEncoder();
const dec = new TextDecoder();

t.before(async () => {
  try {
    await before();
  } catch (e) {
    console.error(e);
    throw e;
  }
});

async function before(): Promise<void> {
  const env = await makeEnv();
  const fleet = sampleFleet({ hosts: 2, waves: 1, closures: true, withPubkeys: true });
  fleet.channels['stable']!.compliance = { frameworks: ['nis2'], mode: 'permissive' };
  const startMs = env.clock.ms;
  env.publish(fleet);
  const cp = await startCp(env);
  const names = Object.keys(fleet.hosts).sort();
  const hosts = await Promise.all(names.map(async (n) => new Client(cp.url, env.ca.certPem, await env.hostCert(n))));
  const opEnv = await operatorCliEnv(env, cp.url);
  const cli = (args: string[]) =>
    runCli(args, { cwd: env.dir, env: opEnv, now: env.clock.now });
  teardown = async () => {
    for (const h of hosts) await h.close();
    await cp.stop();
    env.cleanup();
  };

  const rec = (i: number, control: string, result: EvidenceRecord['result'], closure: string): EvidenceRecord => ({
    schemaVersion: 1,
    hostname: names[i]!,
    control,
    result,
    observed: result === 'pass' ? 'ok' : 'PermitRootLogin yes',
    closure,
    bootId: 'b',
    rolloutId: null,
    at: new Date(env.clock.ms).toISOString(),
  });
  let head: AuditHead | undefined;
  const checkin = async (i: number, closure: string, recs: EvidenceRecord[]) => {
    // Each check-in also witnesses the head the previous answer showed (issue 15 anchoring).
    const w = head === undefined ? null : { hostname: names[i]!, seq: head.seq, hash: head.hash, at: new Date(env.clock.ms).toISOString() };
    const r = await hosts[i]!.call('POST', '/v1/agent/checkin', {
      hostname: names[i],
      currentClosure: closure,
      bootId: 'b',
      probes: [],
      failedUnits: [],
      lastOutcome: null,
      compliance: recs.map((x) => ({ record: x, signature: hostKeyOf(i, names[i]!).sign(x) })),
      ...(w === null ? {} : { auditWitness: { witness: w, signature: hostKeyOf(i, names[i]!).sign(w) } }),
    });
    assert.is(r.status, 200, JSON.stringify(r.body));
    head = (r.body as CheckinResponse).auditHead;
  };
  env.clock.advance(60_000);
  const c0 = fakeClosure(names[0]!);
  const c1 = fakeClosure(names[1]!);
  await checkin(0, c0, [rec(0, 'ssh-no-root-login', 'fail', c0), rec(0, 'firewall-enabled', 'pass', c0)]);
  await checkin(1, c1, [rec(1, 'ssh-no-root-login', 'pass', c1)]);
  // An activation the host reports: of a closure the signed release declares for it.
  const rep = report(names[0]!, 'activation-switched', null, c0, env.clock.ms);
  assert.is((await hosts[0]!.call('POST', '/v1/agent/report', { report: rep, signature: hostKeyOf(0, names[0]!).sign(rep) })).status, 202);
  // A second release: both are in force over the period.
  env.clock.advance(60_000);
  fleet.meta.ciCommit = 'second';
  env.publish(fleet);
  await cp.cp.pollNow();
  env.clock.advance(60_000);

  const out = join(env.dir, 'packet.tar');
  const r = await cli(['evidence', 'export', '--from', new Date(startMs).toISOString(), '--to', new Date(env.clock.ms).toISOString(), '--out', out]);
  assert.is(r.code, 0, r.stderr);
  assert.match(r.stdout, /2 releases, \d+ audit entries, 3 evidence records/);
  setup = { packet: new Uint8Array(readFileSync(out)), dir: env.dir, cli, trustFile: env.trustFile, names };
}

t.after(async () => {
  await teardown?.();
});

const files = (p: Uint8Array): TarFile[] => {
  const r = readTar(p);
  if (!r.ok) throw new Error(r.error.message);
  return r.value;
};

/** The packet with `edit` applied to its files, and (`remanifest`) the manifest recomputed to match. */
function tampered(edit: (fs: TarFile[]) => TarFile[], remanifest = false): Uint8Array {
  let fs = edit(files(setup!.packet).map((f) => ({ path: f.path, bytes: f.bytes.slice() })));
  if (remanifest) {
    const rest = fs.filter((f) => f.path !== PACKET_FILES.manifest);
    const m: Manifest = { format: PACKET_FORMAT, files: rest.map((f) => ({ path: f.path, sha256: sha256Hex(f.bytes), size: f.bytes.length })) };
    fs = [{ path: PACKET_FILES.manifest, bytes: enc.encode((canonicalize(m) as { value: string }).value) }, ...rest];
  }
  return writeTar(fs, 0);
}

const codeOf = (p: Uint8Array): { code: PacketErrorCode; file: string | null; message: string } => {
  const r = verifyEvidencePacket(p, null);
  assert.not.ok(r.ok, 'the tampered packet must not verify');
  return r.ok ? { code: 'TAR_FORMAT', file: null, message: '' } : r.error;
};

const editLines = (path: string, f: (lines: string[]) => string[]) => (fs: TarFile[]) =>
  fs.map((x) => (x.path === path ? { path, bytes: enc.encode(f(dec.decode(x.bytes).split('\n').filter((l) => l !== '')).map((l) => l + '\n').join('')) } : x));

t('verify passes offline: releases, audit chain, activation, evidence signatures; per-framework summary; --json; HTML page', async () => {
  const s = setup!;
  const r = verifyEvidencePacket(s.packet, null);
  assert.ok(r.ok, r.ok ? '' : r.error.message);
  const v: PacketSummary = r.value;
  assert.is(v.releases.length, 2);
  assert.equal(v.releases.map((x) => x.ciCommit), [null, 'second']);
  assert.is(v.evidence.records, 3);
  assert.is(v.evidence.verified, 3);
  assert.ok(v.activations >= 1, 'the activation report was checked against the releases');
  assert.ok(v.audit !== null && v.audit.reports.verified >= 1);
  assert.is(v.witnesses.matched, 1, 'the host-signed head is in the segment');
  const nis2 = v.frameworks.find((f) => f.framework === 'nis2')!;
  assert.is(nis2.fail, 1);
  assert.is(nis2.pass, 2);
  assert.ok(nis2.missing > 0, 'controls without evidence are missing');

  const html = join(s.dir, 'summary.html');
  const text = await s.cli(['evidence', 'verify', join(s.dir, 'packet.tar'), '--trust', s.trustFile, '--html', html]);
  assert.is(text.code, 0, text.stderr);
  assert.match(text.stdout, /ok: evidence packet .* verified offline \(trust root: --trust\)/);
  assert.match(text.stdout, /nis2\s+\d+\s+2\s+1\s+0\s+0\s+\d+/);
  assert.match(text.stdout, new RegExp(`${s.names[0]}\\s+ssh-no-root-login\\s+fail: PermitRootLogin yes`));
  const page = readFileSync(html, 'utf8');
  assert.match(page, /<span class="ok" id="verdict">VERIFIED<\/span>/);
  assert.match(page, /given by the auditor/);
  assert.match(page, /<tr><td>nis2<\/td><td class="num">\d+<\/td><td class="num">2<\/td><td class="num">1<\/td>/);
  for (const h of s.names) assert.match(page, new RegExp(`<th>${h}</th>`), 'a column per host');
  assert.match(page, /<th scope="row"><code>ssh-no-root-login<\/code>.*<td class="fail"[^>]*>✗<\/td>.*<td class="pass"[^>]*>✓<\/td><\/tr>/);
  assert.match(page, new RegExp(`<table id="failures">[\\s\\S]*<td>${s.names[0]}</td><td><code>ssh-no-root-login</code></td><td>fail</td><td>PermitRootLogin yes</td>[\\s\\S]*host-signed ✓`));
  assert.is((page.match(/<table id="releases">[\s\S]*<\/table>/)![0].match(/<tr><td>/g) ?? []).length, 2, 'the release timeline has both releases');
  assert.match(page, /<td>second<\/td>/);
  assert.not.match(page, /<script|https?:\/\//, 'self-contained: no script, no external resource');

  const js = await s.cli(['evidence', 'verify', join(s.dir, 'packet.tar'), '--json']);
  assert.is(js.code, 0);
  const parsed = JSON.parse(js.stdout) as { ok: boolean; trustFrom: string; frameworks: unknown[] };
  assert.ok(parsed.ok);
  assert.is(parsed.trustFrom, 'packet');
});

t('a flipped byte in any file of the packet fails, naming the file', () => {
  for (const f of files(setup!.packet)) {
    if (f.bytes.length === 0) continue;
    const p = tampered((fs) => fs.map((x) => (x.path === f.path ? { path: x.path, bytes: x.bytes.map((b, i) => (i === Math.floor(x.bytes.length / 2) ? b ^ 0x01 : b)) } : x)));
    const e = codeOf(p);
    if (f.path === PACKET_FILES.manifest) assert.ok(['MANIFEST', 'FILE_HASH', 'FILE_MISSING', 'PACKET_FILE'].includes(e.code), `${f.path}: ${e.code} ${e.message}`);
    else {
      assert.is(e.code, 'FILE_HASH', `${f.path}: ${e.message}`);
      assert.is(e.file, f.path);
    }
  }
  // A flipped byte in a tar header is a format error.
  const raw = setup!.packet.slice();
  raw[10] = raw[10]! ^ 0x01;
  assert.is(codeOf(raw).code, 'TAR_FORMAT');
});

t('a removed evidence record fails (FILE_HASH); removed with a recomputed manifest the rest still must verify', () => {
  const e = codeOf(tampered(editLines(PACKET_FILES.evidence, (ls) => ls.slice(1))));
  assert.is(e.code, 'FILE_HASH');
  assert.is(e.file, PACKET_FILES.evidence);
  // A removed audit row breaks the chain even with a recomputed manifest.
  const a = codeOf(tampered(editLines(PACKET_FILES.audit, (ls) => [...ls.slice(0, 1), ...ls.slice(2)]), true));
  assert.is(a.code, 'AUDIT_CHAIN');
  assert.match(a.message, /audit\.jsonl:2: SEQ/);
});

t('a record re-signed with another host\'s key fails EVIDENCE_SIGNATURE naming line, host and control', () => {
  const e = codeOf(
    tampered(
      editLines(PACKET_FILES.evidence, (ls) =>
        ls.map((l, i) => {
          if (i !== 0) return l;
          const o = JSON.parse(l) as { record: EvidenceRecord; signature: string };
          const other = setup!.names.indexOf(o.record.hostname) === 0 ? 1 : 0;
          return (canonicalize({ ...o, signature: hostKeyOf(other, setup!.names[other]!).sign(o.record) }) as { value: string }).value;
        }),
      ),
      true,
    ),
  );
  assert.is(e.code, 'EVIDENCE_SIGNATURE');
  assert.match(e.message, /evidence\.jsonl:1: evidence of host host-\d+, control [a-z-]+ does not verify/);
});

t('a forged release (signed by a key outside the trust root) fails RELEASE_SIGNATURE', () => {
  const e = codeOf(
    tampered((fs) => {
      const rel = fs.find((f) => f.path.startsWith('releases/') && f.path.endsWith('.json'))!;
      const value = JSON.parse(dec.decode(rel.bytes)) as Parameters<typeof signArtifact>[0];
      const forged = signArtifact(value, mintReleaseKey('ed25519', 99), { signedAt: (value as { meta: { signedAt: string } }).meta.signedAt });
      return fs.map((f) => (f.path === rel.path ? { path: f.path, bytes: forged.bytes } : f.path === `${rel.path}.sig` ? { path: f.path, bytes: forged.signature } : f));
    }, true),
  );
  assert.is(e.code, 'RELEASE_SIGNATURE');
  assert.match(e.file ?? '', /^releases\/001-fleet-/);
});

t('an audit row rewritten with the chain and the manifest recomputed: the chain verifies, the host-witnessed head does not (WITNESS_REWRITTEN)', () => {
  const e = codeOf(
    tampered(
      editLines(PACKET_FILES.audit, (ls) => {
        let prev: string | null = null;
        return ls.map((l, i) => {
          const o = JSON.parse(l) as Parameters<typeof auditEntryHash>[0] & { hash: string };
          if (i === 0) o.data = { rewritten: true };
          if (prev !== null) o.prevHash = prev;
          const { hash: _old, ...rest } = o;
          prev = auditEntryHash(rest);
          return (canonicalize({ ...rest, hash: prev }) as { value: string }).value;
        });
      }),
      true,
    ),
  );
  assert.is(e.code, 'WITNESS_REWRITTEN', e.message);
  assert.is(e.file, PACKET_FILES.witnesses);
  assert.match(e.message, /host:host-\d+'s witnessed head seq \d+/);
});

t('an edited audit row fails (HASH), an unlisted file fails, and the CLI exits 1 with the code', async () => {
  const e = codeOf(tampered(editLines(PACKET_FILES.audit, (ls) => ls.map((l, i) => (i === 0 ? l.replace('"cp"', '"operator:mallory"') : l))), true));
  assert.is(e.code, 'AUDIT_CHAIN');
  assert.match(e.message, /HASH/);
  assert.is(codeOf(tampered((fs) => [...fs, { path: 'extra.txt', bytes: enc.encode('x') }])).code, 'FILE_UNLISTED');
  const bad = join(setup!.dir, 'bad.tar');
  writeFileSync(bad, tampered(editLines(PACKET_FILES.evidence, (ls) => ls.slice(1))));
  const r = await setup!.cli(['evidence', 'verify', bad]);
  assert.is(r.code, 1);
  assert.match(r.stderr, /FILE_HASH: evidence\.jsonl: sha256/);
});

t.run();
