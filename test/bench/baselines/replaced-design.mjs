/**
 * Case 1c, the design wacamp replaced: every pending id loaded up front, then per message one
 * UPDATE round trip to mark it `sending` (returning its data) before its request and one to
 * record the outcome after it. Same undici pool settings and concurrency as wacamp.
 */
import { performance } from 'node:perf_hooks';
import { connect } from '../../../dist/db/connect.js';
import { bodyFor, config, eachLimited, finish, makeSender } from './common.mjs';

const db = connect(config.dbUrl, { max: config.dbPool });
const sender = makeSender(config.apiUrl, config.concurrency);
const began = performance.now();

const ids = (await db`
  SELECT id FROM campaign_recipients
   WHERE campaign_id = ${config.campaignId} AND status = 'pending' ORDER BY id`).map((r) => r.id);

let sent = 0;
await eachLimited(ids, config.concurrency, async (id) => {
  const [row] = await db`
    UPDATE campaign_recipients SET status = 'sending', attempts = attempts + 1, updated_at = now()
     WHERE id = ${id} AND status = 'pending' RETURNING phone, variables`;
  if (!row) return;
  const r = await sender.send(bodyFor(row.phone, row.variables));
  await db`
    UPDATE campaign_recipients
       SET status = ${r.ok ? 'sent' : 'failed'}, message_id = ${r.ok ? r.wamid : null},
           error_code = ${r.ok ? null : r.code}, sent_at = now(), updated_at = now()
     WHERE id = ${id}`;
  if (r.ok) sent++;
});

const wallMs = performance.now() - began;
await sender.close();
await db.end();
finish({ sent, wallMs });
