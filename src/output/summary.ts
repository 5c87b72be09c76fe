import chalk, { Chalk } from 'chalk';
import type { SendResult } from '../send/run-send.js';
import { formatDuration } from '../units.js';

const ORDER = ['sent', 'failed', 'skipped', 'unknown', 'pending', 'claimed', 'sending'];

export function countsLine(counts: Record<string, number>): string {
  const keys = [...ORDER.filter((k) => counts[k]), ...Object.keys(counts)
    .filter((k) => !ORDER.includes(k) && counts[k])];
  return keys.length ? keys.map((k) => `${k} ${counts[k]}`).join(', ') : 'no recipients';
}

export const UNKNOWN_HELP = 'unknown = the request may have left but no answer was recorded; ' +
  'they may have received it, so wacamp never retries them. To re-queue them anyway: ' +
  'wacamp reset <id> --unknown --yes';

/** The closing lines of `send`, from counts read back from the database. */
export function sendSummary(r: SendResult, color: boolean): string[] {
  const paint = color ? chalk : new Chalk({ level: 0 });
  const ok = r.exitCode === 0;
  const head = `campaign ${r.campaignId} ${r.campaignStatus}: ${r.message}`;
  const lines = [ok ? paint.green(head) : paint.yellow(head), `recipients: ${countsLine(r.counts)}`];
  const run = r.run.counts;
  if (r.run.id) {
    const held = run['message_status:held_for_quality_assessment'];
    lines.push(`this run (${r.run.id}): ${run.requests ?? 0} requests in ` +
      `${formatDuration(r.durationMs)}, ${r.achievedRate.toFixed(1)}/s` +
      (run.throttled ? `, ${run.throttled} throttled and retried` : '') +
      (run.retried ? `, ${run.retried} retried` : '') +
      (held ? `, ${held} held for quality assessment` : ''));
  }
  if ((r.campaignStatus === 'paused' || r.campaignStatus === 'failed') && r.counts.pending) {
    lines.push(`to continue: wacamp resume ${r.campaignId}`);
  }
  if (r.counts.unknown) {
    lines.push(paint.yellow(`${r.counts.unknown} ${UNKNOWN_HELP.replace('<id>', r.campaignId)}`));
  }
  return lines;
}

/** The one JSON object `--json` prints. */
export function sendJson(r: SendResult): object {
  return {
    campaign_id: r.campaignId,
    status: r.campaignStatus,
    counts: r.counts,
    duration_ms: Math.round(r.durationMs),
    achieved_rate: Number(r.achievedRate.toFixed(2)),
    message: r.message,
    exit_code: r.exitCode,
    run: {
      id: r.run.id, counts: r.run.counts, stop: r.run.stop,
    },
    preflight: r.preflight,
  };
}
