/**
 * Operator actions on channels and quarantines (pause / resume, `GET /v1/quarantines`, clear):
 * request and response bodies. Re-exported by api.ts (import them from there).
 */
import { Type, type Static } from '@sinclair/typebox';
import { Nullable, StoreBasename } from './vocab.ts';

const Text = (max: number) => Type.String({ maxLength: max });
const Name = (max: number) => Type.String({ minLength: 1, maxLength: max });

/** `POST /v1/channels/:channel/pause` body (may be empty) → {@link PauseResponse}. */
export const PauseRequestSchema = Type.Object({ reason: Type.Optional(Text(1024)) });
export type PauseRequest = Static<typeof PauseRequestSchema>;
/** `POST /v1/channels/:channel/resume` body (may be empty) → {@link PauseResponse}. */
export type ResumeRequest = PauseRequest;
/** `by` / `since`: who and when (null after resume). */
export const PauseResponseSchema = Type.Object({
  channel: Type.String(),
  paused: Type.Boolean(),
  by: Nullable(Type.String()),
  since: Nullable(Type.String()),
  reason: Nullable(Type.String()),
});
export type PauseResponse = Static<typeof PauseResponseSchema>;

/** `GET /v1/quarantines` → {@link QuarantinesResponse}. */
export const QuarantineSchema = Type.Object({
  channel: Type.String(),
  closureHash: Type.String(),
  rolloutId: Nullable(Type.String()),
  reason: Type.String(),
  since: Type.String(),
});
export type Quarantine = Static<typeof QuarantineSchema>;
export const QuarantinesResponseSchema = Type.Object({ quarantines: Type.Array(QuarantineSchema) });
export type QuarantinesResponse = Static<typeof QuarantinesResponseSchema>;

/** `POST /v1/quarantines/clear`: a channel's quarantines, optionally one closure. */
export const QuarantineClearRequestSchema = Type.Object({ channel: Name(256), closureHash: Type.Optional(StoreBasename()) });
export type QuarantineClearRequest = Static<typeof QuarantineClearRequestSchema>;
export const QuarantineClearResponseSchema = Type.Object({ cleared: Type.Integer() });
export type QuarantineClearResponse = Static<typeof QuarantineClearResponseSchema>;
