/**
 * One rollout (waves as progress bars, every blocked host with its gate and reason, transitions)
 * and one host (running vs declared closure, history, signed statements, compliance evidence).
 * Pure: data in, JSX out.
 */
import type { HostState, RolloutDetail, TraceEvent } from '../../protocol/api.ts';
import { IN_FLIGHT_STATES } from '../../protocol/states.ts';
import { Closure, HostStatus, Layout, Progress, RolloutState, Table, Tag, When, hostHref, rolloutHref, type PageCtx } from './layout.tsx';
import type { HostPageData, RolloutPageData } from './source.ts';
import { hostStatus, quarantineSet } from '../views.ts';

const DONE: ReadonlySet<HostState> = new Set(['Soaked', 'Converged']);
const FAILED: ReadonlySet<HostState> = new Set(['Failed', 'Reverted']);
const IN_FLIGHT: ReadonlySet<HostState> = new Set(IN_FLIGHT_STATES);

export type Wave = { index: number; total: number; done: number; active: number; failed: number };

export function waves(d: RolloutDetail): Wave[] {
  const out: Wave[] = [];
  for (const h of d.hosts) {
    while (out.length <= h.wave) out.push({ index: out.length, total: 0, done: 0, active: 0, failed: 0 });
    const w = out[h.wave]!;
    w.total += 1;
    if (DONE.has(h.state)) w.done += 1;
    else if (FAILED.has(h.state)) w.failed += 1;
    else if (IN_FLIGHT.has(h.state)) w.active += 1;
  }
  return out;
}

export type Blocked = { hostname: string; wave: number; state: HostState; gate: string; reason: string; since: string };

/**
 * Every host that is not moving, with the gate that holds it and why: a gate block the reconciler
 * recorded on the host (quarantine, offline, host edge, compliance, pin), a failure (the health
 * gate: the reason of its last transition), the rollout's stall (progress deadline) or its halt /
 * pause / change window (held: every host still queued).
 */
export function blockedHosts(d: RolloutDetail, trace: readonly TraceEvent[]): Blocked[] {
  const lastReason = new Map<string, string>();
  for (const e of trace) if (e.subject === 'host' && e.hostname !== null && e.from !== e.to) lastReason.set(e.hostname, e.reason);
  const stalled = new Set(d.stall?.hosts ?? []);
  const out: Blocked[] = [];
  for (const h of d.hosts) {
    const base = { hostname: h.hostname, wave: h.wave, state: h.state, since: h.since };
    if (FAILED.has(h.state)) out.push({ ...base, gate: 'health', reason: lastReason.get(h.hostname) ?? h.reason ?? 'failed' });
    else if (h.state === 'Queued' && h.gate !== undefined) out.push({ ...base, gate: h.gate, reason: h.reason ?? '' });
    else if (stalled.has(h.hostname) && d.stall !== undefined) out.push({ ...base, gate: d.stall.gate, reason: d.stall.reason });
    else if (h.state === 'Queued' && (d.state === 'Halted' || d.state === 'Paused')) out.push({ ...base, gate: d.state === 'Halted' ? 'halted' : 'paused', reason: d.reason ?? d.state.toLowerCase() });
    else if (h.state === 'Queued' && d.windowHold !== undefined) out.push({ ...base, gate: 'change-window', reason: d.windowHold });
  }
  return out;
}

export function RolloutPage(p: { ctx: PageCtx; data: RolloutPageData }) {
  const { ctx } = p;
  const d = p.data.detail;
  const blocked = blockedHosts(d, p.data.trace);
  const recent = [...p.data.trace].reverse().slice(0, 50);
  return (
    <Layout ctx={ctx} title={`Rollout ${d.id}`}>
      <h1>
        Rollout <span class="mono">{d.id}</span>
      </h1>
      <dl class="facts">
        <dt>State</dt>
        <dd data-testid="rollout-state">
          <RolloutState state={d.state} />
        </dd>
        <dt>Reason</dt>
        <dd data-testid="rollout-reason">{d.reason ?? '-'}</dd>
        <dt>Channel</dt>
        <dd>{d.channel}</dd>
        <dt>Release</dt>
        <dd>
          signed <When at={d.signedAt} nowMs={ctx.nowMs} />, sha256 <span class="mono">{d.artifactSha256.slice(0, 16)}…</span>
        </dd>
        <dt>Opened</dt>
        <dd>
          <When at={d.openedAt} nowMs={ctx.nowMs} />, updated <When at={d.updatedAt} nowMs={ctx.nowMs} />
        </dd>
      </dl>
      <section aria-labelledby="waves-h">
        <h2 id="waves-h">Waves</h2>
        <ol class="waves" data-testid="waves">
          {waves(d).map((w) => (
            <li data-wave={String(w.index)} data-done={String(w.done)} data-total={String(w.total)} class={w.index === d.currentWave && d.state === 'Executing' ? 'current' : ''}>
              <Progress label={`Wave ${w.index}${w.index === d.currentWave && d.state === 'Executing' ? ' (in progress)' : ''}`} done={w.done} total={w.total} active={w.active} failed={w.failed} />
            </li>
          ))}
        </ol>
      </section>
      <section aria-labelledby="blocked-h">
        <h2 id="blocked-h">Blocked hosts</h2>
        <Table caption="Hosts held by a gate, failed, or held by the rollout" headers={['Host', 'Wave', 'State', 'Gate', 'Reason', 'Since']} empty="No host is blocked.">
          {blocked.map((b) => (
            <tr data-blocked={b.hostname}>
              <th scope="row">
                <a href={hostHref(b.hostname)}>{b.hostname}</a>
              </th>
              <td>{b.wave}</td>
              <td>{b.state}</td>
              <td>
                <Tag tone={b.gate === 'health' || b.gate === 'halted' ? 'bad' : 'warn'}>{b.gate}</Tag>
              </td>
              <td>{b.reason}</td>
              <td>
                <When at={b.since} nowMs={ctx.nowMs} />
              </td>
            </tr>
          ))}
        </Table>
      </section>
      <section aria-labelledby="hosts-h">
        <h2 id="hosts-h">Hosts</h2>
        <Table caption={`${d.hosts.length} hosts of this rollout`} headers={['Host', 'Wave', 'State', 'Since', 'Closure']} empty="No hosts.">
          {d.hosts.map((h) => (
            <tr data-host={h.hostname} data-state={h.state}>
              <th scope="row">
                <a href={hostHref(h.hostname)}>{h.hostname}</a>
              </th>
              <td>{h.wave}</td>
              <td>{h.state}</td>
              <td>
                <When at={h.since} nowMs={ctx.nowMs} />
              </td>
              <td>
                <Closure value={h.closureHash} />
              </td>
            </tr>
          ))}
        </Table>
      </section>
      <section aria-labelledby="trace-h">
        <h2 id="trace-h">Transitions</h2>
        <Table caption="Newest 50 transitions, newest first" headers={['When', 'Subject', 'Transition', 'Reason']} empty="No transitions yet.">
          {recent.map((e) => (
            <tr>
              <td>
                <When at={e.at} nowMs={ctx.nowMs} />
              </td>
              <td>{e.hostname ?? 'rollout'}</td>
              <td>{`${e.from ?? '∅'} → ${e.to}`}</td>
              <td>{e.reason}</td>
            </tr>
          ))}
        </Table>
      </section>
    </Layout>
  );
}

export function HostPage(p: { ctx: PageCtx; data: HostPageData }) {
  const { ctx } = p;
  const { host: h, record, compliance } = p.data;
  const rolloutState = h.rollout === null ? null : (p.data.rollouts.find((r) => r.id === h.rollout!.rolloutId)?.state ?? null);
  const kind = hostStatus(h, quarantineSet([]), rolloutState);
  const matches = h.declaredClosure !== null && h.declaredClosure === h.currentClosure;
  return (
    <Layout ctx={ctx} title={`Host ${h.hostname}`}>
      <h1>
        Host <span class="mono">{h.hostname}</span> <HostStatus kind={kind} />
      </h1>
      <section aria-labelledby="closure-h">
        <h2 id="closure-h">Running and declared</h2>
        <dl class="facts" data-testid="closures">
          <dt>Running</dt>
          <dd class="mono break">{h.currentClosure ?? 'unknown (never reported)'}</dd>
          <dt>Declared by the signed release</dt>
          <dd class="mono break">{h.declaredClosure ?? 'nothing declared'}</dd>
          <dt>Match</dt>
          <dd>{matches ? <Tag tone="ok">✓ runs what is declared</Tag> : <Tag tone="warn">≠ differs</Tag>}</dd>
          {h.drift !== undefined ? (
            <>
              <dt>Drift</dt>
              <dd>
                {`runs ${h.drift.actual}, expected ${h.drift.expected} (rollout ${h.drift.rolloutId})`}, since <When at={h.drift.since} nowMs={ctx.nowMs} />
              </dd>
            </>
          ) : (
            ''
          )}
          {h.pin !== undefined ? (
            <>
              <dt>Pin</dt>
              <dd>{`pinned to ${h.pin.commit}${h.pin.until === null ? '' : ` until ${h.pin.until}`}: ${h.pin.reason}`}</dd>
            </>
          ) : (
            ''
          )}
          <dt>Channel</dt>
          <dd>{h.channel}</dd>
          <dt>Certificate</dt>
          <dd>{p.data.certificate === null ? 'not seen by the control plane since it started' : `expires ${p.data.certificate.notAfter}`}</dd>
          <dt>Last check-in</dt>
          <dd>
            <When at={h.lastCheckinAt} nowMs={ctx.nowMs} /> {h.online ? '' : '(offline)'}
          </dd>
          <dt>Current rollout</dt>
          <dd>
            {h.rollout === null ? (
              'none'
            ) : (
              <>
                <a href={rolloutHref(h.rollout.rolloutId)} class="mono">
                  {h.rollout.rolloutId}
                </a>
                {`: ${h.rollout.state} in wave ${h.rollout.wave}`}
              </>
            )}
          </dd>
          <dt>Failed units</dt>
          <dd>{h.failedUnits.length === 0 ? 'none' : h.failedUnits.join(', ')}</dd>
          <dt>Probes</dt>
          <dd>{h.probes.length === 0 ? 'none reported' : h.probes.map((pr) => `${pr.name}: ${pr.ok ? 'ok' : `failing${pr.message !== undefined ? ` (${pr.message})` : ''}`}`).join('; ')}</dd>
          <dt>Last outcome</dt>
          <dd>{h.lastOutcome === null ? 'none' : `${h.lastOutcome.outcome} of ${h.lastOutcome.closureHash} (${h.lastOutcome.rolloutId}) at ${h.lastOutcome.at}`}</dd>
        </dl>
      </section>
      <section aria-labelledby="history-h">
        <h2 id="history-h">History</h2>
        <Table caption="State changes across rollouts, newest first (from the verified audit chain)" headers={['When', 'Rollout', 'Wave', 'Transition', 'Reason']} empty="No history yet.">
          {[...record.transitions].reverse().map((t) => (
            <tr>
              <td>
                <When at={t.at} nowMs={ctx.nowMs} />
              </td>
              <td>
                <a href={rolloutHref(t.rolloutId)} class="mono">
                  {t.rolloutId}
                </a>
              </td>
              <td>{t.wave ?? '-'}</td>
              <td>{`${t.from ?? '∅'} → ${t.to}`}</td>
              <td>{t.reason}</td>
            </tr>
          ))}
        </Table>
      </section>
      <section aria-labelledby="reports-h">
        <h2 id="reports-h">Signed reports</h2>
        <Table caption="Statements signed by the host key, newest first, with the control plane's verdict" headers={['When', 'Statement', 'Rollout', 'Closure', 'Message', 'Signature']} empty="No signed statements yet.">
          {[...record.statements].reverse().map((s) => (
            <tr>
              <td>
                <When at={s.at} nowMs={ctx.nowMs} />
              </td>
              <td>{s.what}</td>
              <td class="mono">{s.rolloutId ?? '-'}</td>
              <td>
                <Closure value={s.closureHash} />
              </td>
              <td>{s.message}</td>
              <td>
                <Tag tone={s.verdict === 'verified' ? 'ok' : s.verdict === 'invalid' ? 'bad' : 'plain'}>{s.verdict}</Tag>
              </td>
            </tr>
          ))}
        </Table>
      </section>
      <section aria-labelledby="evidence-h">
        <h2 id="evidence-h">Compliance evidence</h2>
        {compliance === null ? (
          <p>Compliance is not enabled on this host's channel.</p>
        ) : (
          <Table caption={`Newest evidence per control (${compliance.mode}; ${compliance.frameworks.join(', ') || 'no framework'})`} headers={['Control', 'Status', 'Observed', 'When', 'Closure', 'Signed']} empty="No runtime controls.">
            {compliance.controls.map((c) => (
              <tr>
                <th scope="row" class="mono">
                  {c.control}
                </th>
                <td>
                  <Tag tone={c.status === 'pass' ? 'ok' : c.status === 'fail' || c.status === 'error' ? 'bad' : 'warn'}>{c.status}</Tag>
                </td>
                <td>{c.observed ?? '-'}</td>
                <td>
                  <When at={c.at} nowMs={ctx.nowMs} />
                </td>
                <td>
                  <Closure value={c.closure} />
                </td>
                <td>{c.signed ? 'host key verified' : 'unsigned (no host key)'}</td>
              </tr>
            ))}
          </Table>
        )}
      </section>
    </Layout>
  );
}
