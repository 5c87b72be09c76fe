import { performance } from 'node:perf_hooks';
import type { StartPlanner } from './planner.js';

/**
 * Rows marked `sending`, each waiting for its planned start time. One timer serves the whole
 * queue. A start whose shared slot went stale (its timer fired late) takes a fresh slot first,
 * and every start passes the planner's window guard at the moment it happens.
 */
export class StartQueue<T> {
  private queue: { item: T; at: number; unslotted: boolean }[] = [];
  private timer: NodeJS.Timeout | null = null;

  constructor(
    private readonly planner: StartPlanner,
    private readonly horizonMs: number,
    /** Returns false to stop starting altogether (the lease is gone). */
    private readonly start: (item: T, now: number) => boolean,
  ) {}

  get length(): number {
    return this.queue.length;
  }

  /** Entries without a time wait for one from the planner. */
  add(entries: readonly { item: T; at: number | undefined }[]): void {
    const now = performance.now();
    for (const e of entries) {
      this.queue.push(e.at === undefined
        ? { item: e.item, at: now, unslotted: true }
        : { item: e.item, at: e.at, unslotted: false });
    }
    this.pump();
  }

  /** Takes every waiting item out (a stop: they are never started). */
  drain(): T[] {
    this.cancelTimer();
    return this.queue.splice(0).map((q) => q.item);
  }

  cancelTimer(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
  }

  private pump(): void {
    this.cancelTimer();
    const now = performance.now();
    let wakeAt = Infinity;
    const waiting: typeof this.queue = [];
    for (const [i, q] of this.queue.entries()) {
      if (q.unslotted ? q.at <= now : this.planner.late(q.at, now)) {
        const [at] = this.planner.plan(1, now, this.horizonMs);
        q.unslotted = at === undefined;
        q.at = at ?? Math.max(now + 1, this.planner.nextFree(now));
      }
      const wait = q.unslotted || q.at > now ? q.at - now : this.planner.admit(now);
      if (wait > 0) {
        waiting.push(q);
        wakeAt = Math.min(wakeAt, now + wait);
        continue;
      }
      if (!this.start(q.item, now)) {
        // Stopped: whatever is left stays queued for the owner to drain.
        this.queue = waiting.concat(this.queue.slice(i + 1));
        return;
      }
    }
    this.queue = waiting;
    if (wakeAt < Infinity) {
      this.timer = setTimeout(() => this.pump(), Math.max(1, wakeAt - now));
    }
  }
}
