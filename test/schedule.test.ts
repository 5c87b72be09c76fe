import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { checkNotPast, resolveTime } from '../src/commands/schedule.js';
import { WacampError } from '../src/errors.js';
import { createTestDatabase, type TestDatabase } from './helpers/db.js';
import { seedTestCampaign } from './helpers/campaign.js';
import { cli, tempHome } from './helpers/cli.js';

function refusal(f: () => unknown): WacampError {
  try {
    f();
  } catch (err) {
    if (err instanceof WacampError) return err;
    throw err;
  }
  throw new Error('expected a refusal');
}

describe('resolveTime: zone arithmetic without the machine zone', () => {
  test('a local time in a named zone, winter and summer', () => {
    const winter = resolveTime('2030-01-15T09:30', 'America/Los_Angeles');
    expect(winter.instant.toISOString()).toBe('2030-01-15T17:30:00.000Z');
    expect(winter.offset).toBe('-08:00');
    expect(winter.note).toBeNull();
    const summer = resolveTime('2030-07-15 09:30', 'America/Los_Angeles');
    expect(summer.instant.toISOString()).toBe('2030-07-15T16:30:00.000Z');
    expect(resolveTime('2030-01-15 09:30:15.250', 'Asia/Kolkata').instant.toISOString())
      .toBe('2030-01-15T04:00:15.250Z');
  });

  test('an ISO time with an offset needs no zone; with one, they must agree', () => {
    expect(resolveTime('2030-01-15T09:30:00-08:00', undefined).instant.toISOString())
      .toBe('2030-01-15T17:30:00.000Z');
    expect(resolveTime('2030-01-15T17:30Z', undefined).instant.toISOString())
      .toBe('2030-01-15T17:30:00.000Z');
    expect(resolveTime('2030-01-15T09:30-0800', 'America/Los_Angeles').offset).toBe('-08:00');
    expect(refusal(() => resolveTime('2030-01-15T09:30-07:00', 'America/Los_Angeles')).code)
      .toBe('offset_mismatch');
  });

  test('a skipped local time is refused and says why', () => {
    const err = refusal(() => resolveTime('2030-03-10 02:30', 'America/New_York'));
    expect(err.code).toBe('nonexistent_time');
    expect(err.exitCode).toBe(2);
    expect(err.message).toMatch(/does not exist in America\/New_York.*-05:00 to UTC-04:00/);
    // Lord Howe moves its clocks by half an hour.
    expect(refusal(() => resolveTime('2030-10-06 02:15', 'Australia/Lord_Howe')).code)
      .toBe('nonexistent_time');
  });

  test('a repeated local time takes the earlier instant and says so', () => {
    const t = resolveTime('2030-11-03 01:30', 'America/New_York');
    expect(t.instant.toISOString()).toBe('2030-11-03T05:30:00.000Z');
    expect(t.offset).toBe('-04:00');
    expect(t.note).toMatch(/happens twice.*earlier.*UTC-04:00.*UTC-05:00/);
    const south = resolveTime('2030-04-07 02:30', 'Australia/Sydney');
    expect(south.instant.toISOString()).toBe('2030-04-06T15:30:00.000Z');
    expect(south.note).toMatch(/twice/);
  });

  test('refuses what is not a time, has no zone, or names no zone', () => {
    expect(refusal(() => resolveTime('2030-01-15 09:30', undefined)).code).toBe('no_zone');
    expect(refusal(() => resolveTime('tomorrow 9am', 'UTC')).code).toBe('bad_time');
    expect(refusal(() => resolveTime('2030-02-30 09:30', 'UTC')).code).toBe('bad_time');
    expect(refusal(() => resolveTime('2030-01-15 24:00', 'UTC')).code).toBe('bad_time');
    expect(refusal(() => resolveTime('2030-01-15 09:30', 'Mars/Olympus')).code).toBe('bad_tz');
  });

  test('the past is refused unless --now', () => {
    const t = resolveTime('2030-01-15T09:30Z', undefined);
    const after = Date.parse('2030-01-15T09:31:00Z');
    expect(refusal(() => checkNotPast(t, after, false)).code).toBe('time_in_past');
    expect(() => checkNotPast(t, after, true)).not.toThrow();
    expect(() => checkNotPast(t, Date.parse('2030-01-15T09:29:00Z'), false)).not.toThrow();
  });
});

describe('wacamp schedule', () => {
  let t: TestDatabase;
  let env: Record<string, string>;

  beforeAll(async () => {
    t = await createTestDatabase();
    // A machine zone far from the campaign's: the stored instant must not depend on it.
    env = { DATABASE_URL: t.url, WACAMP_HOME: tempHome(), TZ: 'Asia/Tokyo' };
  });
  afterAll(async () => {
    await t?.drop();
  });

  const scheduledAt = async (id: string) => {
    const [r] = await t.db<{ at: Date; status: string }[]>`
      SELECT scheduled_at AS at, status FROM campaigns WHERE id = ${id}`;
    return r!;
  };

  test('09:30 in Los Angeles is stored as 17:30 UTC, whatever the machine zone', async () => {
    const { campaignId } = await seedTestCampaign(t.db, { n: 3 });
    const r = await cli(['schedule', campaignId, '--at', '2030-01-15T09:30',
      '--tz', 'America/Los_Angeles', '--json'], env);
    expect(r.code, r.stderr).toBe(0);
    const doc = JSON.parse(r.stdout);
    expect(doc).toMatchObject({ campaign_id: campaignId, status: 'scheduled',
      scheduled_at: '2030-01-15T17:30:00.000Z', offset: '-08:00', note: null });
    const row = await scheduledAt(campaignId);
    expect(row.status).toBe('scheduled');
    expect(row.at.toISOString()).toBe('2030-01-15T17:30:00.000Z');

    // Not due yet: run-due leaves it and says when the next one is.
    const due = await cli(['run-due'], env);
    expect(due.code, due.stderr).toBe(0);
    expect(due.stderr.trim().split('\n')).toHaveLength(1);
    expect(due.stderr).toMatch(/nothing due; 1 scheduled later, the next at 2030-01-15T17:30/);
  });

  test('a repeated hour says which one it took; a skipped hour is refused', async () => {
    const { campaignId } = await seedTestCampaign(t.db, { n: 1 });
    const overlap = await cli(['schedule', campaignId, '--at', '2030-11-03 01:30',
      '--tz', 'America/New_York'], env);
    expect(overlap.code, overlap.stderr).toBe(0);
    expect(overlap.stdout).toMatch(/scheduled for 2030-11-03T05:30:00.000Z .*happens twice/);
    expect(overlap.stderr).toMatch(/happens twice/);

    const gap = await cli(['schedule', campaignId, '--at', '2030-03-10 02:30',
      '--tz', 'America/New_York'], env);
    expect(gap.code).toBe(2);
    expect(gap.stderr).toMatch(/does not exist in America\/New_York/);
    expect((await scheduledAt(campaignId)).at.toISOString()).toBe('2030-11-03T05:30:00.000Z');
  });

  test('no zone, the past, a bad id, a cancelled or active campaign: refused', async () => {
    const { campaignId } = await seedTestCampaign(t.db, { n: 1 });
    const noZone = await cli(['schedule', campaignId, '--at', '2030-01-15 09:30'], env);
    expect(noZone.code).toBe(2);
    expect(noZone.stderr).toMatch(/has no UTC offset.*--tz/);

    const past = await cli(['schedule', campaignId, '--at', '2020-01-15T09:30Z', '--json'], env);
    expect(past.code).toBe(2);
    expect(JSON.parse(past.stdout).error.code).toBe('time_in_past');
    const now = await cli(['schedule', campaignId, '--at', '2020-01-15T09:30Z', '--now'], env);
    expect(now.code, now.stderr).toBe(0);

    expect((await cli(['schedule', 'nope', '--at', '2030-01-15T09:30Z'], env)).code).toBe(2);
    expect((await cli(['schedule', campaignId], env)).code).toBe(2);

    // Active with a live run (on another host, so recovery leaves it be).
    await t.db`UPDATE campaigns SET status = 'active' WHERE id = ${campaignId}`;
    await t.db`INSERT INTO wacamp_runs (campaign_id, host, pid, lease)
               VALUES (${campaignId}, 'elsewhere', 1, interval '1 hour')`;
    const active = await cli(['schedule', campaignId, '--at', '2030-01-15T09:30Z'], env);
    expect(active.code).toBe(3);
    await t.db`UPDATE wacamp_runs SET ended_at = now() WHERE campaign_id = ${campaignId}`;
    await t.db`UPDATE campaigns SET status = 'cancelled' WHERE id = ${campaignId}`;
    const cancelled = await cli(['schedule', campaignId, '--at', '2030-01-15T09:30Z'], env);
    expect(cancelled.code).toBe(2);
    expect(cancelled.stderr).toMatch(/is cancelled/);
  });
});
