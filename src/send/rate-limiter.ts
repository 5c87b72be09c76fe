/**
 * The process's own pace: requests started per second, judged on actual start times.
 *
 * Two parts, both pure arithmetic over an injected clock (milliseconds):
 * - a GCRA schedule (theoretical arrival time, no burst) that spaces planned starts exactly
 *   1/rate apart, so a late timer never makes the schedule drift and the achieved rate stays on
 *   target;
 * - a sliding-window guard over the last `limit` actual starts, so that when a late start is
 *   followed by an on-time one, no window [t, t + 1 s) ever holds more than `limit` starts,
 *   and actual starts are never closer than 0.9 of the interval.
 * A throttle cut multiplies the rate by `factor`; an unlimited limiter that is cut first takes
 * the rate it was observed to reach as its base.
 */
export class RateLimiter {
  private tat = -Infinity;
  private factor = 1;
  private base: number;
  private ring: Float64Array;
  private head = 0;
  private filled = 0;

  constructor(private readonly configured: number) {
    this.base = configured;
    this.ring = ringFor(configured);
  }

  /** The rate in force now, after any throttle cut (Infinity when unlimited). */
  get effectiveRate(): number {
    return this.base * this.factor;
  }

  get currentFactor(): number {
    return this.factor;
  }

  get throttled(): boolean {
    return this.factor < 1;
  }

  /** Cuts the rate by `by` (0.5 halves it). `observedRate` anchors an unlimited run. */
  cut(by: number, observedRate: number): void {
    if (!Number.isFinite(this.base)) {
      this.base = Math.max(1, observedRate);
      this.ring = ringFor(this.base);
      this.head = 0;
      this.filled = 0;
    }
    this.factor = Math.max(this.factor * by, 1 / this.base, 1e-3);
  }

  /** One step of the gradual climb back; returns true once fully restored. */
  ramp(by: number): boolean {
    this.factor = Math.min(1, this.factor * by);
    if (this.factor < 1) return false;
    if (!Number.isFinite(this.configured) && Number.isFinite(this.base)) {
      this.base = this.configured;
      this.ring = ringFor(this.base);
    }
    return true;
  }

  /**
   * Planned start times for up to `n` requests, none earlier than `now` and none later than
   * `now + horizonMs`. May return fewer than `n` (even none) when the schedule is ahead.
   */
  plan(n: number, now: number, horizonMs: number): number[] {
    const rate = this.effectiveRate;
    if (!Number.isFinite(rate)) return new Array<number>(n).fill(now);
    const interval = 1000 / rate;
    const times: number[] = [];
    for (let i = 0; i < n; i++) {
      const start = Math.max(now, this.tat);
      if (start > now + horizonMs) break;
      times.push(start);
      this.tat = start + interval;
    }
    return times;
  }

  /** How many starts `plan` would give now, at most `max`, without taking them. */
  capacity(max: number, now: number, horizonMs: number): number {
    const rate = this.effectiveRate;
    if (!Number.isFinite(rate)) return max;
    const first = Math.max(now, this.tat);
    if (first > now + horizonMs) return 0;
    return Math.min(max, 1 + Math.floor((now + horizonMs - first) / (1000 / rate)));
  }

  /** When the schedule has room again (for a caller that got no times from `plan`). */
  nextFree(now: number): number {
    return Math.max(now, this.tat);
  }

  /**
   * The guard at the moment of starting: 0 means start now (the start is recorded); otherwise
   * the milliseconds to wait before asking again.
   */
  admit(now: number): number {
    if (this.ring.length === 0) return 0;
    let wait = 0;
    // Catching up after a late timer goes at most a tenth faster than the pace: a burst of
    // overdue starts would otherwise turn a few ms of jitter into more than rate + 1 arrivals
    // in a second at the receiving end. Above 250/s the interval nears the timers' own
    // granularity (about 1 ms), where the gap would cut the achieved rate by a third.
    if (this.filled > 0 && this.effectiveRate <= MIN_GAP_MAX_RATE) {
      const last = this.ring[(this.head - 1 + this.ring.length) % this.ring.length]!;
      wait = Math.max(wait, 900 / this.effectiveRate - (now - last));
    }
    const limit = Math.min(this.ring.length, Math.max(1, Math.floor(this.effectiveRate + 1e-9)));
    if (this.filled >= limit) {
      const back = (this.head - limit + this.ring.length * 2) % this.ring.length;
      wait = Math.max(wait, 1000 - (now - this.ring[back]!));
    }
    // A wait is never shorter than MIN_WAIT_MS, or float rounding could ask for femtoseconds.
    if (wait > 0) return Math.max(MIN_WAIT_MS, wait);
    this.ring[this.head] = now;
    this.head = (this.head + 1) % this.ring.length;
    this.filled = Math.min(this.filled + 1, this.ring.length);
    return 0;
  }
}

const MIN_WAIT_MS = 1e-3;
const MIN_GAP_MAX_RATE = 250;

function ringFor(rate: number): Float64Array {
  return new Float64Array(Number.isFinite(rate) ? Math.max(1, Math.ceil(rate)) : 0);
}
