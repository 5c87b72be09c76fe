import os from 'node:os';
import {
  cancelCampaign, CANCELLABLE, pauseCampaign, PAUSABLE, type OperatorChange,
} from '../db/operator.js';
import { EXIT, usageError } from '../errors.js';
import { makeContext, openDatabase, type GlobalOptions } from './context.js';
import { campaignId } from './send.js';
import { writeStdout } from './stdout.js';

/**
 * `wacamp pause <id>` and `wacamp cancel <id>`. The status write is all they do: a run in
 * progress, on any host, hears the NOTIFY (or sees the status on its next poll, ≤ 1 s later),
 * stops starting requests, drains and exits 0. Cancel leaves the unsent rows `pending`; nothing
 * ever sends a cancelled campaign.
 */
export interface OperatorFlags extends GlobalOptions { reason?: string }

type Action = 'pause' | 'cancel';

export function pauseCommand(id: string, f: OperatorFlags): Promise<number> {
  return operatorCommand('pause', id, f);
}

export function cancelCommand(id: string, f: OperatorFlags): Promise<number> {
  return operatorCommand('cancel', id, f);
}

async function operatorCommand(action: Action, id: string, f: OperatorFlags): Promise<number> {
  const ctx = makeContext(f);
  const cid = campaignId(id);
  const who = `${action === 'pause' ? 'paused' : 'cancelled'} by wacamp ${action} on ` +
    `${os.hostname()}${f.reason ? `: ${f.reason}` : ''}`;
  const { db } = await openDatabase(ctx, f, { recover: true });
  try {
    const change = action === 'pause'
      ? await pauseCampaign(db, cid, who) : await cancelCampaign(db, cid, who);
    const status = action === 'pause' ? 'paused' : 'cancelled';
    // Cancelling twice is not a mistake worth failing a script for.
    if (!change.changed && change.previous !== 'cancelled') refuse(action, cid, change);
    if (ctx.json) {
      writeStdout(JSON.stringify({ campaign_id: cid, status, previous_status: change.previous,
        live_runs: change.liveRuns }) + '\n');
    } else {
      writeStdout(`campaign ${cid} ${change.changed ? status : 'was already cancelled'}` +
        (change.changed ? ` (was ${change.previous})` : '') +
        (change.liveRuns > 0 ? `; its live run drains what is in flight and stops within ` +
          'seconds' : '') + '\n');
    }
    return EXIT.ok;
  } finally {
    await db.end({ timeout: 5 });
  }
}

function refuse(action: Action, cid: string, change: OperatorChange): never {
  if (change.previous === null) {
    throw usageError('campaign_not_found', `campaign ${cid} does not exist`);
  }
  const allowed = action === 'pause' ? PAUSABLE : CANCELLABLE;
  throw usageError('campaign_status', `campaign ${cid} is ${change.previous}; only a campaign ` +
    `that is ${allowed.join(', ')} can be ${action === 'pause' ? 'paused' : 'cancelled'}`);
}
