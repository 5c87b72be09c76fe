import { listCampaigns, type CampaignListing } from '../db/list.js';
import { usageError } from '../errors.js';
import { countsLine } from '../output/summary.js';
import { formatDuration, parsePositiveInt } from '../units.js';
import { makeContext, openDatabase, type GlobalOptions } from './context.js';
import { writeStdout } from './stdout.js';

/** `wacamp list [--status s] [--limit n]`: campaigns, newest first. */
export interface ListFlags extends GlobalOptions { status?: string; limit: string }

export const STATUSES = [
  'draft', 'scheduled', 'active', 'paused', 'completed', 'failed', 'cancelled',
] as const;

export async function listCommand(f: ListFlags): Promise<number> {
  const ctx = makeContext(f);
  const status = f.status?.toLowerCase();
  if (status !== undefined && !(STATUSES as readonly string[]).includes(status)) {
    throw usageError('bad_status', `--status: "${f.status}" must be one of ${STATUSES.join(', ')}`);
  }
  const limit = parsePositiveInt('--limit', f.limit, 10_000);
  const { db } = await openDatabase(ctx, f, { recover: true });
  try {
    const rows = await listCampaigns(db, { ...(status ? { status } : {}), limit });
    if (ctx.json) {
      writeStdout(JSON.stringify({ campaigns: rows.map(listingJson) }) + '\n');
    } else if (rows.length === 0) {
      writeStdout(`no campaigns${status ? ` are ${status}` : ''}\n`);
    } else {
      writeStdout(table(rows, Date.now()).join('\n') + '\n');
    }
    return 0;
  } finally {
    await db.end({ timeout: 5 });
  }
}

function listingJson(r: CampaignListing): object {
  return {
    id: r.id, name: r.name, status: r.status, pause_reason: r.pauseReason,
    status_detail: r.statusDetail, paused_until: r.pausedUntil, scheduled_at: r.scheduledAt,
    created_at: r.createdAt, template: r.template, counts: r.counts,
    total: Object.values(r.counts).reduce((a, b) => a + b, 0),
    last_run: r.lastRun && {
      id: r.lastRun.id, outcome: r.lastRun.outcome, reason: r.lastRun.reason,
      started_at: r.lastRun.startedAt, ended_at: r.lastRun.endedAt, live: r.lastRun.live,
    },
  };
}

/** Aligned columns; the full id, so it can be pasted into the next command. */
export function table(rows: readonly CampaignListing[], nowMs: number): string[] {
  const cells = rows.map((r) => [
    r.id,
    r.status + (r.pauseReason ? ` (${r.pauseReason})` : ''),
    r.scheduledAt ? r.scheduledAt.toISOString().replace(/:\d{2}\.\d{3}Z$/, 'Z') : '-',
    lastRun(r, nowMs),
    (r.name ?? '').slice(0, 30),
    countsLine(r.counts),
  ]);
  const head = ['ID', 'STATUS', 'SCHEDULED (UTC)', 'LAST RUN', 'NAME', 'RECIPIENTS'];
  const all = [head, ...cells];
  const widths = head.map((_, i) => Math.max(...all.map((row) => row[i]!.length)));
  return all.map((row) => row.map((cell, i) =>
    i === row.length - 1 ? cell : cell.padEnd(widths[i]!)).join('  '));
}

function lastRun(r: CampaignListing, nowMs: number): string {
  const run = r.lastRun;
  if (!run) return '-';
  if (run.live) return `running (${formatDuration(nowMs - run.startedAt.getTime())})`;
  const at = run.endedAt ?? run.startedAt;
  return `${run.outcome ?? 'ended'} ${formatDuration(nowMs - at.getTime())} ago`;
}
