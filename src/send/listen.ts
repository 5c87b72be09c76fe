import type { Db } from '../db/connect.js';
import { CAMPAIGN_CHANNEL } from '../db/operator.js';

export interface CampaignListener {
  /** Stops listening; the pool's listen connection closes when nothing else listens. */
  close(): Promise<void>;
}

/**
 * Calls `onChange` as soon as anyone NOTIFYs `wacamp_campaign` with this campaign's id
 * (`wacamp pause` and `cancel` do; the operator's web app may: `SELECT pg_notify(
 * 'wacamp_campaign', '<id>')`). The payload says only *that* something changed: the caller
 * reads the status itself, so a forged or stale notification can do no more than cause a read.
 * postgres.js keeps LISTEN on a connection of its own and listens again after a reconnect;
 * notifications sent while it was away are lost, which the run's status poll covers.
 *
 * Rejects when LISTEN is refused (a transaction-mode pooler, say): the poll then works alone.
 */
export async function listenCampaign(
  db: Db, campaignId: string, onChange: () => void,
): Promise<CampaignListener> {
  const id = campaignId.toLowerCase();
  const sub = await db.listen(CAMPAIGN_CHANNEL, (payload) => {
    if (payload.trim().toLowerCase() === id) onChange();
  });
  return { close: () => sub.unlisten() };
}
