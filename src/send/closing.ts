import type { Db } from '../db/connect.js';
import type { StatusChange } from '../db/campaigns.js';
import { sendableCount } from '../db/recipients.js';
import { liveRuns } from '../db/runs.js';
import { EXIT } from '../errors.js';
import type { StopRequest } from './decide.js';

export interface Closing {
  /** The campaign's status write, conditional on it still being `active`; none if unset. */
  change?: StatusChange;
  /** Recorded on the run. */
  outcome: string;
  exitCode: number;
  message: string;
}

/**
 * How a run leaves its campaign. Status writes are conditional on `active`, so a pause or
 * cancel written by the web app or another process during the run stands. While another run is
 * still live on the campaign, this one leaves the status to it.
 */
export async function closingStatus(
  db: Db, campaignId: string, runId: string, stop: StopRequest | null,
): Promise<Closing> {
  if (stop?.kind === 'lease_lost' || stop?.kind === 'database') {
    return { outcome: 'fenced', exitCode: EXIT.error,
      message: `stopped: ${stop.detail}; another command will recover the campaign` };
  }
  const others = (await liveRuns(db, campaignId)).filter((r) => r.id !== runId).length;
  const from = ['active'] as const;

  if (!stop) {
    const left = await sendableCount(db, campaignId);
    if (left > 0 || others > 0) {
      return { outcome: 'completed', exitCode: EXIT.ok,
        message: `this run is done; ${left} recipients are left to the other live runs` };
    }
    return { change: { from, to: 'completed' }, outcome: 'completed', exitCode: EXIT.ok,
      message: 'every recipient is settled' };
  }
  const pause = (reason: string, exitCode: number, message: string): Closing => ({
    ...(others > 0 ? {} : { change: { from, to: 'paused', pauseReason: reason,
      detail: stop.detail, pausedUntil: stop.pausedUntil ?? null } }),
    outcome: 'paused', exitCode, message,
  });
  // Stopped on purpose just as the last row settled: the campaign is done, not resumable.
  if ((stop.kind === 'signal' || stop.kind === 'time_limit') && others === 0 &&
    (await sendableCount(db, campaignId)) === 0) {
    return { change: { from, to: 'completed' }, outcome: 'completed',
      exitCode: stop.kind === 'signal' ? signalExit(stop) : EXIT.ok,
      message: `every recipient is settled (${stop.detail})` };
  }
  switch (stop.kind) {
    case 'signal':
      return { ...pause('interrupted', signalExit(stop), `interrupted: ${stop.detail}`),
        outcome: 'interrupted' };
    case 'time_limit':
      return pause('time_limit', EXIT.ok, `stopped at the time limit: ${stop.detail}`);
    case 'operator':
      return { outcome: 'stopped', exitCode: EXIT.ok, message: `stopped: ${stop.detail}` };
    case 'fatal':
      return { change: { from, to: 'failed', detail: stop.detail }, outcome: 'failed',
        exitCode: EXIT.error,
        message: `${stop.detail}; fix the cause, then send again to resume` };
    case 'pause':
      return { ...pause(stop.pauseReason ?? 'error', EXIT.error,
        `paused (${stop.pauseReason}): ${stop.detail}`), change: { from, to: 'paused',
        pauseReason: stop.pauseReason ?? 'error', detail: stop.detail,
        pausedUntil: stop.pausedUntil ?? null } };
  }
}

export function signalExit(stop: StopRequest): number {
  return stop.detail.includes('SIGTERM') ? EXIT.sigterm : EXIT.sigint;
}
