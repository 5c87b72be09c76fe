import type { Db } from './connect.js';
import type { CampaignStatus } from './campaigns.js';

export interface LiveRun {
  id: string;
  campaignId: string;
  host: string;
  pid: number;
  ageMs: number;
  heartbeatAgeMs: number;
  options: Record<string, unknown>;
}

export interface RegisterRequest {
  campaignId: string;
  host: string;
  pid: number;
  leaseMs: number;
  options: Record<string, unknown>;
  runDue: boolean;
  join: boolean;
  /** Statuses from which this run may make the campaign `active`. */
  from: readonly CampaignStatus[];
}

export type RegisterResult =
  | { ok: true; runId: string }
  | { ok: false; reason: 'live_run'; live: LiveRun }
  | { ok: false; reason: 'status'; status: string };

// A run is live while nobody has ended it and its heartbeat is within its own lease.
const LIVE = 'ended_at IS NULL AND now() - heartbeat_at <= lease';

function toLiveRun(r: Record<string, unknown>): LiveRun {
  return {
    id: String(r.id),
    campaignId: r.campaign_id as string,
    host: r.host as string,
    pid: r.pid as number,
    ageMs: Number(r.age_ms),
    heartbeatAgeMs: Number(r.hb_ms),
    options: (r.options ?? {}) as Record<string, unknown>,
  };
}

export async function liveRuns(db: Db, campaignId?: string): Promise<LiveRun[]> {
  const rows = await db<Record<string, unknown>[]>`
    SELECT id, campaign_id, host, pid, options,
           extract(epoch FROM now() - started_at) * 1000 AS age_ms,
           extract(epoch FROM now() - heartbeat_at) * 1000 AS hb_ms
      FROM wacamp_runs
     WHERE ${db.unsafe(LIVE)}
       AND (${campaignId ?? null}::uuid IS NULL OR campaign_id = ${campaignId ?? null}::uuid)
     ORDER BY id`;
  return rows.map(toLiveRun);
}

/**
 * Registers a run and makes its campaign `active` in one transaction, serialised per campaign by
 * an advisory lock, so two processes starting together cannot both believe they are alone.
 */
export async function registerRun(db: Db, req: RegisterRequest): Promise<RegisterResult> {
  return db.begin(async (tx) => {
    await tx`SELECT pg_advisory_xact_lock(hashtext('wacamp.campaign:' || ${req.campaignId}))`;
    const live = await tx<Record<string, unknown>[]>`
      SELECT id, campaign_id, host, pid, options,
             extract(epoch FROM now() - started_at) * 1000 AS age_ms,
             extract(epoch FROM now() - heartbeat_at) * 1000 AS hb_ms
        FROM wacamp_runs WHERE campaign_id = ${req.campaignId}::uuid AND ${tx.unsafe(LIVE)}
       ORDER BY id LIMIT 1`;
    if (live[0] && !req.join) return { ok: false, reason: 'live_run', live: toLiveRun(live[0]) };

    const from = live[0] ? [...req.from, 'active'] : req.from;
    const activated = await tx<{ status: string }[]>`
      UPDATE campaigns
         SET status = 'active', pause_reason = NULL, status_detail = NULL, paused_until = NULL,
             started_at = coalesce(started_at, now()), completed_at = NULL, updated_at = now(),
             run_due = run_due OR ${req.runDue}
       WHERE id = ${req.campaignId}::uuid AND status = ANY(${from as string[]}::text[])
       RETURNING status`;
    if (!activated[0]) {
      const [row] = await tx<{ status: string }[]>`
        SELECT status FROM campaigns WHERE id = ${req.campaignId}::uuid`;
      return { ok: false, reason: 'status', status: row?.status ?? 'missing' };
    }

    const [run] = await tx<{ id: string }[]>`
      INSERT INTO wacamp_runs (campaign_id, host, pid, lease, options, run_due)
      VALUES (${req.campaignId}::uuid, ${req.host}, ${req.pid},
              make_interval(secs => ${req.leaseMs / 1000}::float8),
              ${tx.json(req.options as never)}, ${req.runDue})
      RETURNING id`;
    return { ok: true, runId: String(run!.id) };
  });
}

/**
 * Serialises a transaction with every other registration and closing on one campaign, so two
 * runs ending together cannot each leave the campaign to the other.
 */
export async function lockCampaign(tx: Db, campaignId: string): Promise<void> {
  await tx`SELECT pg_advisory_xact_lock(hashtext('wacamp.campaign:' || ${campaignId}))`;
}

/** Renews the lease; false once it is lost (ended by someone else, or already expired). */
export async function heartbeat(db: Db, runId: string): Promise<boolean> {
  const rows = await db`
    UPDATE wacamp_runs SET heartbeat_at = now()
     WHERE id = ${runId}::bigint AND ${db.unsafe(LIVE)} RETURNING id`;
  return rows.length > 0;
}

export async function finishRun(
  db: Db, runId: string, outcome: string, reason: string | null, counts: Record<string, number>,
): Promise<void> {
  await db`
    UPDATE wacamp_runs
       SET outcome = ${outcome}, reason = ${reason}, counts = ${db.json(counts)},
           ended_at = now()
     WHERE id = ${runId}::bigint AND ended_at IS NULL`;
}

export interface RecentRun {
  id: string; host: string; pid: number; startedAt: Date; endedAt: Date | null;
  outcome: string | null; reason: string | null; counts: Record<string, number> | null;
}

export async function recentRuns(db: Db, campaignId: string, limit = 5): Promise<RecentRun[]> {
  const rows = await db<Record<string, unknown>[]>`
    SELECT id, host, pid, started_at, ended_at, outcome, reason, counts FROM wacamp_runs
     WHERE campaign_id = ${campaignId}::uuid AND ended_at IS NOT NULL
     ORDER BY id DESC LIMIT ${limit}`;
  return rows.map((r) => ({
    id: String(r.id), host: r.host as string, pid: r.pid as number,
    startedAt: r.started_at as Date, endedAt: r.ended_at as Date | null,
    outcome: r.outcome as string | null, reason: r.reason as string | null,
    counts: r.counts as Record<string, number> | null,
  }));
}

/** Heartbeat plus the campaign's current status, in one round trip. */
export async function heartbeatWithStatus(
  db: Db, runId: string, campaignId: string,
): Promise<{ live: boolean; campaignStatus: string | undefined }> {
  const [r] = await db<{ live: boolean; status: string | null }[]>`
    WITH hb AS (
      UPDATE wacamp_runs SET heartbeat_at = now()
       WHERE id = ${runId}::bigint AND ${db.unsafe(LIVE)} RETURNING id)
    SELECT EXISTS (SELECT 1 FROM hb) AS live,
           (SELECT status FROM campaigns WHERE id = ${campaignId}::uuid) AS status`;
  return { live: r?.live ?? false, campaignStatus: r?.status ?? undefined };
}
