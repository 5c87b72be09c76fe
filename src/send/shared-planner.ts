import { performance } from 'node:perf_hooks';
import type { Reservation, SharedThrottle } from '../db/rate.js';
import type { StopRequest } from './decide.js';
import type { LocalPlanner, StartPlanner } from './planner.js';
import { ClockOffset } from './clock-offset.js';

/** The number's shared pace, as the database layer offers it (see src/db/rate.ts). */
export interface SharedRate {
  /** messages/s for all runs on the number together; null: no shared cap, only shared cuts. */
  maxRate: number | null;
  reserve(ratePerSecond: number, count: number): Promise<Reservation>;
  throttle(waitMs: number): Promise<void>;
  read(): Promise<SharedThrottle>;
}

// Reserved slots are spaced for 97% of max_rate: 3% headroom absorbs timers firing a little
// late in one process while another starts on time, so the sum never tops max_rate in a window.
export const SHARED_MARGIN = 0.97;
// A slot used later than this after its time is dropped rather than used (see SHARED_MARGIN).
const STALE_SLOT_MS = 10;
// Each reservation covers this much time at the run's own pace: fewer statements, fair enough.
const CHUNK_SECONDS = 0.25;
const READ_EVERY_MS = 1000;

/**
 * Holds a run to its own `--rate` (the local planner) and to its number's shared `max_rate` and
 * throttle cut, coordinated through PostgreSQL so the limit holds across processes and hosts.
 */
export class SharedPlanner implements StartPlanner {
  private slots: number[] = [];
  private readonly clock = new ClockOffset();
  private reserving = false;
  private retryAt = -Infinity;
  private lastRead = -Infinity;
  private readonly chunk: number;

  constructor(
    private readonly local: LocalPlanner,
    private readonly shared: SharedRate,
    ownRate: number,
    private readonly wake: () => void,
    private readonly onError: (err: unknown) => void,
  ) {
    // A failed reservation (database away) is retried after a pause, not in a tight loop.
    const pace = Math.min(ownRate, shared.maxRate ?? Infinity);
    this.chunk = Number.isFinite(pace) ? Math.max(1, Math.min(250, Math.round(pace * CHUNK_SECONDS)))
      : 250;
  }

  get effectiveRate(): number {
    return Math.min(this.local.effectiveRate, (this.shared.maxRate ?? Infinity) * SHARED_MARGIN);
  }

  get throttledNow(): boolean {
    return this.local.throttledNow;
  }

  /**
   * A shared slot used more than STALE_SLOT_MS after its time could crowd another process's
   * on-time starts into one window, so such a start must take a fresh slot.
   */
  late(plannedAt: number, now: number): boolean {
    return this.shared.maxRate !== null && now - plannedAt > STALE_SLOT_MS;
  }

  observedRate(now: number): number {
    return this.local.observedRate(now);
  }

  capacity(max: number, now: number, horizonMs: number): number {
    const own = this.local.capacity(max, now, horizonMs);
    if (this.shared.maxRate === null) return own;
    while (this.slots.length > 0 && this.slots[0]! < now - STALE_SLOT_MS) this.slots.shift();
    let ready = 0;
    while (ready < this.slots.length && ready < own && this.slots[ready]! <= now + horizonMs) {
      ready++;
    }
    if (this.slots.length < this.chunk) this.refill();
    return ready;
  }

  plan(n: number, now: number, horizonMs: number): number[] {
    if (this.shared.maxRate === null) return this.local.plan(n, now, horizonMs);
    while (this.slots.length > 0 && this.slots[0]! < now - STALE_SLOT_MS) this.slots.shift();
    let ready = 0;
    while (ready < this.slots.length && ready < n && this.slots[ready]! <= now + horizonMs) ready++;
    const own = this.local.plan(ready, now, horizonMs);
    const times = own.map((t, i) => Math.max(t, this.slots[i]!));
    this.slots.splice(0, own.length);
    if (this.slots.length < this.chunk) this.refill();
    return times;
  }

  admit(now: number): number {
    return this.local.admit(now);
  }

  nextFree(now: number): number {
    const own = this.local.nextFree(now);
    if (this.shared.maxRate === null) return own;
    return Math.max(own, this.slots[0] ?? now + 5);
  }

  throttled(now: number, retryAfterMs: number | undefined): void {
    this.local.throttled(now, retryAfterMs);
    this.slots = [];
    this.shared.throttle(retryAfterMs ?? 1000).catch(this.onError);
  }

  throttleStop(now: number, maxThrottleMs: number): StopRequest | null {
    return this.local.throttleStop(now, maxThrottleMs);
  }

  tick(now: number): void {
    this.local.tick(now);
    if (this.shared.maxRate !== null || now - this.lastRead < READ_EVERY_MS) return;
    // Without a shared cap, other runs' throttle cuts reach this one through a periodic read.
    this.lastRead = now;
    const sent = performance.now();
    this.shared.read().then((s) => {
      const at = sent + (performance.now() - sent) / 2;
      this.local.applyShared(s.factor, at + s.gateInMs, performance.now());
    }, this.onError);
  }

  private refill(): void {
    if (this.reserving || performance.now() < this.retryAt) return;
    this.reserving = true;
    const rate = this.shared.maxRate! * SHARED_MARGIN;
    const sent = performance.now();
    this.shared.reserve(rate, this.chunk).then((r) => {
      this.clock.sample(sent, performance.now(), r.dbNowEpochMs);
      const base = this.clock.toLocal(r.startEpochMs);
      for (let i = 0; i < r.count; i++) this.slots.push(base + i * r.intervalMs);
      this.reserving = false;
      this.wake();
    }, (err: unknown) => {
      this.reserving = false;
      this.retryAt = performance.now() + 500;
      this.onError(err);
      setTimeout(() => this.wake(), 500);
    });
  }
}
