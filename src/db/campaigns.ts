import type { Db } from './connect.js';

export type CampaignStatus =
  | 'draft' | 'scheduled' | 'active' | 'paused' | 'completed' | 'failed' | 'cancelled';

export interface CampaignRow {
  id: string;
  name: string | null;
  status: CampaignStatus;
  scheduledAt: Date | null;
  startedAt: Date | null;
  completedAt: Date | null;
  pauseReason: string | null;
  statusDetail: string | null;
  pausedUntil: Date | null;
  runDue: boolean;
  template: {
    id: string; name: string; language: string; status: string; components: unknown;
  } | null;
  account: {
    id: string; phoneNumberId: string; accessToken: string | null; maxRate: number | null;
  } | null;
}

/** The campaign with its template and sending account, in one round trip. */
export async function loadCampaign(db: Db, id: string): Promise<CampaignRow | undefined> {
  const rows = await db<Record<string, unknown>[]>`
    SELECT c.id, c.name, c.status, c.scheduled_at, c.started_at, c.completed_at, c.pause_reason,
           c.status_detail, c.paused_until, c.run_due,
           t.id AS t_id, t.name AS t_name, t.language AS t_language, t.status AS t_status,
           t.components AS t_components,
           a.id AS a_id, a.phone_number_id AS a_phone_number_id, a.access_token AS a_token,
           a.max_rate::float8 AS a_max_rate
      FROM campaigns c
      LEFT JOIN templates t ON t.id = c.template_id
      LEFT JOIN wa_accounts a ON a.id = t.account_id
     WHERE c.id = ${id}::uuid`;
  const r = rows[0];
  if (!r) return undefined;
  return {
    id: r.id as string,
    name: r.name as string | null,
    status: r.status as CampaignStatus,
    scheduledAt: r.scheduled_at as Date | null,
    startedAt: r.started_at as Date | null,
    completedAt: r.completed_at as Date | null,
    pauseReason: r.pause_reason as string | null,
    statusDetail: r.status_detail as string | null,
    pausedUntil: r.paused_until as Date | null,
    runDue: r.run_due as boolean,
    template: r.t_id ? {
      id: r.t_id as string,
      name: r.t_name as string,
      language: r.t_language as string,
      status: r.t_status as string,
      components: r.t_components,
    } : null,
    account: r.a_id ? {
      id: r.a_id as string,
      phoneNumberId: r.a_phone_number_id as string,
      accessToken: r.a_token as string | null,
      maxRate: r.a_max_rate as number | null,
    } : null,
  };
}

export interface StatusChange {
  /** The change happens only from one of these statuses: another writer's decision stands. */
  from: readonly CampaignStatus[];
  to: CampaignStatus;
  pauseReason?: string | null;
  detail?: string | null;
  pausedUntil?: Date | null;
}

/**
 * A conditional status write. Returns false when the campaign was not in an expected status,
 * which means someone else (the web app, `wacamp pause`) decided first.
 */
export async function changeStatus(db: Db, id: string, change: StatusChange): Promise<boolean> {
  const rows = await db`
    UPDATE campaigns
       SET status = ${change.to},
           pause_reason = ${change.to === 'paused' ? change.pauseReason ?? null : null},
           status_detail = ${change.detail ?? null},
           paused_until = ${change.pausedUntil ?? null}::timestamptz,
           completed_at = CASE WHEN ${change.to} = 'completed' THEN now() ELSE completed_at END,
           updated_at = now()
     WHERE id = ${id}::uuid AND status = ANY(${change.from as string[]}::text[])
     RETURNING id`;
  return rows.length > 0;
}

export type StatusCounts = Record<string, number>;

export async function countRecipients(db: Db, id: string): Promise<StatusCounts> {
  const rows = await db<{ status: string; n: number }[]>`
    SELECT status, count(*)::int AS n FROM campaign_recipients
     WHERE campaign_id = ${id}::uuid GROUP BY status`;
  const counts: StatusCounts = {};
  for (const r of rows) counts[r.status] = r.n;
  return counts;
}

/** Current status only: the run's backstop poll for writers that did not NOTIFY. */
export async function currentStatus(db: Db, id: string): Promise<CampaignStatus | undefined> {
  const rows = await db<{ status: CampaignStatus }[]>`
    SELECT status FROM campaigns WHERE id = ${id}::uuid`;
  return rows[0]?.status;
}
