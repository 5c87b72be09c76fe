import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { Db } from '../src/db/connect.js';
import { startSandbox, type Sandbox, type SandboxMessage } from '../src/sandbox/server.js';
import { campaignStatus, seedTestCampaign, statusCounts } from './helpers/campaign.js';
import { cli, tempHome } from './helpers/cli.js';
import { createTestDatabase, type TestDatabase } from './helpers/db.js';

/**
 * The checks `send` makes before the first request, through the real CLI: phones normalised to
 * E.164 digits (national numbers only with --default-country, anything unclear refused),
 * duplicates skipped in SQL, variables checked against the template's placeholders, parameter
 * text cleaned the way Meta requires. Verdicts are read from the rows and from what the sandbox
 * actually received.
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

interface Row { phone: string; phone_e164: string | null; status: string; error_code: string | null;
  error_message: string | null }

async function rows(db: Db, campaignId: string): Promise<Row[]> {
  return db<Row[]>`SELECT phone, phone_e164, status, error_code, error_message
                     FROM campaign_recipients WHERE campaign_id = ${campaignId} ORDER BY id`;
}

/** Sends and returns what the sandbox accepted during this one run. */
async function send(campaignId: string, ...flags: string[]) {
  const before = sb.messages().length;
  const r = await cli(['send', campaignId, '--rate', 'unlimited', ...flags], env());
  return { ...r, accepted: sb.messages().slice(before) };
}

const tos = (messages: SandboxMessage[]) => messages.map((m) => m.to).sort();
const v = (i: number) => [`Name${i}`, `#${i}`];

// Written the way a web app's users type them; the comment is the verdict without a country.
const MIXED = [
  '+1 (202) 555-0143', //       sent 12025550143
  '0044 20 7946 0000', //       sent 442079460000 (00 is international)
  '+44 20 7946 0000', //        duplicate of the row above, another format
  '12025550143', //             duplicate of the first: digits only, read as Meta's wa_id
  '020 7946 0001', //           national (GB): invalid without --default-country
  '(202) 555-0144', //          national (US): invalid without a country, and not GB either
  'call me after 5', //         text, not a number
  '+1 202 555 0145 ext 12', //  an extension
  'Tel: +1 202 555 0147', //    a number inside text is never extracted
  '+49 151 12300000', //        sent 4915112300000
  '020 7946 0001', //           national again, the same as row 4
  '  +1 202-555-0146  ', //     sent 12025550146
  '4915112300000', //           duplicate of the German number, digits only
  '', //                        empty
];

describe('phones in mixed national and international formats, and duplicates', () => {
  it('without --default-country: international forms are sent once each, national ones ' +
    'fail invalid_phone, duplicates are skipped', async () => {
    t = await createTestDatabase();
    const { campaignId } = await seedTestCampaign(t.db, {
      recipients: MIXED.map((phone, i) => ({ phone, variables: v(i) })) });
    const r = await send(campaignId);
    expect(r.code, r.stderr).toBe(0);

    expect(tos(r.accepted)).toEqual(
      ['12025550143', '12025550146', '442079460000', '4915112300000']);
    const got = await rows(t.db, campaignId);
    expect(got.map((x) => [x.status, x.error_code])).toEqual([
      ['sent', null], ['sent', null],
      ['skipped', 'duplicate_phone'], ['skipped', 'duplicate_phone'],
      ['failed', 'invalid_phone'], ['failed', 'invalid_phone'], ['failed', 'invalid_phone'],
      ['failed', 'invalid_phone'], ['failed', 'invalid_phone'],
      ['sent', null],
      ['failed', 'invalid_phone'],
      ['sent', null],
      ['skipped', 'duplicate_phone'],
      ['failed', 'invalid_phone'],
    ]);
    // The app's own text is kept as it was; the normalised number sits beside it.
    expect(got.map((x) => x.phone)).toEqual(MIXED);
    expect(got[1]!.phone_e164).toBe('442079460000');
    expect(got[4]!.error_message).toMatch(/default country/);
    expect(got[6]!.error_message).toMatch(/letters/);
    expect(await campaignStatus(t.db, campaignId)).toBe('completed');
  });

  it('--default-country GB resolves British national numbers, and their duplicates',
    async () => {
      t = await createTestDatabase();
      const { campaignId } = await seedTestCampaign(t.db, {
        recipients: MIXED.map((phone, i) => ({ phone, variables: v(i) })) });
      const r = await send(campaignId, '--default-country', 'gb');
      expect(r.code, r.stderr).toBe(0);
      expect(tos(r.accepted)).toEqual(['12025550143', '12025550146', '442079460000',
        '442079460001', '4915112300000']);
      const got = await rows(t.db, campaignId);
      expect(got[4]).toMatchObject({ status: 'sent', phone_e164: '442079460001' });
      expect(got[5]).toMatchObject({ status: 'failed', error_code: 'invalid_phone' });
      expect(got[10]).toMatchObject({ status: 'skipped', error_code: 'duplicate_phone' });
      expect(await statusCounts(t.db, campaignId)).toEqual({ sent: 5, skipped: 4, failed: 5 });
    });

  it('digits valid both as international and as national of the default country fail ' +
    'ambiguous_phone', async () => {
    t = await createTestDatabase();
    const phones = ['2015550123', '(202) 555-0144', '12025550144', '+20 15550123'];
    const { campaignId } = await seedTestCampaign(t.db, {
      recipients: phones.map((phone, i) => ({ phone, variables: v(i) })) });
    const r = await send(campaignId, '--default-country', 'US');
    expect(r.code, r.stderr).toBe(0);
    expect((await rows(t.db, campaignId)).map((x) => [x.status, x.error_code])).toEqual([
      ['failed', 'ambiguous_phone'],
      ['sent', null],
      // Both readings of 1 202… land on the same number: not ambiguous, just a duplicate.
      ['skipped', 'duplicate_phone'],
      ['sent', null],
    ]);
    expect(tos(r.accepted)).toEqual(['12025550144', '2015550123']);
  });

  it('a phone already sent in this campaign counts: a row added later is skipped',
    async () => {
      t = await createTestDatabase();
      const { campaignId } = await seedTestCampaign(t.db, { recipients: [
        { phone: '+1 202 555 0143', variables: v(0) }] });
      expect((await send(campaignId)).code).toBe(0);
      await t.db`INSERT INTO campaign_recipients (campaign_id, phone, variables)
                 VALUES (${campaignId}, '1 (202) 555-0143', '["Again", "#1"]'),
                        (${campaignId}, '+1 202 555 0199', '["New", "#2"]')`;
      const r = await send(campaignId);
      expect(r.code, r.stderr).toBe(0);
      expect(tos(r.accepted)).toEqual(['12025550199']);
      expect((await rows(t.db, campaignId)).map((x) => x.status))
        .toEqual(['sent', 'skipped', 'sent']);
    });
});

describe('variables against the template', () => {
  it('one body placeholder and every recipient with two values: nothing is sent, exit 2, ' +
    'one error naming the placeholders', async () => {
    t = await createTestDatabase();
    const { campaignId } = await seedTestCampaign(t.db, {
      n: 25, components: [{ type: 'BODY', text: 'Hi {{1}}, thanks for your order' }] });
    const r = await send(campaignId, '--json');
    expect(r.code).toBe(2);
    expect(r.accepted).toHaveLength(0);
    const doc = JSON.parse(r.stdout) as { error: { code: string; message: string } };
    expect(doc.error.code).toBe('variables_mismatch');
    expect(doc.error.message).toMatch(/template body expects \{\{1\}\}; got 2 values/);
    expect(doc.error.message).toMatch(/the template expects body \{\{1\}\}/);
    const errors = r.stderr.split('\n').filter((l) => l.startsWith('wacamp: '));
    expect(errors).toHaveLength(1);

    expect(await statusCounts(t.db, campaignId)).toEqual({ pending: 25 });
    expect(await campaignStatus(t.db, campaignId)).toBe('draft');
    expect(await t.db`SELECT id FROM wacamp_runs`).toHaveLength(0);

    // Fixing the template is enough: the next send goes through.
    await t.db`UPDATE templates SET components = ${t.db.json([{ type: 'BODY',
      text: 'Hi {{1}}, order {{2}}' }])}`;
    const fixed = await send(campaignId);
    expect(fixed.code, fixed.stderr).toBe(0);
    expect(await statusCounts(t.db, campaignId)).toEqual({ sent: 25 });
  });

  it('--dry-run reports the same disagreement, exit 2', async () => {
    t = await createTestDatabase();
    const { campaignId } = await seedTestCampaign(t.db, {
      n: 5, components: [{ type: 'BODY', text: 'Hi {{1}}' }] });
    const r = await send(campaignId, '--dry-run');
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/expects \{\{1\}\}; got 2 values/);
  });

  it('a mismatch in only some rows fails those rows locally and sends the rest', async () => {
    t = await createTestDatabase();
    const recipients = Array.from({ length: 12 }, (_, i) => ({
      phone: `+1 202 555 01${String(i).padStart(2, '0')}`,
      variables: i % 4 === 3 ? [`Only${i}`] : v(i),
    }));
    const { campaignId } = await seedTestCampaign(t.db, { recipients });
    const r = await send(campaignId);
    expect(r.code, r.stderr).toBe(0);
    expect(r.accepted).toHaveLength(9);
    const failed = (await rows(t.db, campaignId)).filter((x) => x.status === 'failed');
    expect(failed).toHaveLength(3);
    for (const row of failed) {
      expect(row.error_code).toBe('variables_mismatch');
      expect(row.error_message).toMatch(/expects \{\{1\}\}, \{\{2\}\}; got 1 value/);
    }
  });

  it('parameter text is cleaned as Meta requires; a value left empty fails its row',
    async () => {
      t = await createTestDatabase();
      const { campaignId } = await seedTestCampaign(t.db, { recipients: [
        { phone: '+1 202 555 0101', variables: ['Ana\nMaria\r\nLopez', 'order\t#1      x'] },
        { phone: '+1 202 555 0102', variables: ['Ben    Four', '#2'] },
        { phone: '+1 202 555 0103', variables: ['\n\t', '#3'] },
        { phone: '+1 202 555 0104', variables: ['      ', '#4'] },
      ] });
      const r = await send(campaignId);
      expect(r.code, r.stderr).toBe(0);
      const texts = (m: SandboxMessage) => (m.components as { type: string;
        parameters: { text: string }[] }[]).find((c) => c.type === 'body')!.parameters
        .map((p) => p.text);
      const byTo = new Map(r.accepted.map((m) => [m.to, texts(m)]));
      expect(byTo.get('12025550101')).toEqual(['Ana Maria Lopez', 'order #1 x']);
      // Four spaces in a row are allowed; five or more become one.
      expect(byTo.get('12025550102')).toEqual(['Ben    Four', '#2']);
      expect(byTo.size).toBe(2);
      const got = await rows(t.db, campaignId);
      expect(got.slice(2).map((x) => [x.status, x.error_code]))
        .toEqual([['failed', 'param_empty'], ['failed', 'param_empty']]);
    });

  it('sends Meta\'s template body: name, language, typed parameters', async () => {
    t = await createTestDatabase();
    const { campaignId } = await seedTestCampaign(t.db, { language: 'pt_BR', recipients: [
      { phone: '+55 11 98765-4321', variables: ['Ana', '#7'] }] });
    const r = await send(campaignId);
    expect(r.code, r.stderr).toBe(0);
    expect(r.accepted).toHaveLength(1);
    expect(r.accepted[0]).toMatchObject({
      to: '5511987654321', template: 'order_update', language: 'pt_BR',
      components: [{ type: 'body', parameters: [{ type: 'text', text: 'Ana' },
        { type: 'text', text: '#7' }] }],
    });
  });
});
