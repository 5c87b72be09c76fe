import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import type { TestProject } from 'vitest/node';
import { connect, type Db } from '../../src/db/connect.js';
import { listMigrations, migrate, SQL_DIR } from '../../src/db/migrate.js';
import { ensureEmbedded } from '../../src/embedded/server.js';

/**
 * Once per `vitest run`: find a PostgreSQL (TEST_DATABASE_URL, else the embedded server in a
 * home of its own under the temp folder) and build one database with every migration applied.
 * Each test then copies it with CREATE DATABASE … TEMPLATE, which takes milliseconds where
 * migrating afresh would take far longer.
 *
 * The embedded server is left running afterwards: several test runs may share it at once, and
 * finding it running makes the next run start at once.
 */
declare module 'vitest' {
  export interface ProvidedContext {
    adminUrl: string;
    templateDatabase: string;
  }
}

export const TEST_HOME = path.join(os.tmpdir(), 'wacamp-test-home');

/** Databases of a crashed run older than this are dropped by the next run. */
const ABANDONED_AFTER_MS = 60 * 60 * 1000;

export default async function setup(project: TestProject): Promise<void> {
  const adminUrl = process.env.TEST_DATABASE_URL
    ?? withDatabase((await ensureEmbedded(TEST_HOME)).url, 'postgres');
  const template = `wacamp_test_tpl_${await migrationsHash()}`;

  const admin = connect(adminUrl, { max: 1 });
  try {
    await dropAbandoned(admin, template);
    const [found] = await admin`SELECT 1 AS ok FROM pg_database WHERE datname = ${template}`;
    if (!found) await buildTemplate(admin, adminUrl, template);
  } finally {
    await admin.end();
  }

  project.provide('adminUrl', adminUrl);
  project.provide('templateDatabase', template);
}

/** A name for a database that lives only as long as one test run: kind, time, pid, counter. */
export function scratchName(kind: 'db' | 'build', counter: number): string {
  return `wacamp_test_${kind}_${Date.now().toString(36)}_${process.pid}_${counter}`;
}

/** The same server and credentials, another database. */
export function withDatabase(url: string, database: string): string {
  const parsed = new URL(url);
  parsed.pathname = `/${database}`;
  return parsed.toString();
}

/** The template is named after the migrations, so editing one builds a fresh template. */
async function migrationsHash(): Promise<string> {
  const hash = createHash('sha256');
  for (const name of await listMigrations()) {
    hash.update(name).update('\0').update(await readFile(path.join(SQL_DIR, name))).update('\0');
  }
  return hash.digest('hex').slice(0, 12);
}

/**
 * Migrates under a private name and renames at the end, so a run that dies midway never leaves
 * a half-built template that later runs would copy.
 */
async function buildTemplate(admin: Db, adminUrl: string, template: string): Promise<void> {
  const building = scratchName('build', 0);
  await admin`CREATE DATABASE ${admin(building)}`;
  const db = connect(withDatabase(adminUrl, building), { max: 1 });
  try {
    await migrate(db);
  } finally {
    await db.end();
  }

  try {
    await admin`ALTER DATABASE ${admin(building)} RENAME TO ${admin(template)}`;
  } catch (err) {
    // 42P04: a run in parallel built the same template first; use theirs.
    if ((err as { code?: string }).code !== '42P04') throw err;
    await admin`DROP DATABASE ${admin(building)}`;
  }
}

/** Templates of older migrations, and databases that crashed runs never dropped. */
async function dropAbandoned(admin: Db, template: string): Promise<void> {
  const rows = await admin<{ datname: string }[]>`
    SELECT datname FROM pg_database WHERE datname LIKE 'wacamp\\_test\\_%'`;
  for (const { datname } of rows) {
    const scratch = /^wacamp_test_(?:db|build)_([0-9a-z]+)_/.exec(datname);
    if (scratch?.[1] && Date.now() - Number.parseInt(scratch[1], 36) > ABANDONED_AFTER_MS) {
      await admin`DROP DATABASE IF EXISTS ${admin(datname)} WITH (FORCE)`;
    } else if (datname.startsWith('wacamp_test_tpl_') && datname !== template) {
      await dropUnlessInUse(admin, datname);
    }
  }
}

async function dropUnlessInUse(admin: Db, datname: string): Promise<void> {
  try {
    await admin`DROP DATABASE IF EXISTS ${admin(datname)}`;
  } catch (err) {
    // 55006: a run still copying the old template; a later run drops it.
    if ((err as { code?: string }).code !== '55006') throw err;
  }
}
