/**
 * Turns a Retry-After header into a delay. A value we cannot trust yields `undefined`, so the
 * caller falls back to its own backoff instead of sleeping on a garbage number.
 */

/** Longer than this is more likely a broken header than advice worth idling a campaign for. */
export const MAX_RETRY_AFTER_MS = 60 * 60 * 1000;

const DIGITS_ONLY = /^\d+$/;
// All three HTTP-date forms (IMF-fixdate, RFC 850, asctime) open with a day name. Requiring a
// letter first keeps Date.parse away from "1.5" or "-5", which V8 happily reads as dates in 2001.
const STARTS_WITH_DAY_NAME = /^[A-Za-z]{3}/;
// asctime carries no zone; HTTP defines it as GMT, but Date.parse would read it as local time.
const ASCTIME = /^[A-Za-z]{3} [A-Za-z]{3} [ \d]\d \d\d:\d\d:\d\d \d{4}$/;

/** Delay in ms from a Retry-After value (delta-seconds or HTTP-date), or undefined. */
export function parseRetryAfter(
  value: string | null | undefined,
  nowMs: number,
): number | undefined {
  if (value === null || value === undefined) return undefined;
  const text = value.trim();

  // Delta-seconds: never parsed as a date, whatever Date.parse would make of it.
  if (DIGITS_ONLY.test(text)) return withinLimit(Number(text) * 1000);

  if (!STARTS_WITH_DAY_NAME.test(text)) return undefined;
  const dateMs = Date.parse(ASCTIME.test(text) ? `${text} GMT` : text);
  if (Number.isNaN(dateMs)) return undefined;
  // A date already past means "now": the server no longer wants us to wait.
  return withinLimit(Math.max(0, dateMs - nowMs));
}

function withinLimit(ms: number): number | undefined {
  return Number.isFinite(ms) && ms >= 0 && ms <= MAX_RETRY_AFTER_MS ? ms : undefined;
}
