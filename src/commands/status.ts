import { countRecipients, loadCampaign } from '../db/campaigns.js';
import { liveRuns, recentRuns } from '../db/runs.js';
import { usageError } from '../errors.js';
import { databaseKey, pendingJournals } from '../journal.js';
import { countsLine, UNKNOWN_HELP } from '../output/summary.js';
import { formatDuration } from '../units.js';
import { makeContext, openDatabase, type GlobalOptions } from './context.js';
import { campaignId } from './send.js';
import { writeStdout } from './stdout.js';

export async function statusCommand(id: string, g: GlobalOptions): Promise<number> {
  const ctx = makeContext(g);
  const cid = campaignId(id);
  const { db } = await openDatabase(ctx, g, { recover: true });
  try {
    const c = await loadCampaign(db, cid);
    if (!c) throw usageError('campaign_not_found', `campaign ${cid} does not exist`);
    const [counts, live, recent, journals] = await Promise.all([
      countRecipients(db, cid), liveRuns(db, cid), recentRuns(db, cid),
      databaseKey(db).then((key) => pendingJournals(ctx.env.home, key)),
    ]);
    if (ctx.json) {
      writeStdout(JSON.stringify({
        campaign_id: c.id, name: c.name, status: c.status, pause_reason: c.pauseReason,
        status_detail: c.statusDetail, paused_until: c.pausedUntil, scheduled_at: c.scheduledAt,
        counts, live_runs: live, recent_runs: recent, pending_journals: journals,
      }) + '\n');
      return 0;
    }
    const out = (line: string) => writeStdout(line + '\n');
    out(`campaign ${c.id} "${c.name ?? ''}": ${c.status}` +
      (c.pauseReason ? ` (${c.pauseReason}${c.statusDetail ? `: ${c.statusDetail}` : ''})` :
        c.statusDetail ? ` (${c.statusDetail})` : ''));
    if (c.pausedUntil) out(`  Meta's pause ends ${c.pausedUntil.toISOString()}`);
    if ((c.status === 'paused' || c.status === 'failed') && live.length === 0) {
      out(`  to continue: wacamp resume ${c.id}`);
    }
    if (c.scheduledAt) out(`  scheduled for ${c.scheduledAt.toISOString()}`);
    out(`  recipients: ${countsLine(counts)}`);
    for (const r of live) {
      out(`  live run ${r.id}: ${r.host} pid ${r.pid}, started ${formatDuration(r.ageMs)} ago, ` +
        `heartbeat ${formatDuration(r.heartbeatAgeMs)} ago, rate ${String(r.options.rate ?? '?')}`);
    }
    for (const r of recent) {
      out(`  run ${r.id}: ${r.outcome ?? '?'} at ${r.endedAt?.toISOString() ?? '?'}` +
        (r.reason ? ` (${r.reason})` : '') + (r.counts ? ` — ${countsLine(r.counts)}` : ''));
    }
    if (counts.unknown) out(`  ${counts.unknown} ${UNKNOWN_HELP.replace('<id>', c.id)}`);
    if (journals.length) {
      out(`  ${journals.length} journal(s) of outcomes not yet written: the next command ` +
        'that reaches this database applies them');
    }
    return 0;
  } finally {
    await db.end({ timeout: 5 });
  }
}
