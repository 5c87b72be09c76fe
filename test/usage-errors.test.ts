import os from 'node:os';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startSandbox, type Sandbox } from '../src/sandbox/server.js';
import { campaignStatus, seedTestCampaign, statusCounts } from './helpers/campaign.js';
import { cli, tempHome } from './helpers/cli.js';
import { createTestDatabase, type TestDatabase } from './helpers/db.js';

/**
 * Every way `send` (and its siblings) refuses: the real CLI, off a terminal, checked for its
 * exit code, its one-line message, and — with --json — exactly one JSON error object on stdout.
 * A refusal must change nothing: no request reaches the sandbox and the campaign keeps its
 * status.
 */

const TOKEN = 'sandbox-token';
const SOME_ID = '7b1c3c1e-8d5e-4c7a-9a0e-1f2b3c4d5e6f';

let sb: Sandbox;
let shared: TestDatabase;

// One database for the file: every test seeds a campaign of its own in it, so the cost of a
// database per test is paid once while no test sees another's rows.
beforeAll(async () => {
  [sb, shared] = await Promise.all([startSandbox(), createTestDatabase()]);
});

afterAll(async () => {
  await sb?.close();
  await shared?.drop();
});

async function database(): Promise<TestDatabase> {
  return shared;
}

async function runsOf(t: TestDatabase, campaignId: string, onlyOpen = false) {
  return t.db`SELECT id FROM wacamp_runs WHERE campaign_id = ${campaignId}
                 AND (${!onlyOpen} OR ended_at IS NULL)`;
}

function envFor(t?: TestDatabase): Record<string, string> {
  return {
    ...(t ? { DATABASE_URL: t.url } : {}),
    WHATSAPP_API_URL: sb.url, WHATSAPP_ACCESS_TOKEN: TOKEN, WACAMP_HOME: tempHome(),
  };
}

/** stdout of a --json run that failed: one line, one object, exactly {error: {code, message}}. */
function jsonError(stdout: string): { code: string; message: string } {
  const lines = stdout.trim().split('\n');
  expect(lines).toHaveLength(1);
  const doc = JSON.parse(lines[0]!) as { error: { code: string; message: string } };
  expect(Object.keys(doc)).toEqual(['error']);
  expect(Object.keys(doc.error).sort()).toEqual(['code', 'message']);
  expect(typeof doc.error.code).toBe('string');
  return doc.error;
}

/** One stderr line saying what is wrong, prefixed like every wacamp error. */
function oneErrorLine(stderr: string): string {
  const errors = stderr.split('\n').filter((l) => l.startsWith('wacamp: '));
  expect(errors).toHaveLength(1);
  return errors[0]!;
}

describe('the campaign id', () => {
  it.each(['send', 'status', 'reset'])('%s: a malformed uuid is a usage error (exit 2)',
    async (command) => {
      const r = await cli([command, 'not-a-uuid', '--json'], envFor());
      expect(r.code).toBe(2);
      expect(jsonError(r.stdout)).toEqual({ code: 'bad_campaign_id',
        message: 'campaign id "not-a-uuid" is not a uuid' });
      expect(oneErrorLine(r.stderr)).toMatch(/not-a-uuid" is not a uuid/);
    });

  it('an unknown campaign is refused with exit 2, naming it', async () => {
    const t = await database();
    const r = await cli(['send', SOME_ID, '--json'], envFor(t));
    expect(r.code).toBe(2);
    expect(jsonError(r.stdout)).toMatchObject({ code: 'campaign_not_found' });
    expect(oneErrorLine(r.stderr)).toContain(`campaign ${SOME_ID} does not exist`);
  });

  it('accepts an upper-case uuid as the same campaign (z.guid, as PostgreSQL does)',
    async () => {
      const t = await database();
      const { campaignId } = await seedTestCampaign(t.db, { n: 2 });
      const r = await cli(['send', campaignId.toUpperCase()], envFor(t));
      expect(r.code, r.stderr).toBe(0);
      expect(await statusCounts(t.db, campaignId)).toEqual({ sent: 2 });
    });
});

describe('refused campaigns change nothing', () => {
  async function refused(setup: string, args: string[] = []) {
    const t = await database();
    const { campaignId } = await seedTestCampaign(t.db, { n: 3 });
    await t.db.unsafe(setup, [campaignId]);
    const statusBefore = await campaignStatus(t.db, campaignId);
    const requestsBefore = sb.requests();
    const r = await cli(['send', campaignId, '--json', ...args], envFor(t));
    expect(sb.requests()).toBe(requestsBefore);
    expect(await campaignStatus(t.db, campaignId)).toBe(statusBefore);
    expect(await statusCounts(t.db, campaignId)).toEqual({ pending: 3 });
    return { ...r, campaignId, t };
  }

  it('cancelled: exit 2', async () => {
    const r = await refused(`UPDATE campaigns SET status = 'cancelled' WHERE id = $1`);
    expect(r.code).toBe(2);
    expect(jsonError(r.stdout)).toMatchObject({ code: 'campaign_cancelled' });
    expect(oneErrorLine(r.stderr)).toMatch(/is cancelled; it is never sent/);
  });

  it.each(['PENDING', 'REJECTED', 'PAUSED', 'DISABLED'])('template %s: exit 2', async (s) => {
    const r = await refused(`UPDATE templates SET status = '${s}'
      WHERE id = (SELECT template_id FROM campaigns WHERE id = $1)`);
    expect(r.code).toBe(2);
    expect(jsonError(r.stdout)).toMatchObject({ code: 'template_not_approved' });
    expect(oneErrorLine(r.stderr)).toContain(`template "order_update" is ${s}; only APPROVED`);
  });

  it('scheduled in the future without --now: exit 2, naming the time and --now', async () => {
    const r = await refused(`UPDATE campaigns SET status = 'scheduled',
      scheduled_at = '2999-01-01T00:00:00Z' WHERE id = $1`);
    expect(r.code).toBe(2);
    expect(jsonError(r.stdout)).toMatchObject({ code: 'not_due' });
    expect(oneErrorLine(r.stderr)).toMatch(/scheduled for 2999-01-01T00:00:00.000Z.*--now/);

    const now = await cli(['send', r.campaignId, '--now'], envFor(r.t));
    expect(now.code, now.stderr).toBe(0);
    expect(await statusCounts(r.t.db, r.campaignId)).toEqual({ sent: 3 });
  });

  it('a live run holds the campaign: exit 3, naming its host and pid', async () => {
    const r = await refused(`WITH run AS (
        INSERT INTO wacamp_runs (campaign_id, host, pid, lease)
        VALUES ($1, 'another-host', 4242, interval '30 seconds'))
      UPDATE campaigns SET status = 'active' WHERE id = $1`);
    expect(r.code).toBe(3);
    expect(jsonError(r.stdout)).toMatchObject({ code: 'live_run' });
    expect(oneErrorLine(r.stderr)).toMatch(/being sent by run \d+ on another-host \(pid 4242/);
  });
});

describe('campaign status × send', () => {
  it.each(['draft', 'paused', 'failed'])('%s: sends', async (status) => {
    const t = await database();
    const { campaignId } = await seedTestCampaign(t.db, { n: 3 });
    await t.db`UPDATE campaigns SET status = ${status} WHERE id = ${campaignId}`;
    const r = await cli(['send', campaignId], envFor(t));
    expect(r.code, r.stderr).toBe(0);
    expect(await statusCounts(t.db, campaignId)).toEqual({ sent: 3 });
    expect(await campaignStatus(t.db, campaignId)).toBe('completed');
  });

  it('scheduled and due: sends without --now', async () => {
    const t = await database();
    const { campaignId } = await seedTestCampaign(t.db, { n: 2 });
    await t.db`UPDATE campaigns SET status = 'scheduled', scheduled_at = now() - interval '1 minute'
                WHERE id = ${campaignId}`;
    const r = await cli(['send', campaignId], envFor(t));
    expect(r.code, r.stderr).toBe(0);
    expect(await statusCounts(t.db, campaignId)).toEqual({ sent: 2 });
  });

  it('completed with nothing pending: says "nothing to send", exit 0', async () => {
    const t = await database();
    const { campaignId } = await seedTestCampaign(t.db, { n: 2 });
    expect((await cli(['send', campaignId], envFor(t))).code).toBe(0);
    const runsBefore = await runsOf(t, campaignId);
    const before = sb.requests();
    const r = await cli(['send', campaignId], envFor(t));
    expect(r.code, r.stderr).toBe(0);
    expect(sb.requests()).toBe(before);
    expect(await campaignStatus(t.db, campaignId)).toBe('completed');
    expect(r.stderr).toMatch(/nothing to send/);
    expect(await runsOf(t, campaignId)).toHaveLength(runsBefore.length);
  });

  it('completed, then a row made pending again: sends just that row', async () => {
    const t = await database();
    const { campaignId } = await seedTestCampaign(t.db, { n: 3 });
    expect((await cli(['send', campaignId], envFor(t))).code).toBe(0);
    await t.db`INSERT INTO campaign_recipients (campaign_id, phone, variables)
               VALUES (${campaignId}, '+44 20 7946 0000', '["Late", "#9"]')`;
    const before = sb.messages().length;
    const r = await cli(['send', campaignId], envFor(t));
    expect(r.code, r.stderr).toBe(0);
    expect(sb.messages().slice(before).map((m) => m.to)).toEqual(['442079460000']);
    expect(await statusCounts(t.db, campaignId)).toEqual({ sent: 4 });
    expect(await campaignStatus(t.db, campaignId)).toBe('completed');
  });
});

describe('--strict', () => {
  it('exits 4 when a recipient ended failed, 0 when none did', async () => {
    const t = await database();
    const { campaignId } = await seedTestCampaign(t.db, { recipients: [
      { phone: '+1 202 555 0143', variables: ['A', '#1'] },
      { phone: 'not a phone', variables: ['B', '#2'] },
    ] });
    const r = await cli(['send', campaignId, '--strict', '--json'], envFor(t));
    expect(r.code, r.stderr).toBe(4);
    expect(JSON.parse(r.stdout)).toMatchObject({ counts: { sent: 1, failed: 1 } });

    const clean = await database();
    const ok = await seedTestCampaign(clean.db, { n: 2 });
    expect((await cli(['send', ok.campaignId, '--strict'], envFor(clean))).code).toBe(0);
  });
});

describe('flags are checked before any work, each fault naming its flag', () => {
  const cases: [string, string[], RegExp][] = [
    ['--workers', ['--workers', '0'], /--workers: "0" must be a whole number/],
    ['--workers', ['--workers', 'ten'], /--workers: "ten"/],
    ['--workers', ['--workers', '2.5'], /--workers: "2.5"/],
    ['--rate', ['--rate', '0'], /--rate: "0" must be a positive number .* or "unlimited"/],
    ['--rate', ['--rate', 'fast'], /--rate: "fast"/],
    ['--rate', ['--rate', '-5'], /--rate: "-5"/],
    ['--drain-timeout', ['--drain-timeout', 'soon'], /--drain-timeout: "soon" is not a duration/],
    ['--drain-timeout', ['--drain-timeout', '5 minutes'], /--drain-timeout: "5 minutes"/],
    ['--max-error-rate', ['--max-error-rate', '150%'], /--max-error-rate: "150%" must be a share/],
    ['--max-error-rate', ['--max-error-rate', '0'], /--max-error-rate: "0"/],
    ['--max-error-rate', ['--max-error-rate', 'half'], /--max-error-rate: "half"/],
    ['--lease', ['--lease', 'x'], /--lease: "x"/],
    ['--request-timeout', ['--request-timeout', '-1s'], /--request-timeout: "-1s"/],
    ['--max-attempts', ['--max-attempts', '0'], /--max-attempts: "0"/],
    ['--default-country', ['--default-country', 'XX'], /--default-country: "XX" is not an ISO/],
    ['--request-timeout', ['--request-timeout', '0'], /--request-timeout: "0" must be at least/],
    ['--api-version', ['--api-version', '23'], /--api-version: "23" must look like v23.0/],
    ['--api-url', ['--api-url', 'ftp://graph.example'], /--api-url must be an http\(s\) URL/],
    ['--api-url', ['--api-url', 'http://u:pw@127.0.0.1:9'], /--api-url must be an http\(s\)/],
  ];

  it.each(cases)('%s %s: exit 2, nothing changed', async (_flag, args, message) => {
    const t = await database();
    const { campaignId } = await seedTestCampaign(t.db, { n: 2 });
    const before = sb.requests();
    const r = await cli(['send', campaignId, ...args, '--json'], envFor(t));
    expect(r.code).toBe(2);
    expect(jsonError(r.stdout).message).toMatch(message);
    expect(oneErrorLine(r.stderr)).toMatch(message);
    expect(sb.requests()).toBe(before);
    expect(await campaignStatus(t.db, campaignId)).toBe('draft');
    expect(await runsOf(t, campaignId)).toHaveLength(0);
    expect(r.stdout + r.stderr).not.toContain('pw@');
  });

  it('WHATSAPP_API_URL with a query string is refused before any work, naming it', async () => {
    const t = await database();
    const { campaignId } = await seedTestCampaign(t.db, { n: 2 });
    const r = await cli(['send', campaignId, '--json'],
      { ...envFor(t), WHATSAPP_API_URL: `${sb.url}/?x=1` });
    expect(r.code).toBe(2);
    expect(jsonError(r.stdout)).toMatchObject({ code: 'bad_api_url' });
    expect(oneErrorLine(r.stderr)).toMatch(/^wacamp: WHATSAPP_API_URL must be/);
    expect(await campaignStatus(t.db, campaignId)).toBe('draft');
    expect(await runsOf(t, campaignId)).toHaveLength(0);
  });

  it('valid spellings are accepted: --rate unlimited, 1.5; --drain-timeout 500ms, 2m, 30; ' +
    '--max-error-rate 0.5, 100%', async () => {
    const t = await database();
    const { campaignId } = await seedTestCampaign(t.db, { n: 2 });
    for (const args of [['--rate', 'unlimited', '--drain-timeout', '500ms'],
      ['--rate', 'UNLIMITED', '--drain-timeout', '2m', '--max-error-rate', '0.5'],
      ['--rate', '1.5', '--drain-timeout', '30', '--max-error-rate', '100%']]) {
      const r = await cli(['send', campaignId, '--dry-run', ...args], envFor(t));
      expect(r.code, `${args.join(' ')}\n${r.stderr}`).toBe(0);
    }
  });
});

describe('the environment', () => {
  const SECRET = 'EAAG-very-secret-token-1234567890';

  it('WHATSAPP_API_VERSION=23: exit 2 naming the variable; the token is never printed',
    async () => {
      const t = await database();
      const { campaignId } = await seedTestCampaign(t.db, { n: 2 });
      const r = await cli(['send', campaignId, '--json'],
        { ...envFor(t), WHATSAPP_API_VERSION: '23', WHATSAPP_ACCESS_TOKEN: SECRET });
      expect(r.code).toBe(2);
      expect(jsonError(r.stdout)).toMatchObject({ code: 'bad_env' });
      expect(oneErrorLine(r.stderr)).toMatch(/WHATSAPP_API_VERSION must look like v23.0/);
      expect(r.stdout + r.stderr).not.toContain(SECRET);
      expect(r.stdout + r.stderr).not.toContain('very-secret');
    });

  it('a bad WHATSAPP_API_URL, DATABASE_URL or short token is named, and its value ' +
    'is not echoed', async () => {
    const bad: [string, string][] = [
      ['WHATSAPP_API_URL', 'ftp://graph.example'],
      ['DATABASE_URL', 'mysql://root:hunter2-password@db/x'],
      ['WHATSAPP_ACCESS_TOKEN', 'q7Zk2'],
    ];
    const runs = await Promise.all(bad.map(([name, value]) =>
      cli(['send', SOME_ID, '--json'], { ...envFor(), [name]: value })));
    runs.forEach((r, i) => {
      const [name, value] = bad[i]!;
      expect(r.code).toBe(2);
      expect(jsonError(r.stdout).message).toContain(name);
      expect(r.stdout + r.stderr).not.toContain(value);
    });
  });

  it('a successful run never prints the token either', async () => {
    const t = await database();
    const { campaignId } = await seedTestCampaign(t.db, { n: 2, accessToken: null });
    const open = await startSandbox({ accessToken: SECRET });
    try {
      const r = await cli(['send', campaignId, '--verbose', '--json'],
        { ...envFor(t), WHATSAPP_API_URL: open.url, WHATSAPP_ACCESS_TOKEN: SECRET });
      expect(r.code, r.stderr).toBe(0);
      expect(open.messages()).toHaveLength(2);
      expect(r.stdout + r.stderr).not.toContain(SECRET);
    } finally {
      await open.close();
    }
  });

  it.each(['send', 'status', 'reset'])('%s: no DATABASE_URL off a terminal without ' +
    '--embedded is exit 2', async (command) => {
    const r = await cli([command, SOME_ID, '--json'], envFor());
    expect(r.code).toBe(2);
    expect(jsonError(r.stdout)).toEqual({ code: 'no_database', message: 'DATABASE_URL is not ' +
      'set; set it, or pass --embedded to use the embedded PostgreSQL' });
  });

  it('an unreachable database is exit 2 and the password is not printed', async () => {
    const r = await cli(['send', SOME_ID, '--json'],
      { ...envFor(), DATABASE_URL: 'postgres://u:pw-hunter2@127.0.0.1:1/x' });
    expect(r.code).toBe(2);
    expect(jsonError(r.stdout)).toMatchObject({ code: 'db_unreachable' });
    expect(r.stdout + r.stderr).not.toContain('pw-hunter2');
  });

  // Once a bug: the API client (whose token check throws no_token) was built after registerRun,
  // so the refusal left a run row open and the campaign `active`.
  it('no token anywhere: exit 2 and the campaign is left as it was', async () => {
    const t = await database();
    const { campaignId } = await seedTestCampaign(t.db, { n: 2, accessToken: null });
    const r = await cli(['send', campaignId, '--json'],
      { ...envFor(t), WHATSAPP_ACCESS_TOKEN: undefined });
    expect(r.code).toBe(2);
    expect(jsonError(r.stdout)).toMatchObject({ code: 'no_token' });
    expect(await campaignStatus(t.db, campaignId)).toBe('draft');
    expect(await runsOf(t, campaignId, true)).toHaveLength(0);
  });
});

describe('--json on every error', () => {
  // Once a bug: commander's own parse errors (unknown option, missing argument) reached fail()
  // before any action had seen --json, so stdout stayed empty.
  it('an unknown option under --json still prints one JSON error object', async () => {
    const r = await cli(['send', SOME_ID, '--json', '--bogus'], envFor());
    expect(r.code).toBe(2);
    expect(jsonError(r.stdout).message).toMatch(/--bogus/);
  });

  it('an unknown option without --json is exit 2 with commander\'s message', async () => {
    const r = await cli(['send', SOME_ID, '--bogus'], envFor());
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/unknown option '--bogus'/);
    expect(r.stdout).toBe('');
  });

  it('errors never go to stdout without --json', async () => {
    const r = await cli(['send', 'not-a-uuid'], envFor());
    expect(r.code).toBe(2);
    expect(r.stdout).toBe('');
  });

  it('the live-run fixture\'s host is not this machine', () => {
    // Guards the fixture above: 'another-host' must not be this host, or recovery would
    // settle the fake run as dead (its pid is not alive here) instead of refusing.
    expect(os.hostname()).not.toBe('another-host');
  });
});
