import os from 'node:os';
import { performance } from 'node:perf_hooks';
import type { CountryCode } from 'libphonenumber-js';
import type { ApiClient } from '../api/client.js';
import type { Db } from '../db/connect.js';
import { changeStatus, countRecipients, loadCampaign, type CampaignRow } from '../db/campaigns.js';
import {
  applyPreflight, claim, cycle, releaseLeftovers, sendableCount, unpreparedCount,
  type Outcome,
} from '../db/recipients.js';
import {
  finishRun, heartbeatWithStatus, liveRuns, lockCampaign, registerRun,
} from '../db/runs.js';
import { EXIT, WacampError, usageError } from '../errors.js';
import type { Logger } from '../output/logger.js';
import type { ProgressView } from '../output/progress.js';
import { parseTemplate, type TemplateSpec } from '../template/definition.js';
import { renderComponents } from '../template/render.js';
import { Engine, type EngineResult } from './engine.js';
import type { StopRequest } from './decide.js';
import { LocalPlanner } from './planner.js';
import { SharedPlanner } from './shared-planner.js';
import { ensureRateRow, readThrottle, reserveSlots, throttleShared } from '../db/rate.js';
import { checkRecipients, settlePreflight, type PreflightReport } from './preflight.js';
import { closingStatus, signalExit } from './closing.js';
import { listenCampaign } from './listen.js';
import { startProgress } from './progress-feed.js';
import { within } from '../deadline.js';

export interface SendOptions {
  campaignId: string;
  workers: number;
  ratePerSecond: number;
  drainTimeoutMs: number;
  leaseMs: number;
  maxAttempts: number;
  requestTimeoutMs: number;
  maxErrorRate: number;
  maxThrottleMs: number;
  defaultCountry?: CountryCode;
  dryRun: boolean;
  now: boolean;
  join: boolean;
  runDue: boolean;
}

export interface SendDeps {
  db: Db;
  log: Logger;
  progress: ProgressView;
  /** Builds the Cloud API client once the campaign's account and token are known. */
  api: (account: NonNullable<CampaignRow['account']>) => ApiClient;
  /** Set by the caller's signal handlers; checked between phases and handed to the engine. */
  interrupt: { stop?: StopRequest; onStop?: (req: StopRequest, force: boolean) => void };
  onStart?: (t: number) => void;
  /** Keeps outcomes the database could not take (the journal). */
  onUnwritten: (runId: string, outcomes: Outcome[]) => Promise<void>;
}

export interface SendResult {
  campaignId: string;
  campaignStatus: string;
  counts: Record<string, number>;
  run: { id: string | null; counts: Record<string, number>; stop: StopRequest | null };
  preflight: PreflightReport | null;
  durationMs: number;
  achievedRate: number;
  exitCode: number;
  message: string;
}

/** `wacamp send`: checks, preflight, registration, the engine, and the closing writes. */
export async function runSend(deps: SendDeps, o: SendOptions): Promise<SendResult> {
  const began = performance.now();
  const { db, log } = deps;

  deps.progress.phase('loading campaign');
  const campaign = await loadCampaign(db, o.campaignId);
  if (!campaign) {
    throw usageError('campaign_not_found', `campaign ${o.campaignId} does not exist; check the id`);
  }
  const spec = admissible(campaign, o);
  const account = campaign.account!;
  if (!o.dryRun && !o.join) {
    // Cheap early answer for cron; registerRun repeats the check atomically.
    const [live] = await liveRuns(db, campaign.id);
    if (live) refused({ ok: false, reason: 'live_run', live }, campaign.id);
  }

  deps.progress.phase('checking recipients');
  const report = await checkRecipients(db, campaign.id, spec, {
    dryRun: o.dryRun, ...(o.defaultCountry ? { defaultCountry: o.defaultCountry } : {}),
  });
  if (o.dryRun) return dryRunResult(db, campaign, report, began);
  if (report.checked === 0 && (await sendableCount(db, campaign.id)) === 0) {
    return nothingToSend(db, campaign, report, began);
  }
  if (deps.interrupt.stop) return interruptedEarly(db, campaign, report, deps.interrupt.stop, began);

  // Built before the run registers, so a bad token is refused with nothing changed.
  const api = deps.api(account);
  const registered = await registerRun(db, {
    campaignId: campaign.id, host: os.hostname(), pid: process.pid, leaseMs: o.leaseMs,
    options: { workers: o.workers, rate: o.ratePerSecond, join: o.join },
    runDue: o.runDue, join: o.join,
    from: ['draft', 'scheduled', 'paused', 'failed', 'completed'],
  });
  if (!registered.ok) {
    await api.close();
    return refused(registered, campaign.id);
  }
  const runId = registered.runId;
  const runLog = log.child({ run: runId });
  runLog.info('run_started', `run ${runId} started`, { workers: o.workers,
    rate: Number.isFinite(o.ratePerSecond) ? o.ratePerSecond : 'unlimited' });

  let result: EngineResult | null = null;
  let settled = report;
  try {
    settled = await settlePreflight(db, campaign.id, report);
    result = await sendAll(deps, o, campaign.id, runId, spec, api);
  } finally {
    await api.close();
    deps.progress.stop();
  }
  return close(deps, o, campaign.id, runId, result, settled, began);
}

/** Refuses what must not be sent; returns the parsed template of a sendable campaign. */
function admissible(c: CampaignRow, o: SendOptions): TemplateSpec {
  if (c.status === 'cancelled') {
    throw usageError('campaign_cancelled', `campaign ${c.id} is cancelled; it is never sent`);
  }
  if (!c.template || !c.account) {
    throw usageError('template_missing', `campaign ${c.id} has no template or sending account`);
  }
  if (c.template.status !== 'APPROVED') {
    throw usageError('template_not_approved', `template "${c.template.name}" is ` +
      `${c.template.status}; only APPROVED templates can be sent`);
  }
  const now = Date.now();
  if (c.status === 'scheduled' && c.scheduledAt && c.scheduledAt.getTime() > now && !o.now) {
    throw usageError('not_due', `campaign ${c.id} is scheduled for ` +
      `${c.scheduledAt.toISOString()}; wait, or pass --now to send it at once`);
  }
  if (c.pausedUntil && c.pausedUntil.getTime() > now && !o.now) {
    throw usageError('paused_by_meta', `Meta paused template "${c.template.name}" ` +
      `(${c.pauseReason ?? 'paused'}); it may resume after ${c.pausedUntil.toISOString()}, ` +
      'or pass --now to try earlier');
  }
  return parseTemplate(c.template.name, c.template.language, c.template.components);
}

/** Runs the engine until nothing is left, including rows the app added during the run. */
async function sendAll(
  deps: SendDeps, o: SendOptions, campaignId: string, runId: string, spec: TemplateSpec,
  api: ApiClient,
): Promise<EngineResult> {
  const { db } = deps;
  const account = (await loadCampaign(db, campaignId))!.account!;
  await ensureRateRow(db, account.phoneNumberId);
  let current: Engine | null = null;
  // NOTIFY makes an operator's pause felt at once; the heartbeat's status poll is the backstop.
  const listener = await listenCampaign(db, campaignId, () => current?.checkStatusNow())
    .catch((err: unknown) => {
      deps.log.debug('listen', `LISTEN refused, polling only: ${(err as Error).message}`);
      return null;
    });
  try {
    return await passes(deps, o, campaignId, runId, spec, api, account, (e) => { current = e; });
  } finally {
    if (listener) await within(listener.close(), 1000, undefined);
  }
}

async function passes(
  deps: SendDeps, o: SendOptions, campaignId: string, runId: string, spec: TemplateSpec,
  api: ApiClient, account: NonNullable<CampaignRow['account']>, onEngine: (e: Engine) => void,
): Promise<EngineResult> {
  const { db } = deps;
  const total: Record<string, number> = {};
  const summed = (r: EngineResult): EngineResult => {
    for (const [k, v] of Object.entries(r.counts)) total[k] = (total[k] ?? 0) + v;
    return { ...r, counts: { ...total } };
  };
  for (let pass = 0; ; pass++) {
    let wake = () => {};
    const engine = new Engine({
      workers: o.workers, maxAttempts: o.maxAttempts, drainTimeoutMs: o.drainTimeoutMs,
      leaseMs: o.leaseMs, maxErrorRate: o.maxErrorRate, maxThrottleMs: o.maxThrottleMs,
    }, {
      store: {
        claim: (limit, afterId) => claim(db, runId, campaignId, limit, afterId),
        cycle: (outcomes: Outcome[], mark: string[]) => cycle(db, runId, outcomes, mark),
        heartbeat: () => heartbeatWithStatus(db, runId, campaignId),
      },
      planner: new SharedPlanner(new LocalPlanner(o.ratePerSecond), {
        maxRate: account.maxRate,
        reserve: (rate, count) => reserveSlots(db, account.phoneNumberId, rate, count),
        throttle: (waitMs) => throttleShared(db, account.phoneNumberId, waitMs),
        read: () => readThrottle(db, account.phoneNumberId),
      }, o.ratePerSecond, () => wake(),
      (err) => deps.log.warn('rate', `shared rate: ${(err as Error).message}`)),
      prepare: (row) => {
        const r = renderComponents(spec, row.variables);
        if (!r.ok) return { error: { code: r.code, message: r.message } };
        return { body: messageBody(row.phoneE164, spec, r.components) };
      },
      send: (body, signal) => api.sendMessage(body, signal),
      ...(deps.onStart ? { onStart: deps.onStart } : {}),
    });
    wake = () => engine.nudge();
    onEngine(engine);
    const stopHere = (req: StopRequest, force: boolean) => engine.stop(req, force);
    deps.interrupt.onStop = stopHere;
    if (deps.interrupt.stop) engine.stop(deps.interrupt.stop);
    engine.on('db_error', (err: unknown) =>
      deps.log.warn('db_error', `database error: ${(err as Error).message}; retrying`));
    const ticker = startProgress(deps, engine, campaignId);
    const result = summed(await engine.run().finally(() => ticker.stop()));
    if (result.stop || pass >= 3) return result;
    // Rows the app added during the run, and duplicates whose twin was claimed meanwhile.
    if ((await unpreparedCount(db, campaignId)) > 0) {
      await checkRecipients(db, campaignId, spec, { dryRun: false,
        ...(o.defaultCountry ? { defaultCountry: o.defaultCountry } : {}) });
    }
    await applyPreflight(db, campaignId);
    // Rows this run still owns after a full drain were claimed or marked by a statement whose
    // answer was lost; nothing holds them, so they go back for the next pass.
    await releaseLeftovers(db, runId);
    if ((await sendableCount(db, campaignId)) === 0) return result;
    if ((await liveRuns(db, campaignId)).some((r) => r.id !== runId)) return result;
  }
}

export function messageBody(to: string, spec: TemplateSpec, components: unknown[]): object {
  return {
    messaging_product: 'whatsapp',
    recipient_type: 'individual',
    to,
    type: 'template',
    template: { name: spec.name, language: { code: spec.language }, components },
  };
}

async function close(
  deps: SendDeps, o: SendOptions, campaignId: string, runId: string,
  result: EngineResult | null, report: PreflightReport, began: number,
): Promise<SendResult> {
  const { db } = deps;
  const stop = result?.stop ?? null;
  const runCounts = result?.counts ?? {};
  if (result && result.unwritten.length > 0) await deps.onUnwritten(runId, result.unwritten);
  const durationMs = performance.now() - began;
  const achievedRate = (runCounts.requests ?? 0) / Math.max(durationMs / 1000, 1e-3);
  const base = { campaignId, run: { id: runId, counts: runCounts, stop }, preflight: report,
    durationMs, achievedRate };

  if (stop?.kind === 'lease_lost') {
    // The lease is gone: every write would be fenced, and the database may be away.
    return { ...base, campaignStatus: 'unknown', counts: {}, exitCode: EXIT.error,
      message: `stopped: ${stop.detail}; the next command recovers the campaign` };
  }
  const leftovers = await releaseLeftovers(db, runId);
  if (leftovers > 0) {
    deps.log.warn('leftovers', `${leftovers} row(s) marked but never requested went back to pending`);
  }
  const closing = await db.begin(async (sql) => {
    const tx = sql as unknown as Db;
    await lockCampaign(tx, campaignId);
    const c = await closingStatus(tx, campaignId, runId, stop);
    if (c.change) await changeStatus(tx, campaignId, c.change);
    await finishRun(tx, runId, c.outcome, stop?.detail ?? null, runCounts);
    return c;
  });
  const counts = await countRecipients(db, campaignId);
  const campaign = await loadCampaign(db, campaignId);
  return { ...base, campaignStatus: campaign?.status ?? 'unknown', counts,
    exitCode: closing.exitCode, message: closing.message };
}

async function dryRunResult(
  db: Db, c: CampaignRow, report: PreflightReport, began: number,
): Promise<SendResult> {
  return {
    campaignId: c.id, campaignStatus: c.status, counts: await countRecipients(db, c.id),
    run: { id: null, counts: {}, stop: null }, preflight: report,
    durationMs: performance.now() - began, achievedRate: 0, exitCode: EXIT.ok,
    message: `dry run: ${report.valid} of ${report.checked} pending recipients would be sent; ` +
      `${report.invalidPhones} invalid phones, ${report.invalidVariables} invalid variables`,
  };
}

/** No row is pending or in between: the campaign is done, whatever it was marked. */
async function nothingToSend(
  db: Db, c: CampaignRow, report: PreflightReport, began: number,
): Promise<SendResult> {
  await changeStatus(db, c.id, { from: ['draft', 'paused', 'failed'], to: 'completed' });
  const loaded = await loadCampaign(db, c.id);
  return {
    ...(await dryRunResult(db, c, report, began)),
    campaignStatus: loaded?.status ?? c.status, message: 'nothing to send',
  };
}

async function interruptedEarly(
  db: Db, c: CampaignRow, report: PreflightReport, stop: StopRequest, began: number,
): Promise<SendResult> {
  return {
    ...(await dryRunResult(db, c, report, began)),
    run: { id: null, counts: {}, stop },
    exitCode: stop.kind === 'signal' ? signalExit(stop) : EXIT.ok,
    message: 'interrupted before sending began; nothing was sent',
  };
}


function refused(
  r: Exclude<Awaited<ReturnType<typeof registerRun>>, { ok: true }>, campaignId: string,
): never {
  if (r.reason === 'live_run') {
    const l = r.live;
    throw new WacampError('live_run', `campaign ${campaignId} is being sent by run ${l.id} ` +
      `on ${l.host} (pid ${l.pid}, started ${Math.round(l.ageMs / 1000)} s ago); ` +
      'pass --join to share the work', { exitCode: EXIT.liveRun });
  }
  throw usageError('campaign_status', `campaign ${campaignId} is ${r.status} and cannot be sent`);
}
