import fc from 'fast-check';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import type { AuditEntry, HostReport } from '../protocol/api.ts';
import { generateKeyPair, signBytes, toBase64 } from '../protocol/crypto.ts';
import { canonicalBytes, canonicalize } from '../protocol/jcs.ts';
import { GENESIS_HASH, auditEntryHash, verifyAuditLog } from './audit.ts';
import { documentedJsonFields, isOneLine, runCli, signArtifact, smallFleet, tempDir } from '../fixtures/cli-testing.ts';

const web1 = generateKeyPair('ed25519', new Uint8Array(32).fill(11));
const web2 = generateKeyPair('ed25519', new Uint8Array(32).fill(12));
const KEYS = { web1: [web1.publicKeyB64], web2: [web2.publicKeyB64] };

function signedReport(host: string, key: typeof web1, event: HostReport['event'] = 'rolled-back'): { report: HostReport; signature: string; verdict: 'verified' } {
  const report: HostReport = { hostname: host, event, rolloutId: 'stable@abc', closureHash: 'x-nixos-system', at: '2026-03-01T12:01:00Z', message: 'probe failed' };
  const bytes = canonicalBytes(report);
  if (!bytes.ok) throw new Error('bug');
  return { report, signature: toBase64(signBytes(bytes.value, key)), verdict: 'verified' };
}

/** Chain entries the way the CP does (api.ts rule). */
function chain(items: { kind: string; actor: string; subject: string; data: unknown }[], startSeq = 1, prevHash = GENESIS_HASH): AuditEntry[] {
  const out: AuditEntry[] = [];
  let prev = prevHash;
  items.forEach((it, i) => {
    const base = { seq: startSeq + i, at: `2026-03-01T12:0${i % 10}:00.000Z`, ...it, prevHash: prev };
    const e = { ...base, hash: auditEntryHash(base) };
    out.push(e);
    prev = e.hash;
  });
  return out;
}
const toJsonl = (es: AuditEntry[]): string => es.map((e) => (canonicalize(e) as { ok: true; value: string }).value + '\n').join('');

const ITEMS = [
  { kind: 'artifact.accepted', actor: 'cp', subject: 'fleet', data: { sha256: 'f'.repeat(64) } },
  { kind: 'rollout.state', actor: 'cp', subject: 'stable@abc', data: { from: 'Pending', to: 'Executing', reason: 'opened' } },
  { kind: 'host.state', actor: 'cp', subject: 'web1', data: { rolloutId: 'stable@abc', from: 'Queued', to: 'Dispatched' } },
  { kind: 'report', actor: 'host:web1', subject: 'web1', data: signedReport('web1', web1) },
  { kind: 'channel.paused', actor: 'operator:alice', subject: 'stable', data: { reason: 'investigating' } },
  { kind: 'report.invalid', actor: 'host:web2', subject: 'web2', data: { ...signedReport('web2', web1), verdict: 'invalid' } },
  { kind: 'host.confirmed-record', actor: 'host:web2', subject: 'stable@abc', data: confirmedRecord('web2', web2) },
];

function confirmedRecord(host: string, key: typeof web1) {
  const record = { hostname: host, rolloutId: 'stable@abc', closureHash: 'x-nixos-system', confirmedAt: '2026-03-01T12:02:00.000Z' };
  const bytes = canonicalBytes(record);
  if (!bytes.ok) throw new Error('bug');
  return { via: 'confirm', record, signature: toBase64(signBytes(bytes.value, key)), verdict: 'verified' };
}
const LOG = toJsonl(chain(ITEMS));

test('an intact chain verifies; reports are checked against the hosts keys', () => {
  const r = verifyAuditLog(LOG, KEYS);
  assert.ok(r.ok, r.ok ? '' : r.error.message);
  if (!r.ok) return;
  assert.is(r.value.entries, 7);
  assert.is(r.value.complete, true);
  assert.equal(r.value.reports, { verified: 2, rejectedByCp: 1, unchecked: 0 });
  const noKeys = verifyAuditLog(LOG, null);
  assert.ok(noKeys.ok && noKeys.value.reports.unchecked === 3);
  // A confirmed record signed by another host's key is caught like a report.
  const swapped = ITEMS.map((it) => (it.kind === 'host.confirmed-record' ? { ...it, data: confirmedRecord('web2', web1) } : it));
  const bad = verifyAuditLog(toJsonl(chain(swapped)), KEYS);
  assert.ok(!bad.ok && bad.error.code === 'REPORT_SIGNATURE' && bad.error.line === 7 && /confirmed record of host web2/.test(bad.error.message));
});

function evidenceEntry(host: string, key: typeof web1, control = 'ssh-no-root-login') {
  const record = { schemaVersion: 1, hostname: host, control, result: 'fail', observed: 'PermitRootLogin yes', closure: 'x-nixos-system', bootId: 'b', rolloutId: 'stable@abc', at: '2026-03-01T12:03:00.000Z' };
  const bytes = canonicalBytes(record);
  if (!bytes.ok) throw new Error('bug');
  return { kind: 'host.evidence', actor: `host:${host}`, subject: host, data: { via: 'confirm', closure: 'x-nixos-system', records: 1, failing: [control], dropped: 0, verdict: 'verified', evidence: [{ record, signature: toBase64(signBytes(bytes.value, key)) }] } };
}

test('issue 15: host-signed evidence in host.evidence entries is checked offline; re-signed with another key or naming another host fails, naming the line and control', () => {
  const good = verifyAuditLog(toJsonl(chain([...ITEMS, evidenceEntry('web1', web1)])), KEYS);
  assert.ok(good.ok && good.value.evidence.verified === 1 && good.value.evidence.unchecked === 0, good.ok ? '' : good.error.message);
  const noKeys = verifyAuditLog(toJsonl(chain([...ITEMS, evidenceEntry('web1', web1)])), null);
  assert.ok(noKeys.ok && noKeys.value.evidence.unchecked === 1);
  const resigned = verifyAuditLog(toJsonl(chain([...ITEMS, evidenceEntry('web1', web2)])), KEYS);
  assert.ok(!resigned.ok && resigned.error.code === 'EVIDENCE_SIGNATURE' && resigned.error.line === 8 && /control ssh-no-root-login\) of host web1 does not verify/.test(resigned.error.message), resigned.ok ? '' : resigned.error.message);
  const other = evidenceEntry('web2', web2);
  const foreign = verifyAuditLog(toJsonl(chain([...ITEMS, { ...other, actor: 'host:web1', subject: 'web1' }])), KEYS);
  assert.ok(!foreign.ok && foreign.error.code === 'EVIDENCE_SIGNATURE' && /names host web2/.test(foreign.error.message));
});

test('editing one line fails and names that line', () => {
  const lines = LOG.split('\n');
  const edited = lines[1]!.replace('"to":"Executing"', '"to":"Converged"');
  assert.is.not(edited, lines[1]);
  lines[1] = edited;
  const r = verifyAuditLog(lines.join('\n'), KEYS);
  assert.ok(!r.ok);
  if (r.ok) return;
  assert.is(r.error.code, 'HASH');
  assert.is(r.error.line, 2);
  assert.match(r.error.message, /^line 2 \(seq 2\): hash does not match/);
});

test('a forged report with a recomputed chain fails on its signature, naming its line', () => {
  const forged = ITEMS.map((it) => (it.kind === 'report' && it.subject === 'web1' ? { ...it, data: { ...(it.data as object), report: { ...(it.data as { report: HostReport }).report, event: 'activation-started' } } } : it));
  const r = verifyAuditLog(toJsonl(chain(forged)), KEYS);
  assert.ok(!r.ok);
  if (r.ok) return;
  assert.is(r.error.code, 'REPORT_SIGNATURE');
  assert.is(r.error.line, 4);
  assert.match(r.error.message, /report activation-started of host web1 does not verify/);
});

test('removed, reordered, appended-out-of-chain and extra-field lines are caught', () => {
  const lines = LOG.trimEnd().split('\n');
  const removed = [...lines.slice(0, 2), ...lines.slice(3)].join('\n');
  const r1 = verifyAuditLog(removed, KEYS);
  assert.ok(!r1.ok && r1.error.code === 'SEQ' && r1.error.line === 3);
  const swapped = [lines[0], lines[2], lines[1], ...lines.slice(3)].join('\n');
  const r2 = verifyAuditLog(swapped, KEYS);
  assert.ok(!r2.ok && r2.error.line === 2);
  const extra = lines.map((l, i) => (i === 4 ? l.replace('{', '{"note":"x",') : l)).join('\n');
  const r3 = verifyAuditLog(extra, KEYS);
  assert.ok(!r3.ok && r3.error.code === 'SHAPE' && r3.error.line === 5);
  const dup = lines.map((l, i) => (i === 1 ? l.replace('{', '{"seq":2,') : l)).join('\n');
  const r4 = verifyAuditLog(dup, KEYS);
  assert.ok(!r4.ok && r4.error.code === 'PARSE_ERROR' && r4.error.line === 2, 'duplicate keys refused');
  const r5 = verifyAuditLog('', KEYS);
  assert.ok(!r5.ok && r5.error.code === 'EMPTY');
});

test('a partial export (--since) verifies from its first line and says it is partial', () => {
  const all = chain(ITEMS);
  const r = verifyAuditLog(toJsonl(all.slice(2)), KEYS);
  assert.ok(r.ok && r.value.complete === false && r.value.firstSeq === 3 && r.value.lastHash === all[all.length - 1]!.hash);
  const badGenesis = chain(ITEMS.slice(0, 1), 1, 'a'.repeat(64));
  const g = verifyAuditLog(toJsonl(badGenesis), KEYS);
  assert.ok(!g.ok && g.error.code === 'PREV_HASH');
});

test('property: changing any one character of any line fails, naming exactly that line', () => {
  const lines = LOG.trimEnd().split('\n');
  fc.assert(
    fc.property(fc.nat({ max: lines.length - 1 }), fc.nat(), fc.integer({ min: 0x20, max: 0x7e }), (li, pos, code) => {
      const line = lines[li]!;
      const at = pos % line.length;
      const ch = String.fromCharCode(code);
      fc.pre(line[at] !== ch);
      const mutated = [...lines];
      mutated[li] = line.slice(0, at) + ch + line.slice(at + 1);
      const r = verifyAuditLog(mutated.join('\n') + '\n', KEYS);
      assert.ok(!r.ok, `line ${li + 1} pos ${at} → ${ch} still verifies`);
      if (!r.ok) assert.is(r.error.line, li + 1, r.error.message);
    }),
    { numRuns: 400 },
  );
});

test('nixfleet audit verify: exit 0 with a summary, exit 1 naming the line; --fleet supplies host keys', async () => {
  const tmp = tempDir();
  try {
    const io = { cwd: tmp.dir, env: {} };
    writeFileSync(join(tmp.dir, 'audit.jsonl'), LOG);
    const { bytes } = signArtifact(smallFleet({ web1, web2, db1: null }, '2026-03-01T12:00:00Z'));
    writeFileSync(join(tmp.dir, 'fleet.json'), bytes);
    const ok = await runCli(['audit', 'verify', 'audit.jsonl', '--fleet', 'fleet.json'], io);
    assert.is(ok.code, 0, ok.stderr);
    assert.match(ok.stdout, /^ok: chain intact, 7 entries, seq 1\.\.7 \(from genesis\); host reports: 2 verified, 1 refused by the CP/);
    const noFleet = await runCli(['audit', 'verify', 'audit.jsonl'], io);
    assert.is(noFleet.code, 0);
    assert.match(noFleet.stdout, /3 host reports NOT checked \(give --fleet/);
    const j = await runCli(['audit', 'verify', 'audit.jsonl', '--fleet', 'fleet.json', '--json'], io);
    assert.equal(Object.keys(JSON.parse(j.stdout)), ['ok', 'entries', 'firstSeq', 'lastSeq', 'lastHash', 'complete', 'reports', 'evidence', 'witnesses']);
    const failureOnly = ['code', 'line', 'seq', 'message'];
    assert.equal(Object.keys(JSON.parse(j.stdout)).sort(), documentedJsonFields('audit verify').filter((f) => !failureOnly.includes(f)).sort());

    const lines = LOG.split('\n');
    lines[4] = lines[4]!.replace('investigating', 'routine');
    writeFileSync(join(tmp.dir, 'edited.jsonl'), lines.join('\n'));
    const bad = await runCli(['audit', 'verify', 'edited.jsonl', '--fleet', 'fleet.json'], io);
    assert.is(bad.code, 1);
    assert.match(bad.stderr, /^nixfleet audit verify: line 5 \(seq 5\): hash does not match/);
    assert.ok(isOneLine(bad.stderr));
    const badJson = await runCli(['audit', 'verify', 'edited.jsonl', '--json'], io);
    assert.is(JSON.parse(badJson.stdout).line, 5);
    assert.equal(Object.keys(JSON.parse(badJson.stdout)).sort(), ['ok', ...failureOnly].sort());
  } finally {
    tmp.cleanup();
  }
});

test.run();
