import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { Db } from '../src/db/connect.js';
import { startSandbox, type Sandbox } from '../src/sandbox/server.js';
import { campaignStatus, phoneFor, seedTestCampaign, statusCounts } from './helpers/campaign.js';
import { cli, tempHome } from './helpers/cli.js';
import { createTestDatabase, type TestDatabase } from './helpers/db.js';

/**
 * `wacamp status` and `wacamp reset` through the real CLI (issues 2 and 3). Rows are put into
 * each state with SQL, the way a crash, a kill or an earlier run would leave them, and every
 * verdict is read back from the database.
 */

let sb: Sandbox;
let t: TestDatabase;

beforeAll(async () => {
  sb = await startSandbox();
});

afterAll(async () => {
  await sb.close();
});

afterEach(async () => {
  await t?.drop();
});

function env(): Record<string, string> {
  return { DATABASE_URL: t.url, WHATSAPP_API_URL: sb.url, WHATSAPP_ACCESS_TOKEN: 'sandbox-token',
    WACAMP_HOME: tempHome() };
}

const run = (...args: string[]) => cli(args, env());

type State = 'pending' | 'sent' | 'failed' | 'unknown' | 'skipped' | 'claimed' | 'sending';

/**
 * A campaign whose rows are in `states`, in id order. `claimed` and `sending` rows belong to
 * `owner`: a run inserted here, live (fresh heartbeat, another host) or already ended.
 */
async function campaignIn(
  db: Db, states: State[], o: { owner?: 'live' | 'ended'; campaign?: string } = {},
): Promise<{ campaignId: string; runId: string | null }> {
  const { campaignId } = await seedTestCampaign(db, { n: states.length });
  let runId: string | null = null;
  if (o.owner) {
    const [r] = await db<{ id: string }[]>`
      INSERT INTO wacamp_runs (campaign_id, host, pid, lease, options, ended_at, outcome)
      VALUES (${campaignId}, 'another-host', 4242, interval '30 seconds', '{"rate": 80}',
              ${o.owner === 'ended' ? new Date() : null}, ${o.owner === 'ended' ? 'crashed' : null})
      RETURNING id::text`;
    runId = r!.id;
  }
  const ids = await db<{ id: string }[]>`
    SELECT id::text FROM campaign_recipients WHERE campaign_id = ${campaignId} ORDER BY id`;
  for (const [i, state] of states.entries()) {
    const id = ids[i]!.id;
    await db`
      UPDATE campaign_recipients SET status = ${state}, phone_e164 = ${`12025${String(i)
        .padStart(6, '0')}`},
             message_id = ${state === 'sent' ? `wamid.test${i}` : null},
             sent_at = ${state === 'sent' ? new Date() : null},
             error_code = ${{ failed: '131026', unknown: 'outcome_unknown',
               skipped: 'duplicate_phone' }[state as string] ?? null},
             run_id = ${state === 'claimed' || state === 'sending' ? runId : null}
       WHERE id = ${id}`;
  }
  await db`UPDATE campaigns SET status = ${o.campaign ?? (o.owner === 'live' ? 'active' : 'paused')}
            WHERE id = ${campaignId}`;
  return { campaignId, runId };
}

async function snapshot(db: Db) {
  return {
    recipients: await db`SELECT * FROM campaign_recipients ORDER BY id`,
    campaigns: await db`SELECT * FROM campaigns`,
    runs: await db`SELECT * FROM wacamp_runs ORDER BY id`,
  };
}

describe('status', () => {
  it('prints the status, counts, runs and what unknown means with the command to re-queue',
    async () => {
      t = await createTestDatabase();
      const { campaignId } = await campaignIn(t.db,
        ['sent', 'sent', 'failed', 'unknown', 'pending', 'skipped']);
      await t.db`INSERT INTO wacamp_runs (campaign_id, host, pid, lease, ended_at, outcome,
                   reason, counts)
                 VALUES (${campaignId}, 'h1', 10, interval '30 s', now(), 'interrupted',
                         'received SIGINT', '{"sent": 2}')`;
      const r = await run('status', campaignId);
      expect(r.code, r.stderr).toBe(0);
      expect(r.stdout).toContain(`campaign ${campaignId} "test campaign": paused`);
      expect(r.stdout).toMatch(/recipients: sent 2, failed 1, skipped 1, unknown 1, pending 1/);
      expect(r.stdout).toMatch(/run \d+: interrupted at .* \(received SIGINT\) — sent 2/);
      expect(r.stdout).toContain('1 unknown = the request may have left');
      expect(r.stdout).toContain(`wacamp reset ${campaignId} --unknown --yes`);
    });

  it('names a live run: host, pid, heartbeat age and rate; --json carries the same',
    async () => {
      t = await createTestDatabase();
      const { campaignId, runId } = await campaignIn(t.db, ['sending', 'claimed', 'pending'],
        { owner: 'live' });
      const r = await run('status', campaignId);
      expect(r.code, r.stderr).toBe(0);
      expect(r.stdout).toContain(`${campaignId} "test campaign": active`);
      // Ages read "850ms" or, on a loaded machine, "2s".
      expect(r.stdout).toMatch(new RegExp(`live run ${runId}: another-host pid 4242, started ` +
        '\\d+m?s ago, heartbeat \\d+m?s ago, rate 80'));

      const j = await run('status', campaignId, '--json');
      expect(j.code, j.stderr).toBe(0);
      const doc = JSON.parse(j.stdout) as { status: string; counts: Record<string, number>;
        live_runs: { id: string; host: string; pid: number }[] };
      expect(doc.status).toBe('active');
      expect(doc.counts).toEqual(await statusCounts(t.db, campaignId));
      expect(doc.live_runs).toMatchObject([{ id: runId, host: 'another-host', pid: 4242 }]);
    });

  it('recovers a dead run first: its claimed rows pending, its sending rows unknown',
    async () => {
      t = await createTestDatabase();
      const { campaignId, runId } = await campaignIn(t.db,
        ['sent', 'sending', 'sending', 'claimed', 'pending'], { owner: 'live' });
      await t.db`UPDATE wacamp_runs SET heartbeat_at = now() - interval '5 minutes'
                  WHERE id = ${runId}`;
      const r = await run('status', campaignId, '--json');
      expect(r.code, r.stderr).toBe(0);
      expect(JSON.parse(r.stdout)).toMatchObject({ status: 'paused',
        counts: { sent: 1, unknown: 2, pending: 2 } });
      expect(r.stderr).toMatch(/recovered dead run \d+ .*1 claimed row\(s\) back to pending, 2/);
      const [dead] = await t.db`SELECT outcome, ended_at FROM wacamp_runs WHERE id = ${runId}`;
      expect(dead).toMatchObject({ outcome: 'crashed' });
    });

  it('an unknown campaign is exit 2', async () => {
    t = await createTestDatabase();
    const r = await run('status', '7b1c3c1e-8d5e-4c7a-9a0e-1f2b3c4d5e6f');
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/does not exist/);
  });

  it('after a real send, status --json counts equal the send summary\'s', async () => {
    t = await createTestDatabase();
    const { campaignId } = await seedTestCampaign(t.db, { recipients: [
      ...Array.from({ length: 8 }, (_, i) => ({ phone: phoneFor(i), variables: ['A', `#${i}`] })),
      { phone: 'nope', variables: ['B', '#9'] }] });
    const sent = await run('send', campaignId, '--json');
    expect(sent.code, sent.stderr).toBe(0);
    const st = await run('status', campaignId, '--json');
    const a = JSON.parse(sent.stdout) as { counts: object };
    const b = JSON.parse(st.stdout) as { counts: object; status: string;
      recent_runs: { outcome: string }[] };
    expect(b.counts).toEqual(a.counts);
    expect(b.counts).toEqual({ sent: 8, failed: 1 });
    expect(b.status).toBe('completed');
    expect(b.recent_runs[0]!.outcome).toBe('completed');
  });
});

describe('reset', () => {
  it('without flags: claimed rows back to pending, sending rows unknown; sent, failed and ' +
    'unknown untouched; the campaign paused; prints before, changes and after', async () => {
    t = await createTestDatabase();
    const { campaignId } = await campaignIn(t.db,
      ['sent', 'failed', 'unknown', 'claimed', 'claimed', 'sending', 'pending'],
      { owner: 'ended', campaign: 'active' });
    const r = await run('reset', campaignId);
    expect(r.code, r.stderr).toBe(0);
    expect(await statusCounts(t.db, campaignId))
      .toEqual({ sent: 1, failed: 1, unknown: 2, pending: 3 });
    expect(await campaignStatus(t.db, campaignId)).toBe('paused');
    expect(r.stderr)
      .toMatch(/before: sent 1, failed 1, unknown 1, pending 1, claimed 2, sending 1/);
    expect(r.stderr).toMatch(/changed: 2 claimed → pending, 1 sending → unknown, 0 failed → /);
    expect(r.stderr).toMatch(/after: sent 1, failed 1, unknown 2, pending 3; campaign is paused/);
    const [sent] = await t.db`SELECT message_id FROM campaign_recipients
                               WHERE campaign_id = ${campaignId} AND status = 'sent'`;
    expect(sent!.message_id).toBe('wamid.test0');
  });

  it('leaves the campaign completed when nothing is sendable', async () => {
    t = await createTestDatabase();
    const { campaignId } = await campaignIn(t.db, ['sent', 'failed', 'unknown', 'skipped'],
      { campaign: 'paused' });
    const r = await run('reset', campaignId, '--json');
    expect(r.code, r.stderr).toBe(0);
    expect(await campaignStatus(t.db, campaignId)).toBe('completed');
    expect(JSON.parse(r.stdout)).toMatchObject({ changes: { campaignStatus: 'completed' } });
  });

  it('--failed re-queues failed rows (their error cleared) and the next send sends them',
    async () => {
      t = await createTestDatabase();
      const { campaignId } = await campaignIn(t.db, ['sent', 'failed', 'failed', 'unknown'],
        { campaign: 'completed' });
      const r = await run('reset', campaignId, '--failed', '--json');
      expect(r.code, r.stderr).toBe(0);
      const doc = JSON.parse(r.stdout) as { before: object; after: object;
        changes: { failedToPending: number; campaignStatus: string } };
      expect(doc.changes).toMatchObject({ failedToPending: 2, campaignStatus: 'paused' });
      expect(doc.before).toEqual({ sent: 1, failed: 2, unknown: 1 });
      expect(doc.after).toEqual({ sent: 1, pending: 2, unknown: 1 });
      const requeued = await t.db`SELECT error_code FROM campaign_recipients
                                   WHERE campaign_id = ${campaignId} AND status = 'pending'`;
      expect(requeued.every((x) => x.error_code === null)).toBe(true);

      const before = sb.messages().length;
      const again = await run('send', campaignId);
      expect(again.code, again.stderr).toBe(0);
      expect(sb.messages().slice(before)).toHaveLength(2);
      expect(await statusCounts(t.db, campaignId)).toEqual({ sent: 3, unknown: 1 });
      expect(await campaignStatus(t.db, campaignId)).toBe('completed');
    });

  it('--unknown without --yes: says how many people may get it twice, exit 2, changes ' +
    'nothing', async () => {
    t = await createTestDatabase();
    const { campaignId } = await campaignIn(t.db, ['sent', 'unknown', 'unknown', 'unknown']);
    const before = await snapshot(t.db);
    const r = await run('reset', campaignId, '--unknown', '--json');
    expect(r.code).toBe(2);
    const doc = JSON.parse(r.stdout) as { error: { code: string; message: string } };
    expect(doc.error.code).toBe('confirm');
    expect(doc.error.message).toMatch(/re-queuing 3 unknown .* a second time; add --yes/);
    expect(await snapshot(t.db)).toEqual(before);
  });

  it('--unknown --yes re-queues unknown rows and says how many may get it twice', async () => {
    t = await createTestDatabase();
    const { campaignId } = await campaignIn(t.db, ['sent', 'unknown', 'unknown', 'failed']);
    const r = await run('reset', campaignId, '--unknown', '--yes');
    expect(r.code, r.stderr).toBe(0);
    expect(await statusCounts(t.db, campaignId)).toEqual({ sent: 1, pending: 2, failed: 1 });
    expect(r.stderr).toMatch(/2 unknown → pending/);
    expect(r.stderr).toMatch(/2 people may get the message twice/);
  });

  it('--include-sent needs --yes; with it, sent rows are re-queued and counted', async () => {
    t = await createTestDatabase();
    const { campaignId } = await campaignIn(t.db, ['sent', 'sent', 'failed'],
      { campaign: 'completed' });
    const refused = await run('reset', campaignId, '--include-sent');
    expect(refused.code).toBe(2);
    expect(refused.stderr).toMatch(/2 sent \(already have it\).*add --yes/);
    expect(await statusCounts(t.db, campaignId)).toEqual({ sent: 2, failed: 1 });

    const r = await run('reset', campaignId, '--include-sent', '--yes');
    expect(r.code, r.stderr).toBe(0);
    expect(await statusCounts(t.db, campaignId)).toEqual({ pending: 2, failed: 1 });
    expect(r.stderr).toMatch(/2 people may get the message twice/);
    const rows = await t.db`SELECT message_id, sent_at FROM campaign_recipients
                             WHERE campaign_id = ${campaignId} AND status = 'pending'`;
    expect(rows.every((x) => x.message_id === null && x.sent_at === null)).toBe(true);
  });

  it('--failed --unknown --yes never touches sent rows', async () => {
    t = await createTestDatabase();
    const { campaignId } = await campaignIn(t.db, ['sent', 'unknown', 'failed']);
    const r = await run('reset', campaignId, '--failed', '--unknown', '--yes');
    expect(r.code, r.stderr).toBe(0);
    expect(await statusCounts(t.db, campaignId)).toEqual({ sent: 1, pending: 2 });
  });

  it('--dry-run prints what would change and changes nothing, even with risky flags',
    async () => {
      t = await createTestDatabase();
      const { campaignId } = await campaignIn(t.db,
        ['sent', 'failed', 'unknown', 'claimed', 'sending'], { owner: 'ended' });
      const before = await snapshot(t.db);
      const r = await run('reset', campaignId, '--dry-run', '--failed', '--unknown',
        '--include-sent');
      expect(r.code, r.stderr).toBe(0);
      expect(r.stderr).toMatch(/would change: 1 claimed → pending, 1 sending → unknown, 1 failed/);
      expect(r.stderr).toMatch(/campaign would be paused/);
      expect(await snapshot(t.db)).toEqual(before);

      const j = await run('reset', campaignId, '--dry-run', '--json');
      expect(JSON.parse(j.stdout)).toMatchObject({ dry_run: true,
        changes: { claimedToPending: 1, sendingToUnknown: 1 } });
      expect(await snapshot(t.db)).toEqual(before);
    });

  it('refuses while a live run holds the campaign: exit 3, naming it', async () => {
    t = await createTestDatabase();
    const { campaignId, runId } = await campaignIn(t.db, ['sent', 'sending', 'claimed'],
      { owner: 'live' });
    const before = await snapshot(t.db);
    const r = await run('reset', campaignId, '--json');
    expect(r.code).toBe(3);
    const doc = JSON.parse(r.stdout) as { error: { code: string; message: string } };
    expect(doc.error.code).toBe('live_run');
    expect(doc.error.message).toContain(`run ${runId} on another-host (pid 4242)`);
    expect(doc.error.message).toMatch(/--force/);
    expect(await snapshot(t.db)).toEqual(before);
  });

  it('--force fences the live run out first: its lease revoked, its claimed rows pending, ' +
    'its sending rows unknown', async () => {
    t = await createTestDatabase();
    const { campaignId, runId } = await campaignIn(t.db, ['sent', 'sending', 'claimed'],
      { owner: 'live' });
    const r = await run('reset', campaignId, '--force');
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toMatch(new RegExp(`run ${runId} on another-host \\(pid 4242\\) fenced out`));
    const [fenced] = await t.db`SELECT outcome, ended_at FROM wacamp_runs WHERE id = ${runId}`;
    expect(fenced!.outcome).toBe('fenced');
    expect(fenced!.ended_at).not.toBeNull();
    expect(await statusCounts(t.db, campaignId)).toEqual({ sent: 1, unknown: 1, pending: 1 });
    expect(await campaignStatus(t.db, campaignId)).toBe('paused');
  });

  // Once a bug: resetCampaign moved `sending` → `unknown` and then, under --unknown, every
  // `unknown` row → `pending` in the same transaction, so a request that may have been in
  // flight was queued again, beyond what the operator's --yes had counted.
  it('--unknown --yes never turns a sending row into pending', async () => {
    t = await createTestDatabase();
    const { campaignId } = await campaignIn(t.db, ['unknown', 'sending'], { owner: 'ended' });
    const r = await run('reset', campaignId, '--unknown', '--yes');
    expect(r.code, r.stderr).toBe(0);
    expect(await statusCounts(t.db, campaignId)).toEqual({ pending: 1, unknown: 1 });
  });

  // The same bug through --force: fenceRun turned the live run's in-flight rows unknown, then
  // resetCampaign re-queued them, so the next send would message people whose request was open.
  it('--force --unknown --yes leaves the fenced run\'s in-flight rows unknown',
    async () => {
      t = await createTestDatabase();
      const { campaignId } = await campaignIn(t.db, ['unknown', 'sending', 'sending'],
        { owner: 'live' });
      const r = await run('reset', campaignId, '--force', '--unknown', '--yes');
      expect(r.code, r.stderr).toBe(0);
      expect(await statusCounts(t.db, campaignId)).toEqual({ pending: 1, unknown: 2 });
    });

  it('a cancelled campaign stays cancelled: exit 2', async () => {
    t = await createTestDatabase();
    const { campaignId } = await campaignIn(t.db, ['failed'], { campaign: 'cancelled' });
    const r = await run('reset', campaignId, '--failed');
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/cancelled/);
    expect(await statusCounts(t.db, campaignId)).toEqual({ failed: 1 });
  });
});
