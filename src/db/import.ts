import type { Writable } from 'node:stream';
import type { ISql } from 'postgres';

/**
 * A CSV import runs in one transaction: rows are streamed with COPY into a temporary staging
 * table, then merged into campaign_recipients with one INSERT that keeps the first row of each
 * phone and leaves out phones the campaign already has. A failed import therefore adds nobody,
 * and importing the same file again adds nobody twice.
 */
type Tx = ISql<Record<string, never>>;

/** Serialises imports into one campaign, so two at once cannot each add the same phone. */
export async function lockCampaignImport(tx: Tx, campaignId: string): Promise<void> {
  await tx`SELECT pg_advisory_xact_lock(hashtext('wacamp.import:' || ${campaignId}))`;
}

/**
 * Read without a row lock on purpose: an import of millions of rows must not hold up a pause or
 * a run's start. A campaign cancelled meanwhile keeps the rows, and never sends them.
 */
export async function campaignStatus(tx: Tx, campaignId: string): Promise<string | null> {
  const [row] = await tx<{ status: string }[]>`
    SELECT status FROM campaigns WHERE id = ${campaignId}::uuid`;
  return row?.status ?? null;
}

export const STAGING_COLUMNS = ['line', 'phone', 'phone_e164', 'variables'] as const;

/**
 * The COPY target, in PostgreSQL's text format: one line per row, columns in STAGING_COLUMNS
 * order, separated by tabs (see copyField for the escaping).
 */
export async function openStaging(tx: Tx): Promise<Writable> {
  await tx`
    CREATE TEMP TABLE wacamp_import_staging (
      line bigint NOT NULL, phone text, phone_e164 text NOT NULL, variables jsonb
    ) ON COMMIT DROP`;
  return tx`COPY wacamp_import_staging (line, phone, phone_e164, variables) FROM STDIN`
    .writable();
}

/**
 * Moves staged rows into the campaign in file order; the first row of a phone wins, and a phone
 * the campaign already holds (normalised by an earlier import or a send's preflight) is left
 * out. Returns how many rows were added.
 */
export async function mergeStaging(tx: Tx, campaignId: string): Promise<number> {
  const rows = await tx`
    INSERT INTO campaign_recipients (campaign_id, phone, phone_e164, variables)
    SELECT ${campaignId}::uuid, s.phone, s.phone_e164, s.variables
      FROM (SELECT DISTINCT ON (phone_e164) * FROM wacamp_import_staging
             ORDER BY phone_e164, line) s
     WHERE NOT EXISTS (
       SELECT 1 FROM campaign_recipients r
        WHERE r.campaign_id = ${campaignId}::uuid AND r.phone_e164 = s.phone_e164)
     ORDER BY s.line`;
  return rows.count;
}

/** One field in COPY text format: backslash, tab and line breaks escaped; null is \N. */
export function copyField(value: string | null): string {
  if (value === null) return '\\N';
  return value.replace(/[\\\t\n\r]/g, (c) =>
    c === '\\' ? '\\\\' : c === '\t' ? '\\t' : c === '\n' ? '\\n' : '\\r');
}
