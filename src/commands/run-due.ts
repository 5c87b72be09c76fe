import { connect, type Db } from '../db/connect.js';
import { dueCampaigns, lockDueCampaign, nextScheduled } from '../db/schedule.js';
import { EXIT, WacampError, worstExit } from '../errors.js';
import type { Logger } from '../output/logger.js';
import { writeMetricsFile } from '../output/metrics.js';
import { sendJson, sendSummary } from '../output/summary.js';
import type { StopRequest } from '../send/decide.js';
import type { SendDeps, SendResult } from '../send/run-send.js';
import { formatDuration, parseDurationMs, parsePositiveInt } from '../units.js';
import { makeContext, openDatabase, type Context } from './context.js';
import { sendOptions, sendWith, type SendFlags } from './send.js';
import { writeStdout } from './stdout.js';

/**
 * `wacamp run-due`: what cron runs every few minutes. Sends every due campaign (see DUE in
 * src/db/schedule.ts), oldest first, `--campaigns` at a time. Each campaign is held by a
 * session advisory lock while this process works on it, so an overlapping tick skips it; a
 * campaign someone runs by hand is skipped through its live run. `--max-duration` stops the
 * campaigns the way Ctrl-C does, but they close `paused` (time_limit) and the next tick resumes
 * them. The exit code is the worst of the campaigns' by the usual precedence.
 */
export interface RunDueFlags extends SendFlags { maxDuration?: string; campaigns: string }

type Interrupt = SendDeps['interrupt'];

interface CampaignRun {
  id: string;
  exitCode: number;
  result?: SendResult;
  error?: { code: string; message: string };
  /** A live run of someone else's held it: skipped, not a failure. */
  held?: boolean;
}

// sendOptions needs an id to check the flags before any campaign is known.
const PROBE_ID = '00000000-0000-0000-0000-000000000000';

export async function runDueCommand(f: RunDueFlags): Promise<number> {
  const ctx = makeContext(f);
  const parallel = parsePositiveInt('--campaigns', f.campaigns, 100);
  const maxMs = f.maxDuration ? parseDurationMs('--max-duration', f.maxDuration) : null;
  sendOptions(PROBE_ID, f);

  const opened = await openDatabase(ctx, f, { recover: true });
  await opened.db.end({ timeout: 5 });
  // One connection per campaign holds its run-due lock; one more lists what is due.
  const db = connect(opened.url, { max: parallel + 1 });
  const stops = new Stops(ctx.log);
  const untrap = stops.trap();
  const timer = maxMs === null ? null : setTimeout(() => stops.timeLimit(
    `--max-duration ${f.maxDuration} reached`), maxMs);
  try {
    const began = Date.now();
    const { runs, skipped } = await runAll(ctx, f, db, opened.url, parallel, stops);
    return await finish(ctx, f, db, { runs, skipped, stops, elapsedMs: Date.now() - began });
  } finally {
    if (timer) clearTimeout(timer);
    untrap();
    await db.end({ timeout: 5 });
  }
}

/** Fills `parallel` slots with due campaigns until none is left or a stop is requested. */
async function runAll(
  ctx: Context, f: RunDueFlags, db: Db, url: string, parallel: number, stops: Stops,
): Promise<{ runs: CampaignRun[]; skipped: string[] }> {
  const tried = new Set<string>();
  const skipped: string[] = [];
  const runs: CampaignRun[] = [];
  // Slots pick one at a time, so two slots never race each other for the same lock.
  let picking: Promise<unknown> = Promise.resolve();
  const pick = () => {
    const next = picking.then(() => pickNext(db, tried, skipped));
    picking = next.then(() => undefined, () => undefined);
    return next;
  };
  const slot = async () => {
    while (!stops.request) {
      let next: Awaited<ReturnType<typeof pickNext>>;
      try {
        next = await pick();
      } catch (err) {
        runs.push(failedRun('(listing)', err, ctx.log));
        return;
      }
      if (!next) return;
      // Stopped while this slot was picking: the campaign is left for the next tick.
      if (stops.request) return await release(next, ctx.log);
      try {
        runs.push(await runOne(ctx, f, url, next.id, stops, parallel));
      } finally {
        await release(next, ctx.log);
      }
    }
  };
  await Promise.all(Array.from({ length: parallel }, slot));
  return { runs, skipped };
}

/** A failed unlock means the lock's connection is gone, and the session lock with it. */
async function release(
  held: { id: string; release: () => Promise<void> }, log: Logger,
): Promise<void> {
  try {
    await held.release();
  } catch (err) {
    log.warn('unlock_failed', `releasing the run-due lock of ${held.id}: ` +
      `${(err as Error).message}; it went with its connection`);
  }
}

/** The oldest due campaign this process has not tried and nobody else holds. */
async function pickNext(
  db: Db, tried: Set<string>, skipped: string[],
): Promise<{ id: string; release: () => Promise<void> } | null> {
  for (;;) {
    const due = await dueCampaigns(db, [...tried], 10);
    if (due.length === 0) return null;
    for (const c of due) {
      tried.add(c.id);
      const release = await lockDueCampaign(db, c.id);
      if (release) return { id: c.id, release };
      skipped.push(c.id);
    }
  }
}

async function runOne(
  ctx: Context, f: RunDueFlags, url: string, id: string, stops: Stops, parallel: number,
): Promise<CampaignRun> {
  const log = ctx.log.child({ campaign: id.slice(0, 8) });
  // Several campaigns at once share stderr: plain lines, never progress bars over each other.
  const campaignCtx: Context = { ...ctx, log, interactive: ctx.interactive && parallel === 1 };
  const interrupt: Interrupt = {};
  stops.add(interrupt);
  try {
    log.info('campaign_due', `sending due campaign ${id}`);
    // `now`: the database's clock already found it due (scheduled_at, paused_until); this
    // machine's clock, a second behind, must not refuse it again as "not yet".
    const o = { ...sendOptions(id, f), runDue: true, now: true };
    const result = await sendWith(campaignCtx, { ...f, databaseUrl: url }, o, interrupt);
    const bad = (result.counts.failed ?? 0) + (result.counts.unknown ?? 0);
    const exitCode = worstExit([result.exitCode, f.strict && bad > 0 ? EXIT.strict : EXIT.ok]);
    if (!ctx.json) {
      for (const line of sendSummary(result, ctx.log.format === 'pretty')) {
        log.info('summary', line, { exit_code: exitCode });
      }
    }
    return { id, exitCode, result };
  } catch (err) {
    if (err instanceof WacampError && err.exitCode === EXIT.liveRun) {
      log.debug('campaign_held', `campaign ${id} is held by a live run; skipped`);
      return { id, exitCode: EXIT.ok, held: true };
    }
    return failedRun(id, err, log);
  } finally {
    stops.remove(interrupt);
  }
}

function failedRun(id: string, err: unknown, log: Logger): CampaignRun {
  const known = err instanceof WacampError;
  const message = known ? err.message : `unexpected error: ${(err as Error)?.stack ?? err}`;
  log.error('campaign_error', `campaign ${id}: ${message}`);
  return { id, exitCode: known ? err.exitCode : EXIT.error,
    error: { code: known ? err.code : 'internal', message } };
}

interface Outcome { runs: CampaignRun[]; skipped: string[]; stops: Stops; elapsedMs: number }

async function finish(ctx: Context, f: RunDueFlags, db: Db, out: Outcome): Promise<number> {
  const ran = out.runs.filter((r) => !r.held);
  const held = [...out.skipped, ...out.runs.filter((r) => r.held).map((r) => r.id)];
  const codes = ran.map((r) => r.exitCode);
  if (out.stops.signalExit !== null) codes.push(out.stops.signalExit);
  const exitCode = worstExit(codes);
  if (f.metricsFile) {
    await writeMetricsFile(f.metricsFile, ran.flatMap((r) =>
      r.result ? [{ result: r.result, exitCode: r.exitCode }] : []));
  }
  if (ctx.json) {
    writeStdout(JSON.stringify({
      exit_code: exitCode, stopped: out.stops.request, held_elsewhere: held,
      campaigns: ran.map((r) => r.result ? { ...sendJson(r.result), exit_code: r.exitCode }
        : { campaign_id: r.id, error: r.error, exit_code: r.exitCode }),
    }) + '\n');
  } else if (ran.length === 0) {
    ctx.log.info('nothing_due', await nothingDue(db, held.length));
  } else {
    const tally = new Map<string, number>();
    for (const r of ran) {
      const s = r.result ? r.result.campaignStatus : `error (${r.error?.code ?? '?'})`;
      tally.set(s, (tally.get(s) ?? 0) + 1);
    }
    ctx.log.info('run_due_done', `run-due: ${ran.length} campaign(s) in ` +
      `${formatDuration(out.elapsedMs)}: ${[...tally].map(([s, n]) => `${n} ${s}`).join(', ')}` +
      (held.length ? `; ${held.length} held by other runs` : '') + `; exit ${exitCode}`);
  }
  return exitCode;
}

async function nothingDue(db: Db, held: number): Promise<string> {
  const later = await nextScheduled(db);
  return 'nothing due' +
    (held ? `: ${held} due campaign(s) are being sent by other runs` : '') +
    (later.waiting ? `; ${later.waiting} scheduled later, the next at ` +
      `${later.next?.toISOString() ?? '?'}` : '');
}

/**
 * Stops every campaign in progress the same way. A signal drains like `send` does (the second
 * one aborts what is in flight); the time limit drains and leaves the campaigns resumable.
 */
class Stops {
  private readonly running = new Set<Interrupt>();
  request: StopRequest | null = null;
  signalExit: number | null = null;

  constructor(private readonly log: Logger) {}

  add(i: Interrupt): void {
    this.running.add(i);
    if (this.request) i.stop ??= this.request;
  }

  remove(i: Interrupt): void {
    this.running.delete(i);
  }

  timeLimit(detail: string): void {
    if (this.request) return;
    this.request = { kind: 'time_limit', detail };
    this.log.info('time_limit', `${detail}: no new requests; draining what is in flight`);
    for (const i of this.running) this.apply(i, false);
  }

  trap(): () => void {
    const handler = (signal: NodeJS.Signals) => {
      const first = this.signalExit === null;
      this.signalExit ??= signal === 'SIGTERM' ? EXIT.sigterm : EXIT.sigint;
      this.request ??= { kind: 'signal', detail: `received ${signal}` };
      this.log.warn('signal', first ? `${signal}: no new requests; draining what is in flight ` +
        '(send the signal again to abort it)' : `${signal} again: aborting requests in flight`);
      for (const i of this.running) this.apply(i, !first);
    };
    process.on('SIGINT', handler);
    process.on('SIGTERM', handler);
    return () => {
      process.off('SIGINT', handler);
      process.off('SIGTERM', handler);
    };
  }

  private apply(i: Interrupt, force: boolean): void {
    i.stop ??= this.request!;
    i.onStop?.(i.stop, force);
  }
}
