import { afterEach, describe, expect, it } from 'vitest';
import { campaignStatus, seedTestCampaign, statusCounts } from './helpers/campaign.js';
import { cli, tempHome } from './helpers/cli.js';
import {
  envFor, Harness, kill9, phonesTwice, quiesce, recipientRows, runOf, runRows, sleep, until,
} from './helpers/harness.js';

/**
 * A stall: the Cloud API holds requests without answering, and the process is killed while they
 * hang. Those requests may have been delivered, so their rows end `unknown` and are never sent
 * again; the rest of the campaign goes on, and both the send's summary and `status` say how many
 * are unknown and how to re-queue them.
 */

const h = new Harness();
afterEach(() => h.cleanup());

const WORKERS = 10;

describe('kill -9 while the API holds every request in flight for 5 s', () => {
  it('those rows end unknown and are not re-sent; the campaign completes; the summary and ' +
    'status list them with the command that re-queues them', async () => {
    const t = await h.database();
    const { campaignId } = await seedTestCampaign(t.db, { n: 400 });
    // Requests 101 to 110 are held for 5 s: with 10 workers, everything in flight stalls.
    const sb = await h.sandbox({ latencyMs: [5, 20],
      scenario: { holdMs: 5000, holdFromRequest: 101, holdCount: WORKERS } });
    const env = envFor(t.url, sb, tempHome());
    const args = ['send', campaignId, '--workers', String(WORKERS), '--rate', 'unlimited'];
    const first = h.start(args, env);
    await until('the stall', () => sb.requests() >= 100 + WORKERS);
    await sleep(300);
    // Nothing more left during the stall: every slot is held by a request in flight.
    expect(sb.requests()).toBe(100 + WORKERS);
    const runId = (await runOf(t.db, campaignId, first.child.pid!))!;
    await kill9(first);
    await quiesce(t.db);
    expect((await statusCounts(t.db, campaignId)).sending).toBe(WORKERS);
    const held = [...sb.messages()].sort((a, b) => a.at - b.at).slice(100).map((m) => m.to);
    expect(held).toHaveLength(WORKERS);

    const again = await cli(args, env);
    expect(again.code, again.stderr).toBe(0);
    expect(again.stderr).toMatch(new RegExp(`recovered dead run ${runId} .*: \\d+ claimed ` +
      `row\\(s\\) back to pending, ${WORKERS} in-flight row\\(s\\) unknown`));

    const rows = await recipientRows(t.db, campaignId);
    for (const phone of held) {
      expect(rows.find((r) => r.phone_e164 === phone)).toMatchObject({ status: 'unknown',
        run_id: runId, error_code: 'outcome_unknown' });
    }
    const messages = sb.messages();
    expect(phonesTwice(messages)).toEqual([]);
    expect(messages).toHaveLength(400);
    expect(await statusCounts(t.db, campaignId)).toEqual({ sent: 400 - WORKERS,
      unknown: WORKERS });
    expect(await campaignStatus(t.db, campaignId)).toBe('completed');
    expect((await runRows(t.db, campaignId)).map((r) => r.outcome))
      .toEqual(['crashed', 'completed']);

    // The restarted send's summary and `status` both count them and give the command.
    expect(again.stderr).toMatch(new RegExp(`${WORKERS} unknown = the request may have left`));
    expect(again.stderr).toMatch(/wacamp reset \S+ --unknown --yes/);
    const status = await cli(['status', campaignId], env);
    expect(status.code, status.stderr).toBe(0);
    expect(status.stdout).toMatch(new RegExp(`unknown ${WORKERS}`));
    expect(status.stdout).toContain(`${WORKERS} unknown = the request may have left`);
    expect(status.stdout).toContain(`wacamp reset ${campaignId} --unknown --yes`);
  }, 60_000);

  // Regression (fixed in edf1813): the summary printed the command with a literal <id>.
  it('the send summary\'s re-queue command names the campaign', async () => {
    const t = await h.database();
    const { campaignId } = await seedTestCampaign(t.db, { n: 20 });
    const sb = await h.sandbox();
    const env = envFor(t.url, sb, tempHome());
    // Two rows a crashed run left unknown (recovery's own words), then a send of the rest.
    await t.db`UPDATE campaign_recipients SET status = 'unknown', error_code = 'outcome_unknown'
                WHERE id IN (SELECT id FROM campaign_recipients
                              WHERE campaign_id = ${campaignId} ORDER BY id LIMIT 2)`;
    const r = await cli(['send', campaignId, '--rate', 'unlimited'], env);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toMatch(/2 unknown = /);
    expect(r.stderr).toContain(`wacamp reset ${campaignId} --unknown --yes`);
  }, 30_000);
});
