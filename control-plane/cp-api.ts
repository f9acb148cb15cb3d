/**
 * The HTTP layer's `CpService` (app.ts) over the parts service.ts assembles: the open routes
 * (readiness, revocation, metrics) and `whoami` are answered here from the artefacts, the
 * leadership and the metrics; the agent routes by agent-service.ts; the operator routes by
 * operator-service.ts; enrolment by enrol-service.ts (when configured).
 */
import type { ReadyzResponse } from '../protocol/api.ts';
import { certState, type WhoamiResponse } from '../protocol/enrol.ts';
import type { AgentService } from './agent-service.ts';
import type { CpService } from './app.ts';
import type { ArtifactManager } from './artifacts.ts';
import type { EnrolService } from './enrol-service.ts';
import { revocationTimeMs, type PeerIdentity } from './identity.ts';
import type { Leadership } from './leadership.ts';
import type { CpMetrics } from './metrics.ts';
import type { OperatorService } from './operator-service.ts';
import type { Store } from './store/types.ts';

export type CpApiParts = {
  store: Store;
  artifacts: ArtifactManager;
  leadership: Leadership;
  metrics: CpMetrics;
  agent: AgentService;
  operator: OperatorService;
  enrol: EnrolService | null;
  now: () => number;
};

/** `GET /readyz`: the artefacts in force, the reasons not to serve, and (shared store) this replica's role. */
export function readiness(p: Pick<CpApiParts, 'store' | 'artifacts' | 'leadership'>): ReadyzResponse {
  const f = p.artifacts.fleet();
  const r = p.artifacts.revocations();
  const reasons = p.artifacts.notReadyReasons();
  const l = p.leadership.status();
  if (!l.storeOk) reasons.push(`store unreachable: ${l.storeError}`);
  return {
    ready: reasons.length === 0,
    reasons,
    ...(p.store.shared ? { replica: { role: l.role, holder: l.holder, epoch: l.epoch, storeOk: l.storeOk } } : {}),
    fleet: f === null ? null : { signedAt: f.signedAt, sha256: f.sha256, ciCommit: f.fleet?.meta.ciCommit ?? null },
    revocations: r === null ? null : { signedAt: r.signedAt, sha256: r.sha256 },
  };
}

/** `readiness(p).ready`, without building the answer (the check-in route asks it every time). */
export function isReady(p: Pick<CpApiParts, 'artifacts' | 'leadership'>): boolean {
  return p.artifacts.allInForce() && p.leadership.storeOk;
}

function isRevoked(artifacts: ArtifactManager, peer: PeerIdentity): boolean {
  const nb = artifacts.revokedBeforeMs(peer.cn);
  // Issue 16: a certificate renewed from an identity proven before notBefore is covered too.
  return nb !== null && revocationTimeMs(peer) < nb;
}

/** Issue 16: `GET /v1/whoami` — the caller's certificate as this CP reads it. */
function whoami(artifacts: ArtifactManager, peer: PeerIdentity, nowMs: number): WhoamiResponse {
  const nb = artifacts.revokedBeforeMs(peer.cn);
  return {
    name: peer.cn,
    role: peer.role,
    serial: peer.serial,
    notBefore: new Date(peer.notBeforeMs).toISOString(),
    notAfter: new Date(peer.notAfterMs).toISOString(),
    certState: certState(peer.notAfterMs, nowMs),
    issuer: { commonName: peer.issuerCommonName, fingerprint256: peer.issuerFingerprint256 },
    revokedBefore: nb === null ? null : new Date(nb).toISOString(),
  };
}

export function createCpApi(p: CpApiParts): CpService {
  const { agent, operator } = p;
  return {
    // Open routes and the /v1/* gate.
    readiness: () => readiness(p),
    isReady: () => isReady(p),
    isRevoked: (peer) => isRevoked(p.artifacts, peer),
    metricsText: () => p.metrics.text(),
    observeRequest: (route, status) => p.metrics.request(route, status),
    requestTally: (route, status) => p.metrics.requestTally(route, status),
    whoami: (peer) => whoami(p.artifacts, peer, p.now()),
    enrolment: () => p.enrol,
    // Agent routes.
    artifact: (kind) => agent.artifact(kind),
    slice: (hostname) => agent.slice(hostname),
    checkin: (peer, req) => agent.checkin(peer, req),
    checkinNow: (peer, req) => agent.checkinNow(peer, req),
    confirm: (peer, req) => agent.confirm(peer, req),
    report: (peer, req, rawReport) => agent.report(peer, req, rawReport),
    // Operator routes.
    hosts: () => operator.hosts(),
    rollouts: (filter) => operator.rollouts(filter),
    rollout: (id) => operator.rollout(id),
    trace: (id) => operator.trace(id),
    audit: (after, limit) => operator.audit(after, limit),
    pause: (peer, channel, req) => operator.pause(peer, channel, req),
    resume: (peer, channel, req) => operator.resume(peer, channel, req),
    skip: (peer, rolloutId, req) => operator.skip(peer, rolloutId, req),
    approve: (peer, rolloutId, req) => operator.approve(peer, rolloutId, req),
    quarantines: () => operator.quarantines(),
    compliance: () => operator.compliance(),
    certificates: () => operator.certificates(),
    evidence: (fromMs, toMs) => operator.evidence(fromMs, toMs),
    witnesses: () => operator.witnesses(),
    checkpoint: (peer, req) => operator.checkpoint(peer, req),
    clearQuarantines: (peer, req) => operator.clearQuarantines(peer, req),
  };
}
