import { mkdir, open, readdir, readFile, rename } from 'node:fs/promises';
import path from 'node:path';
import type { Db } from './db/connect.js';
import { applyJournalOutcomes, type Outcome } from './db/recipients.js';
import { pidAlive } from './db/recovery.js';

/**
 * Outcomes a run could not write before it exited (the database was gone, or its lease was)
 * are appended here and fsync'd, then applied — fenced by run id — by the next command that
 * reaches the same database. A wamid is never lost this way.
 * Files live under `${home}/journal/<database key>/run-<id>.ndjson`.
 */

export async function databaseKey(db: Db): Promise<string> {
  const [r] = await db<{ key: string }[]>`
    SELECT (SELECT system_identifier::text FROM pg_control_system()) || '-' || current_database()
           AS key`;
  return r!.key.replace(/[^\w.-]/g, '_');
}

function dir(home: string, key: string): string {
  return path.join(home, 'journal', key);
}

export async function writeJournal(
  home: string, key: string, runId: string, outcomes: readonly Outcome[],
): Promise<string | null> {
  if (outcomes.length === 0) return null;
  await mkdir(dir(home, key), { recursive: true, mode: 0o700 });
  const file = path.join(dir(home, key), `run-${runId}.ndjson`);
  const handle = await open(file, 'a', 0o600);
  try {
    await handle.appendFile(outcomes.map((o) => JSON.stringify(o)).join('\n') + '\n');
    await handle.sync();
  } finally {
    await handle.close();
  }
  return file;
}

/** Journals not yet applied, including ones a command claimed and then died holding. */
export async function pendingJournals(home: string, key: string): Promise<string[]> {
  let names: string[];
  try {
    names = await readdir(dir(home, key));
  } catch {
    return [];
  }
  return names.filter((f) => {
    const m = /^run-\d+\.ndjson(?:\.applying-(\d+))?$/.exec(f);
    return m !== null && (m[1] === undefined || !pidAlive(Number(m[1])));
  });
}

/**
 * Applies every pending journal of this database. A file is claimed by renaming it first, so
 * two commands starting together never apply one twice nor trip over each other. A last line
 * cut short (the process died mid-append, before the fsync) is set aside and reported: the
 * whole lines before it are applied.
 */
export async function applyJournals(
  db: Db, home: string,
): Promise<{ applied: number; runs: string[]; torn: number }> {
  const key = await databaseKey(db);
  const files = await pendingJournals(home, key);
  let applied = 0;
  let torn = 0;
  const runs: string[] = [];
  for (const name of files) {
    const found = path.join(dir(home, key), name);
    const file = found.replace(/\.applying-\d+$/, '');
    const claimed = `${file}.applying-${process.pid}`;
    try {
      await rename(found, claimed);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') continue;
      throw err;
    }
    const runId = /^run-(\d+)/.exec(name)![1]!;
    const outcomes: Outcome[] = [];
    for (const line of (await readFile(claimed, 'utf8')).split('\n')) {
      if (!line) continue;
      try {
        outcomes.push(JSON.parse(line) as Outcome);
      } catch {
        torn++;
      }
    }
    applied += await applyJournalOutcomes(db, runId, outcomes);
    runs.push(runId);
    // Kept, renamed, for the operator's records; never applied twice.
    await rename(claimed, `${file}.applied-${Date.now()}`);
  }
  return { applied, runs, torn };
}
