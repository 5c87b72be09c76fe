import { readdir, readFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import path from 'node:path';
import type { Db } from './connect.js';

/** sql/ sits beside dist/ and src/ both in the checkout and in the installed package. */
export const SQL_DIR = fileURLToPath(new URL('../../sql/', import.meta.url));

// Any constant works; it only has to be the same for every wacamp process on a database.
const MIGRATION_LOCK = 7_344_201_001;

export interface MigrationResult {
  applied: string[];
  current: string[];
}

export async function listMigrations(dir = SQL_DIR): Promise<string[]> {
  const names = await readdir(dir);
  return names.filter((n) => /^\d{3}_[\w-]+\.sql$/.test(n)).sort();
}

/**
 * Applies every file of sql/ not yet recorded, all in one transaction under an advisory lock,
 * so two processes migrating at once apply each file exactly once and a failing file leaves the
 * database as it was.
 */
export async function migrate(db: Db, dir = SQL_DIR): Promise<MigrationResult> {
  const files = await listMigrations(dir);

  return db.begin(async (tx) => {
    await tx`SELECT pg_advisory_xact_lock(${MIGRATION_LOCK}::bigint)`;
    await tx`CREATE TABLE IF NOT EXISTS wacamp_migrations (
      name text PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())`;
    const done = new Set(
      (await tx<{ name: string }[]>`SELECT name FROM wacamp_migrations`).map((r) => r.name),
    );

    const applied: string[] = [];
    for (const name of files) {
      if (done.has(name)) continue;
      const text = await readFile(path.join(dir, name), 'utf8');
      await tx.unsafe(text);
      await tx`INSERT INTO wacamp_migrations (name) VALUES (${name})`;
      applied.push(name);
    }
    return { applied, current: files };
  });
}

/** Names of files in sql/ that this database has not applied (for `check` and preflight). */
export async function pendingMigrations(db: Db, dir = SQL_DIR): Promise<string[]> {
  const files = await listMigrations(dir);
  const [exists] = await db<{ ok: boolean }[]>`
    SELECT to_regclass('wacamp_migrations') IS NOT NULL AS ok`;
  if (!exists?.ok) return files;
  const done = new Set(
    (await db<{ name: string }[]>`SELECT name FROM wacamp_migrations`).map((r) => r.name),
  );
  return files.filter((f) => !done.has(f));
}
