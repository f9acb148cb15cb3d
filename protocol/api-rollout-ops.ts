/**
 * Issue 14 operator actions on one rollout (bodies of `POST /v1/rollouts/:id/skip` and
 * `/approve`). Re-exported by api.ts.
 */
import { Type, type Static } from '@sinclair/typebox';

const Text = (max: number) => Type.String({ maxLength: max });

/**
 * `POST /v1/rollouts/:id/skip` (issue 14, `nixfleet rollout skip ROLLOUT HOST --reason …`): release
 * a host from ordering (host edges, wave order) for this rollout; audited. It still gets its
 * target when online. → {@link RolloutSkipResponse}.
 */
export const RolloutSkipRequestSchema = Type.Object({ host: Text(253), reason: Text(1024) });
export type RolloutSkipRequest = Static<typeof RolloutSkipRequestSchema>;
export const RolloutSkipResponseSchema = Type.Object({ rolloutId: Type.String(), host: Type.String(), released: Type.Boolean(), by: Type.String(), reason: Type.String() });
export type RolloutSkipResponse = Static<typeof RolloutSkipResponseSchema>;

/**
 * `POST /v1/rollouts/:id/approve` (issue 14, `nixfleet rollout approve ROLLOUT`; body may be empty):
 * the operator's approval of a rollout whose channel signs `requireApprovals: N`; it starts once N
 * distinct operator certificates (by CN) approved it. Audited (`rollout.approved`). `approvals`:
 * the operators so far, sorted; `required`: N (0 = the channel needs none).
 */
export const RolloutApproveRequestSchema = Type.Object({ reason: Type.Optional(Text(1024)) });
export type RolloutApproveRequest = Static<typeof RolloutApproveRequestSchema>;
export const RolloutApproveResponseSchema = Type.Object({ rolloutId: Type.String(), by: Type.String(), approvals: Type.Array(Type.String()), required: Type.Integer({ minimum: 0 }) });
export type RolloutApproveResponse = Static<typeof RolloutApproveResponseSchema>;
