import type { Db } from './connect.js';

/**
 * Every statement that moves recipient rows. Writes made on behalf of a run are fenced: they
 * touch only rows that run owns (`run_id`), and only while the run is live, checked in the same
 * statement. A run that lost its lease therefore changes nothing, whatever it believes.
 */

export interface PreflightRow {
  id: string; phone: string | null; phoneE164: string | null; variables: unknown;
  preflightError: string | null;
}

/** Pending rows in id order after `afterId` (keyset paging: memory stays flat). */
export async function pendingPage(
  db: Db, campaignId: string, afterId: string, limit: number,
): Promise<PreflightRow[]> {
  const rows = await db<Record<string, unknown>[]>`
    SELECT id, phone, phone_e164, variables, preflight_error FROM campaign_recipients
     WHERE campaign_id = ${campaignId}::uuid AND status = 'pending' AND id > ${afterId}::bigint
     ORDER BY id LIMIT ${limit}`;
  return rows.map((r) => ({
    id: String(r.id), phone: r.phone as string | null, phoneE164: r.phone_e164 as string | null,
    variables: r.variables, preflightError: r.preflight_error as string | null,
  }));
}

export interface PreflightWrite { id: string; phoneE164: string | null; error: string | null;
  message: string | null }

/** Stores normalised phones and local validation results for a page, in one statement. */
export async function writePreflight(db: Db, rows: PreflightWrite[]): Promise<void> {
  if (rows.length === 0) return;
  await db`
    UPDATE campaign_recipients r
       SET phone_e164 = w.e164, preflight_error = w.err,
           error_message = CASE WHEN w.err IS NULL THEN r.error_message ELSE w.msg END
      FROM unnest(${rows.map((r) => r.id)}::bigint[], ${rows.map((r) => r.phoneE164)}::text[],
                  ${rows.map((r) => r.error)}::text[], ${rows.map((r) => r.message)}::text[])
           AS w(id, e164, err, msg)
     WHERE r.id = w.id AND r.status = 'pending'`;
}

export interface PreflightTotals { pending: number; invalid: number; shapes: number }

/** How many pending rows there are, how many failed validation, and in how many ways. */
export async function preflightTotals(db: Db, campaignId: string): Promise<PreflightTotals> {
  const [r] = await db<PreflightTotals[]>`
    SELECT count(*)::int AS pending,
           count(preflight_error)::int AS invalid,
           count(DISTINCT preflight_error)::int AS shapes
      FROM campaign_recipients WHERE campaign_id = ${campaignId}::uuid AND status = 'pending'`;
  return r ?? { pending: 0, invalid: 0, shapes: 0 };
}

/**
 * Settles what preflight found, before any row is claimed: invalid rows fail with their local
 * code, and a second row with a phone already taken in this campaign is skipped (lowest id wins;
 * a phone that was sent, or may have been, counts too).
 */
export async function applyPreflight(
  db: Db, campaignId: string,
): Promise<{ failed: number; skipped: number }> {
  return db.begin(async (tx) => {
    const failed = await tx`
      UPDATE campaign_recipients
         SET status = 'failed', error_code = split_part(preflight_error, ':', 1),
             updated_at = now()
       WHERE campaign_id = ${campaignId}::uuid AND status = 'pending'
         AND preflight_error IS NOT NULL`;
    const skipped = await tx`
      UPDATE campaign_recipients r
         SET status = 'skipped', error_code = 'duplicate_phone',
             error_message = 'another recipient of this campaign has the same phone',
             updated_at = now()
       WHERE r.campaign_id = ${campaignId}::uuid AND r.status = 'pending'
         AND r.phone_e164 IS NOT NULL
         AND EXISTS (
           SELECT 1 FROM campaign_recipients o
            WHERE o.campaign_id = r.campaign_id AND o.phone_e164 = r.phone_e164 AND o.id <> r.id
              AND (o.status IN ('sent', 'sending', 'claimed', 'unknown')
                   OR (o.status = 'pending' AND o.id < r.id)))`;
    return { failed: failed.count, skipped: skipped.count };
  });
}

export interface ClaimedRow { id: string; phoneE164: string; variables: unknown; attempts: number }

// The fence every run-owned write carries: the run is unended and within its lease.
const LIVE_RUN = `SELECT id FROM wacamp_runs
  WHERE id = $1 AND ended_at IS NULL AND now() - heartbeat_at <= lease`;

/**
 * Takes up to `limit` sendable rows for a run. SKIP LOCKED lets several runs claim side by side
 * without waiting on each other; the duplicate test is repeated here so that a pair whose phones
 * were normalised by another run a moment ago can never both be claimed.
 */
export async function claim(
  db: Db, runId: string, campaignId: string, limit: number, afterId = '0',
): Promise<ClaimedRow[]> {
  // `afterId` is the run's keyset cursor: without it every claim would walk past all the rows
  // already sent, and a million-row campaign would slow down quadratically.
  const rows = await db.unsafe<Record<string, unknown>[]>(`
    WITH live AS (${LIVE_RUN}),
    pick AS (
      SELECT r.id FROM campaign_recipients r
       WHERE r.campaign_id = $2 AND r.status = 'pending' AND r.id > $4
         AND r.phone_e164 IS NOT NULL AND r.preflight_error IS NULL
         AND NOT EXISTS (
           SELECT 1 FROM campaign_recipients o
            WHERE o.campaign_id = r.campaign_id AND o.phone_e164 = r.phone_e164 AND o.id <> r.id
              AND (o.status IN ('sent', 'sending', 'claimed', 'unknown')
                   OR (o.status = 'pending' AND o.id < r.id)))
       ORDER BY r.id LIMIT $3 FOR UPDATE SKIP LOCKED)
    UPDATE campaign_recipients r
       SET status = 'claimed', run_id = live.id, updated_at = now()
      FROM pick, live
     WHERE r.id = pick.id
    RETURNING r.id, r.phone_e164, r.variables, r.attempts`, [runId, campaignId, limit, afterId]);
  return rows
    .map((r) => ({
      id: String(r.id), phoneE164: r.phone_e164 as string, variables: r.variables,
      attempts: r.attempts as number,
    }))
    .sort((a, b) => Number(a.id) - Number(b.id));
}

export type OutcomeStatus = 'sent' | 'failed' | 'unknown' | 'claimed' | 'pending' | 'skipped';

export interface Outcome {
  id: string;
  /** `claimed`: waits for a retry, still owned; `pending`: given back, never requested. */
  status: OutcomeStatus;
  attempts: number;
  messageId?: string | null;
  messageStatus?: string | null;
  errorCode?: string | null;
  errorMessage?: string | null;
}

/**
 * How an outcome is written, shared by the run's cycle and the journal replay: `pending` gives
 * a row back (ownership cleared), a final status keeps the run that handled it.
 */
const OUTCOME_SET = `SET status = w.status, attempts = w.attempts,
    run_id = CASE WHEN w.status = 'pending' THEN NULL ELSE r.run_id END,
    message_id = coalesce(w.message_id, r.message_id),
    message_status = coalesce(w.message_status, r.message_status),
    error_code = w.error_code, error_message = w.error_message,
    sent_at = CASE WHEN w.status = 'sent' THEN now() ELSE r.sent_at END,
    updated_at = now()`;

/** Outcomes as rows, from parameters $2..$8 in the order outcomeParams gives them. */
const OUTCOME_ROWS = `unnest($2::bigint[], $3::text[], $4::int[], $5::text[], $6::text[],
    $7::text[], $8::text[]) AS w(id, status, attempts, message_id, message_status, error_code,
    error_message)`;

function outcomeParams(o: readonly Outcome[]): unknown[][] {
  return [
    o.map((x) => x.id), o.map((x) => x.status), o.map((x) => x.attempts),
    o.map((x) => x.messageId ?? null), o.map((x) => x.messageStatus ?? null),
    o.map((x) => x.errorCode ?? null), o.map((x) => x.errorMessage ?? null),
  ];
}

export interface CycleResult { live: boolean; written: number; marked: string[] }

/**
 * The run's one statement per dispatch cycle (group commit): renew the lease, write the outcomes
 * of finished requests, and mark the next group `sending` just before their requests start.
 * Outcome and mark never name the same row in one call. Nothing is written unless the run is
 * live, so a run that lost its lease sees `live: false` and must stop. A row to mark may
 * already be `sending`: an earlier cycle committed the mark but its answer was lost, and the
 * caller, who never started that request, asks again.
 */
export async function cycle(
  db: Db, runId: string, outcomes: readonly Outcome[], mark: readonly string[],
): Promise<CycleResult> {
  const rows = await db.unsafe<{ live: boolean; written: number; marked: string[] | null }[]>(`
    WITH live AS (
      UPDATE wacamp_runs SET heartbeat_at = now()
       WHERE id = $1 AND ended_at IS NULL AND now() - heartbeat_at <= lease RETURNING id),
    done AS (
      UPDATE campaign_recipients r
         ${OUTCOME_SET}
        FROM ${OUTCOME_ROWS}, live
       -- run_id + 0: keeps the planner on the primary key; through the run_id index it would
       -- read every row the run owns on each cycle.
       WHERE r.id = w.id AND r.run_id + 0 = live.id AND r.status IN ('sending', 'claimed')
      RETURNING r.id),
    marked AS (
      UPDATE campaign_recipients r SET status = 'sending', updated_at = now()
        FROM live
       WHERE r.id = ANY($9::bigint[]) AND r.run_id + 0 = live.id
         AND r.status IN ('claimed', 'sending')
      RETURNING r.id)
    SELECT EXISTS (SELECT 1 FROM live) AS live,
           (SELECT count(*)::int FROM done) AS written,
           (SELECT array_agg(id::text) FROM marked) AS marked`,
  [runId, ...outcomeParams(outcomes), [...mark]] as never);
  const r = rows[0]!;
  return { live: r.live, written: r.written, marked: r.marked ?? [] };
}

/** Counts a run's own rows still in between, to prove a drain left none behind. */
export async function ownedCount(db: Db, runId: string): Promise<number> {
  const [r] = await db<{ n: number }[]>`
    SELECT count(*)::int AS n FROM campaign_recipients
     WHERE run_id = ${runId}::bigint AND status IN ('claimed', 'sending')`;
  return r?.n ?? 0;
}

/** Rows whose phone was never normalised (added after the last preflight). */
export async function unpreparedCount(db: Db, campaignId: string): Promise<number> {
  const [r] = await db<{ n: number }[]>`
    SELECT count(*)::int AS n FROM campaign_recipients
     WHERE campaign_id = ${campaignId}::uuid AND status = 'pending' AND phone_e164 IS NULL`;
  return r?.n ?? 0;
}

/** Rows still to be sent or in between: zero means the campaign is done. */
export async function sendableCount(db: Db, campaignId: string): Promise<number> {
  const [r] = await db<{ n: number }[]>`
    SELECT count(*)::int AS n FROM campaign_recipients
     WHERE campaign_id = ${campaignId}::uuid AND status IN ('pending', 'claimed', 'sending')`;
  return r?.n ?? 0;
}

/**
 * Applies a dead run's journal. Only rows that run still owns, or that recovery turned
 * `unknown` on its behalf, are touched: a row another run has since taken is left alone.
 */
export async function applyJournalOutcomes(
  db: Db, runId: string, outcomes: readonly Outcome[],
): Promise<number> {
  if (outcomes.length === 0) return 0;
  // A journaled wait for a retry is given back: the run that would retry it is gone.
  const given = outcomes.map((x) => (x.status === 'claimed' ? { ...x, status: 'pending' as const }
    : x));
  const rows = await db.unsafe(`
    UPDATE campaign_recipients r
       ${OUTCOME_SET}
      FROM ${OUTCOME_ROWS}
     WHERE r.id = w.id AND r.run_id = $1
       AND (r.status IN ('claimed', 'sending')
            OR (r.status = 'unknown' AND w.status IN ('sent', 'failed')))
    RETURNING r.id`, [runId, ...outcomeParams(given)] as never);
  return rows.length;
}

/**
 * After a run has drained (nothing in flight, every outcome written), rows it still owns were
 * never requested: a `sending` mark whose reply was lost with a dropped connection is the only
 * way to get one. They go back to `pending` so they are neither stuck nor skipped.
 */
export async function releaseLeftovers(db: Db, runId: string): Promise<number> {
  const rows = await db`
    UPDATE campaign_recipients SET status = 'pending', run_id = NULL, updated_at = now()
     WHERE run_id = ${runId}::bigint AND status IN ('claimed', 'sending')
       AND EXISTS (SELECT 1 FROM wacamp_runs WHERE id = ${runId}::bigint AND ended_at IS NULL)
    RETURNING id`;
  return rows.length;
}
