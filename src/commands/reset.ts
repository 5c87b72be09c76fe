import { countRecipients, loadCampaign } from '../db/campaigns.js';
import { fenceRun } from '../db/recovery.js';
import { resetCampaign, type ResetChanges } from '../db/reset.js';
import { liveRuns } from '../db/runs.js';
import { EXIT, WacampError, usageError } from '../errors.js';
import { countsLine } from '../output/summary.js';
import { makeContext, openDatabase, recover, type GlobalOptions } from './context.js';
import { campaignId } from './send.js';
import { writeStdout } from './stdout.js';

export interface ResetFlags extends GlobalOptions {
  failed?: boolean; unknown?: boolean; includeSent?: boolean; yes?: boolean; force?: boolean;
  dryRun?: boolean;
}

// Rolls a dry run's transaction back after reading what it would have changed.
class DryRun extends Error {
  constructor(readonly changes: ResetChanges) { super('dry run'); }
}

export async function resetCommand(id: string, f: ResetFlags): Promise<number> {
  const ctx = makeContext(f);
  const cid = campaignId(id);
  const { db } = await openDatabase(ctx, f, { recover: !f.dryRun });
  try {
    const campaign = await loadCampaign(db, cid);
    if (!campaign) throw usageError('campaign_not_found', `campaign ${cid} does not exist`);
    if (campaign.status === 'cancelled') {
      throw usageError('campaign_cancelled', `campaign ${cid} is cancelled; reset leaves it so`);
    }
    const before = await countRecipients(db, cid);
    confirmRisky(f, before);

    const live = await liveRuns(db, cid);
    if (live.length > 0 && !f.force) {
      const l = live[0]!;
      throw new WacampError('live_run', `run ${l.id} on ${l.host} (pid ${l.pid}) is sending ` +
        'this campaign; stop it first, or pass --force to fence it out', { exitCode: EXIT.liveRun });
    }
    const fencedRuns: string[] = [];
    if (!f.dryRun) {
      for (const l of live) {
        fencedRuns.push(l.id);
        await fenceRun(db, l.id);
        ctx.log.warn('fenced', `run ${l.id} on ${l.host} (pid ${l.pid}) fenced out: its lease ` +
          'is revoked and it can write nothing more');
      }
      await recover(ctx, db);
    }

    const request = { failed: Boolean(f.failed), unknown: Boolean(f.unknown),
      sent: Boolean(f.includeSent), fencedRuns };
    let changes: ResetChanges;
    try {
      changes = await db.begin(async (tx) => {
        const c = await resetCampaign(tx as never, cid, request);
        if (f.dryRun) throw new DryRun(c);
        return c;
      });
    } catch (err) {
      if (!(err instanceof DryRun)) throw err;
      changes = err.changes;
    }
    const after = f.dryRun ? project(before, changes) : await countRecipients(db, cid);
    print(ctx.json, ctx.log.info.bind(ctx.log), cid, before, after, changes, Boolean(f.dryRun));
    return EXIT.ok;
  } finally {
    await db.end({ timeout: 5 });
  }
}

/** What the counts would be after a dry run's changes. */
function project(before: Record<string, number>, c: ResetChanges): Record<string, number> {
  const after = { ...before };
  const move = (from: string, to: string, n: number) => {
    if (n === 0) return;
    after[from] = (after[from] ?? 0) - n;
    after[to] = (after[to] ?? 0) + n;
    if (after[from] === 0) delete after[from];
  };
  move('claimed', 'pending', c.claimedToPending);
  move('failed', 'pending', c.failedToPending);
  move('unknown', 'pending', c.unknownToPending);
  move('sent', 'pending', c.sentToPending);
  move('sending', 'unknown', c.sendingToUnknown);
  return after;
}

/** Re-queuing what may already have reached people needs --yes, and says how many people. */
function confirmRisky(f: ResetFlags, before: Record<string, number>): void {
  const risky: string[] = [];
  if (f.unknown && before.unknown) risky.push(`${before.unknown} unknown (may already have it)`);
  if (f.includeSent && before.sent) risky.push(`${before.sent} sent (already have it)`);
  if (risky.length === 0 || f.yes || f.dryRun) return;
  throw usageError('confirm', `re-queuing ${risky.join(' and ')} means those people may get ` +
    'the message a second time; add --yes to do it');
}

function print(
  json: boolean, info: (e: string, m: string) => void, id: string,
  before: Record<string, number>, after: Record<string, number>, c: ResetChanges, dry: boolean,
): void {
  if (json) {
    writeStdout(JSON.stringify({ campaign_id: id, dry_run: dry, before, after, changes: c }) +
      '\n');
    return;
  }
  const verb = dry ? 'would change' : 'changed';
  info('reset', `before: ${countsLine(before)}`);
  info('reset', `${verb}: ${c.claimedToPending} claimed → pending, ` +
    `${c.sendingToUnknown} sending → unknown, ${c.failedToPending} failed → pending, ` +
    `${c.unknownToPending} unknown → pending, ${c.sentToPending} sent → pending`);
  if (c.sentToPending + c.unknownToPending > 0) {
    info('reset', `${c.sentToPending + c.unknownToPending} people may get the message twice`);
  }
  info('reset', `after: ${countsLine(after)}; campaign ${dry ? 'would be' : 'is'} ` +
    c.campaignStatus);
}
