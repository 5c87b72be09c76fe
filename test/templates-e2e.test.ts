import { mkdtemp, readFile, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import type { Db } from '../src/db/connect.js';
import {
  startSandbox, type Sandbox, type SandboxMessage, type ScenarioInput,
} from '../src/sandbox/server.js';
import { e164For, phoneFor, seedTestCampaign, statusCounts } from './helpers/campaign.js';
import { cli, tempHome } from './helpers/cli.js';
import type { TestDatabase } from './helpers/db.js';
import { Harness } from './helpers/harness.js';

/**
 * Every template shape of issue 4 sent through the real CLI to a sandbox that knows the
 * template (so it refuses unknown names, languages, parameter names and counts), judged on what
 * the sandbox logged to its NDJSON file: the request bodies as Meta would have received them.
 */

// Resources each test made, undone after it (test/helpers/harness.ts).
const h = new Harness();

afterEach(() => h.cleanup());

function database(): Promise<TestDatabase> {
  return h.database();
}

/** A sandbox logging to a file of its own; `logged()` closes it and reads the file back. */
async function loggingSandbox(scenario: ScenarioInput) {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'wacamp-tpl-'));
  h.defer(() => rm(dir, { recursive: true, force: true }));
  const logFile = path.join(dir, 'accepted.ndjson');
  const sb = await startSandbox({ logFile, scenario });
  h.defer(() => sb.close());
  return {
    sb,
    async logged(): Promise<SandboxMessage[]> {
      await sb.close();
      const text = await readFile(logFile, 'utf8');
      return text.split('\n').filter(Boolean).map((l) => JSON.parse(l) as SandboxMessage);
    },
  };
}

function envFor(t: TestDatabase, sb: Sandbox): Record<string, string> {
  return { DATABASE_URL: t.url, WHATSAPP_API_URL: sb.url, WHATSAPP_ACCESS_TOKEN: 'sandbox-token',
    WACAMP_HOME: tempHome() };
}

async function rowsOf(db: Db, campaignId: string) {
  return db<{ phone_e164: string; status: string; error_code: string | null }[]>`
    SELECT phone_e164, status, error_code FROM campaign_recipients
     WHERE campaign_id = ${campaignId} ORDER BY id`;
}

const byPhone = (messages: SandboxMessage[]) => new Map(messages.map((m) => [m.to, m]));

describe('named parameters', () => {
  const components = [
    { type: 'HEADER', format: 'TEXT', text: 'Hello {{first_name}}' },
    { type: 'BODY', text: 'Dear {{customer_name}}, order {{order_id}} ships today' },
  ];

  it('every request carries parameter_name, for flat and { header, body } variables alike',
    async () => {
      const t = await database();
      const recipients = Array.from({ length: 40 }, (_, i) => ({
        phone: phoneFor(i),
        variables: i % 2 === 0
          ? { first_name: `F${i}`, customer_name: `Customer ${i}`, order_id: `#${i}` }
          : { header: { first_name: `F${i}` },
            body: { order_id: `#${i}`, customer_name: `Customer ${i}` } },
      }));
      const { campaignId } = await seedTestCampaign(t.db, { recipients, components,
        templateName: 'order_named' });
      const { sb, logged } = await loggingSandbox({ templates: [{ name: 'order_named',
        language: 'en_US', parameterNames: ['customer_name', 'order_id'] }] });

      const r = await cli(['send', campaignId], envFor(t, sb));
      expect(r.code, r.stderr).toBe(0);
      expect(await statusCounts(t.db, campaignId)).toEqual({ sent: 40 });

      const messages = byPhone(await logged());
      expect(messages.size).toBe(40);
      for (let i = 0; i < 40; i++) {
        const m = messages.get(e164For(i))!;
        expect(m.template).toBe('order_named');
        expect(m.components).toEqual([
          { type: 'header', parameters: [
            { type: 'text', text: `F${i}`, parameter_name: 'first_name' }] },
          { type: 'body', parameters: [
            { type: 'text', text: `Customer ${i}`, parameter_name: 'customer_name' },
            { type: 'text', text: `#${i}`, parameter_name: 'order_id' }] },
        ]);
      }
    });

  it('a row with a malformed value fails locally and is never sent; the rest go', async () => {
    const t = await database();
    const good = (i: number) => ({ phone: phoneFor(i), variables: { first_name: 'F',
      customer_name: `C${i}`, order_id: `#${i}` } });
    const recipients = [
      good(0), good(1),
      // A JSON string instead of an object: double-encoded by some importer.
      { phone: phoneFor(2), variables: JSON.stringify({ first_name: 'F', customer_name: 'C',
        order_id: '#2' }) },
      // A missing name.
      { phone: phoneFor(3), variables: { first_name: 'F', customer_name: 'C' } },
      // Over the header's 60 code points.
      { phone: phoneFor(4), variables: { first_name: 'x'.repeat(61), customer_name: 'C',
        order_id: '#4' } },
      // An empty string.
      { phone: phoneFor(5), variables: { first_name: 'F', customer_name: '', order_id: '#5' } },
      good(6),
    ];
    const { campaignId } = await seedTestCampaign(t.db, { recipients, components,
      templateName: 'order_named' });
    const { sb, logged } = await loggingSandbox({ templates: [{ name: 'order_named',
      language: 'en_US', parameterNames: ['customer_name', 'order_id'] }] });
    const r = await cli(['send', campaignId], envFor(t, sb));
    expect(r.code, r.stderr).toBe(0);

    const rows = await rowsOf(t.db, campaignId);
    expect(rows.map((x) => [x.status, x.error_code])).toEqual([
      ['sent', null], ['sent', null],
      ['failed', 'variables_malformed'],
      ['failed', 'variables_mismatch'],
      ['failed', 'param_too_long'],
      ['failed', 'param_empty'],
      ['sent', null],
    ]);
    expect((await logged()).map((m) => m.to).sort())
      .toEqual([e164For(0), e164For(1), e164For(6)]);
  });
});

describe('media headers, buttons, currency and date_time', () => {
  const bodyText = 'Total {{1}} due {{2}} for {{3}}';
  const buttons = {
    type: 'BUTTONS',
    buttons: [
      { type: 'URL', text: 'Track', url: 'https://shop.example/track/{{1}}' },
      { type: 'QUICK_REPLY', text: 'Stop promotions' },
      { type: 'COPY_CODE', example: 'SAVE10' },
    ],
  };
  const currency = { type: 'currency', fallback_value: '$12.50', code: 'USD', amount_1000: 12500 };
  const dateTime = { type: 'date_time', fallback_value: 'May 1, 2027' };

  it('image header, url / quick_reply / copy_code buttons, currency and date_time', async () => {
    const t = await database();
    const components = [{ type: 'HEADER', format: 'IMAGE' }, { type: 'BODY', text: bodyText },
      { type: 'FOOTER', text: 'Reply STOP to opt out' }, buttons];
    const recipients = [0, 1, 2].map((i) => ({ phone: phoneFor(i), variables: {
      header: { image: { link: `https://cdn.example/img/${i}.png` } },
      body: [currency, dateTime, `Ann ${i}`],
      buttons: [`ord-${i}`, `stop-${i}`, `SAVE${i}`],
    } }));
    const { campaignId } = await seedTestCampaign(t.db, { recipients, components,
      templateName: 'receipt' });
    const { sb, logged } = await loggingSandbox({ templates: [{ name: 'receipt',
      language: 'en_US', bodyParams: 3 }] });
    const r = await cli(['send', campaignId], envFor(t, sb));
    expect(r.code, r.stderr).toBe(0);
    expect(await statusCounts(t.db, campaignId)).toEqual({ sent: 3 });

    const messages = byPhone(await logged());
    for (const i of [0, 1, 2]) {
      expect(messages.get(e164For(i))!.components).toEqual([
        { type: 'header', parameters: [
          { type: 'image', image: { link: `https://cdn.example/img/${i}.png` } }] },
        { type: 'body', parameters: [
          { type: 'currency', currency: { fallback_value: '$12.50', code: 'USD',
            amount_1000: 12500 } },
          { type: 'date_time', date_time: { fallback_value: 'May 1, 2027' } },
          { type: 'text', text: `Ann ${i}` }] },
        { type: 'button', sub_type: 'url', index: '0',
          parameters: [{ type: 'text', text: `ord-${i}` }] },
        { type: 'button', sub_type: 'quick_reply', index: '1',
          parameters: [{ type: 'payload', payload: `stop-${i}` }] },
        { type: 'button', sub_type: 'copy_code', index: '2',
          parameters: [{ type: 'coupon_code', coupon_code: `SAVE${i}` }] },
      ]);
    }
  });

  it('document (with its file name) and video headers, sent with their links', async () => {
    const t = await database();
    const doc = await seedTestCampaign(t.db, { templateName: 'invoice',
      components: [{ type: 'HEADER', format: 'DOCUMENT' }, { type: 'BODY', text: 'Hi {{1}}' }],
      recipients: [{ phone: phoneFor(0), variables: { header: { document: {
        link: 'https://cdn.example/inv/0.pdf', filename: 'invoice-0.pdf' } }, body: ['Bo'] } }],
    });
    const video = await seedTestCampaign(t.db, { templateName: 'promo',
      components: [{ type: 'HEADER', format: 'VIDEO' }, { type: 'BODY', text: 'Hi {{1}}' }],
      recipients: [{ phone: phoneFor(1), variables: {
        header: 'https://cdn.example/v/1.mp4', body: ['Cy'] } }],
    });
    const { sb, logged } = await loggingSandbox({ templates: [
      { name: 'invoice', language: 'en_US', bodyParams: 1 },
      { name: 'promo', language: 'en_US', bodyParams: 1 }] });
    for (const { campaignId } of [doc, video]) {
      const r = await cli(['send', campaignId], envFor(t, sb));
      expect(r.code, r.stderr).toBe(0);
    }
    const messages = byPhone(await logged());
    expect(messages.get(e164For(0))!.components[0]).toEqual({ type: 'header', parameters: [
      { type: 'document', document: { link: 'https://cdn.example/inv/0.pdf',
        filename: 'invoice-0.pdf' } }] });
    expect(messages.get(e164For(1))!.components[0]).toEqual({ type: 'header', parameters: [
      { type: 'video', video: { link: 'https://cdn.example/v/1.mp4' } }] });
  });
});

describe('text values and language', () => {
  it('the language is sent exactly as stored: "en" stays "en", "pt_BR" stays "pt_BR"',
    async () => {
      const t = await database();
      const en = await seedTestCampaign(t.db, { n: 3, language: 'en' });
      const pt = await seedTestCampaign(t.db, { n: 3, language: 'pt_BR' });
      // The sandbox knows the template in exactly these languages; en_US would be 132001.
      const { sb, logged } = await loggingSandbox({ templates: [
        { name: 'order_update', language: 'en', bodyParams: 2 },
        { name: 'order_update', language: 'pt_BR', bodyParams: 2 }] });
      for (const { campaignId } of [en, pt]) {
        const r = await cli(['send', campaignId], envFor(t, sb));
        expect(r.code, r.stderr).toBe(0);
        expect(await statusCounts(t.db, campaignId)).toEqual({ sent: 3 });
      }
      const languages = (await logged()).map((m) => m.language).sort();
      expect(languages).toEqual(['en', 'en', 'en', 'pt_BR', 'pt_BR', 'pt_BR']);
    });

  it('new-lines and long space runs are cleaned the way Meta requires; astral characters ' +
    'count once and are never cut', async () => {
    const t = await database();
    const emoji = '\u{1F600}'.repeat(60);
    const { campaignId } = await seedTestCampaign(t.db, {
      components: [{ type: 'HEADER', format: 'TEXT', text: 'Hi {{1}}' },
        { type: 'BODY', text: 'Note: {{1}}' }],
      recipients: [
        { phone: phoneFor(0),
          variables: { header: ['Ann'], body: ['line one\nline two\tand      more'] } },
        { phone: phoneFor(1), variables: { header: [emoji], body: ['ok'] } },
        { phone: phoneFor(2), variables: { header: [emoji + '\u{1F600}'], body: ['ok'] } },
      ],
    });
    const { sb, logged } = await loggingSandbox({});
    const r = await cli(['send', campaignId], envFor(t, sb));
    expect(r.code, r.stderr).toBe(0);
    const rows = await rowsOf(t.db, campaignId);
    expect(rows.map((x) => [x.status, x.error_code])).toEqual([
      ['sent', null], ['sent', null], ['failed', 'param_too_long']]);

    const messages = byPhone(await logged());
    const body0 = messages.get(e164For(0))!.components[1] as { parameters: { text: string }[] };
    expect(body0.parameters[0]!.text).toBe('line one line two and more');
    const header1 = messages.get(e164For(1))!.components[0] as { parameters: { text: string }[] };
    expect(header1.parameters[0]!.text).toBe(emoji);
  });
});
