#!/usr/bin/env node
/**
 * The crash loop of issue 3 at length (not part of `npm test`): one campaign sent by the real,
 * built CLI against an in-process sandbox with random latency, killed with SIGKILL at N random
 * moments and started again each time. Afterwards it checks what the test
 * (test/crash-loop.test.ts) checks and prints one summary line on stdout; progress goes to
 * stderr. Exit 0 when every check held, 1 otherwise.
 *
 *   npm run build && node scripts/crash-loop.mjs [--kills 200] [--recipients 20000]
 *     [--workers 10] [--latency 5-40] [--max-delay-ms 250] [--seed N] [--keep]
 *
 * The database: DATABASE_URL (a role that may create databases) or else the embedded server the
 * tests use (in <tmp>/wacamp-test-home, left running). A scratch database is created, migrated
 * and dropped afterwards (kept with --keep).
 */
import { spawn } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { connect } from '../dist/db/connect.js';
import { migrate } from '../dist/db/migrate.js';
import { seedCampaign } from '../dist/db/seed.js';
import { startSandbox } from '../dist/sandbox/server.js';

const BIN = fileURLToPath(new URL('../bin/wacamp.js', import.meta.url));
const TEST_HOME = path.join(os.tmpdir(), 'wacamp-test-home');

function options() {
  const { values } = parseArgs({ options: {
    kills: { type: 'string', default: '200' },
    recipients: { type: 'string', default: '20000' },
    workers: { type: 'string', default: '10' },
    latency: { type: 'string', default: '5-40' },
    'max-delay-ms': { type: 'string', default: '250' },
    seed: { type: 'string' },
    keep: { type: 'boolean', default: false },
  } });
  const [lo, hi = lo] = values.latency.split('-').map(Number);
  return {
    kills: Number(values.kills), recipients: Number(values.recipients),
    workers: Number(values.workers), latency: [lo, hi],
    maxDelayMs: Number(values['max-delay-ms']),
    seed: Number(values.seed ?? Date.now() % 2 ** 31), keep: values.keep,
  };
}

/** mulberry32, so a failing sequence of kill moments can be replayed with --seed. */
function seeded(seed) {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = Math.imul(s ^ (s >>> 15), s | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

async function scratchDatabase() {
  let admin = process.env.DATABASE_URL;
  if (!admin) {
    const { ensureEmbedded } = await import('../dist/embedded/server.js');
    const u = new URL((await ensureEmbedded(TEST_HOME)).url);
    u.pathname = '/postgres';
    admin = u.toString();
  }
  const name = `wacamp_crashloop_${Date.now().toString(36)}_${process.pid}`;
  const a = connect(admin, { max: 1 });
  await a.unsafe(`CREATE DATABASE ${name}`);
  await a.end();
  const u = new URL(admin);
  u.pathname = `/${name}`;
  const db = connect(u.toString());
  await migrate(db);
  return {
    url: u.toString(), db,
    async drop() {
      await db.end();
      const b = connect(admin, { max: 1 });
      await b.unsafe(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
      await b.end();
    },
  };
}

function phone(i) {
  const d = String(i).padStart(6, '0');
  return `+1 (202) 5${d.slice(0, 2)}-${d.slice(2)}`;
}

async function seed(db, n) {
  return seedCampaign(db, {
    accountName: 'crash-loop', phoneNumberId: '100200300', accessToken: 'sandbox-token',
    template: { name: 'order_update', language: 'en_US',
      components: [{ type: 'BODY', text: 'Hi {{1}}, order {{2}} ships today' }] },
    campaignName: 'crash loop',
    recipients: Array.from({ length: n }, (_, i) => ({ phone: phone(i),
      variables: [`Name${i}`, `#${i}`] })),
  });
}

/** The CLI off a terminal; resolves `started` at its run_started line, `exited` at exit. */
function startCli(args, env) {
  const child = spawn(process.execPath, [BIN, ...args], {
    env: { PATH: process.env.PATH, HOME: process.env.HOME, NO_COLOR: '1', ...env },
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let err = '';
  let onStart;
  const started = new Promise((r) => { onStart = r; });
  child.stderr.on('data', (b) => {
    err += b;
    if (/run \d+ started/.test(err)) onStart();
  });
  const exited = new Promise((r) => child.on('exit', (code, sig) => r(code ?? sig)));
  return { child, started, exited, stderr: () => err };
}

/**
 * Waits until no other session runs a statement in this database: a statement the killed
 * process sent just before dying still runs, and commits, after the process is gone.
 */
async function quiesce(db) {
  for (let i = 0; i < 500; i++) {
    const [r] = await db`SELECT count(*)::int AS n FROM pg_stat_activity
      WHERE datname = current_database() AND pid <> pg_backend_pid() AND state <> 'idle'`;
    if (r.n === 0) return;
    await sleep(10);
  }
  throw new Error('statements of the killed process did not end within 5 s');
}

async function count(db, campaignId) {
  const rows = await db`SELECT status, count(*)::int AS n FROM campaign_recipients
                         WHERE campaign_id = ${campaignId} GROUP BY status`;
  return Object.fromEntries(rows.map((r) => [r.status, r.n]));
}

/** Starts and kills until `o.kills` kills, or until a run finishes on its own. */
async function killLoop(o, db, campaignId, env, fail) {
  const random = seeded(o.seed);
  const args = ['send', campaignId, '--workers', String(o.workers), '--rate', 'unlimited'];
  const kills = [];
  while (kills.length < o.kills) {
    // Pids wrap around on a busy machine: only a run registered after this start is this one's.
    const [{ last }] = await db`SELECT coalesce(max(id), 0)::text AS last FROM wacamp_runs`;
    const run = startCli(args, env);
    const early = random() < 1 / 6;
    if (early) await Promise.race([sleep(50 + random() * 600), run.exited]);
    else {
      await Promise.race([run.started, run.exited]);
      await Promise.race([sleep(random() * o.maxDelayMs), run.exited]);
    }
    if (run.child.exitCode !== null) {
      if (run.child.exitCode !== 0) fail(`a run exited ${run.child.exitCode}: ${run.stderr()}`);
      break;
    }
    run.child.kill('SIGKILL');
    await run.exited;
    await quiesce(db);
    const sending = (await count(db, campaignId)).sending ?? 0;
    if (sending > o.workers) fail(`${sending} rows sending after kill ${kills.length + 1}`);
    const [r] = await db`SELECT id::text FROM wacamp_runs WHERE pid = ${run.child.pid}
                          AND campaign_id = ${campaignId} AND id > ${last}::bigint`;
    kills.push({ runId: r?.id ?? null, sending, early });
    if (kills.length % 20 === 0) process.stderr.write(`  ${kills.length} kills\n`);
  }
  const final = startCli(args, env);
  const code = await final.exited;
  if (code !== 0) fail(`the last run exited ${code}: ${final.stderr()}`);
  return kills;
}

/** The checks of test/crash-loop.test.ts; each failure is described through `fail`. */
async function verify(o, db, campaignId, sandbox, kills, fail) {
  const rows = await db`SELECT phone_e164, status, message_id, run_id::text AS run_id
                          FROM campaign_recipients WHERE campaign_id = ${campaignId}`;
  const runs = await db`SELECT id::text, outcome, ended_at IS NOT NULL AS ended
                          FROM wacamp_runs WHERE campaign_id = ${campaignId}`;
  const unknownOf = new Map();
  for (const r of rows) {
    if (r.status === 'unknown') unknownOf.set(r.run_id, (unknownOf.get(r.run_id) ?? 0) + 1);
  }
  for (const k of kills.filter((x) => x.runId)) {
    const run = runs.find((r) => r.id === k.runId);
    if (run?.outcome !== 'crashed') fail(`run ${k.runId} is ${run?.outcome}, not crashed`);
    const unknown = unknownOf.get(k.runId) ?? 0;
    if (unknown !== k.sending) fail(`run ${k.runId}: ${unknown} unknown, ${k.sending} in flight`);
  }
  if (runs.some((r) => !r.ended)) fail('a run was left open');

  const messages = sandbox.messages();
  const seen = new Set();
  let duplicates = 0;
  for (const m of messages) {
    if (seen.has(m.to)) duplicates++;
    seen.add(m.to);
  }
  if (duplicates) fail(`${duplicates} phones got two messages`);
  const byPhone = new Map(rows.map((r) => [r.phone_e164, r]));
  const lost = messages.filter((m) => {
    const r = byPhone.get(m.to);
    return !(r?.status === 'unknown' || (r?.status === 'sent' && r.message_id === m.wamid));
  }).length;
  if (lost) fail(`${lost} accepted messages are not sent or unknown in the database`);
  // Unknown rows whose request never reached the API: marked `sending`, killed before it left.
  const neverLeft = rows.filter((r) => r.status === 'unknown' && !seen.has(r.phone_e164)).length;

  const c = await count(db, campaignId);
  const settled = (c.sent ?? 0) + (c.failed ?? 0) + (c.skipped ?? 0) + (c.unknown ?? 0);
  if (settled !== o.recipients) fail(`only ${settled} of ${o.recipients} settled: ` +
    JSON.stringify(c));
  const [camp] = await db`SELECT status FROM campaigns WHERE id = ${campaignId}`;
  if (camp.status !== 'completed') fail(`the campaign is ${camp.status}`);
  return { counts: c, duplicates, lost, neverLeft, status: camp.status };
}

async function main() {
  const o = options();
  const began = Date.now();
  const failures = [];
  const fail = (what) => {
    failures.push(what);
    process.stderr.write(`FAIL: ${what}\n`);
  };
  const scratch = await scratchDatabase();
  const sandbox = await startSandbox({ latencyMs: o.latency });
  try {
    const campaignId = await seed(scratch.db, o.recipients);
    const env = { DATABASE_URL: scratch.url, WHATSAPP_API_URL: sandbox.url,
      WHATSAPP_ACCESS_TOKEN: 'sandbox-token',
      WACAMP_HOME: mkdtempSync(path.join(os.tmpdir(), 'wacamp-crash-loop-')) };
    process.stderr.write(`crash loop: ${o.kills} kills over ${o.recipients} recipients ` +
      `(seed ${o.seed})\n`);
    const kills = await killLoop(o, scratch.db, campaignId, env, fail);
    if (kills.length < o.kills) fail(`the campaign ran out after ${kills.length} kills`);
    const v = await verify(o, scratch.db, campaignId, sandbox, kills, fail);
    const maxInFlight = Math.max(0, ...kills.map((k) => k.sending));
    process.stdout.write(`crash-loop: ${kills.length} kills ` +
      `(${kills.filter((k) => k.early).length} during start-up), ${o.recipients} recipients, ` +
      `${o.workers} workers, latency ${o.latency.join('-')} ms: ${v.counts.sent ?? 0} sent, ` +
      `${v.counts.failed ?? 0} failed, ${v.counts.unknown ?? 0} unknown ` +
      `(at most ${maxInFlight} per kill; ${v.neverLeft} of them never reached the API), ` +
      `${v.duplicates} phones messaged twice, ` +
      `${v.lost} accepted but unrecorded; campaign ${v.status}; ` +
      `${failures.length ? `FAIL (${failures.length})` : 'PASS'} in ` +
      `${Math.round((Date.now() - began) / 1000)} s, seed ${o.seed}\n`);
  } finally {
    await sandbox.close();
    if (!o.keep) await scratch.drop();
    else await scratch.db.end();
  }
  process.exitCode = failures.length ? 1 : 0;
}

await main();
