import type { Db } from './connect.js';

export interface AccountRow {
  id: string; name: string | null; phoneNumberId: string; accessToken: string | null;
}

export async function accounts(db: Db): Promise<AccountRow[]> {
  const rows = await db<Record<string, unknown>[]>`
    SELECT id, name, phone_number_id, access_token FROM wa_accounts ORDER BY name, id`;
  return rows.map((r) => ({
    id: r.id as string, name: r.name as string | null,
    phoneNumberId: r.phone_number_id as string, accessToken: r.access_token as string | null,
  }));
}

export interface WaitingTemplate {
  campaignId: string; campaignName: string | null; template: string | null;
  templateStatus: string | null;
}

/**
 * The templates run-due is going to need: those of scheduled campaigns, and of campaigns it
 * began and will resume. One row per campaign whose template is not APPROVED (or is missing),
 * plus how many such campaigns there are in all.
 */
export async function waitingTemplates(
  db: Db,
): Promise<{ total: number; unapproved: WaitingTemplate[] }> {
  const rows = await db<Record<string, unknown>[]>`
    SELECT c.id, c.name, t.name AS template, t.status AS template_status
      FROM campaigns c LEFT JOIN templates t ON t.id = c.template_id
     WHERE c.status = 'scheduled'
        OR (c.status = 'paused' AND c.run_due AND c.pause_reason IN ('time_limit', 'interrupted'))
     ORDER BY c.scheduled_at NULLS LAST, c.id`;
  const unapproved = rows.filter((r) => r.template_status !== 'APPROVED').map((r) => ({
    campaignId: r.id as string, campaignName: r.name as string | null,
    template: r.template as string | null, templateStatus: r.template_status as string | null,
  }));
  return { total: rows.length, unapproved };
}

export async function serverVersion(db: Db): Promise<string> {
  const [r] = await db<{ v: string }[]>`SELECT current_setting('server_version') AS v`;
  return r?.v ?? '?';
}
