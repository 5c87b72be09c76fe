import { performance } from 'node:perf_hooks';

/**
 * Maps the database's clock onto this process's performance clock, so runs on one number agree
 * on when each reserved slot is. Like NTP, it trusts the sample with the shortest round trip:
 * a reply that waited behind a busy event loop would otherwise shift every slot of this run
 * against the other runs' slots.
 */
export class ClockOffset {
  private bestRtt = Infinity;
  private offset = 0;
  private takenAt = -Infinity;

  /** `sent`/`received` on the performance clock; `dbEpochMs` read during the round trip. */
  sample(sent: number, received: number, dbEpochMs: number): void {
    const rtt = received - sent;
    // An old best sample ages out, so a clock that drifts is followed within a minute.
    const aged = received - this.takenAt > 60_000;
    if (rtt > this.bestRtt && !aged) return;
    this.bestRtt = rtt;
    this.takenAt = received;
    this.offset = dbEpochMs - (performance.timeOrigin + sent + rtt / 2);
  }

  /** A database epoch time as a performance.now() time of this process. */
  toLocal(dbEpochMs: number): number {
    return dbEpochMs - this.offset - performance.timeOrigin;
  }
}
