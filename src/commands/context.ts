import os from 'node:os';
import { readEnv, type Env } from '../config.js';
import { connect, redactUrl, type Db } from '../db/connect.js';
import { migrate, pendingMigrations } from '../db/migrate.js';
import { pidAlive, recoverDeadRuns } from '../db/recovery.js';
import { usageError } from '../errors.js';
import { applyJournals } from '../journal.js';
import { Logger, type LogFormat, type Verbosity } from '../output/logger.js';

/** Flags every command accepts; resolved once, here, together with the environment. */
export interface GlobalOptions {
  json?: boolean;
  logFormat?: string;
  quiet?: boolean;
  verbose?: boolean;
  embedded?: boolean;
  databaseUrl?: string;
}

export interface Context {
  env: Env;
  log: Logger;
  json: boolean;
  interactive: boolean;
}

export function makeContext(g: GlobalOptions): Context {
  const env = readEnv();
  const interactive = Boolean(process.stderr.isTTY);
  const format = resolveLogFormat(g.logFormat, interactive);
  const verbosity: Verbosity = g.quiet ? 'quiet' : g.verbose ? 'verbose' : 'normal';
  return { env, log: new Logger(format, verbosity), json: Boolean(g.json), interactive };
}

function resolveLogFormat(flag: string | undefined, interactive: boolean): LogFormat {
  if (flag === undefined) return interactive ? 'pretty' : 'plain';
  if (flag === 'json' || flag === 'plain' || flag === 'pretty') return flag;
  throw usageError('bad_log_format', `--log-format: "${flag}" must be json, plain or pretty`);
}

export interface Opened { db: Db; url: string; embedded: boolean }

/**
 * The database a command works on: --database-url, then DATABASE_URL, then the embedded server
 * — but the embedded fallback only on a terminal or with --embedded, so a cron job whose
 * environment lost DATABASE_URL fails loudly instead of running against an empty database.
 */
export async function openDatabase(
  ctx: Context, g: GlobalOptions, o: { recover: boolean; forceEmbedded?: boolean },
): Promise<Opened> {
  if (g.databaseUrl !== undefined && !/^postgres(ql)?:\/\//.test(g.databaseUrl)) {
    throw usageError('bad_database_url', '--database-url must start with postgres:// or ' +
      'postgresql://');
  }
  let url = o.forceEmbedded ? undefined : g.databaseUrl ?? ctx.env.databaseUrl;
  let embedded = false;
  if (!url) {
    if (!o.forceEmbedded && !g.embedded && !ctx.interactive) {
      throw usageError('no_database', 'DATABASE_URL is not set; set it, or pass --embedded ' +
        'to use the embedded PostgreSQL');
    }
    const { ensureEmbedded } = await import('../embedded/server.js');
    const info = await ensureEmbedded(ctx.env.home, (line) => ctx.log.debug('embedded', line));
    url = info.url;
    embedded = true;
    if (!o.forceEmbedded) {
      ctx.log.info('embedded', `DATABASE_URL is unset: using the embedded PostgreSQL ` +
        `(port ${info.port}, data in ${info.dataDir})`);
    }
  }
  const db = connect(url);
  try {
    await db`SELECT 1`;
  } catch (err) {
    await db.end({ timeout: 1 });
    const source = g.databaseUrl ? '--database-url' : embedded ? 'the embedded server' :
      'DATABASE_URL';
    throw usageError('db_unreachable', `cannot reach the database (${source}) at ` +
      `${redactUrl(url)}: ` +
      `${(err as Error).message}`, err);
  }
  await ensureMigrated(db, embedded);
  if (o.recover) await recover(ctx, db);
  return { db, url, embedded };
}

/** The embedded database is wacamp's own, so it is migrated on the spot; others are not. */
async function ensureMigrated(db: Db, embedded: boolean): Promise<void> {
  const missing = await pendingMigrations(db);
  if (missing.length === 0) return;
  if (embedded) {
    await migrate(db);
    return;
  }
  await db.end({ timeout: 1 });
  throw usageError('migrations_pending', `the database lacks ${missing.length} migration(s) ` +
    `(${missing[0]}…); run: wacamp migrate`);
}

/** Settles dead runs and applies journals before a command reads or writes campaigns. */
export async function recover(ctx: Context, db: Db): Promise<void> {
  const journal = await applyJournals(db, ctx.env.home);
  if (journal.torn > 0) {
    ctx.log.warn('journal_torn', `${journal.torn} journal line(s) were cut short (the writer ` +
      'died mid-append) and were set aside; the rows they named are recovered as unknown');
  }
  if (journal.applied > 0) {
    ctx.log.warn('journal_applied', `applied ${journal.applied} outcome(s) from the journal ` +
      `of run(s) ${journal.runs.join(', ')}`);
  }
  const recovered = await recoverDeadRuns(db, os.hostname(), pidAlive);
  for (const r of recovered) {
    ctx.log.warn('run_recovered', `recovered dead run ${r.runId} (${r.host} pid ${r.pid}): ` +
      `${r.released} claimed row(s) back to pending, ${r.unknown} in-flight row(s) unknown`,
    { campaign: r.campaignId });
  }
}
