import { afterAll, afterEach, beforeAll, describe, expect, test } from 'vitest';
import { startSandbox, type Sandbox } from '../src/sandbox/server.js';
import { createTestDatabase, type TestDatabase } from './helpers/db.js';
import { campaignStatus, seedTestCampaign, statusCounts } from './helpers/campaign.js';
import { cli, runCli, tempHome } from './helpers/cli.js';

describe('wacamp run-due', () => {
  let t: TestDatabase;
  let sandbox: Sandbox;
  let env: Record<string, string>;

  beforeAll(async () => {
    t = await createTestDatabase();
    sandbox = await startSandbox({ latencyMs: 100 });
    env = { DATABASE_URL: t.url, WHATSAPP_API_URL: sandbox.url,
      WHATSAPP_ACCESS_TOKEN: 'sandbox-token', WACAMP_HOME: tempHome() };
  });
  afterEach(async () => {
    // Every test starts from no due campaign.
    await t.db`UPDATE campaigns SET status = 'completed' WHERE status <> 'completed'`;
  });
  afterAll(async () => {
    await sandbox?.close();
    await t?.drop();
  });

  /** Seeds a campaign due `minutesAgo` minutes ago, with its own template name. */
  async function due(n: number, template: string, minutesAgo: number): Promise<string> {
    const { campaignId } = await seedTestCampaign(t.db, { n, templateName: template });
    await t.db`UPDATE campaigns SET status = 'scheduled',
                 scheduled_at = now() - make_interval(mins => ${minutesAgo})
               WHERE id = ${campaignId}`;
    return campaignId;
  }

  function sentTo(template: string): string[] {
    return sandbox.messages().filter((m) => m.template === template).map((m) => m.to);
  }

  test('nothing due: one line, exit 0', async () => {
    const r = await cli(['run-due'], env);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toBe('');
    expect(r.stderr.trim().split('\n')).toEqual([expect.stringMatching(/info\s+nothing due$/)]);
    const quiet = await cli(['run-due', '--quiet'], env);
    expect(quiet.code).toBe(0);
    expect(quiet.stderr).toBe('');
  });

  test('two overlapping run-due over three due campaigns: each sent once, by one', async () => {
    const ids = [await due(40, 'overlap_a', 30), await due(40, 'overlap_b', 20),
      await due(40, 'overlap_c', 10)];
    const args = ['run-due', '--campaigns', '1', '--workers', '2', '--rate', 'unlimited', '--json'];
    const first = runCli(args, env);
    await first.waitFor(/sending due campaign/);
    const second = runCli(args, env);
    const [a, b] = await Promise.all([first.exited, second.exited]);
    expect(a, first.stderr()).toBe(0);
    expect(b, second.stderr()).toBe(0);

    // Each campaign run by exactly one process, the oldest first.
    const docs = [JSON.parse(first.stdout()), JSON.parse(second.stdout())];
    const ranBy = docs.flatMap((d, i) => d.campaigns.map((c: { campaign_id: string }) =>
      [c.campaign_id, i]));
    expect(ranBy.map(([id]) => id).sort()).toEqual([...ids].sort());
    expect(docs[0].campaigns[0].campaign_id).toBe(ids[0]);
    expect(docs[1].campaigns.length).toBeGreaterThan(0);

    for (const [i, id] of ids.entries()) {
      expect(await campaignStatus(t.db, id)).toBe('completed');
      expect(await statusCounts(t.db, id)).toEqual({ sent: 40 });
      const to = sentTo(`overlap_${'abc'[i]}`);
      expect(to).toHaveLength(40);
      expect(new Set(to).size).toBe(40);
      const runs = await t.db`SELECT run_due FROM wacamp_runs WHERE campaign_id = ${id}`;
      expect(runs.map((r) => r.run_due)).toEqual([true]);
    }
  });

  test('--max-duration leaves the campaign paused; the next run-due finishes it', async () => {
    const id = await due(300, 'long_one', 5);
    const limited = await cli(['run-due', '--max-duration', '1500ms', '--rate', '60',
      '--workers', '4'], env);
    expect(limited.code, limited.stderr).toBe(0);
    expect(limited.stderr).toMatch(/--max-duration 1500ms reached/);
    const [c] = await t.db`SELECT status, pause_reason, run_due FROM campaigns WHERE id = ${id}`;
    expect(c).toMatchObject({ status: 'paused', pause_reason: 'time_limit', run_due: true });
    const mid = await statusCounts(t.db, id);
    expect(mid.sent).toBeGreaterThan(0);
    expect(mid.pending).toBeGreaterThan(0);
    expect(mid.sent + mid.pending).toBe(300);

    const next = await cli(['run-due', '--rate', 'unlimited', '--workers', '10'], env);
    expect(next.code, next.stderr).toBe(0);
    expect(await statusCounts(t.db, id)).toEqual({ sent: 300 });
    const to = sentTo('long_one');
    expect(to).toHaveLength(300);
    expect(new Set(to).size).toBe(300);
  });

  test('a signal drains and exits 143; a crash is recovered; the next tick finishes both',
    async () => {
      const signalled = await due(200, 'signalled', 4);
      const first = runCli(['run-due', '--rate', '40', '--workers', '4'], env);
      await first.waitFor(/sending to 200 recipients/);
      await new Promise((r) => setTimeout(r, 500));
      first.child.kill('SIGTERM');
      expect(await first.exited, first.stderr()).toBe(143);
      const [c] = await t.db`SELECT status, pause_reason FROM campaigns WHERE id = ${signalled}`;
      expect(c).toMatchObject({ status: 'paused', pause_reason: 'interrupted' });

      // Killed outright: no drain at all. The next command's recovery pauses it as interrupted.
      const crashed = await due(200, 'crashed', 3);
      await t.db`UPDATE campaigns SET scheduled_at = now() - interval '1 hour'
                 WHERE id = ${crashed}`;
      const second = runCli(['run-due', '--rate', '40', '--workers', '4'], env);
      await second.waitFor(/sending to 200 recipients/);
      await new Promise((r) => setTimeout(r, 500));
      second.child.kill('SIGKILL');
      await second.exited;

      const next = await cli(['run-due', '--rate', 'unlimited', '--campaigns', '2', '--json'],
        env);
      expect(next.code, next.stderr).toBe(0);
      expect(next.stderr).toMatch(/recovered dead run/);
      for (const [id, template] of [[signalled, 'signalled'], [crashed, 'crashed']] as const) {
        expect(await campaignStatus(t.db, id)).toBe('completed');
        const counts = await statusCounts(t.db, id);
        expect((counts.sent ?? 0) + (counts.unknown ?? 0)).toBe(200);
        const to = sentTo(template);
        expect(new Set(to).size).toBe(to.length);
      }
    });

  test('an operator\'s pause is not resumed; an interrupted run-due campaign is', async () => {
    const paused = await due(5, 'by_operator', 3);
    await t.db`UPDATE campaigns SET status = 'paused', pause_reason = 'operator', run_due = true
               WHERE id = ${paused}`;
    const interrupted = await due(5, 'interrupted_one', 2);
    await t.db`UPDATE campaigns SET status = 'paused', pause_reason = 'interrupted',
                 run_due = true WHERE id = ${interrupted}`;
    const r = await cli(['run-due', '--json'], env);
    expect(r.code, r.stderr).toBe(0);
    const doc = JSON.parse(r.stdout);
    expect(doc.campaigns.map((c: { campaign_id: string }) => c.campaign_id)).toEqual([interrupted]);
    expect(await campaignStatus(t.db, paused)).toBe('paused');
    expect(await campaignStatus(t.db, interrupted)).toBe('completed');
  });

  test('the exit code is the worst of the campaigns\'; the others still run', async () => {
    const good = await due(5, 'fine_one', 4);
    const bad = await due(5, 'not_approved', 3);
    await t.db`UPDATE templates SET status = 'PAUSED'
               WHERE id = (SELECT template_id FROM campaigns WHERE id = ${bad})`;
    const r = await cli(['run-due', '--json'], env);
    expect(r.code).toBe(2);
    const doc = JSON.parse(r.stdout);
    expect(doc.exit_code).toBe(2);
    const byId = Object.fromEntries(doc.campaigns.map((c: { campaign_id: string }) =>
      [c.campaign_id, c]));
    expect(byId[good]).toMatchObject({ status: 'completed', exit_code: 0 });
    expect(byId[bad]).toMatchObject({ exit_code: 2, error: { code: 'template_not_approved' } });
    expect(await campaignStatus(t.db, bad)).toBe('scheduled');
    expect(r.stderr).toMatch(/template "not_approved" is PAUSED/);
  });

  test('a campaign someone sends by hand is skipped quietly', async () => {
    const held = await due(5, 'held_elsewhere', 2);
    await t.db`UPDATE campaigns SET status = 'active' WHERE id = ${held}`;
    await t.db`INSERT INTO wacamp_runs (campaign_id, host, pid, lease)
               VALUES (${held}, 'another-host', 1, interval '1 hour')`;
    const r = await cli(['run-due'], env);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr.trim().split('\n')).toHaveLength(1);
    expect(r.stderr).toMatch(/nothing due/);
    await t.db`UPDATE wacamp_runs SET ended_at = now() WHERE campaign_id = ${held}`;
  });
});
