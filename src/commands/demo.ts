import { seedCampaign } from '../db/seed.js';
import { ensureEmbedded } from '../embedded/server.js';
import { startSandbox } from '../sandbox/server.js';
import { connect } from '../db/connect.js';
import { migrate } from '../db/migrate.js';
import { makeContext, type GlobalOptions } from './context.js';
import { sendCommandWith, type SendFlags } from './send.js';
import { parsePositiveInt } from '../units.js';

export interface DemoFlags extends GlobalOptions { recipients: string; rate: string; workers: string }

const FIRST = ['Ana', 'Ben', 'Chen', 'Dara', 'Eli', 'Fatima', 'Gus', 'Hana', 'Ivo', 'Jun'];

/**
 * Realistically messy phones, as a web app's users type them: several national styles written
 * internationally, some duplicates in another format, some national numbers with no country,
 * and some junk.
 */
export function demoRecipients(n: number): { phone: string; variables: string[] }[] {
  const out: { phone: string; variables: string[] }[] = [];
  for (let i = 0; i < n; i++) {
    const d4 = String(i % 10_000).padStart(4, '0');
    const block = Math.floor(i / 10_000) % 10;
    const styles = [
      `+1 (202) 55${block}-${d4}`, `0044 20 79${block}6 ${d4}`, `+49 151 123${block} ${d4}`,
      `9198123${block}${d4.slice(0, 1)}${d4.slice(1)}`, `+55 11 98765-${d4}`,
    ];
    let phone = styles[i % styles.length]!;
    if (i % 97 === 5) phone = 'call me after 5';
    else if (i % 89 === 7) phone = `(202) 555-${d4}`;
    else if (i % 53 === 11 && i > 10) phone = out[i - 10]!.phone.replace(/[()\s-]/g, '');
    out.push({ phone, variables: [FIRST[i % FIRST.length]!, `#${100_000 + i}`] });
  }
  return out;
}

export async function demoCommand(f: DemoFlags): Promise<number> {
  const ctx = makeContext(f);
  const recipients = parsePositiveInt('--recipients', f.recipients, 1_000_000);
  ctx.log.info('demo', `starting the embedded PostgreSQL in ${ctx.env.home}`);
  const info = await ensureEmbedded(ctx.env.home, (line) => ctx.log.debug('embedded', line));

  const db = connect(info.url);
  let campaignId: string;
  try {
    await migrate(db);
    campaignId = await seedCampaign(db, {
      accountName: 'Demo account', phoneNumberId: '100000000000001',
      accessToken: 'sandbox-token',
      template: { name: 'order_update', language: 'en_US', components: [
        { type: 'BODY', text: 'Hi {{1}}, your order {{2}} ships today.' }] },
      campaignName: `Demo ${new Date().toISOString()}`,
      recipients: demoRecipients(recipients),
    });
  } finally {
    await db.end({ timeout: 5 });
  }
  ctx.log.info('demo', `seeded campaign ${campaignId} with ${recipients} recipients`);

  const sandbox = await startSandbox({ latencyMs: [20, 120], keepInMemory: false,
    scenario: { failRate: 0.02, failCodes: [131026, 131000], heldShare: 0.01 } });
  ctx.log.info('demo', `sandbox Cloud API on ${sandbox.url}`);
  try {
    const flags: SendFlags = {
      ...f, databaseUrl: info.url, apiUrl: sandbox.url, workers: f.workers, rate: f.rate,
      drainTimeout: '10s', lease: '30s', maxAttempts: '4', requestTimeout: '20s',
      maxErrorRate: '50%', maxThrottle: '10m',
    };
    const code = await sendCommandWith(campaignId, flags, ctx);
    ctx.log.info('demo', `see it again: wacamp status ${campaignId} --embedded`);
    return code;
  } finally {
    await sandbox.close();
  }
}
