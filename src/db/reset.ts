import type { Db } from './connect.js';

export interface ResetRequest {
  failed: boolean; unknown: boolean; sent: boolean;
  /** Runs fenced by this reset: their in-flight rows may still be answered, so stay unknown. */
  fencedRuns: readonly string[];
}

export interface ResetChanges {
  claimedToPending: number;
  sendingToUnknown: number;
  failedToPending: number;
  unknownToPending: number;
  sentToPending: number;
  campaignStatus: string;
}

/**
 * Makes a campaign sendable again, in one transaction that the caller may roll back (dry run).
 * Only rows no live run owns are touched (dead runs were recovered before this). A `sending` row
 * only ever becomes `unknown`: its request may have left, so it is never silently re-queued.
 */
export async function resetCampaign(
  tx: Db, campaignId: string, r: ResetRequest,
): Promise<ResetChanges> {
  const notLive = `NOT EXISTS (SELECT 1 FROM wacamp_runs w WHERE w.id = r.run_id
    AND w.ended_at IS NULL AND now() - w.heartbeat_at <= w.lease)`;
  const requeue = `status = 'pending', run_id = NULL, error_code = NULL, error_message = NULL,
    preflight_error = NULL, phone_e164 = NULL, updated_at = now()`;
  const move = (from: string, set: string, spareFenced = false) => tx.unsafe(
    `UPDATE campaign_recipients r SET ${set}
      WHERE r.campaign_id = $1 AND r.status = '${from}' AND ${notLive}
        AND NOT ($3 AND coalesce(r.run_id = ANY($2::bigint[]), false))`,
    [campaignId, [...r.fencedRuns], spareFenced] as never);

  const claimed = await move('claimed', `status = 'pending', run_id = NULL, updated_at = now()`);
  // Re-queue first, then mark in-flight rows unknown: a row that was `sending` when the reset
  // began must come out `unknown`, never `pending`.
  const failed = r.failed ? await move('failed', requeue) : { count: 0 };
  const unknown = r.unknown
    ? await move('unknown', `${requeue}, message_id = NULL`, true) : { count: 0 };
  const sent = r.sent ? await move('sent',
    `${requeue}, message_id = NULL, message_status = NULL, sent_at = NULL`) : { count: 0 };
  const sending = await move('sending', `status = 'unknown', error_code = 'outcome_unknown',
    error_message = 'reset found its request in flight; it may have been delivered',
    updated_at = now()`);

  const [c] = await tx<{ status: string }[]>`
    WITH left_over AS (
      SELECT EXISTS (SELECT 1 FROM campaign_recipients
                      WHERE campaign_id = ${campaignId}::uuid
                        AND status IN ('pending', 'claimed', 'sending')) AS sendable)
    UPDATE campaigns c
       SET status = CASE WHEN l.sendable THEN 'paused' ELSE 'completed' END,
           pause_reason = CASE WHEN l.sendable THEN 'reset' END,
           status_detail = 'reset by an operator', paused_until = NULL, updated_at = now(),
           completed_at = CASE WHEN l.sendable THEN NULL ELSE coalesce(c.completed_at, now()) END
      FROM left_over l
     WHERE c.id = ${campaignId}::uuid AND c.status <> 'cancelled'
     RETURNING c.status`;
  return {
    claimedToPending: claimed.count, sendingToUnknown: sending.count,
    failedToPending: failed.count, unknownToPending: unknown.count, sentToPending: sent.count,
    campaignStatus: c?.status ?? 'cancelled',
  };
}
