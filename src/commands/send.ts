import { performance } from 'node:perf_hooks';
import { z } from 'zod';
import { createApiClient } from '../api/client.js';
import { worstExit, EXIT, usageError } from '../errors.js';
import {
  LineProgress, SilentProgress, terminalProgress, type ProgressView,
} from '../output/progress.js';
import { writeMetricsFile } from '../output/metrics.js';
import { sendJson, sendSummary } from '../output/summary.js';
import { isCountryCode } from '../phone.js';
import { runSend, type SendDeps, type SendOptions, type SendResult } from '../send/run-send.js';
import type { StopRequest } from '../send/decide.js';
import { parseDurationMs, parsePositiveInt, parseRate, parseShare } from '../units.js';
import { databaseKey, writeJournal } from '../journal.js';
import type { Env } from '../config.js';
import { makeContext, openDatabase, type Context, type GlobalOptions } from './context.js';
import { writeStdout } from './stdout.js';

export interface SendFlags extends GlobalOptions {
  workers: string; rate: string; drainTimeout: string; lease: string; maxAttempts: string;
  requestTimeout: string; maxErrorRate: string; maxThrottle: string; defaultCountry?: string;
  dryRun?: boolean; now?: boolean; join?: boolean; strict?: boolean; apiUrl?: string;
  apiVersion?: string; traceStarts?: string; metricsFile?: string;
}

export function campaignId(text: string): string {
  if (!z.guid().safeParse(text).success) {
    throw usageError('bad_campaign_id', `campaign id "${text.slice(0, 60)}" is not a uuid`);
  }
  return text.toLowerCase();
}

/** Every flag checked before any work starts; each fault names the flag. */
export function sendOptions(id: string, f: SendFlags): SendOptions {
  const country = f.defaultCountry?.toUpperCase();
  if (country !== undefined && !isCountryCode(country)) {
    throw usageError('bad_country', `--default-country: "${f.defaultCountry}" is not an ISO ` +
      'country code such as US or GB');
  }
  return {
    campaignId: campaignId(id),
    workers: parsePositiveInt('--workers', f.workers, 2000),
    ratePerSecond: parseRate('--rate', f.rate),
    drainTimeoutMs: parseDurationMs('--drain-timeout', f.drainTimeout),
    leaseMs: Math.max(2000, parseDurationMs('--lease', f.lease)),
    maxAttempts: parsePositiveInt('--max-attempts', f.maxAttempts, 100),
    requestTimeoutMs: requestTimeoutMs(f.requestTimeout),
    maxErrorRate: parseShare('--max-error-rate', f.maxErrorRate),
    maxThrottleMs: parseDurationMs('--max-throttle', f.maxThrottle),
    ...(country && isCountryCode(country) ? { defaultCountry: country } : {}),
    dryRun: Boolean(f.dryRun), now: Boolean(f.now), join: Boolean(f.join), runDue: false,
  };
}

function requestTimeoutMs(text: string): number {
  const ms = parseDurationMs('--request-timeout', text);
  if (ms < 1) {
    throw usageError('bad_duration', `--request-timeout: "${text}" must be at least 1ms`);
  }
  return ms;
}

/**
 * The API target is first used once a run is registered and the campaign is `active`; checked
 * here so that a typo is refused before any work, naming the flag or variable it came from.
 */
export function checkApiTarget(f: SendFlags, env: Env): void {
  const [urlFrom, url] = f.apiUrl === undefined ? ['WHATSAPP_API_URL', env.apiUrl]
    : ['--api-url', f.apiUrl];
  if (!isPlainHttpUrl(url)) {
    // The value is not echoed: a URL may carry a user name and password.
    throw usageError('bad_api_url', `${urlFrom} must be an http(s) URL with no query, ` +
      'fragment or user name');
  }
  const [versionFrom, version] = f.apiVersion === undefined
    ? ['WHATSAPP_API_VERSION', env.apiVersion] : ['--api-version', f.apiVersion];
  if (!/^v\d+\.\d+$/.test(version)) {
    throw usageError('bad_api_version', `${versionFrom}: "${version.slice(0, 20)}" must ` +
      'look like v23.0');
  }
}

function isPlainHttpUrl(text: string): boolean {
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    return false; // not a URL at all: the caller says what is expected
  }
  return (url.protocol === 'http:' || url.protocol === 'https:') && url.search === '' &&
    url.hash === '' && url.username === '' && url.password === '';
}

export async function progressView(ctx: Context): Promise<ProgressView> {
  if (ctx.log.verbosity === 'quiet') return new SilentProgress();
  if (ctx.interactive && ctx.log.format === 'pretty') return terminalProgress();
  return new LineProgress(ctx.log);
}

/** Wires SIGINT/SIGTERM: the first drains, the second aborts what is in flight. */
export function trapSignals(ctx: Context, interrupt: SendDeps['interrupt']): () => void {
  const handler = (signal: NodeJS.Signals) => {
    const first = !interrupt.stop;
    const req: StopRequest = { kind: 'signal', detail: `received ${signal}` };
    interrupt.stop ??= req;
    ctx.log.warn('signal', first ? `${signal}: no new requests; draining what is in flight ` +
      '(send the signal again to abort it)' : `${signal} again: aborting requests in flight`);
    interrupt.onStop?.(interrupt.stop, !first);
  };
  process.on('SIGINT', handler);
  process.on('SIGTERM', handler);
  return () => {
    process.off('SIGINT', handler);
    process.off('SIGTERM', handler);
  };
}

export async function sendCommand(id: string, f: SendFlags): Promise<number> {
  return sendCommandWith(id, f, makeContext(f));
}

export async function sendCommandWith(id: string, f: SendFlags, ctx: Context): Promise<number> {
  const o = sendOptions(id, f);
  checkApiTarget(f, ctx.env);
  const interrupt: SendDeps['interrupt'] = {};
  const untrap = trapSignals(ctx, interrupt);
  try {
    const result = await sendWith(ctx, f, o, interrupt);
    const strict = f.strict && ((result.counts.failed ?? 0) + (result.counts.unknown ?? 0)) > 0;
    const exitCode = worstExit([result.exitCode, strict ? EXIT.strict : EXIT.ok]);
    if (strict) {
      result.message += `; --strict: ${(result.counts.failed ?? 0) + (result.counts.unknown ?? 0)}` +
        ' recipient(s) ended failed or unknown (exit 4)';
    }
    report(ctx, { ...result, exitCode });
    if (f.metricsFile) await writeMetricsFile(f.metricsFile, [{ result, exitCode }]);
    return exitCode;
  } finally {
    untrap();
  }
}

/** Opens the database, runs the send and journals whatever could not be written. */
export async function sendWith(
  ctx: Context, f: SendFlags, o: SendOptions, interrupt: SendDeps['interrupt'],
): Promise<SendResult> {
  await checkHome(ctx.env.home);
  const progress = await progressView(ctx);
  progress.phase('connecting');
  const { db } = await openDatabase(ctx, f, { recover: !o.dryRun });
  const key = await databaseKey(db);
  const starts = f.traceStarts ? [] as number[] : null;
  const deps: SendDeps = {
    db, log: ctx.log.child({ campaign: o.campaignId.slice(0, 8) }), progress, interrupt,
    api: (account) => createApiClient({
      baseUrl: (f.apiUrl ?? ctx.env.apiUrl).replace(/\/+$/, ''),
      version: f.apiVersion ?? ctx.env.apiVersion,
      phoneNumberId: account.phoneNumberId,
      accessToken: token(account.accessToken ?? ctx.env.accessToken, account.id),
      connections: o.workers,
      requestTimeoutMs: o.requestTimeoutMs,
    }),
    ...(starts ? { onStart: (t: number) => starts.push(t + performance.timeOrigin) } : {}),
    onUnwritten: async (runId, outcomes) => {
      const file = await writeJournal(ctx.env.home, key, runId, outcomes);
      if (file) ctx.log.warn('journal', `${outcomes.length} outcome(s) could not be written ` +
        `to the database; kept in ${file} for the next command`);
    },
  };
  try {
    return await runSend(deps, o);
  } finally {
    progress.stop();
    if (starts && f.traceStarts) {
      const { writeFile } = await import('node:fs/promises');
      await writeFile(f.traceStarts, JSON.stringify(starts));
    }
    await db.end({ timeout: 2 });
  }
}

/**
 * The journal lives under WACAMP_HOME: a run that could not write it would lose outcomes when
 * the database goes away, so an unusable home is refused before anything starts.
 */
async function checkHome(home: string): Promise<void> {
  const { mkdir, access, constants } = await import('node:fs/promises');
  try {
    await mkdir(home, { recursive: true, mode: 0o700 });
    await access(home, constants.W_OK);
  } catch (err) {
    throw usageError('bad_home', `WACAMP_HOME ${home} cannot be written ` +
      `(${(err as NodeJS.ErrnoException).code ?? 'error'}); point it at a writable folder`, err);
  }
}

function token(value: string | null | undefined, accountId: string): string {
  if (!value) {
    throw usageError('no_token', `WHATSAPP_ACCESS_TOKEN is not set and account ${accountId} ` +
      'has no access_token; set one of them');
  }
  // A token pasted with a line break (a CRLF .env file) cannot go in a header; undici would
  // refuse every request. The token itself is never echoed.
  if (/\s/.test(value)) {
    throw usageError('bad_token', `the access token for account ${accountId} contains white ` +
      'space or a line break; fix WHATSAPP_ACCESS_TOKEN or wa_accounts.access_token');
  }
  return value;
}

function report(ctx: Context, r: SendResult): void {
  if (ctx.json) {
    writeStdout(JSON.stringify(sendJson(r)) + '\n');
    return;
  }
  if (ctx.log.format === 'json') {
    ctx.log.info('summary', r.message, { status: r.campaignStatus, ...r.counts,
      duration_ms: Math.round(r.durationMs), rate: Number(r.achievedRate.toFixed(1)) });
    return;
  }
  const lines = sendSummary(r, ctx.log.format === 'pretty');
  // A run that stopped on an error says why even under --quiet.
  const [head, ...rest] = lines;
  if (head !== undefined) {
    if (r.exitCode === EXIT.ok) ctx.log.info('summary', head);
    else ctx.log.warn('summary', head);
  }
  for (const line of rest) ctx.log.info('summary', line);
}
