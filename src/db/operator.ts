import type { ISql } from 'postgres';
import type { Db } from './connect.js';

/**
 * The writes an operator makes by hand: pause, cancel, and creating a campaign. Pause and cancel
 * NOTIFY on `wacamp_campaign` with the campaign's id, so a run in progress on any host hears of
 * it at once (src/send/listen.ts); a run also polls the status, for writers that never NOTIFY.
 */
export const CAMPAIGN_CHANNEL = 'wacamp_campaign';

type Sql = ISql<Record<string, never>>;

export interface OperatorChange {
  /** The status before; null when the campaign does not exist. */
  previous: string | null;
  changed: boolean;
  /** Runs live on the campaign when the change was made: they drain and stop. */
  liveRuns: number;
}

/** `wacamp pause`: from these statuses; a paused campaign takes the operator's reason. */
export const PAUSABLE = ['active', 'scheduled', 'paused'] as const;
/** `wacamp cancel`: anything that has not ended. */
export const CANCELLABLE = ['draft', 'scheduled', 'active', 'paused', 'failed'] as const;

export function pauseCampaign(db: Db, id: string, detail: string): Promise<OperatorChange> {
  return operatorWrite(db, id, PAUSABLE, (tx) => tx`
    UPDATE campaigns
       SET status = 'paused', pause_reason = 'operator', status_detail = ${detail},
           updated_at = now()
     WHERE id = ${id}::uuid`);
}

export function cancelCampaign(db: Db, id: string, detail: string): Promise<OperatorChange> {
  return operatorWrite(db, id, CANCELLABLE, (tx) => tx`
    UPDATE campaigns
       SET status = 'cancelled', pause_reason = NULL, status_detail = ${detail},
           updated_at = now()
     WHERE id = ${id}::uuid`);
}

/**
 * Reads the status under a row lock, writes only from an allowed status, and notifies in the
 * same transaction: the NOTIFY is delivered on commit, when the new status is visible.
 */
async function operatorWrite(
  db: Db, id: string, from: readonly string[], write: (tx: Sql) => Promise<unknown>,
): Promise<OperatorChange> {
  return db.begin(async (tx) => {
    const [row] = await tx<{ status: string; live: number }[]>`
      SELECT c.status,
             (SELECT count(*)::int FROM wacamp_runs r
               WHERE r.campaign_id = c.id AND r.ended_at IS NULL
                 AND now() - r.heartbeat_at <= r.lease) AS live
        FROM campaigns c WHERE c.id = ${id}::uuid FOR UPDATE OF c`;
    if (!row) return { previous: null, changed: false, liveRuns: 0 };
    if (!from.includes(row.status)) {
      return { previous: row.status, changed: false, liveRuns: row.live };
    }
    await write(tx as unknown as Sql);
    await tx`SELECT pg_notify(${CAMPAIGN_CHANNEL}, ${id})`;
    return { previous: row.status, changed: true, liveRuns: row.live };
  });
}

export interface TemplateMatch {
  id: string; name: string; language: string; status: string; account: string | null;
}

/** Templates by id, or by name (and language, when given). */
export async function findTemplates(
  db: Sql, nameOrId: string, byId: boolean, language: string | undefined,
): Promise<TemplateMatch[]> {
  const rows = await db<TemplateMatch[]>`
    SELECT t.id, t.name, t.language, t.status, a.name AS account
      FROM templates t LEFT JOIN wa_accounts a ON a.id = t.account_id
     WHERE ${byId ? db`t.id = ${nameOrId}::uuid` : db`t.name = ${nameOrId}`}
       AND (${language ?? null}::text IS NULL OR t.language = ${language ?? null})
     ORDER BY t.name, t.language, t.id
     LIMIT 20`;
  return [...rows];
}

export async function insertDraftCampaign(
  db: Sql, templateId: string, name: string,
): Promise<string> {
  const [row] = await db<{ id: string }[]>`
    INSERT INTO campaigns (template_id, name, status)
    VALUES (${templateId}::uuid, ${name}, 'draft') RETURNING id`;
  return row!.id;
}
