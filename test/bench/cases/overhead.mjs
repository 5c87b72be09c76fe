/**
 * Cases 1 and 3: wacamp beside the raw-HTTP ceiling, the design it replaced and pg-boss, at zero
 * latency and 50 in flight; and the statements wacamp's run costs the server per 100 messages.
 * Every contender of one run sends to the same sandbox process, one after the other, and the
 * ratios pair contenders of the same run, since absolute speed drifts on a shared machine.
 */
import { baselineOnce, repeat, row, sendOnce } from '../lib/harness.mjs';
import { runBaseline, startSandbox } from '../lib/processes.mjs';
import { achievedRate } from '../lib/stats.mjs';

const CONCURRENCY = 50;

/** pg-boss variants: issue 6 asks for these batch sizes, and batch 1 on a smaller list. */
function bossVariants(n, small) {
  return [
    { key: '1d-200', batchSize: 200, workers: 1, n },
    { key: '1d-1000', batchSize: 1000, workers: 1, n },
    { key: '1d-5000', batchSize: 5000, workers: 1, n },
    { key: '1d-1x50', batchSize: 1, workers: 50, n: small },
  ];
}

/** Which contenders `--only` asks for; case 3 is measured inside 1b. */
export function contenders(ctx) {
  const all = ctx.only === null || ctx.only.has('1');
  const want = (k) => all || ctx.only.has(k) || (k === '1b' && ctx.only.has('3'));
  return { a: want('1a'), b: want('1b'), c: want('1c'), d: want('1d') };
}

async function oneRun(ctx, sandbox, n, small, wantStatements) {
  const out = {};
  const want = contenders(ctx);
  if (want.a) await rawCeiling(ctx, sandbox, n, out);
  if (want.b) await wacamp(ctx, sandbox, n, wantStatements, out);
  if (want.c) await replaced(ctx, sandbox, n, out);
  if (want.d) await pgBoss(ctx, sandbox, n, small, out);
  return out;
}

function checkAll(key, sent, expected) {
  if (sent !== expected) throw new Error(`${key} sent ${sent} of ${expected}`);
}

async function rawCeiling(ctx, sandbox, n, out) {
  const a = await baselineOnce(ctx, { sandbox, n }, () => runBaseline('raw-undici.mjs',
    { apiUrl: sandbox.url, n, concurrency: CONCURRENCY }));
  checkAll('1a', a.summary.sent, n);
  out['1a'] = { rate: achievedRate(a.starts), wallMs: a.summary.wallMs, cpu: a.cpu };
}

async function wacamp(ctx, sandbox, n, wantStatements, out) {
  const b = await sendOnce(ctx, { sandbox, n, statements: wantStatements,
    flags: ['--rate', 'unlimited', '--workers', String(CONCURRENCY)] });
  checkAll('1b', b.counts.sent ?? 0, n);
  out['1b'] = { rate: achievedRate(b.starts), wallMs: b.exitAt - b.spawnAt, cpu: b.cpu,
    statements: b.statements, per100: b.statements ? (b.statements.total * 100) / n : null };
}

async function replaced(ctx, sandbox, n, out) {
  const c = await baselineOnce(ctx, { sandbox, n, needsDb: true }, (db) =>
    runBaseline('replaced-design.mjs', { apiUrl: sandbox.url, ...db, concurrency: CONCURRENCY,
      dbPool: ctx.replacedDbPool }));
  checkAll('1c', c.summary.sent, n);
  out['1c'] = { rate: achievedRate(c.starts), wallMs: c.summary.wallMs, cpu: c.cpu };
}

async function pgBoss(ctx, sandbox, n, small, out) {
  for (const v of bossVariants(n, small)) {
    const d = await baselineOnce(ctx, { sandbox, n: v.n, needsDb: true }, (db) =>
      runBaseline('pg-boss.mjs', { apiUrl: sandbox.url, ...db, concurrency: CONCURRENCY,
        batchSize: v.batchSize, workers: v.workers }));
    checkAll(v.key, d.summary.sent, v.n);
    out[v.key] = { rate: achievedRate(d.starts), wallMs: d.summary.wallMs, cpu: d.cpu,
      enqueueMs: d.summary.enqueueMs, n: v.n };
  }
}

export async function overheadCases(ctx) {
  const n = ctx.quick ? 5000 : 20_000;
  const small = ctx.quick ? 1000 : 2000;
  const sandbox = await startSandbox(0);
  let runs;
  try {
    runs = await repeat(ctx, 'case 1', ({ warmup }) =>
      oneRun(ctx, sandbox, warmup ? 2000 : n, warmup ? 500 : small, !warmup && ctx.statements));
  } finally {
    await sandbox.stop();
  }
  return { rows: rowsFor(ctx, runs, n, small), raw: runs };
}

function rowsFor(ctx, runs, n, small) {
  const want = contenders(ctx);
  const col = (key, f) => runs.map((r) => f(r[key]));
  return [...rateRows(want, col, n, small), ...ratioRows(want, runs),
    ...costRows(want, col, n), ...statementRows(ctx, want, col)];
}

function rateRows(want, col, n, small) {
  const rate = (key) => col(key, (x) => x.rate);
  const msgs = `${n.toLocaleString('en')} msgs, 50 in flight, 0 ms`;
  const rows = [];
  if (want.a) rows.push(row('1a', `raw undici, no database (${msgs})`, 'msg/s', rate('1a')));
  if (want.b) {
    rows.push(row('1b', 'wacamp send --rate unlimited --workers 50', 'msg/s', rate('1b')));
  }
  if (want.c) {
    rows.push(row('1c', 'replaced design: UPDATE before and after each request', 'msg/s',
      rate('1c')));
  }
  if (want.d) {
    rows.push(
      row('1d', 'pg-boss 10, batch 200 (polling 0.5 s)', 'msg/s', rate('1d-200')),
      row('1d', 'pg-boss 10, batch 1,000', 'msg/s', rate('1d-1000')),
      row('1d', 'pg-boss 10, batch 5,000', 'msg/s', rate('1d-5000')),
      row('1d', `pg-boss 10, batch 1, 50 workers (${small.toLocaleString('en')} msgs)`,
        'msg/s', rate('1d-1x50')));
  }
  return rows;
}

/** Ratios pair the contenders of one run; the row's median is over those per-run ratios. */
function ratioRows(want, runs) {
  const bestBoss = (r) => Math.max(...['1d-200', '1d-1000', '1d-5000', '1d-1x50']
    .map((k) => r[k].rate));
  const rows = [];
  if (want.a && want.b) {
    rows.push(row('1', 'b / a', '×', runs.map((r) => r['1b'].rate / r['1a'].rate), '≥ 0.6',
      (m) => m >= 0.6));
  }
  if (want.b && want.c) {
    rows.push(row('1', 'b / c', '×', runs.map((r) => r['1b'].rate / r['1c'].rate), '≥ 2',
      (m) => m >= 2));
  }
  if (want.b && want.d) {
    rows.push(row('1', 'b / best d', '×', runs.map((r) => r['1b'].rate / bestBoss(r)), '≥ 1',
      (m) => m >= 1));
  }
  return rows;
}

/** Where the CPU went: per process (start-up included) and for the machine as a whole. */
function costRows(want, col, n) {
  const perThousand = (key, part) => col(key, (x) => (x.cpu[part] === null ? null
    : (x.cpu[part] * 1000) / n));
  const busy = (x) => (x.cpu.machineBusy === null ? null
    : (100 * x.cpu.machineBusy) / (x.cpu.machineBusy + x.cpu.machineIdle));
  const rows = [];
  for (const [key, part, who] of [['1a', 'contender', 'raw client'],
    ['1b', 'contender', 'wacamp process'], ['1b', 'postgres', 'PostgreSQL'],
    ['1b', 'sandbox', 'sandbox'], ['1c', 'contender', 'replaced-design process'],
    ['1c', 'postgres', 'PostgreSQL']]) {
    if (want[key.slice(1)]) {
      rows.push(row(key, `CPU s per 1,000 msgs: ${who}`, 's', perThousand(key, part)));
    }
  }
  for (const key of ['1a', '1b', '1c']) {
    if (!want[key.slice(1)]) continue;
    rows.push(row(key, 'machine CPU busy over the whole run (all cores = 100%)', '%',
      col(key, busy)));
    // Non-zero means someone else's work shared the machine with this measurement.
    rows.push(row(key, 'CPU used by other processes meanwhile', 'cores',
      col(key, (x) => x.cpu.otherCores)));
  }
  return rows;
}

function statementRows(ctx, want, col) {
  if (!want.b) return [];
  if (!ctx.statements) {
    return [row('3', 'statements per 100 messages in 1b', 'stmts', [], '≤ 5', null,
      'pg_stat_statements is not preloaded on this server')];
  }
  return [row('3', 'statements per 100 messages in 1b (pg_stat_statements)', 'stmts',
    col('1b', (x) => x.per100), '≤ 5', (m) => m <= 5)];
}
