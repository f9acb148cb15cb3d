/**
 * Fleet-wide pages: the overview (hosts by state, drift, pins, offline hosts, compliance failures,
 * open rollouts), the rollout list, and the release in force with the audit chain's state.
 * Pure: data in, JSX out (the status rules are the CLI's own, views.ts / compliance-view.ts).
 */
import type { RolloutSummary } from '../../protocol/api.ts';
import { complianceReport } from '../compliance-view.ts';
import type { HostStatusKind } from '../output.ts';
import { statusReport } from '../views.ts';
import type { Feed } from './feed.ts';
import { Closure, HostStatus, Layout, Progress, RolloutState, Table, Tag, When, hostHref, rolloutHref, type PageCtx } from './layout.tsx';
import type { Overview } from './source.ts';

const OPEN: ReadonlySet<string> = new Set(['Pending', 'Executing', 'Halted', 'Paused']);
/** A certificate that ends within this is flagged (hosts and operators must be re-minted in time). */
const EXPIRY_WARN_MS = 30 * 86_400_000;

/** Hosts done / in flight / failed of a rollout, from its per-state counts. */
export function rolloutProgress(counts: RolloutSummary['hostCounts']): { done: number; active: number; failed: number; total: number } {
  const n = (k: keyof RolloutSummary['hostCounts']) => counts[k] ?? 0;
  const done = n('Soaked') + n('Converged');
  const active = n('Dispatched') + n('Activating') + n('ConfirmWindow') + n('Healthy') + n('PendingReboot');
  const failed = n('Failed') + n('Reverted');
  const total = Object.values(counts).reduce((a: number, b) => a + (b ?? 0), 0);
  return { done, active, failed, total };
}

export function OverviewPage(p: { ctx: PageCtx; data: Overview }) {
  const { ctx, data } = p;
  const report = statusReport(data.hosts, data.quarantines, data.rollouts);
  const byName = new Map(data.hosts.map((h) => [h.hostname, h]));
  const compliance = complianceReport(data.compliance);
  const failures = compliance.failures.filter((f) => f.status === 'fail' || f.status === 'error');
  const drifted = data.hosts.filter((h) => h.drift !== undefined);
  const pinned = data.hosts.filter((h) => h.pin !== undefined);
  const offline = data.hosts.filter((h) => !h.online);
  const open = data.rollouts.filter((r) => OPEN.has(r.state));
  const soon = ctx.nowMs + EXPIRY_WARN_MS;
  const expiring = data.certificates.clients.filter((c) => Date.parse(c.notAfter) <= soon);
  const kinds = Object.keys(report.counts).sort() as HostStatusKind[];
  return (
    <Layout ctx={ctx} title="Fleet">
      <h1>Fleet</h1>
      <section aria-labelledby="summary-h">
        <h2 id="summary-h">Summary</h2>
        <dl class="cards">
          <div>
            <dt>Hosts</dt>
            <dd data-testid="count-hosts">{data.hosts.length}</dd>
          </div>
          <div>
            <dt>Drifted</dt>
            <dd data-testid="count-drifted">{drifted.length}</dd>
          </div>
          <div>
            <dt>Pinned</dt>
            <dd data-testid="count-pinned">{pinned.length}</dd>
          </div>
          <div>
            <dt>Offline or stale</dt>
            <dd data-testid="count-offline">{offline.length}</dd>
          </div>
          <div>
            <dt>Compliance failures</dt>
            <dd data-testid="count-compliance">{failures.length}</dd>
          </div>
          <div>
            <dt>Quarantined closures</dt>
            <dd>{data.quarantines.length}</dd>
          </div>
          <div>
            <dt>Certificates expiring within 30 days</dt>
            <dd data-testid="count-expiring">{expiring.length}</dd>
          </div>
        </dl>
        <Table caption="Hosts by state" headers={['State', 'Hosts']} empty="No hosts.">
          {kinds.map((k) => (
            <tr>
              <td>
                <HostStatus kind={k} />
              </td>
              <td>{report.counts[k] ?? 0}</td>
            </tr>
          ))}
        </Table>
      </section>
      <section aria-labelledby="rollouts-h">
        <h2 id="rollouts-h">Open rollouts</h2>
        {open.length === 0 ? <p>No rollout is open.</p> : <RolloutTable rollouts={open} ctx={ctx} caption="Open rollouts" />}
      </section>
      <section aria-labelledby="hosts-h">
        <h2 id="hosts-h">Hosts</h2>
        <Table caption={`All ${data.hosts.length} hosts`} headers={['Host', 'Channel', 'Status', 'Running', 'Declared', 'Last check-in', 'Notes']} empty="The signed fleet has no hosts.">
          {report.hosts.map((r) => {
            const h = byName.get(r.hostname)!;
            const notes: string[] = [];
            if (h.drift !== undefined) notes.push(`drifted: runs ${h.drift.actual}`);
            if (h.pin !== undefined) notes.push(`pinned to ${h.pin.commit}${h.pin.until === null ? '' : ` until ${h.pin.until}`}: ${h.pin.reason}`);
            if (h.failedUnits.length > 0) notes.push(`failed units: ${h.failedUnits.join(', ')}`);
            if (h.pendingReboot) notes.push('pending reboot');
            return (
              <tr data-host={r.hostname}>
                <th scope="row">
                  <a href={hostHref(r.hostname)}>{r.hostname}</a>
                </th>
                <td>{r.channel}</td>
                <td>
                  <HostStatus kind={r.status} />
                </td>
                <td>
                  <Closure value={r.currentClosure} />
                </td>
                <td>{r.declaredClosure !== null && r.declaredClosure === r.currentClosure ? <span>= running</span> : <Closure value={r.declaredClosure} />}</td>
                <td>
                  <When at={r.lastCheckinAt} nowMs={ctx.nowMs} />
                </td>
                <td>{notes.join('; ')}</td>
              </tr>
            );
          })}
        </Table>
      </section>
      <section aria-labelledby="certs-h">
        <h2 id="certs-h">Certificate expiry</h2>
        <p>
          Control plane certificate: {data.certificates.server ?? 'unknown'}; fleet CA: {data.certificates.ca ?? 'unknown'}. Client certificates as the control plane saw them since it started, soonest expiry first.
        </p>
        <Table caption="Client certificates seen by the control plane" headers={['Name', 'Role', 'Expires', 'Not after']} empty="No client certificate seen yet.">
          {data.certificates.clients.map((c) => (
            <tr>
              <th scope="row">{c.role === 'host' ? <a href={hostHref(c.cn)}>{c.cn}</a> : c.cn}</th>
              <td>{c.role}</td>
              <td>{Date.parse(c.notAfter) <= soon ? <Tag tone={Date.parse(c.notAfter) <= ctx.nowMs ? 'bad' : 'warn'}>{Date.parse(c.notAfter) <= ctx.nowMs ? 'expired' : 'expires soon'}</Tag> : <Tag tone="ok">valid</Tag>}</td>
              <td class="mono">{c.notAfter}</td>
            </tr>
          ))}
        </Table>
      </section>
      <section aria-labelledby="compliance-h">
        <h2 id="compliance-h">Compliance failures</h2>
        <Table caption="Failing controls (newest evidence per host)" headers={['Host', 'Control', 'Status', 'Observed', 'When', 'Clauses']} empty="No control fails.">
          {failures.map((f) => (
            <tr>
              <th scope="row">
                <a href={hostHref(f.hostname)}>{f.hostname}</a>
              </th>
              <td class="mono">{f.control}</td>
              <td>
                <Tag tone="bad">{f.status}</Tag>
              </td>
              <td>{f.observed ?? '-'}</td>
              <td>
                <When at={f.at} nowMs={ctx.nowMs} />
              </td>
              <td>{f.clauses.join(', ')}</td>
            </tr>
          ))}
        </Table>
        {compliance.staticFailures.length > 0 ? (
          <Table caption="Static failures recorded in the signed release" headers={['Host', 'Channel', 'Control', 'Observed']} empty="">
            {compliance.staticFailures.map((s) => (
              <tr>
                <th scope="row">{s.host}</th>
                <td>{s.channel}</td>
                <td class="mono">{s.control}</td>
                <td>{s.observed}</td>
              </tr>
            ))}
          </Table>
        ) : (
          ''
        )}
      </section>
    </Layout>
  );
}

export function RolloutTable(p: { ctx: PageCtx; rollouts: readonly RolloutSummary[]; caption: string }) {
  return (
    <Table caption={p.caption} headers={['Rollout', 'State', 'Progress', 'Wave', 'Opened', 'Reason']} empty="No rollouts yet.">
      {p.rollouts.map((r) => {
        const g = rolloutProgress(r.hostCounts);
        return (
          <tr data-rollout={r.id}>
            <th scope="row">
              <a href={rolloutHref(r.id)} class="mono">
                {r.id}
              </a>
            </th>
            <td>
              <RolloutState state={r.state} />
            </td>
            <td>
              <Progress hideLabel label={`${r.id}: hosts done`} done={g.done} total={g.total} active={g.active} failed={g.failed} />
            </td>
            <td>{r.currentWave}</td>
            <td>
              <When at={r.openedAt} nowMs={p.ctx.nowMs} />
            </td>
            <td>{r.stall !== undefined ? `stalled (${r.stall.gate}): ${r.stall.reason}` : (r.windowHold ?? r.reason ?? '')}</td>
          </tr>
        );
      })}
    </Table>
  );
}

export function RolloutsPage(p: { ctx: PageCtx; rollouts: readonly RolloutSummary[] }) {
  return (
    <Layout ctx={p.ctx} title="Rollouts">
      <h1>Rollouts</h1>
      <RolloutTable ctx={p.ctx} rollouts={p.rollouts} caption="Every rollout, newest first" />
    </Layout>
  );
}

const KEY_ROLE_TEXT: Readonly<Record<string, string>> = {
  current: 'current release key',
  previous: 'previous release key (rotation in progress)',
  successor: 'successor release key (rotation in progress)',
};

export function ReleasePage(p: { ctx: PageCtx; feed: Feed }) {
  const { release, chain } = p.feed;
  return (
    <Layout ctx={p.ctx} title="Release and audit">
      <h1>Release in force</h1>
      {release === null ? (
        <p>No fleet release has been accepted yet (or the audit chain broke before one).</p>
      ) : (
        <dl class="facts" data-testid="release">
          <dt>Signed at</dt>
          <dd>
            <When at={release.signedAt} nowMs={p.ctx.nowMs} /> <span class="mono">{release.signedAt}</span>
          </dd>
          <dt>CI commit</dt>
          <dd class="mono">{release.ciCommit ?? 'not recorded'}</dd>
          <dt>Key slot</dt>
          <dd>
            <span class="mono">{release.keyRole}</span> {KEY_ROLE_TEXT[release.keyRole] !== undefined ? `(${KEY_ROLE_TEXT[release.keyRole]})` : ''}
          </dd>
          <dt>sha256</dt>
          <dd class="mono break">{release.sha256}</dd>
          <dt>Accepted by the control plane</dt>
          <dd>
            <When at={release.acceptedAt} nowMs={p.ctx.nowMs} /> (audit entry {release.seq})
          </dd>
        </dl>
      )}
      <h2>Audit chain</h2>
      <p data-testid="chain-state">
        {chain.broken === null ? (
          <Tag tone="ok">✓ verified</Tag>
        ) : (
          <Tag tone="bad">✗ broken at entry {chain.broken.seq}</Tag>
        )}{' '}
        {chain.broken === null
          ? `${chain.entries} entries from seq ${chain.firstSeq}${chain.firstSeq > 1 ? ' (older ones pruned by retention)' : ''} chain correctly (sha256 over the JCS of each entry, linked by prevHash), checked by this dashboard as they were read.`
          : `${chain.broken.reason}; entries after ${chain.lastSeq} are not shown.`}
      </p>
      <dl class="facts">
        <dt>Last verified entry</dt>
        <dd>{chain.lastSeq}</dd>
        <dt>Head hash</dt>
        <dd class="mono break">{chain.lastHash}</dd>
      </dl>
      <p>
        For an offline check with the hosts' report signatures: <code>nixfleet audit export --out audit.jsonl</code> then <code>nixfleet audit verify audit.jsonl --fleet fleet.resolved.json</code>.
      </p>
    </Layout>
  );
}
