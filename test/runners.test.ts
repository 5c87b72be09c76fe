import { mkdtemp, readFile, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { campaignStatus, seedTestCampaign, statusCounts } from './helpers/campaign.js';
import { cli, tempHome } from './helpers/cli.js';
import {
  envFor, expectLogMatchesRows, Harness, maxInWindow, phonesTwice, recipientRows, runRows,
} from './helpers/harness.js';

/**
 * Several `send` processes on one campaign: they share the work without claiming a row twice,
 * and the sending number's max_rate holds for all of them together, coordinated through
 * PostgreSQL. A second `send` without --join is refused with exit 3, naming the live run.
 */

const h = new Harness();
afterEach(() => h.cleanup());

async function scratchDir(): Promise<string> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'wacamp-runners-'));
  h.defer(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

describe('three runners on one number with max_rate 300', () => {
  it('share 3,000 recipients: nobody twice, all sent, ≤ 300 starts in any second together',
    async () => {
      const t = await h.database();
      const { campaignId } = await seedTestCampaign(t.db, { n: 3000, maxRate: 300 });
      const sb = await h.sandbox({ latencyMs: [5, 40] });
      const env = envFor(t.url, sb, tempHome());
      const dir = await scratchDir();
      const traces = [0, 1, 2].map((i) => path.join(dir, `starts-${i}.json`));

      // All with --join: whichever registers first would refuse the others without it.
      const runs = traces.map((trace) => h.start(['send', campaignId, '--rate', '300',
        '--workers', '10', '--join', '--trace-starts', trace], env));
      const codes = await Promise.all(runs.map((r) => r.exited));
      expect(codes, runs.map((r) => r.stderr()).join('\n---\n')).toEqual([0, 0, 0]);

      const starts = await Promise.all(traces.map(async (f) =>
        JSON.parse(await readFile(f, 'utf8')) as number[]));
      // Each took part: the work was shared, not done by whoever came first.
      for (const s of starts) expect(s.length).toBeGreaterThan(0);
      const all = starts.flat();
      expect(all).toHaveLength(3000);
      expect(maxInWindow(all)).toBeLessThanOrEqual(300);

      const messages = sb.messages();
      expect(messages).toHaveLength(3000);
      expect(phonesTwice(messages)).toEqual([]);
      expect(await statusCounts(t.db, campaignId)).toEqual({ sent: 3000 });
      expectLogMatchesRows(messages, await recipientRows(t.db, campaignId));
      const ran = await runRows(t.db, campaignId);
      expect(ran.map((r) => r.outcome)).toEqual(['completed', 'completed', 'completed']);
    }, 90_000);

  // Regression (fixed in edf1813): two runs closing at once each saw the other still live, both
  // left the status to it, and the campaign stayed `active` with no run. A trigger holds each
  // run's ending for 3 s so that the two closings overlap every time.
  it('two runners closing at the same moment leave the campaign completed', async () => {
    const t = await h.database();
    const { campaignId } = await seedTestCampaign(t.db, { n: 600 });
    await t.db.unsafe(`
      CREATE FUNCTION test_slow_end() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN PERFORM pg_sleep(3); RETURN NEW; END $$;
      CREATE TRIGGER test_slow_end BEFORE UPDATE ON wacamp_runs FOR EACH ROW
        WHEN (OLD.ended_at IS NULL AND NEW.ended_at IS NOT NULL)
        EXECUTE FUNCTION test_slow_end();`);
    const sb = await h.sandbox({ latencyMs: [5, 40] });
    const env = envFor(t.url, sb, tempHome());
    const runs = [0, 1].map(() => h.start(['send', campaignId, '--rate', '200', '--workers',
      '10', '--join'], env));
    const codes = await Promise.all(runs.map((r) => r.exited));
    expect(codes, runs.map((r) => r.stderr()).join('\n---\n')).toEqual([0, 0]);
    expect(await statusCounts(t.db, campaignId)).toEqual({ sent: 600 });
    const ran = await runRows(t.db, campaignId);
    expect(ran.map((r) => r.outcome)).toEqual(['completed', 'completed']);
    expect(await campaignStatus(t.db, campaignId)).toBe('completed');
  }, 60_000);
});

describe('a send on a campaign with a live run', () => {
  it('exits 3 naming the run\'s host, pid and age; with --join it shares the work', async () => {
    const t = await h.database();
    const { campaignId } = await seedTestCampaign(t.db, { n: 240 });
    const sb = await h.sandbox({ latencyMs: 20 });
    const env = envFor(t.url, sb, tempHome());
    const args = ['send', campaignId, '--rate', '30', '--workers', '4'];
    const first = h.start(args, env);
    await first.waitFor(/run \d+ started/);
    await new Promise((r) => setTimeout(r, 1200));

    const refused = await cli(args, env);
    expect(refused.code, refused.stderr).toBe(3);
    const pid = first.child.pid!;
    expect(refused.stderr).toContain(`on ${os.hostname()} (pid ${pid}, started `);
    expect(refused.stderr).toMatch(/started [1-9]\d* s ago/);
    expect(refused.stderr).toMatch(/--join/);

    const joined = await cli([...args, '--join'], env);
    expect(joined.code, joined.stderr).toBe(0);
    expect(await first.exited, first.stderr()).toBe(0);

    const runs = await runRows(t.db, campaignId);
    // The refused send registered no run; the joined one did, and sent its share.
    expect(runs).toHaveLength(2);
    const rows = await recipientRows(t.db, campaignId);
    for (const run of runs) {
      expect(rows.filter((r) => r.run_id === run.id && r.status === 'sent').length)
        .toBeGreaterThan(20);
    }
    expect(await statusCounts(t.db, campaignId)).toEqual({ sent: 240 });
    expect(phonesTwice(sb.messages())).toEqual([]);
    expect(await campaignStatus(t.db, campaignId)).toBe('completed');
  }, 60_000);
});
