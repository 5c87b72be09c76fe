/**
 * The shape every case shares: a warm-up, then `runs` measured runs; a wacamp send on a fresh
 * scratch database; and table rows that carry median, min and max with their target.
 */
import { cpuDelta, cpuSnapshot } from './cpu.mjs';
import { analyze, scratchDatabase, seedCampaign, statusCounts } from './postgres.mjs';
import { spawnSend } from './processes.mjs';
import { readStatements, resetStatements } from './statements.mjs';
import { summarize } from './stats.mjs';

/** Calls `once({ warmup, index })` for a warm-up and then `ctx.runs` times; keeps the latter. */
export async function repeat(ctx, label, once) {
  ctx.log(`${label}: warm-up`);
  await once({ warmup: true, index: 0 });
  const results = [];
  for (let i = 1; i <= ctx.runs; i++) {
    ctx.log(`${label}: run ${i} of ${ctx.runs}`);
    results.push(await once({ warmup: false, index: i }));
  }
  return results;
}

/**
 * One table row. `values` holds one figure per run; `test(median, summary)` judges the target
 * (on the median unless it looks at the summary's min or max); `met` is null when the row has
 * no target (a figure reported for comparison) or no figures.
 */
export function row(id, metric, unit, values, target = null, test = null, note = null) {
  const s = summarize(values);
  const met = s && test ? Boolean(test(s.median, s)) : null;
  return { case: id, metric, unit, ...(s ?? { median: null, min: null, max: null, n: 0 }),
    values, target, met, note };
}

/**
 * Seeds n recipients in a fresh database and runs `wacamp send` on them against `sandbox`.
 * `watch(proc)` is called once the CLI is spawned (case 8 signals it from there).
 */
export async function sendOnce(ctx, o) {
  const scratch = await scratchDatabase(ctx.adminUrl, ctx.template);
  try {
    const campaignId = await seedCampaign(scratch.url, o.n);
    await analyze(scratch.url);
    if (o.statements) await resetStatements(scratch.url);
    const before = cpuSnapshot({ sandboxPid: o.sandbox.pid, postmasterPid: ctx.postmasterPid });
    const proc = spawnSend({ campaignId, dbUrl: scratch.url, apiUrl: o.sandbox.url,
      flags: o.flags, probeRss: Boolean(o.probeRss) });
    // Caught here and rethrown below, so a failing watcher cannot go unhandled while we wait.
    const watched = o.watch ? Promise.resolve(o.watch(proc)).then(() => null, (err) => err) : null;
    const r = await proc.finished;
    const watchError = await watched;
    if (watchError) throw watchError;
    await new Promise((resolve) => setTimeout(resolve, 50));
    const cpu = cpuDelta(before, cpuSnapshot({ sandboxPid: o.sandbox.pid,
      postmasterPid: ctx.postmasterPid }));
    if (r.code !== 0 && !o.allowFailure) {
      throw new Error(`wacamp send exited ${r.code}: ${r.stderr.slice(-1500)}`);
    }
    const statements = o.statements ? await readStatements(scratch.url) : null;
    return { ...r, cpu, counts: await statusCounts(scratch.url, campaignId), statements };
  } finally {
    await scratch.drop();
  }
}

/** Seeds a fresh database and runs a baseline script against it, with CPU accounting. */
export async function baselineOnce(ctx, o, run) {
  const scratch = o.needsDb ? await scratchDatabase(ctx.adminUrl, ctx.template) : null;
  try {
    const campaignId = scratch ? await seedCampaign(scratch.url, o.n) : null;
    if (scratch) await analyze(scratch.url);
    const before = cpuSnapshot({ sandboxPid: o.sandbox.pid, postmasterPid: ctx.postmasterPid });
    const r = await run({ dbUrl: scratch?.url, campaignId });
    await new Promise((resolve) => setTimeout(resolve, 50));
    const cpu = cpuDelta(before, cpuSnapshot({ sandboxPid: o.sandbox.pid,
      postmasterPid: ctx.postmasterPid }));
    return { ...r, cpu };
  } finally {
    await scratch?.drop();
  }
}
