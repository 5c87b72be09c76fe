import { spawn } from 'node:child_process';
import { chmod, mkdtemp, readFile, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { connect, type Db } from '../src/db/connect.js';
import { startSandbox, type Sandbox, type SandboxMessage } from '../src/sandbox/server.js';
import { campaignStatus, phoneFor, seedTestCampaign, statusCounts } from './helpers/campaign.js';
import { BIN, cli, runCli, tempHome, type CliRun } from './helpers/cli.js';
import type { TestDatabase } from './helpers/db.js';
import { Harness } from './helpers/harness.js';

/**
 * Shutdown through the real CLI: the first SIGINT/SIGTERM stops intake and drains what is in
 * flight, the second aborts it. The sandbox answers slowly so that the signal lands while a known
 * number of requests are open, and the verdict is read from the database and the sandbox.
 */

const h = new Harness();
const children: CliRun[] = [];

afterEach(async () => {
  // A CLI left running by a failed assertion must not outlive its test.
  for (const c of children.splice(0)) {
    if (c.child.exitCode === null && c.child.signalCode === null) c.child.kill('SIGKILL');
  }
  await h.cleanup();
});

function database(): Promise<TestDatabase> {
  return h.database();
}

function sandbox(o: Parameters<typeof startSandbox>[0] = {}): Promise<Sandbox> {
  return h.sandbox(o);
}

function envFor(url: string, sb: Sandbox): Record<string, string> {
  return {
    DATABASE_URL: url, WHATSAPP_API_URL: sb.url, WHATSAPP_ACCESS_TOKEN: 'sandbox-token',
    WACAMP_HOME: tempHome(),
  };
}

function start(args: string[], env: Record<string, string>): CliRun {
  const run = runCli(args, env);
  children.push(run);
  return run;
}

/** The sandbox's clock and the CLI's trace both count epoch milliseconds. */
const epochNow = () => performance.timeOrigin + performance.now();

async function until(what: string, ok: () => boolean, timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!ok()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

interface Row { phone_e164: string; status: string; message_id: string | null; run_id: string }

async function rows(db: Db, campaignId: string): Promise<Row[]> {
  return db<Row[]>`SELECT phone_e164, status, message_id, run_id::text FROM campaign_recipients
                    WHERE campaign_id = ${campaignId} ORDER BY id`;
}

function expectNoPhoneTwice(accepted: SandboxMessage[]): void {
  const phones = accepted.map((m) => m.to);
  expect(new Set(phones).size).toBe(phones.length);
}

async function scratchFile(name: string): Promise<string> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'wacamp-signals-'));
  h.defer(() => rm(dir, { recursive: true, force: true }));
  return path.join(dir, name);
}

describe('the first signal drains', () => {
  it('SIGTERM with 5 requests in flight: none starts after it, the 5 end sent, the rest ' +
    'pending, exit 143; send again finishes and nobody gets two', async () => {
    const t = await database();
    const { campaignId } = await seedTestCampaign(t.db, { n: 40 });
    const slow = await sandbox({ latencyMs: 3000 });
    const trace = await scratchFile('starts.json');
    const run = start(['send', campaignId, '--workers', '5', '--rate', 'unlimited',
      '--trace-starts', trace], envFor(t.url, slow));

    await until('5 requests in flight', () => slow.requests() >= 5);
    const signalAt = epochNow();
    run.child.kill('SIGTERM');
    expect(await run.exited, run.stderr()).toBe(143);
    const drainedIn = epochNow() - signalAt;

    // Nothing started after the signal, by wacamp's own clock and by the sandbox's.
    const starts = JSON.parse(await readFile(trace, 'utf8')) as number[];
    expect(starts).toHaveLength(5);
    expect(Math.max(...starts)).toBeLessThan(signalAt);
    expect(slow.requests()).toBe(5);
    // The 5 were waited for (3 s answers), not cut off.
    expect(drainedIn).toBeGreaterThan(1000);

    const after = await rows(t.db, campaignId);
    expect(await statusCounts(t.db, campaignId)).toEqual({ sent: 5, pending: 35 });
    const byWamid = new Map(after.filter((r) => r.message_id).map((r) => [r.message_id, r]));
    for (const m of slow.messages()) {
      expect(byWamid.get(m.wamid)).toMatchObject({ status: 'sent', phone_e164: m.to });
    }
    expect(await campaignStatus(t.db, campaignId)).toBe('paused');
    const [c] = await t.db`SELECT pause_reason FROM campaigns WHERE id = ${campaignId}`;
    expect(c!.pause_reason).toBe('interrupted');
    expect(run.stderr()).toMatch(/SIGTERM: no new requests; draining/);

    const fast = await sandbox();
    const again = await cli(['send', campaignId, '--workers', '5', '--rate', 'unlimited'],
      envFor(t.url, fast));
    expect(again.code, again.stderr).toBe(0);
    expect(await statusCounts(t.db, campaignId)).toEqual({ sent: 40 });
    expect(await campaignStatus(t.db, campaignId)).toBe('completed');
    const everyMessage = [...slow.messages(), ...fast.messages()];
    expect(everyMessage).toHaveLength(40);
    expectNoPhoneTwice(everyMessage);
  });

  it('SIGINT drains the same way and exits 130, which outranks --strict\'s 4', async () => {
    const t = await database();
    const { campaignId } = await seedTestCampaign(t.db, { recipients: [
      ...Array.from({ length: 20 }, (_, i) => ({ phone: phoneFor(i), variables: ['A', `#${i}`] })),
      { phone: 'no phone', variables: ['B', '#x'] }] });
    const sb = await sandbox({ latencyMs: 1000 });
    const run = start(['send', campaignId, '--workers', '3', '--rate', 'unlimited', '--strict'],
      envFor(t.url, sb));
    await until('3 requests in flight', () => sb.requests() >= 3);
    run.child.kill('SIGINT');
    expect(await run.exited, run.stderr()).toBe(130);
    expect(sb.requests()).toBe(3);
    expect(await statusCounts(t.db, campaignId)).toEqual({ sent: 3, failed: 1, pending: 17 });
    expect(await campaignStatus(t.db, campaignId)).toBe('paused');
  });

  it('a signal during a --json run still prints one JSON summary with the database\'s ' +
    'counts', async () => {
    const t = await database();
    const { campaignId } = await seedTestCampaign(t.db, { n: 20 });
    const sb = await sandbox({ latencyMs: 800 });
    const run = start(['send', campaignId, '--workers', '2', '--rate', 'unlimited', '--json'],
      envFor(t.url, sb));
    await until('2 requests in flight', () => sb.requests() >= 2);
    run.child.kill('SIGINT');
    expect(await run.exited).toBe(130);
    const doc = JSON.parse(run.stdout()) as { status: string; counts: Record<string, number>;
      exit_code: number };
    expect(doc.status).toBe('paused');
    expect(doc.exit_code).toBe(130);
    expect(doc.counts).toEqual(await statusCounts(t.db, campaignId));
    expect(doc.counts).toEqual({ sent: 2, pending: 18 });
  });
});

describe('the drain has a deadline', () => {
  it('--drain-timeout 500ms: requests still open then are aborted and recorded unknown',
    async () => {
      const t = await database();
      const { campaignId } = await seedTestCampaign(t.db, { n: 10 });
      const sb = await sandbox({ latencyMs: 15_000 });
      const run = start(['send', campaignId, '--workers', '3', '--rate', 'unlimited',
        '--drain-timeout', '500ms'], envFor(t.url, sb));
      await until('3 requests in flight', () => sb.requests() >= 3);
      const signalAt = epochNow();
      run.child.kill('SIGTERM');
      expect(await run.exited, run.stderr()).toBe(143);
      const took = epochNow() - signalAt;
      // It waited for the deadline, and not for the 15 s answers.
      expect(took).toBeGreaterThan(400);
      expect(took).toBeLessThan(10_000);
      expect(await statusCounts(t.db, campaignId)).toEqual({ unknown: 3, pending: 7 });
      const unknown = await t.db`SELECT error_code FROM campaign_recipients
                                  WHERE campaign_id = ${campaignId} AND status = 'unknown'`;
      expect(unknown.every((r) => r.error_code !== null)).toBe(true);
    });
});

describe('a second signal aborts', () => {
  it('aborts the requests in flight at once and records them unknown, never re-sent',
    async () => {
      const t = await database();
      const { campaignId } = await seedTestCampaign(t.db, { n: 30 });
      const slow = await sandbox({ latencyMs: 15_000 });
      const run = start(['send', campaignId, '--workers', '5', '--rate', 'unlimited'],
        envFor(t.url, slow));
      await until('5 requests in flight', () => slow.requests() >= 5);
      const signalAt = epochNow();
      run.child.kill('SIGTERM');
      await run.waitFor(/draining/);
      run.child.kill('SIGTERM');
      expect(await run.exited, run.stderr()).toBe(143);
      // Well before the 15 s answers would have come, and well before the 30 s drain timeout.
      expect(epochNow() - signalAt).toBeLessThan(10_000);
      expect(slow.requests()).toBe(5);
      expect(await statusCounts(t.db, campaignId)).toEqual({ unknown: 5, pending: 25 });
      expect(await campaignStatus(t.db, campaignId)).toBe('paused');
      expect(run.stderr()).toMatch(/again: aborting/);

      // unknown is never retried automatically: the next send leaves those five alone.
      const fast = await sandbox();
      const again = await cli(['send', campaignId, '--rate', 'unlimited'], envFor(t.url, fast));
      expect(again.code, again.stderr).toBe(0);
      expect(await statusCounts(t.db, campaignId)).toEqual({ unknown: 5, sent: 25 });
      expect(await campaignStatus(t.db, campaignId)).toBe('completed');
      const unknownPhones = new Set((await rows(t.db, campaignId))
        .filter((r) => r.status === 'unknown').map((r) => r.phone_e164));
      expect(fast.messages().some((m) => unknownPhones.has(m.to))).toBe(false);
      expectNoPhoneTwice([...slow.messages(), ...fast.messages()]);
      expect(again.stderr).toMatch(/5 unknown = the request may have left/);
    });
});

describe('Ctrl-C in the embedded mode', () => {
  let home: string | undefined;

  afterAll(async () => {
    if (!home) return;
    // The server outlives commands on purpose: stop it explicitly, then drop its folder.
    const stopped = await cli(['db', 'stop', '--json'], { WACAMP_HOME: home });
    await rm(path.dirname(home), { recursive: true, force: true });
    expect(JSON.parse(stopped.stdout)).toEqual({ stopped: true });
  });

  /** A home the `postgres` user can enter when we run as root (the temp folder is 0700). */
  async function embeddedHome(): Promise<string> {
    const parent = await mkdtemp(path.join(os.tmpdir(), 'wacamp-signals-home-'));
    await chmod(parent, 0o755);
    return path.join(parent, 'home');
  }

  it('drains, and the embedded server is still running for the next command', async () => {
    home = await embeddedHome();
    const env = { WACAMP_HOME: home };
    const started = await cli(['db', 'start', '--json'], env);
    expect(started.code, started.stderr).toBe(0);
    const info = JSON.parse(started.stdout) as { url: string; pid: number };
    const migrated = await cli(['migrate', '--embedded'], env);
    expect(migrated.code, migrated.stderr).toBe(0);

    const db = connect(info.url, { max: 2 });
    h.defer(() => db.end());
    const { campaignId } = await seedTestCampaign(db, { n: 25 });
    const sb = await sandbox({ latencyMs: 1500 });

    // Its own process group, so the SIGINT below reaches it the way a terminal's Ctrl-C does:
    // to every process in the foreground group at once.
    const child = spawn(process.execPath, [BIN, 'send', campaignId, '--embedded',
      '--workers', '4', '--rate', 'unlimited'], {
      env: { PATH: process.env.PATH, HOME: process.env.HOME, NO_COLOR: '1', ...env,
        WHATSAPP_API_URL: sb.url, WHATSAPP_ACCESS_TOKEN: 'sandbox-token' },
      stdio: ['ignore', 'pipe', 'pipe'], detached: true,
    });
    let stderr = '';
    child.stderr.on('data', (b: Buffer) => { stderr += b; });
    const exited = new Promise<number | null>((resolve) => child.on('exit', resolve));
    h.defer(async () => {
      const running = child.exitCode === null && child.signalCode === null;
      if (running) process.kill(-child.pid!, 'SIGKILL');
    });

    await until('4 requests in flight', () => sb.requests() >= 4);
    process.kill(-child.pid!, 'SIGINT');
    expect(await exited, stderr).toBe(130);
    expect(stderr).toMatch(/using the embedded PostgreSQL/);
    expect(sb.requests()).toBe(4);
    expect(await statusCounts(db, campaignId)).toEqual({ sent: 4, pending: 21 });

    const status = await cli(['db', 'status', '--json'], env);
    expect(status.code, status.stderr).toBe(0);
    expect(JSON.parse(status.stdout)).toMatchObject({ running: true, pid: info.pid });

    const again = await cli(['send', campaignId, '--embedded', '--rate', 'unlimited'],
      { ...env, WHATSAPP_API_URL: sb.url, WHATSAPP_ACCESS_TOKEN: 'sandbox-token' });
    expect(again.code, again.stderr).toBe(0);
    expect(await statusCounts(db, campaignId)).toEqual({ sent: 25 });
    expectNoPhoneTwice(sb.messages());
  });
});
