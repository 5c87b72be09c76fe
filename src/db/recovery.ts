import type { Db } from './connect.js';

export interface RecoveredRun {
  runId: string;
  campaignId: string;
  host: string;
  pid: number;
  released: number;
  unknown: number;
}

const UNKNOWN_MESSAGE =
  'the run ended while this request was in flight; it may have been delivered';

/**
 * Ends a run that is not coming back and settles what it owned: rows it had only claimed go
 * back to `pending` (never requested, safe to send), rows it had marked `sending` become
 * `unknown` (their request may have left; `run_id` stays, so the run's journal can still
 * settle them), and its campaign is paused as interrupted when no
 * other live run is working on it. Returns null when someone else ended the run first.
 */
async function endRun(
  db: Db, runId: string, outcome: 'crashed' | 'fenced', reason: string,
): Promise<Omit<RecoveredRun, 'host' | 'pid'> | null> {
  return db.begin(async (tx) => {
    const [run] = await tx<{ campaign_id: string }[]>`
      UPDATE wacamp_runs SET ended_at = now(), outcome = ${outcome}, reason = ${reason}
       WHERE id = ${runId}::bigint AND ended_at IS NULL
       RETURNING campaign_id`;
    if (!run) return null;

    const released = await tx`
      UPDATE campaign_recipients SET status = 'pending', run_id = NULL, updated_at = now()
       WHERE run_id = ${runId}::bigint AND status = 'claimed'`;
    const unknown = await tx`
      UPDATE campaign_recipients
         SET status = 'unknown', error_code = 'outcome_unknown',
             error_message = ${UNKNOWN_MESSAGE}, updated_at = now()
       WHERE run_id = ${runId}::bigint AND status = 'sending'`;
    await pauseOrphaned(tx as unknown as Db, run.campaign_id);
    return {
      runId, campaignId: run.campaign_id, released: released.count, unknown: unknown.count,
    };
  });
}

/** A campaign left `active` with no live run is paused as interrupted, so it is never stuck. */
async function pauseOrphaned(db: Db, campaignId: string | null): Promise<number> {
  const rows = await db`
    UPDATE campaigns c
       SET status = 'paused', pause_reason = 'interrupted',
           status_detail = 'no live run was sending it', updated_at = now()
     WHERE c.status = 'active'
       AND (${campaignId}::uuid IS NULL OR c.id = ${campaignId}::uuid)
       AND NOT EXISTS (
         SELECT 1 FROM wacamp_runs r
          WHERE r.campaign_id = c.id AND r.ended_at IS NULL AND now() - r.heartbeat_at <= r.lease)
     RETURNING c.id`;
  return rows.length;
}

/**
 * Finds runs that are dead and settles them. A run is dead when its heartbeat is older than its
 * own lease, or, known at once, when it ran on this host and its process is gone.
 * A pid reused by an unrelated process keeps a dead run "alive" until its lease runs out; the
 * lease is the backstop for that and for other hosts.
 */
export async function recoverDeadRuns(
  db: Db, host: string, isAlive: (pid: number) => boolean,
): Promise<RecoveredRun[]> {
  const open = await db<{ id: string; host: string; pid: number; expired: boolean }[]>`
    SELECT id, host, pid, now() - heartbeat_at > lease AS expired
      FROM wacamp_runs WHERE ended_at IS NULL ORDER BY id`;

  const recovered: RecoveredRun[] = [];
  for (const run of open) {
    const gone = run.host === host && run.pid !== process.pid && !isAlive(run.pid);
    if (!run.expired && !gone) continue;
    const reason = run.expired ? 'heartbeat older than its lease' : 'process gone';
    const done = await endRun(db, String(run.id), 'crashed', reason);
    if (done) recovered.push({ ...done, host: run.host, pid: run.pid });
  }

  await pauseOrphaned(db, null);
  return recovered;
}

/** `reset --force`: revokes a live run's lease so it sends and writes nothing more. */
export async function fenceRun(db: Db, runId: string): Promise<RecoveredRun | null> {
  const [run] = await db<{ host: string; pid: number }[]>`
    SELECT host, pid FROM wacamp_runs WHERE id = ${runId}::bigint`;
  const done = await endRun(db, runId, 'fenced', 'lease revoked by reset --force');
  return done && run ? { ...done, host: run.host, pid: run.pid } : null;
}

export function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    // EPERM means the process exists but belongs to someone else.
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}
