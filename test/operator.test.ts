import { writeFileSync, mkdtempSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { connect } from '../src/db/connect.js';
import { startSandbox, type Sandbox } from '../src/sandbox/server.js';
import { listenCampaign } from '../src/send/listen.js';
import { createTestDatabase, type TestDatabase } from './helpers/db.js';
import { campaignStatus, seedTestCampaign, statusCounts } from './helpers/campaign.js';
import { cli, runCli, tempHome } from './helpers/cli.js';

describe('operator commands', () => {
  let t: TestDatabase;
  let sandbox: Sandbox;
  let env: Record<string, string>;

  beforeAll(async () => {
    t = await createTestDatabase();
    sandbox = await startSandbox({ latencyMs: 150 });
    env = { DATABASE_URL: t.url, WHATSAPP_API_URL: sandbox.url,
      WHATSAPP_ACCESS_TOKEN: 'sandbox-token', WACAMP_HOME: tempHome() };
  });
  afterAll(async () => {
    await sandbox?.close();
    await t?.drop();
  });

  test('pause from a second process stops a run on the first within 2 s', async () => {
    const { campaignId } = await seedTestCampaign(t.db, { n: 400, templateName: 'pause_me' });
    const send = runCli(['send', campaignId, '--workers', '4', '--rate', 'unlimited'], env);
    await send.waitFor(/sending to 400 recipients/);
    await new Promise((r) => setTimeout(r, 700));

    const pause = await cli(['pause', campaignId, '--reason', 'checking the copy', '--json'],
      env);
    const pausedAt = Date.now();
    expect(pause.code, pause.stderr).toBe(0);
    expect(JSON.parse(pause.stdout)).toMatchObject({ campaign_id: campaignId,
      status: 'paused', previous_status: 'active', live_runs: 1 });
    const code = await send.exited;
    // Noticed within 2 s, then the requests in flight (150 ms each) finish.
    expect(Date.now() - pausedAt).toBeLessThan(2000 + 500);
    expect(code, send.stderr()).toBe(0);

    const [c] = await t.db`SELECT status, pause_reason, status_detail FROM campaigns
                            WHERE id = ${campaignId}`;
    expect(c).toMatchObject({ status: 'paused', pause_reason: 'operator',
      status_detail: expect.stringMatching(/paused by wacamp pause on .*: checking the copy/) });
    const counts = await statusCounts(t.db, campaignId);
    expect(counts.sent).toBeGreaterThan(0);
    expect(counts.pending).toBeGreaterThan(100);
    expect(counts.sent + counts.pending).toBe(400);
    // No request started later than the 2 s bound.
    const last = Math.max(...sandbox.messages().filter((m) => m.template === 'pause_me')
      .map((m) => m.at));
    expect(last).toBeLessThan(pausedAt + 2000);

    // `status` and `list` say why; `resume` (= send) finishes it.
    expect((await cli(['status', campaignId], env)).stdout).toMatch(/paused \(operator: /);
    const resumed = await cli(['resume', campaignId, '--rate', 'unlimited', '--workers', '20'],
      env);
    expect(resumed.code, resumed.stderr).toBe(0);
    expect(await statusCounts(t.db, campaignId)).toEqual({ sent: 400 });
  });

  test('LISTEN hears pause and cancel at once, for its own campaign only', async () => {
    const { campaignId } = await seedTestCampaign(t.db, { n: 1 });
    const other = await seedTestCampaign(t.db, { n: 1 });
    await t.db`UPDATE campaigns SET status = 'scheduled', scheduled_at = now() + interval '1 day'
               WHERE id IN (${campaignId}, ${other.campaignId})`;
    const db = connect(t.url);
    const heard: number[] = [];
    const listener = await listenCampaign(db, campaignId.toUpperCase(),
      () => heard.push(Date.now()));
    try {
      expect((await cli(['pause', other.campaignId], env)).code).toBe(0);
      const started = Date.now();
      expect((await cli(['pause', campaignId], env)).code).toBe(0);
      await expect.poll(() => heard.length, { timeout: 2000 }).toBe(1);
      expect(heard[0]! - started).toBeLessThan(2000);
      expect((await cli(['cancel', campaignId], env)).code).toBe(0);
      await expect.poll(() => heard.length, { timeout: 2000 }).toBe(2);
    } finally {
      await listener.close();
      await db.end();
    }
  });

  test('cancel: a cancelled campaign is never sent; twice is fine; completed refuses', async () => {
    const { campaignId } = await seedTestCampaign(t.db, { n: 3 });
    const r = await cli(['cancel', campaignId], env);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/cancelled \(was draft\)/);
    expect((await cli(['cancel', campaignId], env)).stdout).toMatch(/already cancelled/);
    const send = await cli(['send', campaignId], env);
    expect(send.code).toBe(2);
    expect(await statusCounts(t.db, campaignId)).toEqual({ pending: 3 });

    await t.db`UPDATE campaigns SET status = 'completed' WHERE id = ${campaignId}`;
    const done = await cli(['cancel', campaignId, '--json'], env);
    expect(done.code).toBe(2);
    expect(JSON.parse(done.stdout).error.code).toBe('campaign_status');
    const draft = await seedTestCampaign(t.db, { n: 1 });
    expect((await cli(['pause', draft.campaignId], env)).code).toBe(2);
    expect((await cli(['pause', '6f1c7a2e-0000-4000-8000-000000000000'], env)).code).toBe(2);
  });

  test('list: status, pause reason, schedule, counts and last run; --status filters', async () => {
    const { campaignId } = await seedTestCampaign(t.db, { n: 2 });
    await t.db`UPDATE campaigns SET status = 'paused', pause_reason = 'time_limit',
                 scheduled_at = '2030-01-15T17:30:00Z' WHERE id = ${campaignId}`;
    const json = await cli(['list', '--json'], env);
    expect(json.code, json.stderr).toBe(0);
    const rows = JSON.parse(json.stdout).campaigns as Record<string, unknown>[];
    const mine = rows.find((c) => c.id === campaignId);
    expect(mine).toMatchObject({ status: 'paused', pause_reason: 'time_limit',
      scheduled_at: '2030-01-15T17:30:00.000Z', counts: { pending: 2 }, total: 2,
      last_run: null, template: 'order_update' });
    const sent = rows.find((c) => (c.counts as Record<string, number>).sent === 400);
    expect(sent?.last_run).toMatchObject({ outcome: 'completed', live: false });

    const text = await cli(['list', '--status', 'paused'], env);
    expect(text.code).toBe(0);
    const lines = text.stdout.trim().split('\n');
    expect(lines[0]).toMatch(/^ID\s+STATUS\s+SCHEDULED \(UTC\)\s+LAST RUN\s+NAME\s+RECIPIENTS$/);
    expect(lines.find((l) => l.startsWith(campaignId)))
      .toMatch(/paused \(time_limit\)\s+2030-01-15T17:30Z\s+-\s+test campaign\s+pending 2$/);
    expect(lines.slice(1).every((l) => / paused/.test(l))).toBe(true);
    expect((await cli(['list', '--status', 'sleeping'], env)).code).toBe(2);
  });

  test('create: by template name or id, with recipients from a CSV; prints the id', async () => {
    await seedTestCampaign(t.db, { n: 0, templateName: 'welcome_note', language: 'en_US' });
    const dir = mkdtempSync(path.join(os.tmpdir(), 'wacamp-create-'));
    const csv = path.join(dir, 'people.csv');
    writeFileSync(csv, 'phone,name,order\n+12025550100,Ann,1\n+12025550101,Ben,2\n');
    const r = await cli(['create', '--template', 'welcome_note', '--name', 'Spring sale',
      '--from-csv', csv, '--body-columns', 'name,order'], env);
    expect(r.code, r.stderr).toBe(0);
    const id = r.stdout.trim();
    expect(id).toMatch(/^[0-9a-f-]{36}$/);
    expect(await campaignStatus(t.db, id)).toBe('draft');
    expect(await statusCounts(t.db, id)).toEqual({ pending: 2 });
    expect(r.stderr).toMatch(/2 accepted, 0 duplicate, 0 rejected/);

    const [tpl] = await t.db<{ id: string }[]>`
      SELECT id FROM templates WHERE name = 'welcome_note'`;
    const byId = await cli(['create', '--template', tpl!.id, '--name', 'By id', '--json'], env);
    expect(byId.code, byId.stderr).toBe(0);
    expect(Object.keys(JSON.parse(byId.stdout))).toContain('id');

    // order_update exists many times over (one per seeded campaign): ambiguous.
    const ambiguous = await cli(['create', '--template', 'order_update', '--name', 'x'], env);
    expect(ambiguous.code).toBe(2);
    expect(ambiguous.stderr).toMatch(/templates match template named "order_update".*--language/);
    expect((await cli(['create', '--template', 'nope', '--name', 'x'], env)).code).toBe(2);
    expect((await cli(['create', '--name', 'x'], env)).code).toBe(2);
    // A CSV that fails leaves no campaign behind.
    const before = await t.db`SELECT count(*)::int AS n FROM campaigns`;
    const bad = await cli(['create', '--template', 'welcome_note', '--name', 'Bad',
      '--from-csv', path.join(dir, 'absent.csv')], env);
    expect(bad.code).toBe(2);
    expect(await t.db`SELECT count(*)::int AS n FROM campaigns`).toEqual(before);
  });

  test('check: one line per check; exit 1 when any fails', async () => {
    const good = await cli(['check'], env);
    expect(good.code, good.stdout + good.stderr).toBe(0);
    const lines = good.stdout.trim().split('\n');
    expect(lines[0]).toMatch(/^ok\s+database: reachable \(PostgreSQL \d+/);
    expect(lines[1]).toMatch(/^ok\s+migrations: current$/);
    expect(lines.filter((l) => /^ok\s+account .*token accepted/.test(l)).length)
      .toBeGreaterThan(1);
    expect(lines.at(-1)).toMatch(/^ok\s+templates: /);

    const { campaignId } = await seedTestCampaign(t.db, { n: 1, accessToken: 'not-the-token',
      templateName: 'paused_tpl' });
    await t.db`UPDATE campaigns SET status = 'scheduled', scheduled_at = now() + interval '1 day'
               WHERE id = ${campaignId}`;
    await t.db`UPDATE templates SET status = 'PAUSED' WHERE name = 'paused_tpl'`;
    const bad = await cli(['check', '--json'], env);
    expect(bad.code).toBe(1);
    const doc = JSON.parse(bad.stdout);
    expect(doc.ok).toBe(false);
    expect(doc.checks).toContainEqual({ check: expect.stringMatching(/^account/), ok: false,
      detail: expect.stringMatching(/token refused: HTTP 401 \(190\)/) });
    expect(doc.checks).toContainEqual({ check: `campaign ${campaignId}`, ok: false,
      detail: 'scheduled, but template "paused_tpl" is PAUSED' });

    const down = await cli(['check'], { ...env,
      DATABASE_URL: 'postgres://nobody@127.0.0.1:1/none' });
    expect(down.code).toBe(1);
    expect(down.stdout).toMatch(/^FAIL\s+database: cannot reach postgres:\/\/nobody@127.0.0.1:1/);
  });
});
