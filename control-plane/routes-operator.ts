/**
 * Operator routes (SPEC §5, OU `operator`): hosts, rollouts, one rollout, its trace, the audit log,
 * pause / resume a channel, list and clear quarantines. Thin handlers (STYLE §9).
 */
import { Hono } from 'hono';
import type {
  RolloutSkipRequest,
  RolloutSkipResponse,
  RolloutApproveRequest,
  RolloutApproveResponse,
  AuditResponse,
  HostsResponse,
  PauseRequest,
  PauseResponse,
  QuarantineClearRequest,
  QuarantineClearResponse,
  QuarantinesResponse,
  RolloutDetail,
  RolloutsResponse,
  RolloutState,
  TraceResponse,
} from '../protocol/api.ts';
import { ROUTES } from '../protocol/api.ts';
import type { CertificatesResponse } from '../protocol/certificates-api.ts';
import type { ComplianceResponse } from '../protocol/compliance-api.ts';
import type { EvidenceResponse } from '../protocol/evidence-packet.ts';
import { CheckpointRequestSchema, type Checkpoint, type CheckpointRequest, type WitnessesResponse } from '../protocol/audit-witness.ts';
import { compile } from '../protocol/validate.ts';
import { evidenceRange } from './evidence-export.ts';
import { parsePauseRequest, parseQuarantineClearRequest, parseRolloutApproveRequest, parseRolloutSkipRequest } from '../protocol/api-parse.ts';
import { ApiError } from './errors.ts';
import type { PeerIdentity } from './identity.ts';
import { readJson, requireRole, validated, type AppEnv } from './middleware.ts';
import type { Awaitable } from './store/types.ts';

/** What the operator routes need. Methods throw `ApiError` for expected failures. */
export interface OperatorApi {
  hosts(): Awaitable<HostsResponse>;
  rollouts(filter: { channel?: string; state?: RolloutState }): Awaitable<RolloutsResponse>;
  rollout(id: string): Awaitable<RolloutDetail>;
  trace(id: string): Awaitable<TraceResponse>;
  audit(after: number, limit: number): Awaitable<AuditResponse>;
  pause(peer: PeerIdentity, channel: string, req: PauseRequest): Awaitable<PauseResponse>;
  resume(peer: PeerIdentity, channel: string, req: PauseRequest): Awaitable<PauseResponse>;
  /** Issue 14: `nixfleet rollout skip`. */
  skip(peer: PeerIdentity, rolloutId: string, req: RolloutSkipRequest): Awaitable<RolloutSkipResponse>;
  /** Issue 14: `nixfleet rollout approve` (requireApprovals). */
  approve(peer: PeerIdentity, rolloutId: string, req: RolloutApproveRequest): Awaitable<RolloutApproveResponse>;
  quarantines(): Awaitable<QuarantinesResponse>;
  /** Issue 15: `nixfleet compliance`. */
  compliance(): Awaitable<ComplianceResponse>;
  /** Issue 20: certificate expiries this replica knows (read-only, for the dashboard). */
  certificates(): Awaitable<CertificatesResponse>;
  /** Issue 15: `nixfleet evidence export` (read-only). */
  evidence(fromMs: number, toMs: number): Awaitable<EvidenceResponse>;
  /** Issue 15: audit anchoring — the head and the witnesses; an operator checkpoint. */
  witnesses(): Awaitable<WitnessesResponse>;
  checkpoint(peer: PeerIdentity, req: CheckpointRequest): Awaitable<Checkpoint>;
  clearQuarantines(peer: PeerIdentity, req: QuarantineClearRequest): Awaitable<QuarantineClearResponse>;
}

const checkpointBody = compile(CheckpointRequestSchema);

const ROLLOUT_STATES: readonly RolloutState[] = ['Pending', 'Executing', 'Converged', 'Halted', 'Superseded', 'Paused'];

function intParam(raw: string | undefined, name: string, dflt: number, min: number, max: number): number {
  if (raw === undefined) return dflt;
  if (!/^\d{1,15}$/.test(raw)) throw new ApiError('INVALID_QUERY', `${name} must be a non-negative integer`);
  const n = Number(raw);
  if (n < min || n > max) throw new ApiError('INVALID_QUERY', `${name} must be between ${min} and ${max}`);
  return n;
}

export function operatorRoutes(service: OperatorApi): Hono<AppEnv> {
  const app = new Hono<AppEnv>();
  const operator = requireRole('operator');

  app.get(ROUTES.hosts, operator, async (c) => c.json(await service.hosts()));
  app.get(ROUTES.rollouts, operator, async (c) => {
    const filter: { channel?: string; state?: RolloutState } = {};
    const channel = c.req.query('channel');
    const state = c.req.query('state');
    if (channel !== undefined) filter.channel = channel;
    if (state !== undefined) {
      if (!(ROLLOUT_STATES as readonly string[]).includes(state)) throw new ApiError('INVALID_QUERY', `state must be one of ${ROLLOUT_STATES.join(', ')}`);
      filter.state = state as RolloutState;
    }
    return c.json(await service.rollouts(filter));
  });
  app.get(ROUTES.rollout, operator, async (c) => c.json(await service.rollout(c.req.param('id'))));
  app.get(ROUTES.rolloutTrace, operator, async (c) => c.json(await service.trace(c.req.param('id'))));
  app.get(ROUTES.audit, operator, async (c) => {
    const after = intParam(c.req.query('after'), 'after', 0, 0, Number.MAX_SAFE_INTEGER);
    const limit = intParam(c.req.query('limit'), 'limit', 100, 1, 1000);
    return c.json(await service.audit(after, limit));
  });
  app.post(ROUTES.pause, operator, async (c) => {
    const req = validated(parsePauseRequest(await readJson(c, true)));
    return c.json(await service.pause(c.get('peer'), c.req.param('channel'), req));
  });
  app.post(ROUTES.resume, operator, async (c) => {
    const req = validated(parsePauseRequest(await readJson(c, true)));
    return c.json(await service.resume(c.get('peer'), c.req.param('channel'), req));
  });
  app.post(ROUTES.rolloutSkip, operator, async (c) => {
    const req = validated(parseRolloutSkipRequest(await readJson(c, false)));
    return c.json(await service.skip(c.get('peer'), c.req.param('id'), req));
  });
  app.post(ROUTES.rolloutApprove, operator, async (c) => {
    const req = validated(parseRolloutApproveRequest(await readJson(c, true)));
    return c.json(await service.approve(c.get('peer'), c.req.param('id'), req));
  });
  app.get(ROUTES.quarantines, operator, async (c) => c.json(await service.quarantines()));
  app.get(ROUTES.compliance, operator, async (c) => c.json(await service.compliance()));
  app.get(ROUTES.certificates, operator, async (c) => c.json(await service.certificates()));
  app.get(ROUTES.auditWitnesses, operator, async (c) => c.json(await service.witnesses()));
  app.post(ROUTES.auditCheckpoint, operator, async (c) => {
    const body = await readJson(c, false);
    if (!checkpointBody.check(body)) throw new ApiError('INVALID_BODY', 'a checkpoint is {seq, hash} of an audit entry');
    return c.json(await service.checkpoint(c.get('peer'), body));
  });
  app.get(ROUTES.evidence, operator, async (c) => {
    const { fromMs, toMs } = evidenceRange(c.req.query('from'), c.req.query('to'));
    return c.json(await service.evidence(fromMs, toMs));
  });
  app.post(ROUTES.quarantinesClear, operator, async (c) => {
    const req = validated(parseQuarantineClearRequest(await readJson(c, false)));
    return c.json(await service.clearQuarantines(c.get('peer'), req));
  });
  return app;
}
