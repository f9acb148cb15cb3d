/**
 * What the dashboard reads from the control plane, through the CLI's own mTLS client (client.ts)
 * with the operator's certificate. Read-only by construction: it holds a `ReadClient`, which has
 * no `post` (dashboard.test.ts also records every call a full page tour makes).
 */
import type { HostView, Quarantine, RolloutDetail, RolloutSummary, TraceEvent } from '../../protocol/api.ts';
import { ROUTES } from '../../protocol/api.ts';
import { parseAuditResponse, parseHostsResponse, parseQuarantinesResponse, parseRolloutDetail, parseRolloutsResponse, parseTraceResponse, responseParser } from '../../protocol/api-parse.ts';
import { CertificatesResponseSchema, type CertificatesResponse, type SeenCertificateView } from '../../protocol/certificates-api.ts';
import { ComplianceResponseSchema, type ComplianceResponse, type HostComplianceView } from '../../protocol/compliance-api.ts';
import type { Result } from '../../protocol/result.ts';
import { ok } from '../../protocol/result.ts';
import type { Client } from '../client.ts';
import type { CliError } from '../framework.ts';
import { applyEntries, emptyFeed, type Feed, type HostRecord } from './feed.ts';

/** The part of the CLI client the dashboard may use: GET only. */
export type ReadClient = Pick<Client, 'get' | 'baseUrl'>;

const parseComplianceResponse = responseParser(ComplianceResponseSchema, 'compliance view');
const parseCertificatesResponse = responseParser(CertificatesResponseSchema, 'certificates answer');
/** Audit pages read per refresh at most (1000 entries each); the rest comes with the next refresh. */
const MAX_AUDIT_PAGES_PER_SYNC = 50;

export type Overview = {
  hosts: HostView[];
  rollouts: RolloutSummary[];
  quarantines: Quarantine[];
  compliance: ComplianceResponse;
  certificates: CertificatesResponse;
  feed: Feed;
};

export type RolloutPageData = { detail: RolloutDetail; trace: TraceEvent[] };

export type HostPageData = { host: HostView; compliance: HostComplianceView | null; record: HostRecord; rollouts: RolloutSummary[]; certificate: SeenCertificateView | null; feed: Feed };

export class DashboardSource {
  private readonly feed: Feed = emptyFeed();
  private syncing: Promise<Result<Feed, CliError>> | null = null;

  constructor(private readonly client: ReadClient) {}

  get cpUrl(): string {
    return this.client.baseUrl;
  }

  /** Read the audit entries written since the last sync and check them onto the chain. */
  syncAudit(): Promise<Result<Feed, CliError>> {
    // One sync at a time: concurrent page loads share it (the chain is checked in order).
    this.syncing ??= this.readAudit().finally(() => {
      this.syncing = null;
    });
    return this.syncing;
  }

  private async readAudit(): Promise<Result<Feed, CliError>> {
    for (let page = 0; page < MAX_AUDIT_PAGES_PER_SYNC && this.feed.chain.broken === null; page++) {
      const r = await this.client.get(ROUTES.audit, parseAuditResponse, { after: this.feed.chain.lastSeq, limit: 1000 });
      if (!r.ok) return r;
      applyEntries(this.feed, r.value.entries);
      if (r.value.nextAfter === null || r.value.entries.length === 0) break;
    }
    return ok(this.feed);
  }

  async overview(): Promise<Result<Overview, CliError>> {
    const [hosts, rollouts, quarantines, compliance, certificates, feed] = await Promise.all([
      this.client.get(ROUTES.hosts, parseHostsResponse),
      this.client.get(ROUTES.rollouts, parseRolloutsResponse),
      this.client.get(ROUTES.quarantines, parseQuarantinesResponse),
      this.client.get(ROUTES.compliance, parseComplianceResponse),
      this.client.get(ROUTES.certificates, parseCertificatesResponse),
      this.syncAudit(),
    ]);
    if (!hosts.ok) return hosts;
    if (!rollouts.ok) return rollouts;
    if (!quarantines.ok) return quarantines;
    if (!compliance.ok) return compliance;
    if (!certificates.ok) return certificates;
    if (!feed.ok) return feed;
    return ok({
      hosts: hosts.value.hosts,
      rollouts: newestFirst(rollouts.value.rollouts),
      quarantines: quarantines.value.quarantines,
      compliance: compliance.value,
      certificates: certificates.value,
      feed: feed.value,
    });
  }

  /** One rollout with its transitions; null when the CP does not know it. */
  async rollout(id: string): Promise<Result<RolloutPageData | null, CliError>> {
    const at = (route: string) => route.replace(':id', encodeURIComponent(id));
    const [detail, trace] = await Promise.all([this.client.get(at(ROUTES.rollout), parseRolloutDetail), this.client.get(at(ROUTES.rolloutTrace), parseTraceResponse)]);
    if (!detail.ok) return detail.error.code === 'NOT_FOUND' ? ok(null) : detail;
    if (!trace.ok) return trace.error.code === 'NOT_FOUND' ? ok(null) : trace;
    return ok({ detail: detail.value, trace: trace.value.events });
  }

  /** One host: the CP's view, its compliance evidence, its history from the audit chain; null when unknown. */
  async host(name: string): Promise<Result<HostPageData | null, CliError>> {
    const [hosts, compliance, rollouts, certificates, feed] = await Promise.all([
      this.client.get(ROUTES.hosts, parseHostsResponse),
      this.client.get(ROUTES.compliance, parseComplianceResponse),
      this.client.get(ROUTES.rollouts, parseRolloutsResponse),
      this.client.get(ROUTES.certificates, parseCertificatesResponse),
      this.syncAudit(),
    ]);
    if (!hosts.ok) return hosts;
    if (!certificates.ok) return certificates;
    if (!compliance.ok) return compliance;
    if (!rollouts.ok) return rollouts;
    if (!feed.ok) return feed;
    const host = hosts.value.hosts.find((h) => h.hostname === name);
    if (host === undefined) return ok(null);
    return ok({
      host,
      compliance: compliance.value.hosts.find((h) => h.hostname === name) ?? null,
      record: feed.value.hosts.get(name) ?? { transitions: [], statements: [] },
      rollouts: newestFirst(rollouts.value.rollouts).filter((r) => r.channel === host.channel),
      certificate: certificates.value.clients.find((c) => c.role === 'host' && c.cn === name) ?? null,
      feed: feed.value,
    });
  }

  async release(): Promise<Result<Feed, CliError>> {
    return this.syncAudit();
  }
}

function newestFirst<T extends { openedAt: string }>(rs: readonly T[]): T[] {
  return [...rs].sort((a, b) => (a.openedAt < b.openedAt ? 1 : a.openedAt > b.openedAt ? -1 : 0));
}
