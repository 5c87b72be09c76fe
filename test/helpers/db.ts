import { inject } from 'vitest';
import { connect, type Db } from '../../src/db/connect.js';
import { scratchName, withDatabase } from './global-setup.js';

export interface TestDatabase {
  url: string;
  db: Db;
  /** Ends the pool and drops the database, whoever is still connected. */
  drop(): Promise<void>;
}

let created = 0;

/** A URL with the right to create and drop databases on the test server. */
export function adminUrl(): string {
  return inject('adminUrl');
}

/** A fresh database with every migration applied, copied from the run's template. */
export async function createTestDatabase(): Promise<TestDatabase> {
  const name = scratchName('db', ++created);
  const template = inject('templateDatabase');
  await asAdmin((admin) => admin`CREATE DATABASE ${admin(name)} TEMPLATE ${admin(template)}`);

  const url = withDatabase(adminUrl(), name);
  const db = connect(url);
  return {
    url,
    db,
    async drop() {
      await db.end();
      await asAdmin((admin) => admin`DROP DATABASE IF EXISTS ${admin(name)} WITH (FORCE)`);
    },
  };
}

async function asAdmin(work: (admin: Db) => Promise<unknown>): Promise<void> {
  const admin = connect(adminUrl(), { max: 1 });
  try {
    await work(admin);
  } finally {
    await admin.end();
  }
}
