import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { connect } from '../src/db/connect.js';
import { pendingMigrations } from '../src/db/migrate.js';
import { adminUrl, createTestDatabase, type TestDatabase } from './helpers/db.js';

describe('test databases', () => {
  let first: TestDatabase;

  beforeAll(async () => {
    first = await createTestDatabase();
  });

  afterAll(async () => {
    await first?.drop();
  });

  test('arrive with every migration applied', async () => {
    expect(await pendingMigrations(first.db)).toEqual([]);
    const tables = ['wacamp_migrations', 'campaigns', 'campaign_recipients'];
    for (const table of tables) {
      const [row] = await first.db<{ found: boolean }[]>`
        SELECT to_regclass(${table}) IS NOT NULL AS found`;
      expect(row?.found, table).toBe(true);
    }
  });

  test('are separate from one another, and drop removes one', async () => {
    const second = await createTestDatabase();
    expect(second.url).not.toBe(first.url);

    await first.db`CREATE TABLE only_in_first (id int)`;
    const [row] = await second.db<{ found: boolean }[]>`
      SELECT to_regclass('only_in_first') IS NOT NULL AS found`;
    expect(row?.found).toBe(false);

    const name = new URL(second.url).pathname.slice(1);
    await second.drop();
    const admin = connect(adminUrl(), { max: 1 });
    try {
      const left = await admin`SELECT 1 FROM pg_database WHERE datname = ${name}`;
      expect(left).toHaveLength(0);
    } finally {
      await admin.end();
    }
  });
});
