/**
 * Case 1d, what a user would otherwise build: one pg-boss 10 job per recipient, and a worker
 * whose handler makes the same request for each job of the batch it fetched, 50 (the
 * concurrency) at a time. pg-boss waits out its polling interval after every fetch that
 * finished sooner, which is what limits small batches; the interval is set to pg-boss's
 * minimum, 0.5 s (its default is 2 s), the setting most favourable to it.
 *
 * Config: batchSize and workers (work() registrations; each fetches its own batches).
 */
import { performance } from 'node:perf_hooks';
import PgBoss from 'pg-boss';
import { connect } from '../../../dist/db/connect.js';
import { bodyFor, config, eachLimited, finish, makeSender } from './common.mjs';

const QUEUE = 'whatsapp-send';
const POLLING_S = 0.5;

const boss = new PgBoss({ connectionString: config.dbUrl, max: 10, schedule: false,
  supervise: false });
boss.on('error', (err) => process.stderr.write(`pg-boss: ${err.message}\n`));
await boss.start();
await boss.createQueue(QUEUE);

// Enqueue: one job per pending recipient, in pages, timed apart from the sending.
const enqueueBegan = performance.now();
const db = connect(config.dbUrl, { max: 1 });
let jobs = 0;
for (let after = 0; ;) {
  const page = await db`
    SELECT id, phone, variables FROM campaign_recipients
     WHERE campaign_id = ${config.campaignId} AND status = 'pending' AND id > ${after}
     ORDER BY id LIMIT 5000`;
  if (page.length === 0) break;
  await boss.insert(page.map((r) => ({ name: QUEUE,
    data: { id: String(r.id), phone: r.phone, variables: r.variables } })));
  jobs += page.length;
  after = page[page.length - 1].id;
}
await db.end();
const enqueueMs = performance.now() - enqueueBegan;

const sender = makeSender(config.apiUrl, config.concurrency);
let answered = 0;
let sent = 0;
let allDone;
const done = new Promise((resolve) => { allDone = resolve; });
const began = performance.now();
const perWorker = Math.max(1, Math.floor(config.concurrency / config.workers));

for (let w = 0; w < config.workers; w++) {
  await boss.work(QUEUE, { batchSize: config.batchSize, pollingIntervalSeconds: POLLING_S },
    async (batch) => {
      await eachLimited(batch, perWorker, async (job) => {
        const r = await sender.send(bodyFor(job.data.phone, job.data.variables));
        if (r.ok) sent++;
        if (++answered === jobs) allDone();
      });
    });
}
await done;
const wallMs = performance.now() - began;
await boss.stop({ graceful: true, wait: true, timeout: 10_000 });
await sender.close();
finish({ sent, wallMs, enqueueMs, jobs, pollingIntervalS: POLLING_S });
