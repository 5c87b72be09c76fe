import { createApiClient, type ResponseFacts } from '../api/client.js';
import { accounts, serverVersion, waitingTemplates, type AccountRow } from '../db/check.js';
import { connect, redactUrl, type Db } from '../db/connect.js';
import { pendingMigrations } from '../db/migrate.js';
import { EXIT, WacampError } from '../errors.js';
import { makeContext, openDatabase, type Context, type GlobalOptions } from './context.js';
import { writeStdout } from './stdout.js';

/**
 * `wacamp check`: what a cron job needs before its first tick. One line per check; exit 1 when
 * any fails. It only reads: no migration, no recovery, no message.
 */
export interface CheckFlags extends GlobalOptions { apiUrl?: string; apiVersion?: string }

export interface CheckLine { check: string; ok: boolean; detail: string }

const API_TIMEOUT_MS = 10_000;

export async function checkCommand(f: CheckFlags): Promise<number> {
  const ctx = makeContext(f);
  const lines: CheckLine[] = [];
  const db = await reach(ctx, f, lines);
  if (db) {
    try {
      await migrations(db, lines);
      for (const account of await accounts(db)) lines.push(await token(ctx, f, account));
      await templates(db, lines);
    } finally {
      await db.end({ timeout: 5 });
    }
  }
  const ok = lines.every((l) => l.ok);
  if (ctx.json) writeStdout(JSON.stringify({ ok, checks: lines }) + '\n');
  else writeStdout(lines.map((l) => `${l.ok ? 'ok  ' : 'FAIL'}  ${l.check}: ${l.detail}`)
    .join('\n') + '\n');
  return ok ? EXIT.ok : EXIT.error;
}

/** Connects without openDatabase's own checks, so that their failures become lines here. */
async function reach(ctx: Context, f: CheckFlags, lines: CheckLine[]): Promise<Db | null> {
  const url = f.databaseUrl ?? ctx.env.databaseUrl;
  let db: Db | null = null;
  try {
    // The embedded database is wacamp's own: openDatabase starts and migrates it on demand.
    db = url ? connect(url, { connectTimeoutS: 10 }) : (await openDatabase(ctx, f,
      { recover: false })).db;
    const version = await serverVersion(db);
    lines.push({ check: 'database', ok: true,
      detail: `reachable (PostgreSQL ${version}${url ? ` at ${redactUrl(url)}` : ', embedded'})` });
    return db;
  } catch (err) {
    await db?.end({ timeout: 1 });
    const message = err instanceof WacampError ? err.message
      : `cannot reach ${url ? redactUrl(url) : 'the database'}: ${(err as Error).message}`;
    lines.push({ check: 'database', ok: false, detail: message });
    return null;
  }
}

async function migrations(db: Db, lines: CheckLine[]): Promise<void> {
  const missing = await pendingMigrations(db);
  lines.push(missing.length === 0
    ? { check: 'migrations', ok: true, detail: 'current' }
    : { check: 'migrations', ok: false,
      detail: `${missing.length} not applied (${missing.join(', ')}); run: wacamp migrate` });
}

/** Reads the account's phone number through the Graph API: a 200 means the token works. */
async function token(ctx: Context, f: CheckFlags, a: AccountRow): Promise<CheckLine> {
  const check = `account ${a.name ? `"${a.name}" ` : ''}${a.id.slice(0, 8)} ` +
    `(phone_number_id ${a.phoneNumberId})`;
  const accessToken = a.accessToken ?? ctx.env.accessToken;
  if (!accessToken) {
    return { check, ok: false,
      detail: 'no access token: the account has none and WHATSAPP_ACCESS_TOKEN is unset' };
  }
  const api = createApiClient({
    baseUrl: (f.apiUrl ?? ctx.env.apiUrl).replace(/\/+$/, ''),
    version: f.apiVersion ?? ctx.env.apiVersion, phoneNumberId: a.phoneNumberId, accessToken,
    connections: 1, requestTimeoutMs: API_TIMEOUT_MS,
  });
  try {
    return { check, ...verdict(await api.getPhoneNumber()) };
  } finally {
    await api.close();
  }
}

function verdict(r: ResponseFacts): { ok: boolean; detail: string } {
  if (r.kind === 'timeout') return { ok: false, detail: `no answer in ${API_TIMEOUT_MS / 1000} s` };
  if (r.kind === 'network' || r.kind === 'aborted') {
    const why = r.kind === 'network' ? r.errorCode : 'aborted';
    return { ok: false, detail: `cannot reach the API (${why})` };
  }
  const body = (r.bodyParsed ? r.body : {}) as {
    display_phone_number?: string; error?: { code?: number; message?: string };
  };
  if (r.status === 200) {
    return { ok: true, detail: `token accepted${body.display_phone_number
      ? ` (${body.display_phone_number})` : ''}` };
  }
  const e = body.error;
  return { ok: false, detail: `token refused: HTTP ${r.status}` +
    (e ? ` (${e.code ?? '?'}) ${e.message ?? ''}` : '') };
}

async function templates(db: Db, lines: CheckLine[]): Promise<void> {
  const { total, unapproved } = await waitingTemplates(db);
  if (unapproved.length === 0) {
    lines.push({ check: 'templates', ok: true, detail: total === 0 ? 'no scheduled campaigns'
      : `the ${total} scheduled campaign(s) all use APPROVED templates` });
    return;
  }
  for (const u of unapproved) {
    lines.push({ check: `campaign ${u.campaignId}`, ok: false,
      detail: u.template === null ? 'scheduled, but it has no template'
        : `scheduled, but template "${u.template}" is ${u.templateStatus ?? 'without status'}` });
  }
}
