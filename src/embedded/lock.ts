import { open, readFile, stat, unlink } from 'node:fs/promises';
import { randomBytes } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { WacampError } from '../errors.js';

export interface LockOptions {
  /** How long to wait for another holder, in milliseconds (default 120 000: initdb is slow). */
  waitMs?: number;
  /** A lock file older than this is stale whatever its pid says (default 600 000 ms). */
  staleAfterMs?: number;
}

const POLL_MS = 50;

/**
 * Runs `fn` while holding an exclusive lock file, so two wacamp commands never initdb or start
 * the same server at once. The file holds "<pid> <token>": a dead pid marks it stale, and the
 * token lets the holder remove only its own lock.
 */
export async function withFileLock<T>(
  lockPath: string,
  fn: () => Promise<T>,
  options: LockOptions = {},
): Promise<T> {
  const token = `${process.pid} ${randomBytes(8).toString('hex')}`;
  await acquire(lockPath, token, options);
  try {
    return await fn();
  } finally {
    await release(lockPath, token);
  }
}

async function acquire(lockPath: string, token: string, options: LockOptions): Promise<void> {
  const deadline = Date.now() + (options.waitMs ?? 120_000);
  for (;;) {
    try {
      const handle = await open(lockPath, 'wx', 0o600);
      await handle.writeFile(token);
      await handle.close();
      return;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    }

    const holder = await readHolder(lockPath);
    if (holder && isStale(holder, options.staleAfterMs ?? 600_000)) {
      await removeIfUnchanged(lockPath, holder.text);
      continue;
    }
    if (Date.now() > deadline) {
      throw new WacampError(
        'embedded_lock',
        `another process (pid ${holder?.pid ?? '?'}) holds ${lockPath}; ` +
          'wait for it, or remove the file if no wacamp command is running',
      );
    }
    await sleep(POLL_MS);
  }
}

interface Holder {
  text: string;
  pid: number;
  ageMs: number;
}

/** null when the lock vanished between our attempt and this read. */
async function readHolder(lockPath: string): Promise<Holder | null> {
  try {
    const [text, info] = await Promise.all([readFile(lockPath, 'utf8'), stat(lockPath)]);
    return { text, pid: Number.parseInt(text, 10), ageMs: Date.now() - info.mtimeMs };
  } catch (err) {
    ignoreMissing(err);
    return null;
  }
}

function isStale(holder: Holder, staleAfterMs: number): boolean {
  if (holder.ageMs > staleAfterMs) return true;
  // An empty file is a holder caught between creating and writing it; give it a moment.
  if (!Number.isInteger(holder.pid)) return holder.ageMs > 5_000;
  return !isAlive(holder.pid);
}

/** Whether a process exists; EPERM means it does but belongs to another user. */
export function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

async function release(lockPath: string, token: string): Promise<void> {
  await removeIfUnchanged(lockPath, token);
}

/**
 * Removes the lock only if it still holds `expected`. Two waiters may judge the same stale
 * lock at once; the re-read narrows, though cannot close, the window in which the slower one
 * removes the lock the faster one has just taken.
 */
async function removeIfUnchanged(lockPath: string, expected: string): Promise<void> {
  const text = await readFile(lockPath, 'utf8').catch((err: unknown) => {
    ignoreMissing(err);
    return null;
  });
  if (text === expected) await unlink(lockPath).catch(ignoreMissing);
}

function ignoreMissing(err: unknown): void {
  if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
}
