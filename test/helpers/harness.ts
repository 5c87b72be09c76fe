import { readdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import { expect } from 'vitest';
import type { Db } from '../../src/db/connect.js';
import { startSandbox, type Sandbox, type SandboxMessage } from '../../src/sandbox/server.js';
import { runCli, tempHome, type CliRun } from './cli.js';
import { createTestDatabase, type TestDatabase } from './db.js';

/**
 * What the crash-safety tests share: resources undone after each test (CLIs still running are
 * killed first, so none outlives its test), the CLI's environment, and the verdicts read back
 * from the database and the sandbox.
 */
export class Harness {
  private readonly undo: (() => Promise<unknown>)[] = [];
  private readonly children: CliRun[] = [];

  async cleanup(): Promise<void> {
    for (const c of this.children.splice(0)) {
      if (c.child.exitCode === null && c.child.signalCode === null) {
        c.child.kill('SIGCONT');
        c.child.kill('SIGKILL');
        await c.exited;
      }
    }
    for (const step of this.undo.splice(0).reverse()) await step();
  }

  defer(step: () => Promise<unknown>): void {
    this.undo.push(step);
  }

  async database(): Promise<TestDatabase> {
    const t = await createTestDatabase();
    this.defer(() => t.drop());
    return t;
  }

  async sandbox(o: Parameters<typeof startSandbox>[0] = {}): Promise<Sandbox> {
    const sb = await startSandbox(o);
    this.defer(() => sb.close());
    return sb;
  }

  start(args: string[], env: Record<string, string>): CliRun {
    const run = runCli(args, env);
    this.children.push(run);
    return run;
  }
}

/** One WACAMP_HOME per test: every command of a test must share it to see its journals. */
export function envFor(
  url: string, sb: Sandbox, home = tempHome(),
): Record<string, string> {
  return {
    DATABASE_URL: url, WHATSAPP_API_URL: sb.url, WHATSAPP_ACCESS_TOKEN: 'sandbox-token',
    WACAMP_HOME: home,
  };
}

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

export async function until(
  what: string, ok: () => boolean | Promise<boolean>, timeoutMs = 30_000,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await ok())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(10);
  }
}

/** kill -9, and wait until the process is reaped (a zombie still answers kill(pid, 0)). */
export async function kill9(run: CliRun): Promise<number> {
  run.child.kill('SIGKILL');
  return run.exited;
}

/**
 * Waits until no other session is running a statement in this database. A statement a killed
 * process sent just before dying still runs, and commits, after the process is gone; counts
 * read before it ends would miss its writes.
 */
export async function quiesce(db: Db, timeoutMs = 5000): Promise<void> {
  await until('statements of a killed process to end', async () => {
    const [r] = await db<{ n: number }[]>`
      SELECT count(*)::int AS n FROM pg_stat_activity
       WHERE datname = current_database() AND pid <> pg_backend_pid() AND state <> 'idle'`;
    return r!.n === 0;
  }, timeoutMs);
}

export interface RecipientRow {
  id: string; phone_e164: string; status: string; message_id: string | null;
  run_id: string | null; error_code: string | null;
}

export async function recipientRows(db: Db, campaignId: string): Promise<RecipientRow[]> {
  return db<RecipientRow[]>`
    SELECT id::text, phone_e164, status, message_id, run_id::text, error_code
      FROM campaign_recipients WHERE campaign_id = ${campaignId} ORDER BY id`;
}

export interface RunRow {
  id: string; pid: number; outcome: string | null; reason: string | null; ended: boolean;
}

export async function runRows(db: Db, campaignId: string): Promise<RunRow[]> {
  return db<RunRow[]>`
    SELECT id::text, pid, outcome, reason, ended_at IS NOT NULL AS ended FROM wacamp_runs
     WHERE campaign_id = ${campaignId} ORDER BY id`;
}

/**
 * The run a CLI process registered, once it has. Pids wrap around quickly on a busy machine, so
 * a caller that starts many processes passes the highest run id known before this one started.
 */
export async function runOf(
  db: Db, campaignId: string, pid: number, afterRunId = '0',
): Promise<string | null> {
  const [r] = await db<{ id: string }[]>`
    SELECT id::text FROM wacamp_runs WHERE campaign_id = ${campaignId} AND pid = ${pid}
       AND id > ${afterRunId}::bigint
     ORDER BY id DESC LIMIT 1`;
  return r?.id ?? null;
}

/** The highest run id so far ('0' when none). */
export async function lastRunId(db: Db): Promise<string> {
  const [r] = await db<{ id: string }[]>`SELECT coalesce(max(id), 0)::text AS id FROM wacamp_runs`;
  return r!.id;
}

export function phonesTwice(messages: readonly SandboxMessage[]): string[] {
  const seen = new Set<string>();
  const twice = new Set<string>();
  for (const m of messages) {
    if (seen.has(m.to)) twice.add(m.to);
    seen.add(m.to);
  }
  return [...twice];
}

/**
 * Every accepted message is accounted for in the database: its row is `sent` with the same
 * wamid, or `unknown` (the answer was lost with the process); and every `sent` row's wamid is one
 * the sandbox handed out for that phone. A row written over by another run fails one of these.
 */
export function expectLogMatchesRows(
  messages: readonly SandboxMessage[], rows: readonly RecipientRow[],
): void {
  const byPhone = new Map(rows.map((r) => [r.phone_e164, r]));
  const wamidOf = new Map(messages.map((m) => [m.to, m.wamid]));
  const strays = messages.filter((m) => {
    const r = byPhone.get(m.to);
    return !r || !(r.status === 'unknown' || (r.status === 'sent' && r.message_id === m.wamid));
  });
  expect(strays.map((m) => ({ to: m.to, row: byPhone.get(m.to) }))).toEqual([]);
  const wrongWamid = rows.filter((r) => r.status === 'sent' && wamidOf.get(r.phone_e164) !==
    r.message_id);
  expect(wrongWamid).toEqual([]);
}

/** Most entries in any window [t, t + windowMs), t ranging over the entries themselves. */
export function maxInWindow(times: readonly number[], windowMs = 1000): number {
  const sorted = [...times].sort((a, b) => a - b);
  let best = 0;
  let end = 0;
  for (let i = 0; i < sorted.length; i++) {
    while (end < sorted.length && sorted[end]! < sorted[i]! + windowMs) end++;
    best = Math.max(best, end - i);
  }
  return best;
}

/** The journal files a home holds, whatever database key they sit under. */
export async function journalFiles(home: string): Promise<string[]> {
  const root = path.join(home, 'journal');
  const found: string[] = [];
  for (const key of await readdir(root).catch(() => [] as string[])) {
    for (const f of await readdir(path.join(root, key))) found.push(path.join(root, key, f));
  }
  return found.sort();
}

export async function readNdjson<T>(file: string): Promise<T[]> {
  return (await readFile(file, 'utf8')).split('\n').filter(Boolean).map((l) => JSON.parse(l) as T);
}
