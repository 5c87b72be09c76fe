/**
 * The benchmark's PostgreSQL: the embedded server (in a home of the benchmark's own) unless
 * DATABASE_URL is given, a migrated template database, and one scratch copy of it per run, so
 * no run sees rows or statistics left by another.
 */
import os from 'node:os';
import path from 'node:path';
import { connect } from '../../../dist/db/connect.js';
import { migrate } from '../../../dist/db/migrate.js';
import { normalizePhone } from '../../../dist/phone.js';
import { postmasterOf } from './cpu.mjs';
import { BUILD_ROOT } from './processes.mjs';

export const BENCH_HOME = path.join(os.tmpdir(), 'wacamp-bench-home');

// One placeholder, as issue 6 asks; the same template every case and baseline renders.
export const TEMPLATE = {
  name: 'bench_order_update',
  language: 'en_US',
  components: [{ type: 'BODY', text: 'Hello {{1}}, your order is on its way.' }],
};
export const PHONE_NUMBER_ID = '100200300';
export const TOKEN = 'sandbox-token';

let scratchCount = 0;

export function withDatabase(url, name) {
  const u = new URL(url);
  u.pathname = `/${name}`;
  return u.toString();
}

/** Finds or starts the server; `stop()` stops it only when this call started it. */
export async function openServer() {
  if (process.env.DATABASE_URL) {
    return { url: process.env.DATABASE_URL, embedded: false, stop: async () => {} };
  }
  const { ensureEmbedded, stopEmbedded } = await import('../../../dist/embedded/server.js');
  const info = await ensureEmbedded(BENCH_HOME, (line) => process.stderr.write(`  ${line}\n`));
  return {
    url: info.url,
    embedded: true,
    stop: async () => { if (info.started) await stopEmbedded(BENCH_HOME); },
  };
}

async function asAdmin(adminUrl, work) {
  const admin = connect(adminUrl, { max: 1 });
  try {
    return await work(admin);
  } finally {
    await admin.end();
  }
}

/** Server facts for the report, and whether pg_stat_statements is loaded. */
export async function serverFacts(adminUrl) {
  return asAdmin(adminUrl, async (db) => {
    const [v] = await db`SELECT current_setting('server_version') AS version,
      current_setting('shared_preload_libraries') AS preload, pg_backend_pid() AS pid`;
    return { version: v.version, pgStatStatements: /pg_stat_statements/.test(v.preload),
      postmasterPid: postmasterOf(v.pid) };
  });
}

/**
 * A database migrated with the measured build's own sql/ (see WACAMP_BENCH_BIN), from which
 * every scratch database is copied; with pg_stat_statements when the server preloads it.
 */
export async function makeTemplate(adminUrl, withStatements) {
  const name = `wacamp_bench_tpl_${process.pid}`;
  await asAdmin(adminUrl, async (a) => {
    await a.unsafe(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
    await a.unsafe(`CREATE DATABASE ${name}`);
  });
  const db = connect(withDatabase(adminUrl, name), { max: 1 });
  try {
    await migrate(db, path.join(BUILD_ROOT, 'sql'));
    if (withStatements) await db`CREATE EXTENSION IF NOT EXISTS pg_stat_statements`;
  } finally {
    await db.end();
  }
  return {
    name,
    drop: () => asAdmin(adminUrl, (a) => a.unsafe(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`)),
  };
}

/** A fresh copy of the template; `drop()` removes it whoever is still connected. */
export async function scratchDatabase(adminUrl, template) {
  const name = `wacamp_bench_${process.pid}_${++scratchCount}`;
  await asAdmin(adminUrl, (a) => a.unsafe(`CREATE DATABASE ${name} TEMPLATE ${template.name}`));
  const url = withDatabase(adminUrl, name);
  return {
    name, url,
    drop: () => asAdmin(adminUrl, (a) => a.unsafe(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`)),
  };
}

/** The phone of recipient i (1-based): '+12025' and six digits, distinct up to 1,000,000. */
export function benchPhone(i) {
  return `+12025${String(i - 1).padStart(6, '0')}`;
}

/** Fails before any timing if the generated numbers would not pass wacamp's own check. */
export function checkPhones(n) {
  const probes = new Set([1, n]);
  for (let k = 1; k < 1000; k++) probes.add(1 + Math.floor(((n - 1) * k) / 1000));
  for (const i of probes) {
    const r = normalizePhone(benchPhone(i));
    if (!r.ok) throw new Error(`bench phone ${benchPhone(i)} is invalid: ${r.reason}`);
  }
}

/**
 * Account, approved template, draft campaign and n recipients, the recipients from one
 * generate_series statement. Returns the campaign id.
 */
export async function seedCampaign(url, n) {
  if (n > 1_000_000) throw new Error('bench phones are distinct only up to 1,000,000');
  checkPhones(n);
  const db = connect(url, { max: 1 });
  try {
    return await db.begin(async (tx) => {
      const [account] = await tx`
        INSERT INTO wa_accounts (name, phone_number_id, access_token)
        VALUES ('bench', ${PHONE_NUMBER_ID}, ${TOKEN}) RETURNING id`;
      const [template] = await tx`
        INSERT INTO templates (account_id, name, language, status, components)
        VALUES (${account.id}, ${TEMPLATE.name}, ${TEMPLATE.language}, 'APPROVED',
                ${tx.json(TEMPLATE.components)}) RETURNING id`;
      const [campaign] = await tx`
        INSERT INTO campaigns (template_id, name, status)
        VALUES (${template.id}, 'bench', 'draft') RETURNING id`;
      await tx`
        INSERT INTO campaign_recipients (campaign_id, phone, variables)
        SELECT ${campaign.id}::uuid, '+12025' || lpad((i - 1)::text, 6, '0'),
               jsonb_build_array('Customer ' || i)
          FROM generate_series(1, ${n}::int) AS i`;
      return campaign.id;
    });
  } finally {
    await db.end();
  }
}

/** Recipient counts by status, for checks after a run. */
export async function statusCounts(url, campaignId) {
  const db = connect(url, { max: 1 });
  try {
    const rows = await db`SELECT status, count(*)::int AS n FROM campaign_recipients
                           WHERE campaign_id = ${campaignId} GROUP BY status`;
    return Object.fromEntries(rows.map((r) => [r.status, r.n]));
  } finally {
    await db.end();
  }
}

/** VACUUM ANALYZE after seeding, as a campaign imported earlier would be. */
export async function analyze(url) {
  const db = connect(url, { max: 1 });
  try {
    await db`VACUUM ANALYZE campaign_recipients`;
  } finally {
    await db.end();
  }
}
