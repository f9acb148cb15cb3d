/**
 * The static HTML page `nixfleet evidence verify --html FILE` writes (issue 15): what was verified,
 * the per-framework summary, the controls × hosts matrix, every failure with its evidence, and the
 * release timeline. One self-contained file (inline CSS, no script, no external resource), so an
 * auditor can open it anywhere. Pure: summary in, text out.
 */
import type { Cell, PacketSummary } from './evidence-verify.ts';

const esc = (s: string): string => s.replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]!);

const MARK: Record<Cell['status'], string> = { pass: '✓', fail: '✗', error: '!', stale: '⌛', missing: '·' };

const CSS = `
body{font:14px/1.45 system-ui,sans-serif;margin:2rem;color:#1d2430;background:#fbfbfd}
h1{font-size:1.5rem;margin:0 0 .25rem}h2{font-size:1.1rem;margin:1.75rem 0 .5rem}
.ok{display:inline-block;padding:.2rem .6rem;border-radius:4px;background:#e3f5e8;color:#155d2c;font-weight:600}
table{border-collapse:collapse;margin:.25rem 0}th,td{border:1px solid #d8dce3;padding:.3rem .55rem;text-align:left;vertical-align:top}
th{background:#eef1f6;font-weight:600}td.num{text-align:right;font-variant-numeric:tabular-nums}
td.pass{background:#e3f5e8;color:#155d2c;text-align:center}td.fail{background:#fde4e4;color:#8a1414;text-align:center;font-weight:700}
td.error{background:#fff0d6;color:#7a4b00;text-align:center}td.stale{background:#f1eefa;color:#4b3b8a;text-align:center}td.missing{color:#8b93a1;text-align:center}
code{font:12px ui-monospace,monospace;background:#eef1f6;padding:0 .2rem;border-radius:3px}.muted{color:#697386}
`;

export function renderEvidenceHtml(s: PacketSummary): string {
  const p = s.packet;
  const fw = s.frameworks
    .map((f) => `<tr><td>${esc(f.framework)}</td><td class="num">${f.controls}</td><td class="num">${f.pass}</td><td class="num">${f.fail}</td><td class="num">${f.error}</td><td class="num">${f.stale}</td><td class="num">${f.missing}</td></tr>`)
    .join('\n');
  const cell = new Map(s.cells.map((c) => [`${c.host}\u0000${c.control}`, c]));
  const matrix = s.controls
    .map((c) => {
      const tds = s.hosts
        .map((h) => {
          const x = cell.get(`${h}\u0000${c.id}`);
          if (x === undefined) return '<td class="missing">—</td>';
          return `<td class="${x.status}" title="${esc(`${x.status}${x.observed === null ? '' : `: ${x.observed}`}`)}">${MARK[x.status]}</td>`;
        })
        .join('');
      return `<tr><th scope="row"><code>${esc(c.id)}</code> <span class="muted">${esc(c.severity)}</span></th>${tds}</tr>`;
    })
    .join('\n');
  const failures = s.cells.filter((c) => c.status === 'fail' || c.status === 'error');
  const clauses = new Map(s.controls.map((c) => [c.id, c.clauses]));
  const failRows = failures
    .map((c) => `<tr><td>${esc(c.host)}</td><td><code>${esc(c.control)}</code></td><td>${esc(c.status)}</td><td>${esc(c.observed ?? '')}</td><td>${esc(c.at ?? '')}</td><td><code>${esc(c.closure ?? '')}</code></td><td>${c.signed ? 'host-signed ✓' : 'unsigned'}</td><td>${esc((clauses.get(c.control) ?? []).join(', '))}</td></tr>`)
    .join('\n');
  const timeline = s.releases
    .map((r) => `<tr><td>${esc(r.acceptedAt)}</td><td>${esc(r.signedAt)}</td><td><code>${esc(r.sha256.slice(0, 16))}…</code></td><td>${esc(r.ciCommit ?? '—')}</td><td class="num">${r.hosts}</td><td>${esc(r.keyRole)} key ✓</td></tr>`)
    .join('\n');
  const a = s.audit;
  const auditLine = a === null ? 'no audit entries in the period' : `${a.entries} entries, seq ${a.firstSeq}..${a.lastSeq}, chain intact, head <code>${esc(a.lastHash.slice(0, 16))}…</code>; ${a.reports.verified} host reports and ${a.evidence.verified} evidence records in it verified`;
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>nixfleet evidence ${esc(p.from)} – ${esc(p.to)}</title><style>${CSS}</style></head>
<body>
<h1>Compliance evidence, ${esc(p.from)} – ${esc(p.to)}${p.framework === null ? '' : ` (${esc(p.framework)})`}</h1>
<p><span class="ok" id="verdict">VERIFIED</span> offline, under the trust root ${s.trustFrom === 'argument' ? 'given by the auditor' : '<strong>inside the packet</strong> (give --trust to use your own)'}; packet generated ${esc(p.generatedAt)}.</p>
<ul>
<li>${s.files} files, each matching the manifest's sha256</li>
<li>${s.releases.length} signed releases in force over the period</li>
<li>audit chain: ${auditLine}</li>
<li>${s.witnesses.matched} witnessed heads (host-signed, operator checkpoints) found in the chain${s.witnesses.before > 0 ? `, ${s.witnesses.before} before the period` : ''}</li>
<li>${s.activations} activations, each of a closure a signed release declared for the host</li>
<li>${s.evidence.records} evidence records: ${s.evidence.verified} host-signed and verified${s.evidence.unsigned > 0 ? `, ${s.evidence.unsigned} unsigned (host without key)` : ''}</li>
</ul>
<h2>Frameworks</h2>
<table id="frameworks"><thead><tr><th>framework</th><th>controls</th><th>pass</th><th>fail</th><th>error</th><th>stale</th><th>missing</th></tr></thead>
<tbody>
${fw}
</tbody></table>
<p class="muted">Counts are host × control pairs: the newest record of each at the end of the period (stale: older than 24 h then).</p>
<h2>Controls × hosts</h2>
<table id="matrix"><thead><tr><th>control</th>${s.hosts.map((h) => `<th>${esc(h)}</th>`).join('')}</tr></thead>
<tbody>
${matrix}
</tbody></table>
<p class="muted">✓ pass · ✗ fail · ! error · ⌛ stale · · missing</p>
<h2>Failures</h2>
${failures.length === 0 ? '<p id="failures">none</p>' : `<table id="failures"><thead><tr><th>host</th><th>control</th><th>result</th><th>observed</th><th>at</th><th>closure</th><th>signature</th><th>clauses</th></tr></thead>\n<tbody>\n${failRows}\n</tbody></table>`}
<h2>Release timeline</h2>
<table id="releases"><thead><tr><th>in force from</th><th>signed at</th><th>sha256</th><th>CI commit</th><th>hosts</th><th>signature</th></tr></thead>
<tbody>
${timeline}
</tbody></table>
</body></html>
`;
}
