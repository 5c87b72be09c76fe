import type { Db } from './connect.js';

export interface CampaignListing {
  id: string;
  name: string | null;
  status: string;
  pauseReason: string | null;
  statusDetail: string | null;
  pausedUntil: Date | null;
  scheduledAt: Date | null;
  createdAt: Date;
  template: string | null;
  counts: Record<string, number>;
  lastRun: {
    id: string; outcome: string | null; reason: string | null; startedAt: Date;
    endedAt: Date | null; live: boolean;
  } | null;
}

/**
 * Campaigns, newest first, with their counts per recipient status and their latest run. The
 * counts are one grouped scan per listed campaign over (campaign_id, status), an index of
 * 002_runs_and_claims.sql, so a page of 50 stays quick however large the other campaigns are.
 */
export async function listCampaigns(
  db: Db, o: { status?: string; limit: number },
): Promise<CampaignListing[]> {
  const rows = await db<Record<string, unknown>[]>`
    SELECT c.id, c.name, c.status, c.pause_reason, c.status_detail, c.paused_until,
           c.scheduled_at, c.created_at, t.name AS template,
           (SELECT coalesce(jsonb_object_agg(s.status, s.n), '{}'::jsonb)
              FROM (SELECT r.status, count(*)::int AS n FROM campaign_recipients r
                     WHERE r.campaign_id = c.id GROUP BY r.status) s) AS counts,
           lr.id AS run_id, lr.outcome AS run_outcome, lr.reason AS run_reason,
           lr.started_at AS run_started_at, lr.ended_at AS run_ended_at,
           (lr.ended_at IS NULL AND now() - lr.heartbeat_at <= lr.lease) AS run_live
      FROM campaigns c
      LEFT JOIN templates t ON t.id = c.template_id
      LEFT JOIN LATERAL (
        SELECT * FROM wacamp_runs w WHERE w.campaign_id = c.id ORDER BY w.id DESC LIMIT 1
      ) lr ON true
     WHERE ${o.status ?? null}::text IS NULL OR c.status = ${o.status ?? null}
     ORDER BY c.created_at DESC, c.id
     LIMIT ${o.limit}`;
  return rows.map((r) => ({
    id: r.id as string,
    name: r.name as string | null,
    status: r.status as string,
    pauseReason: r.pause_reason as string | null,
    statusDetail: r.status_detail as string | null,
    pausedUntil: r.paused_until as Date | null,
    scheduledAt: r.scheduled_at as Date | null,
    createdAt: r.created_at as Date,
    template: r.template as string | null,
    counts: r.counts as Record<string, number>,
    lastRun: r.run_id == null ? null : {
      id: String(r.run_id), outcome: r.run_outcome as string | null,
      reason: r.run_reason as string | null, startedAt: r.run_started_at as Date,
      endedAt: r.run_ended_at as Date | null, live: Boolean(r.run_live),
    },
  }));
}
