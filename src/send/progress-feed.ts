import { countRecipients } from '../db/campaigns.js';
import { within } from '../deadline.js';
import type { Engine } from './engine.js';
import type { SendDeps } from './run-send.js';

/** Live progress from the engine's counters; the last frame shows the database's counts. */
export function startProgress(
  deps: SendDeps, engine: Engine, campaignId: string,
): { stop(): Promise<void> } {
  let total = 0;
  let base: Record<string, number> = {};
  let started = false;
  const frame = (c: Record<string, number>, fromDb: boolean) => {
    const n = (k: string) => (base[k] ?? 0) * (fromDb ? 0 : 1) + (c[k] ?? 0);
    const snap = {
      sent: n('sent'), failed: n('failed'), skipped: fromDb ? c.skipped ?? 0 : base.skipped ?? 0,
      unknown: n('unknown'), remaining: 0, ratePerSecond: engine.observedRate(),
      inFlight: engine.inFlightCount, throttled: engine.throttled,
    };
    snap.remaining = Math.max(0, total - snap.sent - snap.failed - snap.skipped - snap.unknown);
    if (!started) deps.progress.start(total, snap);
    else deps.progress.update(snap);
    started = true;
  };
  const first = countRecipients(deps.db, campaignId).then((counts) => {
    base = counts;
    total = Object.values(counts).reduce((a, b) => a + b, 0);
    frame(engine.counters.snapshot(), false);
  }, () => undefined);
  const timer = setInterval(() => {
    if (started) frame(engine.counters.snapshot(), false);
  }, 200);
  return {
    async stop() {
      clearInterval(timer);
      await within(first, 1000, undefined);
      const counts = await within(countRecipients(deps.db, campaignId), 1000, null);
      if (counts) frame(counts, true);
    },
  };
}
