import type { Db } from './connect.js';

/**
 * The shared pace of one sending number, as a GCRA row in PostgreSQL: every run on the number,
 * on any host, reserves short chunks of start times from it, so together they never start more
 * than `max_rate` requests in a second. A throttle answer from Meta cuts the number's shared
 * factor; the factor climbs back by 25% for each quiet second after the first, computed from
 * `throttled_at` so no process has to be alive to restore it.
 */

const FACTOR = `least(1, throttle_factor * power(1.25,
  greatest(0, floor(extract(epoch FROM now() - coalesce(throttled_at, now())) - 1))))`;

export interface Reservation {
  /** The first slot, in the database's clock (epoch ms). */
  startEpochMs: number;
  /** The database's clock when the statement ran (after any wait for the row lock). */
  dbNowEpochMs: number;
  intervalMs: number;
  count: number;
}

export interface SharedThrottle { factor: number; gateInMs: number }

export async function ensureRateRow(db: Db, phoneNumberId: string): Promise<void> {
  await db`INSERT INTO wacamp_rate_limits (phone_number_id) VALUES (${phoneNumberId})
           ON CONFLICT DO NOTHING`;
}

/** Reserves `count` consecutive start slots at `ratePerSecond` × the shared factor. */
export async function reserveSlots(
  db: Db, phoneNumberId: string, ratePerSecond: number, count: number,
): Promise<Reservation> {
  const [r] = await db<{ start_ms: number; db_now_ms: number; interval_ms: number }[]>`
    WITH cur AS (
      SELECT greatest(tat, clock_timestamp(), coalesce(throttle_until, now())) AS start,
             greatest(${db.unsafe(FACTOR)}::float8, 0.001) AS factor
        FROM wacamp_rate_limits WHERE phone_number_id = ${phoneNumberId} FOR UPDATE),
    upd AS (
      UPDATE wacamp_rate_limits l
         SET tat = cur.start + make_interval(secs => ${count}::float8 /
                                             (${ratePerSecond}::float8 * cur.factor))
        FROM cur WHERE l.phone_number_id = ${phoneNumberId}
      RETURNING cur.start, cur.factor)
    SELECT extract(epoch FROM start) * 1000 AS start_ms,
           extract(epoch FROM clock_timestamp()) * 1000 AS db_now_ms,
           1000 / (${ratePerSecond}::float8 * factor) AS interval_ms
      FROM upd`;
  if (!r) throw new Error(`no rate row for phone_number_id ${phoneNumberId}`);
  return {
    startEpochMs: Number(r.start_ms), dbNowEpochMs: Number(r.db_now_ms),
    intervalMs: Number(r.interval_ms), count,
  };
}

/** Meta throttled this number: halve the shared factor and hold every run for `waitMs`. */
export async function throttleShared(
  db: Db, phoneNumberId: string, waitMs: number,
): Promise<void> {
  await db`
    UPDATE wacamp_rate_limits
       SET throttle_factor = greatest(${db.unsafe(FACTOR)}::float8 * 0.5, 0.001),
           throttled_at = now(),
           throttle_until = greatest(coalesce(throttle_until, now()),
                                     now() + make_interval(secs => ${waitMs / 1000}::float8))
     WHERE phone_number_id = ${phoneNumberId}
       AND (throttle_until IS NULL OR throttle_until <= now())`;
}

export async function readThrottle(db: Db, phoneNumberId: string): Promise<SharedThrottle> {
  const [r] = await db<{ factor: number; gate_in_ms: number }[]>`
    SELECT ${db.unsafe(FACTOR)}::float8 AS factor,
           greatest(0, extract(epoch FROM coalesce(throttle_until, now()) - now()) * 1000)::float8
             AS gate_in_ms
      FROM wacamp_rate_limits WHERE phone_number_id = ${phoneNumberId}`;
  return { factor: Number(r?.factor ?? 1), gateInMs: Number(r?.gate_in_ms ?? 0) };
}
