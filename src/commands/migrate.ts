import { migrate } from '../db/migrate.js';
import { makeContext, openDatabase, type GlobalOptions } from './context.js';
import { writeStdout } from './stdout.js';

export async function migrateCommand(g: GlobalOptions): Promise<number> {
  const ctx = makeContext(g);
  // openDatabase refuses an unmigrated external database, so migrate connects on its own terms.
  const { connect } = await import('../db/connect.js');
  let db;
  if (g.databaseUrl ?? ctx.env.databaseUrl) {
    db = connect((g.databaseUrl ?? ctx.env.databaseUrl)!);
  } else {
    db = (await openDatabase(ctx, g, { recover: false })).db;
  }
  try {
    const result = await migrate(db);
    if (ctx.json) writeStdout(JSON.stringify(result) + '\n');
    else if (result.applied.length === 0) ctx.log.info('migrate', 'database is up to date');
    else ctx.log.info('migrate', `applied ${result.applied.join(', ')}`);
    return 0;
  } finally {
    await db.end({ timeout: 5 });
  }
}
