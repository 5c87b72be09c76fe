import type { Db } from './connect.js';

export interface SeedRequest {
  accountName: string;
  phoneNumberId: string;
  accessToken: string | null;
  template: { name: string; language: string; components: unknown };
  campaignName: string;
  recipients: { phone: string; variables: unknown }[];
}

/** Creates an account, an approved template and a draft campaign with its recipients. */
export async function seedCampaign(db: Db, s: SeedRequest): Promise<string> {
  return db.begin(async (tx) => {
    const [account] = await tx<{ id: string }[]>`
      INSERT INTO wa_accounts (name, phone_number_id, access_token)
      VALUES (${s.accountName}, ${s.phoneNumberId}, ${s.accessToken}) RETURNING id`;
    const [template] = await tx<{ id: string }[]>`
      INSERT INTO templates (account_id, name, language, status, components)
      VALUES (${account!.id}, ${s.template.name}, ${s.template.language}, 'APPROVED',
              ${tx.json(s.template.components as never)}) RETURNING id`;
    const [campaign] = await tx<{ id: string }[]>`
      INSERT INTO campaigns (template_id, name, status)
      VALUES (${template!.id}, ${s.campaignName}, 'draft') RETURNING id`;
    for (let i = 0; i < s.recipients.length; i += 5000) {
      const page = s.recipients.slice(i, i + 5000);
      await tx`
        INSERT INTO campaign_recipients (campaign_id, phone, variables)
        SELECT ${campaign!.id}::uuid, p, v::jsonb
          FROM unnest(${page.map((r) => r.phone)}::text[],
                      ${page.map((r) => JSON.stringify(r.variables))}::text[]) AS u(p, v)`;
    }
    return campaign!.id;
  });
}
