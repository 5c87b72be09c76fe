import { seedCampaign } from '../../src/db/seed.js';
import type { Db } from '../../src/db/connect.js';

/** A distinct valid US number for each i (0 ≤ i < 1,000,000), written the way people do. */
export function phoneFor(i: number): string {
  const d = String(i).padStart(6, '0');
  return `+1 (202) 5${d.slice(0, 2)}-${d.slice(2)}`;
}

/** The E.164 digits wacamp sends for phoneFor(i). */
export function e164For(i: number): string {
  return `12025${String(i).padStart(6, '0')}`;
}

export interface TestCampaign { campaignId: string }

export const BODY_TWO = [{ type: 'BODY', text: 'Hi {{1}}, order {{2}} ships today' }];

/** Seeds an approved template and a draft campaign; recipients default to n distinct phones. */
export async function seedTestCampaign(db: Db, o: {
  n?: number;
  recipients?: { phone: string; variables: unknown }[];
  components?: unknown;
  language?: string;
  templateName?: string;
  accessToken?: string | null;
  phoneNumberId?: string;
  maxRate?: number | null;
}): Promise<TestCampaign> {
  const recipients = o.recipients ?? Array.from({ length: o.n ?? 10 }, (_, i) => ({
    phone: phoneFor(i), variables: [`Name${i}`, `#${i}`],
  }));
  const campaignId = await seedCampaign(db, {
    accountName: 'test', phoneNumberId: o.phoneNumberId ?? '100200300',
    accessToken: o.accessToken === undefined ? 'sandbox-token' : o.accessToken,
    template: { name: o.templateName ?? 'order_update', language: o.language ?? 'en_US',
      components: o.components ?? BODY_TWO },
    campaignName: 'test campaign',
    recipients,
  });
  if (o.maxRate !== undefined) {
    await db`UPDATE wa_accounts SET max_rate = ${o.maxRate}
              WHERE id = (SELECT t.account_id FROM campaigns c JOIN templates t
                           ON t.id = c.template_id WHERE c.id = ${campaignId})`;
  }
  return { campaignId };
}

export async function statusCounts(db: Db, campaignId: string): Promise<Record<string, number>> {
  const rows = await db<{ status: string; n: number }[]>`
    SELECT status, count(*)::int AS n FROM campaign_recipients
     WHERE campaign_id = ${campaignId} GROUP BY status`;
  return Object.fromEntries(rows.map((r) => [r.status, r.n]));
}

export async function campaignStatus(db: Db, campaignId: string): Promise<string> {
  const [r] = await db<{ status: string }[]>`SELECT status FROM campaigns WHERE id = ${campaignId}`;
  return r!.status;
}
