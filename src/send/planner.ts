import { RateLimiter } from './rate-limiter.js';
import { RateMeter } from './rate-meter.js';
import type { StopRequest } from './decide.js';

/**
 * When requests may start. The engine asks it for start times and checks each start against
 * it; throttling answers from Meta cut the pace here and it climbs back here.
 */
export interface StartPlanner {
  /** How many starts `plan` would give within the horizon, at most `max`, taking none. */
  capacity(max: number, now: number, horizonMs: number): number;
  plan(n: number, now: number, horizonMs: number): number[];
  admit(now: number): number;
  nextFree(now: number): number;
  /** Meta said the number is over its throughput: cut sharply and wait `retryAfterMs`. */
  throttled(now: number, retryAfterMs: number | undefined): void;
  /** A pause request once throttling has lasted `maxThrottleMs` without relief. */
  throttleStop(now: number, maxThrottleMs: number): StopRequest | null;
  /** Called often; climbs back towards the configured rate once throttling stops. */
  tick(now: number): void;
  /** True when a start planned for `plannedAt` is too late to use that slot at `now`. */
  late(plannedAt: number, now: number): boolean;
  /** Requests started in the last second, as admitted. */
  observedRate(now: number): number;
  readonly effectiveRate: number;
  readonly throttledNow: boolean;
}

const CUT = 0.5;
const RAMP = 1.25;
const RAMP_EVERY_MS = 1000;
// A throttle spell ends once sending has gone on this long after the wait without another
// throttle answer, even if the rate has not climbed all the way back: only continuous
// throttling may pause a campaign.
const SPELL_QUIET_MS = 1000;
const DEFAULT_THROTTLE_WAIT_MS = 1000;

/** The planner of one process, holding it to its own `--rate`. */
export class LocalPlanner implements StartPlanner {
  protected readonly limiter: RateLimiter;
  private gateUntil = 0;
  private lastThrottleAt = -Infinity;
  private lastRampAt = -Infinity;
  private throttleSince: number | null = null;
  private readonly meter = new RateMeter();

  constructor(ratePerSecond: number) {
    this.limiter = new RateLimiter(ratePerSecond);
  }

  get effectiveRate(): number {
    return this.limiter.effectiveRate;
  }

  get throttledNow(): boolean {
    return this.limiter.throttled;
  }

  /** The local window guard catches late starts itself; any moment is still good. */
  late(): boolean {
    return false;
  }

  observedRate(now: number): number {
    return this.meter.perSecond(now);
  }

  capacity(max: number, now: number, horizonMs: number): number {
    if (now < this.gateUntil) return 0;
    return this.limiter.capacity(max, now, horizonMs);
  }

  plan(n: number, now: number, horizonMs: number): number[] {
    if (now < this.gateUntil) return [];
    return this.limiter.plan(n, now, horizonMs);
  }

  admit(now: number): number {
    if (now < this.gateUntil) return this.gateUntil - now;
    const wait = this.limiter.admit(now);
    if (wait === 0) this.noteStart(now);
    return wait;
  }

  nextFree(now: number): number {
    return Math.max(this.gateUntil, this.limiter.nextFree(now));
  }

  throttled(now: number, retryAfterMs: number | undefined): void {
    // One cut per wait: a burst of throttled answers to requests already in flight is one event.
    if (now >= this.gateUntil) this.limiter.cut(CUT, Math.max(1, this.observedRate(now)));
    this.gateUntil = Math.max(this.gateUntil, now + (retryAfterMs ?? DEFAULT_THROTTLE_WAIT_MS));
    this.lastThrottleAt = now;
    this.throttleSince ??= now;
  }

  /** Another run's cut on the same number, read from the database. */
  applyShared(factor: number, gateUntil: number, now: number): void {
    if (factor < this.limiter.currentFactor) {
      this.limiter.cut(factor / this.limiter.currentFactor, Math.max(1, this.observedRate(now)));
      this.lastThrottleAt = now;
      this.throttleSince ??= now;
    }
    this.gateUntil = Math.max(this.gateUntil, gateUntil);
  }

  throttleStop(now: number, maxThrottleMs: number): StopRequest | null {
    if (this.throttleSince === null || now - this.throttleSince < maxThrottleMs) return null;
    return {
      kind: 'pause', pauseReason: 'throttle',
      detail: 'Meta kept throttling this number for ' +
        `${Math.round((now - this.throttleSince) / 1000)} s`,
    };
  }

  tick(now: number): void {
    const quietSince = Math.max(this.lastThrottleAt, this.gateUntil);
    if (this.throttleSince !== null && now - quietSince > SPELL_QUIET_MS) {
      this.throttleSince = null;
    }
    if (!this.limiter.throttled) return;
    if (now - this.lastThrottleAt < RAMP_EVERY_MS || now - this.lastRampAt < RAMP_EVERY_MS) return;
    this.lastRampAt = now;
    if (this.limiter.ramp(RAMP)) this.throttleSince = null;
  }

  private noteStart(now: number): void {
    this.meter.note(now);
  }
}
