import { rename, writeFile } from 'node:fs/promises';
import path from 'node:path';
import type { SendResult } from '../send/run-send.js';

/**
 * `--metrics-file`: Prometheus text-format metrics for node_exporter's textfile collector,
 * written once at the end of `send` or `run-due`. The file is replaced by rename, so the
 * collector never reads half of it.
 */
export interface CampaignMetrics {
  result: SendResult;
  /** The exit code this campaign contributed (including --strict). */
  exitCode: number;
}

const RECIPIENT_STATUSES = ['sent', 'failed', 'unknown', 'skipped', 'pending'] as const;
const RUN_OUTCOMES = ['sent', 'failed', 'unknown'] as const;

interface Family { name: string; help: string; samples: string[] }

export function renderMetrics(entries: readonly CampaignMetrics[], endedAtMs: number): string {
  const f = (name: string, help: string): Family => ({ name, help, samples: [] });
  const recipients = f('wacamp_campaign_recipients',
    'Recipients of the campaign by status, read back from the database at the end of the run.');
  const run = f('wacamp_run_recipients', 'Recipients this run finished, by outcome.');
  const requests = f('wacamp_run_requests', 'Requests this run started.');
  const duration = f('wacamp_run_duration_seconds', 'How long the run took.');
  const rate = f('wacamp_run_rate_per_second', 'Requests started per second, achieved.');
  const exit = f('wacamp_run_exit_code', 'Exit code of the run for this campaign (0 is ok).');
  const ended = f('wacamp_run_end_timestamp_seconds', 'Unix time the run ended.');

  for (const { result: r, exitCode } of entries) {
    const c = `campaign="${label(r.campaignId)}"`;
    for (const s of RECIPIENT_STATUSES) {
      recipients.samples.push(`{${c},status="${s}"} ${r.counts[s] ?? 0}`);
    }
    for (const s of RUN_OUTCOMES) run.samples.push(`{${c},status="${s}"} ${r.run.counts[s] ?? 0}`);
    requests.samples.push(`{${c}} ${r.run.counts.requests ?? 0}`);
    duration.samples.push(`{${c}} ${(r.durationMs / 1000).toFixed(3)}`);
    rate.samples.push(`{${c}} ${r.achievedRate.toFixed(3)}`);
    exit.samples.push(`{${c}} ${exitCode}`);
    ended.samples.push(`{${c}} ${Math.floor(endedAtMs / 1000)}`);
  }
  const last = f('wacamp_last_run_timestamp_seconds',
    'Unix time this command ended; alert when it grows old.');
  last.samples.push(` ${Math.floor(endedAtMs / 1000)}`);

  return [recipients, run, requests, duration, rate, exit, ended, last]
    .filter((family) => family.samples.length > 0)
    .map((family) => [`# HELP ${family.name} ${family.help}`, `# TYPE ${family.name} gauge`,
      ...family.samples.map((s) => family.name + s)].join('\n'))
    .join('\n') + '\n';
}

/** Label values escape backslash, double quote and newline (the exposition format's rules). */
function label(value: string): string {
  return value.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n');
}

export async function writeMetricsFile(
  file: string, entries: readonly CampaignMetrics[], endedAtMs = Date.now(),
): Promise<void> {
  const temp = path.join(path.dirname(file), `.${path.basename(file)}.${process.pid}.tmp`);
  await writeFile(temp, renderMetrics(entries, endedAtMs));
  await rename(temp, file);
}
