import { mkdtemp, readFile, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import type { Db } from '../src/db/connect.js';
import { campaignStatus, seedTestCampaign, statusCounts } from './helpers/campaign.js';
import { cli, tempHome } from './helpers/cli.js';
import {
  envFor, expectLogMatchesRows, Harness, journalFiles, phonesTwice, recipientRows, runOf,
  runRows, sleep, until, type RecipientRow,
} from './helpers/harness.js';

/**
 * A run that lost its lease must act on nothing: frozen past its lease (SIGSTOP) while another
 * run takes over, or fenced out by `reset --force`, it writes nothing over rows it no longer owns
 * and starts no request once it could know. What it learnt too late (answers to requests that
 * were in flight) goes to its journal, which the next command applies.
 */

const h = new Harness();
afterEach(() => h.cleanup());

/** The sandbox stamps arrivals with this clock; the CLI's --trace-starts uses epoch ms too. */
const epochNow = () => performance.timeOrigin + performance.now();

async function scratchFile(name: string): Promise<string> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'wacamp-fencing-'));
  h.defer(() => rm(dir, { recursive: true, force: true }));
  return path.join(dir, name);
}

/** Phones of rows a run has marked `sending` whose request the sandbox has not received. */
async function markedNotSent(db: Db, runId: string, received: string[]): Promise<string[]> {
  const got = new Set(received);
  const rows = await db<{ phone_e164: string }[]>`
    SELECT phone_e164 FROM campaign_recipients WHERE run_id = ${runId} AND status = 'sending'`;
  return rows.map((r) => r.phone_e164).filter((p) => !got.has(p));
}

const sentBy = (rows: RecipientRow[], runId: string) =>
  rows.filter((r) => r.run_id === runId && r.status === 'sent').length;

describe('a run frozen past its lease while another takes over', () => {
  it('writes nothing over the new run\'s rows, sends nothing it owns, exits 1; the campaign ' +
    'completes and its journal is applied', async () => {
    const t = await h.database();
    const { campaignId } = await seedTestCampaign(t.db, { n: 1500 });
    const sb = await h.sandbox({ latencyMs: [20, 60] });
    const env = envFor(t.url, sb, tempHome());
    const traceA = await scratchFile('a.json');
    const a = h.start(['send', campaignId, '--lease', '3s', '--workers', '10', '--rate', '150',
      '--trace-starts', traceA], env);
    await a.waitFor(/run \d+ started/);
    await until('A sent 150', () => sb.messages().length >= 150);

    a.child.kill('SIGSTOP');
    const stoppedAt = epochNow();
    const runA = (await runOf(t.db, campaignId, a.child.pid!))!;
    // Past the 3 s lease, counted from A's last heartbeat (≤ 0.5 s before the stop).
    await sleep(4500);

    const b = h.start(['send', campaignId, '--workers', '10', '--rate', '150'], env);
    await b.waitFor(/run \d+ started/);
    const runB = (await runOf(t.db, campaignId, b.child.pid!))!;
    expect(runB).not.toBe(runA);
    expect(b.stderr()).toMatch(new RegExp(`recovered dead run ${runA}`));
    await until('B sent 100', async () =>
      sentBy(await recipientRows(t.db, campaignId), runB) >= 100);

    a.child.kill('SIGCONT');
    const resumedAt = epochNow();
    expect(await a.exited, a.stderr()).toBe(1);
    expect(epochNow() - resumedAt).toBeLessThan(10_000);
    expect(a.stderr()).toMatch(/lease/);
    expect(await b.exited, b.stderr()).toBe(0);

    // A started nothing after the freeze: on waking, its lease was gone.
    const startsA = JSON.parse(await readFile(traceA, 'utf8')) as number[];
    expect(startsA.filter((s) => s > stoppedAt + 20)).toEqual([]);

    const rows = await recipientRows(t.db, campaignId);
    const messages = sb.messages();
    expect(phonesTwice(messages)).toEqual([]);
    expectLogMatchesRows(messages, rows);
    expect(await campaignStatus(t.db, campaignId)).toBe('completed');
    // Recovery recorded A as crashed; A did not overwrite that when it woke.
    const runs = await runRows(t.db, campaignId);
    expect(runs.find((r) => r.id === runA)).toMatchObject({ outcome: 'crashed',
      reason: 'heartbeat older than its lease' });

    // A's answers to what it had in flight are in its journal; the next command applies them.
    const unknownBefore = rows.filter((r) => r.status === 'unknown');
    expect(unknownBefore.length).toBeLessThanOrEqual(10);
    const journals = await journalFiles(env.WACAMP_HOME!);
    if (unknownBefore.length > 0) expect(journals).toHaveLength(1);
    const status = await cli(['status', campaignId], env);
    expect(status.code, status.stderr).toBe(0);
    const after = await recipientRows(t.db, campaignId);
    const accepted = new Set(messages.map((m) => m.to));
    const stillUnknown = after.filter((r) => r.status === 'unknown');
    // An unknown row left is one whose request never reached the sandbox.
    expect(stillUnknown.filter((r) => accepted.has(r.phone_e164))).toEqual([]);
    expectLogMatchesRows(messages, after);
    expect(after.filter((r) => r.run_id === runB))
      .toEqual(rows.filter((r) => r.run_id === runB));
  }, 90_000);

  // Regression (fixed in edf1813): a row marked `sending` just before the freeze sat on the
  // start queue's timer, which fired on waking and sent it on a lost lease. Recovery had made
  // the row unknown; had an operator re-queued it and another run sent it, that person would
  // have had it twice. A start now checks the lease first.
  it('starts no request once its lease is gone, not even one it had marked sending ' +
    'before it froze', async () => {
    const t = await h.database();
    const { campaignId } = await seedTestCampaign(t.db, { n: 1500 });
    const sb = await h.sandbox({ latencyMs: [20, 60] });
    const env = envFor(t.url, sb, tempHome());
    const a = h.start(['send', campaignId, '--lease', '3s', '--workers', '10', '--rate', '150'],
      env);
    await a.waitFor(/run \d+ started/);
    await until('A sent 50', () => sb.messages().length >= 50);
    const runA = (await runOf(t.db, campaignId, a.child.pid!))!;

    // Freeze A at a moment it holds a row marked `sending` whose request has not left; if it
    // holds none, thaw it (well within its lease) and try again.
    let queued: string[] = [];
    for (let attempt = 0; attempt < 40 && queued.length === 0; attempt++) {
      a.child.kill('SIGSTOP');
      await sleep(150);
      queued = await markedNotSent(t.db, runA, sb.messages().map((m) => m.to));
      if (queued.length === 0) {
        a.child.kill('SIGCONT');
        await sleep(20 + Math.random() * 150);
      }
    }
    expect(queued.length).toBeGreaterThan(0);

    await sleep(4500);
    const status = await cli(['status', campaignId], env);
    expect(status.stderr).toMatch(new RegExp(`recovered dead run ${runA}`));
    const rows = await recipientRows(t.db, campaignId);
    for (const phone of queued) {
      expect(rows.find((r) => r.phone_e164 === phone)?.status).toBe('unknown');
    }

    const resumedAt = epochNow();
    a.child.kill('SIGCONT');
    expect(await a.exited, a.stderr()).toBe(1);
    // No other run is sending: whatever arrives now left A on a lease it had lost.
    expect(sb.messages().filter((m) => m.at >= resumedAt).map((m) => m.to)).toEqual([]);
  }, 90_000);
});

describe('reset --force on a live run', () => {
  it('fences it: it writes nothing more, sends nothing that was pending, exits 1; its ' +
    'journal settles what was in flight', async () => {
    const t = await h.database();
    const { campaignId } = await seedTestCampaign(t.db, { n: 400 });
    const sb = await h.sandbox({ latencyMs: 150 });
    const env = envFor(t.url, sb, tempHome());
    const a = h.start(['send', campaignId, '--workers', '4', '--rate', '20'], env);
    await a.waitFor(/run \d+ started/);
    await until('20 sent', () => sb.messages().length >= 20);
    const runA = (await runOf(t.db, campaignId, a.child.pid!))!;

    const reset = await cli(['reset', campaignId, '--force'], env);
    expect(reset.code, reset.stderr).toBe(0);
    expect(reset.stderr).toMatch(new RegExp(`run ${runA} .*fenced out`));
    const fencedAt = epochNow();
    const snapshot = await recipientRows(t.db, campaignId);
    expect(snapshot.filter((r) => ['claimed', 'sending'].includes(r.status))).toEqual([]);

    expect(await a.exited, a.stderr()).toBe(1);
    // Nothing A did after the fence reached the database.
    expect(await recipientRows(t.db, campaignId)).toEqual(snapshot);
    expect((await runRows(t.db, campaignId)).find((r) => r.id === runA))
      .toMatchObject({ outcome: 'fenced' });
    // A sent nobody who was pending at the fence (it may have started one it had marked
    // `sending` within the last 50 ms: that row is unknown, never re-sent).
    const pendingAtFence = new Set(snapshot.filter((r) => r.status === 'pending')
      .map((r) => r.phone_e164));
    const late = sb.messages().filter((m) => m.at > fencedAt && pendingAtFence.has(m.to));
    expect(late).toEqual([]);

    // The next command applies A's journal: what was in flight at the fence ends sent.
    const unknownAtFence = snapshot.filter((r) => r.status === 'unknown').length;
    const status = await cli(['status', campaignId], env);
    expect(status.code, status.stderr).toBe(0);
    if (unknownAtFence > 0) expect(status.stderr).toMatch(/applied \d+ outcome/);
    expect((await statusCounts(t.db, campaignId)).unknown ?? 0).toBe(0);

    const rest = await cli(['send', campaignId, '--workers', '10', '--rate', 'unlimited'], env);
    expect(rest.code, rest.stderr).toBe(0);
    expect(await statusCounts(t.db, campaignId)).toEqual({ sent: 400 });
    expect(phonesTwice(sb.messages())).toEqual([]);
    expectLogMatchesRows(sb.messages(), await recipientRows(t.db, campaignId));
    expect(await campaignStatus(t.db, campaignId)).toBe('completed');
  }, 60_000);
});
