import type { Db } from './connect.js';

/** Statuses a campaign may be scheduled from: nothing is sending it and it has not ended. */
export const SCHEDULABLE = ['draft', 'scheduled', 'paused', 'failed'] as const;

export interface ScheduleOutcome { scheduled: boolean; status: string | null }

/**
 * Schedules a campaign, conditional on its status, so a campaign that became `active` or
 * `cancelled` a moment ago is never pulled back. A Meta pause window (`paused_until`) stays.
 */
export async function scheduleCampaign(db: Db, id: string, at: Date): Promise<ScheduleOutcome> {
  const rows = await db`
    UPDATE campaigns
       SET status = 'scheduled', scheduled_at = ${at.toISOString()}::timestamptz,
           pause_reason = NULL, status_detail = NULL, updated_at = now()
     WHERE id = ${id}::uuid AND status = ANY(${[...SCHEDULABLE]}::text[])
     RETURNING id`;
  if (rows.length > 0) return { scheduled: true, status: 'scheduled' };
  const [row] = await db<{ status: string }[]>`SELECT status FROM campaigns WHERE id = ${id}::uuid`;
  return { scheduled: false, status: row?.status ?? null };
}

// A 64-bit key from md5: hashtext's 32 bits would let two campaigns share a lock now and then.
const LOCK_KEY = `('x' || substr(md5('wacamp.run-due:' || $1::text), 1, 16))::bit(64)::bigint`;

/**
 * What run-due sends: scheduled campaigns whose time has come, and campaigns an earlier run-due
 * began that stopped on its time limit or on a signal or crash (recovery marks a crashed run's
 * campaign `interrupted`). Other pauses — an operator's, Meta's, the error budget's — wait for
 * a person. A Meta pause window still running, or a live run, makes a campaign not due.
 */
const DUE = `
  ((c.status = 'scheduled' AND c.scheduled_at <= now())
    OR (c.status = 'paused' AND c.run_due AND c.pause_reason IN ('time_limit', 'interrupted')))
  AND (c.paused_until IS NULL OR c.paused_until <= now())
  AND NOT EXISTS (
    SELECT 1 FROM wacamp_runs r
     WHERE r.campaign_id = c.id AND r.ended_at IS NULL AND now() - r.heartbeat_at <= r.lease)`;

export interface DueCampaign { id: string; status: string; dueAt: Date }

/** Due campaigns, oldest first, leaving out those this process already tried. */
export async function dueCampaigns(
  db: Db, exclude: readonly string[], limit: number,
): Promise<DueCampaign[]> {
  const rows = await db<{ id: string; status: string; due_at: Date }[]>`
    SELECT c.id, c.status, coalesce(c.scheduled_at, c.started_at, c.created_at) AS due_at
      FROM campaigns c
     WHERE ${db.unsafe(DUE)} AND c.id <> ALL(${[...exclude]}::uuid[])
     ORDER BY due_at, c.id
     LIMIT ${limit}`;
  return rows.map((r) => ({ id: r.id, status: r.status, dueAt: r.due_at }));
}

/** How many scheduled campaigns are waiting for a later time (for run-due's one line). */
export async function nextScheduled(db: Db): Promise<{ waiting: number; next: Date | null }> {
  const [r] = await db<{ waiting: number; next: Date | null }[]>`
    SELECT count(*)::int AS waiting, min(scheduled_at) AS next FROM campaigns
     WHERE status = 'scheduled' AND scheduled_at > now()`;
  return { waiting: r?.waiting ?? 0, next: r?.next ?? null };
}

/**
 * Takes the run-due lock of one campaign on a connection of its own, held until `release`.
 * A second run-due (an overlapping cron tick, another host) fails to take it and skips the
 * campaign. The due test is repeated under the lock: the holder may have finished it between
 * the other's listing and its attempt. Session locks vanish with the connection, so a killed
 * run-due never leaves one behind. Returns null when the campaign is held or no longer due.
 */
export async function lockDueCampaign(
  db: Db, id: string,
): Promise<(() => Promise<void>) | null> {
  const conn = await db.reserve();
  let locked = false;
  const release = async () => {
    try {
      if (locked) await conn.unsafe(`SELECT pg_advisory_unlock(${LOCK_KEY})`, [id]);
    } finally {
      conn.release();
    }
  };
  try {
    const [got] = await conn.unsafe<{ ok: boolean }[]>(
      `SELECT pg_try_advisory_lock(${LOCK_KEY}) AS ok`, [id]);
    locked = Boolean(got?.ok);
    if (locked) {
      const [due] = await conn.unsafe<{ ok: boolean }[]>(
        `SELECT EXISTS (SELECT 1 FROM campaigns c WHERE c.id = $1::uuid AND ${DUE}) AS ok`, [id]);
      if (due?.ok) return release;
    }
  } catch (err) {
    // The first error is the one to report; a failed unlock means the connection is gone,
    // and the session lock went with it.
    await release().catch(() => undefined);
    throw err;
  }
  await release();
  return null;
}
