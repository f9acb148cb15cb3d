/**
 * docs/evidence-summary.png (issue 15): a demo evidence packet minted with the test fixtures (two
 * signed releases, a hash-chained audit segment with a host-witnessed head, host-signed evidence
 * of four hosts), verified with the real `verifyEvidencePacket`, rendered with the real
 * `renderEvidenceHtml`, photographed in Debian's Chromium through playwright-core.
 *
 *   npx tsx scripts/evidence-screenshot.ts [OUT.png] [OUT.html]
 */
import { writeFileSync } from 'node:fs';
import { chromium } from 'playwright-core';
import { renderEvidenceHtml } from '../cli/evidence-html.ts';
import { verifyEvidencePacket } from '../cli/evidence-verify.ts';
import { fakeClosure, sampleFleet, signArtifact } from '../fixtures/artifacts.ts';
import { mintHostKey, mintReleaseKey, trustFor } from '../fixtures/keys.ts';
import type { AuditEntry } from '../protocol/api.ts';
import { auditEntryHash, GENESIS_HASH } from '../protocol/audit-chain.ts';
import type { StoredWitness } from '../protocol/audit-witness.ts';
import { controlsOf, type EvidenceRecord } from '../protocol/compliance.ts';
import { signBytes, toBase64 } from '../protocol/crypto.ts';
import { buildPacket, type StoredEvidence } from '../protocol/evidence-packet.ts';
import { canonicalBytes } from '../protocol/jcs.ts';
import { writeTar } from '../protocol/tar.ts';

const out = process.argv[2] ?? 'docs/evidence-summary.png';
const htmlOut = process.argv[3] ?? null;
const T0 = Date.parse('2026-03-02T09:00:00Z');
const iso = (ms: number): string => new Date(ms).toISOString().replace(/\.000Z$/, 'Z');
const release = mintReleaseKey('ed25519', 7);
const fleet = sampleFleet({ hosts: 4, waves: 2, closures: true, withPubkeys: true });
fleet.channels['stable']!.compliance = { frameworks: ['nis2', 'iso27001'], mode: 'enforce' };
const names = Object.keys(fleet.hosts).sort();
const sign = (i: number, v: unknown): string => {
  const b = canonicalBytes(v);
  if (!b.ok) throw new Error('not canonical');
  return toBase64(signBytes(b.value, { algorithm: 'ed25519', secretKey: mintHostKey(i, names[i]!).secretKey }));
};
const r1 = signArtifact(fleet, release, { signedAt: iso(T0), ciCommit: '4f2c1e9' });
const r2 = signArtifact(fleet, release, { signedAt: iso(T0 + 86_400_000), ciCommit: '9a7d03b' });

const audit: AuditEntry[] = [];
const append = (atMs: number, kind: string, actor: string, subject: string, data: unknown) => {
  const e = { seq: audit.length + 1, at: iso(atMs), kind, actor, subject, data, prevHash: audit[audit.length - 1]?.hash ?? GENESIS_HASH };
  audit.push({ ...e, hash: auditEntryHash(e) });
};
append(T0 + 60_000, 'artifact.accepted', 'cp', 'fleet', { signedAt: iso(T0), sha256: r1.sha256 });
append(T0 + 86_460_000, 'artifact.accepted', 'cp', 'fleet', { signedAt: iso(T0 + 86_400_000), sha256: r2.sha256 });
const head = audit[audit.length - 1]!;
const witness = { hostname: names[0]!, seq: head.seq, hash: head.hash, at: iso(T0 + 86_500_000) };
const witnesses: StoredWitness[] = [{ by: `host:${names[0]}`, seq: head.seq, hash: head.hash, at: witness.at, witness, signature: sign(0, witness) }];

const failing: Record<string, string> = { [`${names[2]}|ssh-no-root-login`]: 'PermitRootLogin yes', [`${names[3]}|kernel-kptr-restrict`]: 'kernel.kptr_restrict = 0' };
const evidence: StoredEvidence[] = [];
const controls = controlsOf(['nis2', 'iso27001'], undefined).map((c) => c.id).filter((c) => c !== 'audit-rules-enabled');
names.forEach((h, i) => {
  for (const c of controls) {
    if (i === 1 && c === 'time-sync') continue; // missing: never reported
    const bad = failing[`${h}|${c}`];
    const at = T0 + 86_600_000 + i * 1000;
    const record: EvidenceRecord = { schemaVersion: 1, hostname: h, control: c, result: bad === undefined ? 'pass' : 'fail', observed: bad ?? 'as required', closure: fakeClosure(h), bootId: 'b', rolloutId: null, at: iso(at) };
    evidence.push({ record, signature: sign(i, record), receivedAt: iso(at + 2000), verdict: 'verified' });
  }
});
const copy = (a: typeof r1, acceptedMs: number) => ({ kind: 'fleet' as const, signedAt: a.signedAt!, sha256: a.sha256, acceptedAt: iso(acceptedMs), artifact: toBase64(a.bytes), signature: toBase64(a.signature) });
const trust = trustFor(release);
const files = buildPacket({ trust, releases: [copy(r1, T0 + 60_000), copy(r2, T0 + 86_460_000)], evidence }, audit, evidence, witnesses, {
  from: iso(T0),
  to: iso(T0 + 2 * 86_400_000),
  framework: null,
  generatedAt: iso(T0 + 2 * 86_400_000 + 60_000),
  auditHead: { seq: head.seq, hash: head.hash },
});
const v = verifyEvidencePacket(writeTar(files, 0), trust);
if (!v.ok) throw new Error(`demo packet does not verify: ${v.error.code}: ${v.error.message}`);
const html = renderEvidenceHtml(v.value);
if (htmlOut !== null) writeFileSync(htmlOut, html);

const browser = await chromium.launch({ executablePath: '/usr/bin/chromium', args: ['--no-sandbox'] });
try {
  const page = await browser.newPage({ viewport: { width: 1180, height: 900 } });
  await page.setContent(html);
  await page.screenshot({ path: out, fullPage: true });
} finally {
  await browser.close();
}
console.log(`wrote ${out}`);
