import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parse } from 'csv-parse/sync';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { mapRecord, resolveColumns } from '../src/commands/import.js';
import { normalizePhone } from '../src/phone.js';
import { startSandbox, type Sandbox } from '../src/sandbox/server.js';
import { createTestDatabase, type TestDatabase } from './helpers/db.js';
import { seedTestCampaign, statusCounts } from './helpers/campaign.js';
import { cli, tempHome } from './helpers/cli.js';

const dir = mkdtempSync(path.join(os.tmpdir(), 'wacamp-import-'));

/** The same number i written the ways people write it. */
function written(i: number, style: number): string {
  const d = String(i).padStart(6, '0');
  switch (style % 4) {
    case 0: return `+1 (202) 5${d.slice(0, 2)}-${d.slice(2)}`;
    case 1: return `001 202 5${d.slice(0, 2)} ${d.slice(2)}`;
    case 2: return `12025${d}`;
    default: return ` +1.202.5${d.slice(0, 2)}.${d.slice(2)} `;
  }
}

interface Expected { valid: number; unique: number; rejected: number; lines: string[] }

/**
 * A messy CSV: four ways of writing numbers, every tenth row a number seen three rows earlier
 * in another style, rows with a column too many, letters, empty phones, quoted commas, line
 * breaks and tabs inside names, and an unclosed quote on the last row.
 */
function messyCsv(rows: number): Expected {
  const lines = ['phone,name,order'];
  const seen = new Set<string>();
  const e: Expected = { valid: 0, unique: 0, rejected: 0, lines };
  for (let i = 0; i < rows - 1; i++) {
    let phone = written(i % 10 === 3 ? i - 3 : i, i + (i % 10 === 3 ? 1 : 0));
    if (i % 997 === 500) phone = `+1 202 555 ${String(i % 10_000).padStart(4, '0')} ext 12`;
    if (i % 1499 === 700) phone = '';
    const name = i % 5000 === 17 ? '"Smith, Ann\nsecond line\twith tab \\"' : `Name${i}`;
    if (i % 1000 === 999) {
      lines.push(`${phone},${name},#${i},surplus`);
      e.rejected++;
      continue;
    }
    lines.push(`${phone.includes(',') ? `"${phone}"` : phone},${name},#${i}`);
    const n = normalizePhone(phone.trim(), 'US');
    if (!n.ok) {
      e.rejected++;
      continue;
    }
    e.valid++;
    if (!seen.has(n.e164)) e.unique++;
    seen.add(n.e164);
  }
  lines.push('"+1 202 555 0000,Unclosed,#x');
  e.rejected++;
  return e;
}

describe('import: pure parts', () => {
  const cols = resolveColumns([' Phone ', 'name', 'order'], { phoneColumn: 'phone',
    bodyColumns: null });

  test('columns are found ignoring case; other columns become named variables', () => {
    expect(cols).toEqual({ names: ['Phone', 'name', 'order'], phone: 'Phone', body: null,
      named: ['name', 'order'] });
    expect(mapRecord({ Phone: '+44 20 7946 0000', name: 'Ann', order: '7' }, cols)).toEqual({
      ok: true, phone: '+44 20 7946 0000', e164: '442079460000',
      variables: { name: 'Ann', order: '7' } });
  });

  test('--body-columns gives positional values and refuses empty ones', () => {
    const body = resolveColumns(['phone', 'name', 'order'], { phoneColumn: 'phone',
      bodyColumns: ['order', 'name'] });
    expect(mapRecord({ phone: '+12025550143', name: 'Ann', order: '7' }, body))
      .toMatchObject({ ok: true, variables: ['7', 'Ann'] });
    expect(mapRecord({ phone: '+12025550143', name: ' ', order: '7' }, body))
      .toEqual({ ok: false, reason: 'empty_value: column "name" is empty' });
  });

  test('bad phones and headers are named', () => {
    expect(mapRecord({ Phone: 'call me', name: '', order: '' }, cols))
      .toMatchObject({ ok: false,
        reason: expect.stringMatching(/^invalid_phone: contains letters/) });
    expect(() => resolveColumns(['tel', 'name'], { phoneColumn: 'phone', bodyColumns: null }))
      .toThrow(/no column "phone".*"tel", "name"/);
    expect(() => resolveColumns(['phone', 'a', 'a'], { phoneColumn: 'phone', bodyColumns: null }))
      .toThrow(/names column "a" twice/);
  });
});

describe('wacamp import', () => {
  let t: TestDatabase;
  let env: Record<string, string>;
  let sandbox: Sandbox;

  beforeAll(async () => {
    t = await createTestDatabase();
    sandbox = await startSandbox();
    env = { DATABASE_URL: t.url, WACAMP_HOME: tempHome(), WHATSAPP_API_URL: sandbox.url,
      WHATSAPP_ACCESS_TOKEN: 'sandbox-token' };
  });
  afterAll(async () => {
    await sandbox?.close();
    await t?.drop();
    rmSync(dir, { recursive: true, force: true });
  });

  test('100,000 messy rows, imported twice: counted, de-duplicated, added once', async () => {
    const expected = messyCsv(100_000);
    const file = path.join(dir, 'big.csv');
    writeFileSync(file, expected.lines.join('\n') + '\n');
    const { campaignId } = await seedTestCampaign(t.db, { n: 0 });
    const args = ['import', campaignId, file, '--default-country', 'US',
      '--body-columns', 'name,order', '--json'];

    const first = await cli(args, env);
    expect(first.code, first.stderr).toBe(0);
    const report = JSON.parse(first.stdout);
    expect(report).toMatchObject({ campaign_id: campaignId, rows: 100_000,
      accepted: expected.unique, duplicates: expected.valid - expected.unique,
      rejected: expected.rejected, rejects_file: path.join(dir, 'big.rejected.csv') });
    expect(expected.unique).toBeGreaterThan(80_000);

    // Every rejected row is in the file, with its line and a reason.
    const rejects = parse(readFileSync(report.rejects_file), { columns: true }) as
      { line: string; reason: string; row: string }[];
    expect(rejects).toHaveLength(expected.rejected);
    expect(rejects.find((r) => r.row.endsWith(',surplus'))?.reason).toMatch(/^malformed_row/);
    expect(rejects.find((r) => r.row.includes('ext 12'))?.reason).toMatch(/^invalid_phone/);
    expect(rejects.at(-1)?.reason).toMatch(/Quote Not Closed/);

    const [db] = await t.db<{ n: number; phones: number; arrays: number }[]>`
      SELECT count(*)::int AS n, count(DISTINCT phone_e164)::int AS phones,
             count(*) FILTER (WHERE jsonb_typeof(variables) = 'array')::int AS arrays
        FROM campaign_recipients WHERE campaign_id = ${campaignId}`;
    expect(db).toEqual({ n: expected.unique, phones: expected.unique, arrays: expected.unique });
    const [odd] = await t.db<{ variables: string[] }[]>`
      SELECT variables FROM campaign_recipients
       WHERE campaign_id = ${campaignId} AND variables->>1 = '#17'`;
    expect(odd?.variables).toEqual(['Smith, Ann\nsecond line\twith tab \\', '#17']);

    const again = await cli(args, env);
    expect(again.code, again.stderr).toBe(0);
    expect(JSON.parse(again.stdout)).toMatchObject({ accepted: 0,
      duplicates: expected.valid, rejected: expected.rejected });
    expect(await statusCounts(t.db, campaignId)).toEqual({ pending: expected.unique });
  });

  test('named variables, a custom rejects file, then a send of what was imported', async () => {
    const { campaignId } = await seedTestCampaign(t.db, { n: 0, components: [
      { type: 'BODY', text: 'Hi {{first_name}}, order {{order_no}}' }] });
    const file = path.join(dir, 'named.csv');
    writeFileSync(file, 'first_name;mobile;order_no\nAnn;+1 202 555 0100;7\n' +
      'Ben;(202) 555-0101;8\nCid;nope;9\nDan;+1 202 555 0100;10\n');
    const rejectsFile = path.join(dir, 'named-rejects.csv');
    const r = await cli(['import', campaignId, file, '--phone-column', 'Mobile',
      '--delimiter', ';', '--rejects', rejectsFile, '--default-country', 'US'], env);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout)
      .toMatch(/2 accepted, 1 duplicate, 1 rejected \(rows and reasons in .*named-rejects/);
    expect(readFileSync(rejectsFile, 'utf8'))
      .toMatch(/^line,reason,row\n4,invalid_phone: .*,Cid;nope;9\n$/);

    const send = await cli(['send', campaignId, '--json'], env);
    expect(send.code, send.stderr).toBe(0);
    expect(JSON.parse(send.stdout).counts).toEqual({ sent: 2 });
    const to = sandbox.messages().map((m) => m.to).sort();
    expect(to).toEqual(['12025550100', '12025550101']);
  });

  test('a missing column, file or campaign is a usage error; nothing is added', async () => {
    const { campaignId } = await seedTestCampaign(t.db, { n: 0 });
    const file = path.join(dir, 'nophone.csv');
    writeFileSync(file, 'tel,name\n+12025550100,Ann\n');
    const noColumn = await cli(['import', campaignId, file, '--json'], env);
    expect(noColumn.code).toBe(2);
    expect(JSON.parse(noColumn.stdout).error.message).toMatch(/no column "phone".*"tel"/);
    const noFile = await cli(['import', campaignId, path.join(dir, 'absent.csv')], env);
    expect(noFile.code).toBe(2);
    expect(noFile.stderr).toMatch(/cannot read/);
    // A quote opened mid-file and never closed would swallow the rest: refused as a whole.
    const unclosed = path.join(dir, 'unclosed.csv');
    writeFileSync(unclosed, 'phone,name\n+12025550100,Ann\n"+12025550101,Ben\n' +
      Array.from({ length: 5000 }, (_, i) => `+1202556${String(i).padStart(4, '0')},N${i}`)
        .join('\n') + '\n');
    const swallowed = await cli(['import', campaignId, unclosed], env);
    expect(swallowed.code).toBe(2);
    expect(swallowed.stderr).toMatch(/line \d+: a quoted field runs on for more than 64 KB/);
    const noCampaign = await cli(['import', '6f1c7a2e-0000-4000-8000-000000000000', file], env);
    expect(noCampaign.code).toBe(2);
    expect(await statusCounts(t.db, campaignId)).toEqual({});
  });
});
