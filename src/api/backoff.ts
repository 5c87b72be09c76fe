/**
 * Retry delay for transient failures: capped exponential with full jitter, so workers that failed
 * together do not retry together. Pure: the caller injects `random` to make it testable.
 */
import { WacampError } from '../errors.js';

export interface BackoffOptions {
  /** Ceiling of the first retry's delay, ms. Default 500. */
  baseMs?: number;
  /** Largest ceiling any retry may reach, ms. Default 30,000. */
  capMs?: number;
}

export const DEFAULT_BACKOFF = { baseMs: 500, capMs: 30_000 } as const;

/**
 * Delay in whole ms before retry number `attempt` (1 = first retry):
 * random() * min(cap, base * 2^(attempt-1)).
 */
export function backoffMs(
  attempt: number,
  opts: BackoffOptions = {},
  random: () => number = Math.random,
): number {
  const baseMs = opts.baseMs ?? DEFAULT_BACKOFF.baseMs;
  const capMs = opts.capMs ?? DEFAULT_BACKOFF.capMs;
  if (!Number.isInteger(attempt) || attempt < 1) {
    const message = `backoff attempt must be an integer ≥ 1, got ${attempt}`;
    throw new WacampError('backoff_attempt', message);
  }
  if (!(baseMs > 0 && Number.isFinite(baseMs)) || !(capMs > 0 && Number.isFinite(capMs))) {
    throw new WacampError('backoff_options', `backoff baseMs and capMs must be positive numbers`);
  }

  // 2 ** attempt overflows to Infinity for large attempts; min() then simply yields the cap.
  const ceilingMs = Math.min(capMs, baseMs * 2 ** (attempt - 1));
  return Math.floor(random() * ceilingMs);
}
