/** Starts per second over the last second, in ten 100 ms buckets: constant memory at any rate. */
export class RateMeter {
  private readonly buckets = new Float64Array(10);
  private current = 0;
  private currentSlot = 0;

  note(now: number): void {
    this.advance(now);
    this.buckets[this.current]!++;
  }

  perSecond(now: number): number {
    this.advance(now);
    let total = 0;
    for (const n of this.buckets) total += n;
    return total;
  }

  private advance(now: number): void {
    const slot = Math.floor(now / 100);
    const steps = Math.min(10, slot - this.currentSlot);
    for (let i = 0; i < steps; i++) {
      this.current = (this.current + 1) % 10;
      this.buckets[this.current] = 0;
    }
    if (steps > 0) this.currentSlot = slot;
  }
}
