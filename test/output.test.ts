import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { renderMetrics } from '../src/output/metrics.js';
import type { SendResult } from '../src/send/run-send.js';
import { startSandbox, type Sandbox } from '../src/sandbox/server.js';
import { createTestDatabase, type TestDatabase } from './helpers/db.js';
import { phoneFor, seedTestCampaign } from './helpers/campaign.js';
import { cli, tempHome } from './helpers/cli.js';

const dir = mkdtempSync(path.join(os.tmpdir(), 'wacamp-output-'));

/** Samples of a Prometheus text file, checking every line is well formed. */
function samples(text: string): Map<string, number> {
  const out = new Map<string, number>();
  const families = new Set<string>();
  for (const line of text.trimEnd().split('\n')) {
    const meta = /^# (HELP|TYPE) ([a-z_]+) (.+)$/.exec(line);
    if (meta) {
      if (meta[1] === 'TYPE') {
        expect(meta[3]).toBe('gauge');
        families.add(meta[2]!);
      }
      continue;
    }
    const m = /^([a-z_]+)(\{[^}]*\})? (-?\d+(?:\.\d+)?)$/.exec(line);
    expect(m, `malformed line: ${line}`).not.toBeNull();
    expect(families.has(m![1]!), `${m![1]} has no TYPE line`).toBe(true);
    out.set(m![1]! + (m![2] ?? ''), Number(m![3]));
  }
  return out;
}

describe('metrics rendering', () => {
  test('label values are escaped; every family has HELP and TYPE', () => {
    const result = {
      campaignId: 'we"ird\\id\n', campaignStatus: 'completed', counts: { sent: 3, failed: 1 },
      run: { id: '1', counts: { requests: 4, sent: 3, failed: 1 }, stop: null },
      preflight: null, durationMs: 2000, achievedRate: 2, exitCode: 0, message: 'completed',
    } satisfies SendResult;
    const text = renderMetrics([{ result, exitCode: 4 }], 1_800_000_000_000);
    const label = 'campaign="we\\"ird\\\\id\\n"';
    expect(text).toContain(`wacamp_campaign_recipients{${label},status="failed"} 1`);
    expect(text).toContain(`wacamp_run_exit_code{${label}} 4`);
    expect(text).toContain('wacamp_last_run_timestamp_seconds 1800000000\n');
    expect(text.match(/^# HELP/gm)?.length).toBe(text.match(/^# TYPE/gm)?.length);
  });
});

describe('output for machines', () => {
  let t: TestDatabase;
  let sandbox: Sandbox;
  let env: Record<string, string>;

  beforeAll(async () => {
    t = await createTestDatabase();
    // One recipient's number is refused by "Meta" for good: failed, not retried.
    sandbox = await startSandbox({ scenario: { phoneCodes: { '12025000003': 131026 } } });
    env = { DATABASE_URL: t.url, WHATSAPP_API_URL: sandbox.url,
      WHATSAPP_ACCESS_TOKEN: 'sandbox-token', WACAMP_HOME: tempHome() };
  });
  afterAll(async () => {
    await sandbox?.close();
    await t?.drop();
    rmSync(dir, { recursive: true, force: true });
  });

  test('send --strict --json --metrics-file: exit 4, one JSON object, metrics agree', async () => {
    const { campaignId } = await seedTestCampaign(t.db, { n: 20 });
    const metrics = path.join(dir, 'send.prom');
    const r = await cli(['send', campaignId, '--strict', '--json', '--metrics-file', metrics],
      env);
    expect(r.code, r.stderr).toBe(4);
    const doc = JSON.parse(r.stdout);
    expect(r.stdout.trim().split('\n')).toHaveLength(1);
    expect(doc).toMatchObject({ campaign_id: campaignId, status: 'completed',
      counts: { sent: 19, failed: 1 }, exit_code: 4 });
    expect(doc.run.counts.requests).toBe(20);

    const m = samples(readFileSync(metrics, 'utf8'));
    const c = `campaign="${campaignId}"`;
    expect(m.get(`wacamp_campaign_recipients{${c},status="sent"}`)).toBe(19);
    expect(m.get(`wacamp_campaign_recipients{${c},status="failed"}`)).toBe(1);
    expect(m.get(`wacamp_campaign_recipients{${c},status="unknown"}`)).toBe(0);
    expect(m.get(`wacamp_run_requests{${c}}`)).toBe(20);
    expect(m.get(`wacamp_run_exit_code{${c}}`)).toBe(4);
    expect(m.get(`wacamp_run_duration_seconds{${c}}`)).toBeGreaterThan(0);
    expect(m.get(`wacamp_run_rate_per_second{${c}}`)).toBeGreaterThan(0);

    // Without --strict the same outcome is exit 0.
    const plain = await seedTestCampaign(t.db, { n: 4 });
    expect((await cli(['send', plain.campaignId, '--json'], env)).code).toBe(0);
  });

  test('--log-format json: NDJSON on stderr: time, level, event, campaign, counts', async () => {
    const { campaignId } = await seedTestCampaign(t.db, { n: 10 });
    const r = await cli(['send', campaignId, '--log-format', 'json'], env);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toBe('');
    const events = r.stderr.trim().split('\n').map((line) => JSON.parse(line) as
      Record<string, unknown>);
    for (const e of events) {
      expect(e).toMatchObject({ time: expect.stringMatching(/^\d{4}-\d\d-\d\dT/),
        level: expect.stringMatching(/^(debug|info|warn|error)$/), event: expect.any(String) });
    }
    expect(events.find((e) => e.event === 'run_started')).toMatchObject({
      campaign: campaignId.slice(0, 8) });
    expect(events.find((e) => e.event === 'summary')).toMatchObject({ status: 'completed',
      sent: 9, failed: 1 });
  });

  test('run-due --json --strict --metrics-file --log-format json', async () => {
    const { campaignId } = await seedTestCampaign(t.db, { n: 5, recipients: [
      ...Array.from({ length: 4 }, (_, i) => ({ phone: phoneFor(i), variables: ['A', 'B'] })),
      { phone: phoneFor(3), variables: ['dup', 'B'] },
      { phone: 'not a phone', variables: ['A', 'B'] }] });
    await t.db`UPDATE campaigns SET status = 'scheduled', scheduled_at = now()
               WHERE id = ${campaignId}`;
    const metrics = path.join(dir, 'run-due.prom');
    const r = await cli(['run-due', '--json', '--strict', '--metrics-file', metrics,
      '--log-format', 'json'], env);
    expect(r.code, r.stderr).toBe(4);
    const doc = JSON.parse(r.stdout);
    expect(doc).toMatchObject({ exit_code: 4, stopped: null, held_elsewhere: [] });
    expect(doc.campaigns).toEqual([expect.objectContaining({ campaign_id: campaignId,
      status: 'completed', exit_code: 4, counts: { sent: 3, failed: 2, skipped: 1 } })]);
    for (const line of r.stderr.trim().split('\n')) expect(() => JSON.parse(line)).not.toThrow();
    expect(samples(readFileSync(metrics, 'utf8'))
      .get(`wacamp_campaign_recipients{campaign="${campaignId}",status="skipped"}`)).toBe(1);

    // Nothing due: the metrics file still says when run-due last ran.
    const idle = await cli(['run-due', '--json', '--metrics-file', metrics], env);
    expect(idle.code).toBe(0);
    expect(JSON.parse(idle.stdout)).toMatchObject({ exit_code: 0, campaigns: [] });
    expect([...samples(readFileSync(metrics, 'utf8')).keys()])
      .toEqual(['wacamp_last_run_timestamp_seconds']);
  });

  test('--json errors are one JSON object too; --quiet keeps stderr empty', async () => {
    for (const args of [['status', 'nope'], ['schedule', 'nope', '--at', 'x'],
      ['list', '--status', 'x'], ['import', 'nope', 'f.csv'], ['pause', 'nope'],
      ['create', '--template', 'nope', '--name', 'x'], ['run-due', '--campaigns', '0']]) {
      const r = await cli([...args, '--json'], env);
      expect(r.code, args.join(' ')).toBe(2);
      expect(JSON.parse(r.stdout), args.join(' ')).toMatchObject({
        error: { code: expect.any(String), message: expect.any(String) } });
    }
    const { campaignId } = await seedTestCampaign(t.db, { n: 3 });
    const quiet = await cli(['send', campaignId, '--quiet'], env);
    expect(quiet.code).toBe(0);
    expect(quiet.stderr).toBe('');
  });
});
