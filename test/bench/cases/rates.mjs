/**
 * Cases 2, 4 and 5: wacamp against a sandbox with latency, measured on its own request start
 * times — achieved rate (n − 1) / (last − first), the most starts in any one-second window, and
 * the largest gap between two starts.
 */
import { repeat, row, sendOnce } from '../lib/harness.mjs';
import { startSandbox } from '../lib/processes.mjs';
import { perSecond, traceFigures } from '../lib/stats.mjs';

async function measure(ctx, label, o) {
  const sandbox = await startSandbox(o.latency);
  try {
    return await repeat(ctx, label, async ({ warmup }) => {
      const n = warmup ? o.warmupN : o.n;
      const r = await sendOnce(ctx, { sandbox, n, flags: o.flags });
      if ((r.counts.sent ?? 0) !== n) throw new Error(`${label}: sent ${r.counts.sent} of ${n}`);
      return { ...traceFigures(r.starts), perSecond: perSecond(r.starts),
        wallMs: r.exitAt - r.spawnAt, cpu: r.cpu };
    });
  } finally {
    await sandbox.stop();
  }
}

/** Case 2: Meta's highest tier, 1,000/s, with a realistic provider latency. */
export async function ceilingCase(ctx) {
  const n = ctx.quick ? 10_000 : 30_000;
  const runs = await measure(ctx, 'case 2', { latency: '80-250', n, warmupN: 3000,
    flags: ['--rate', '1000', '--workers', '300'] });
  const what = `--rate 1000 --workers 300, ${n.toLocaleString('en')} msgs, 80–250 ms`;
  return { raw: runs, rows: [
    row('2', `achieved rate (${what})`, 'msg/s', runs.map((r) => r.rate), '≥ 990',
      (m) => m >= 990),
    row('2', 'most starts in any 1 s window', 'starts', runs.map((r) => r.maxWindow), '≤ 1000',
      (m) => m <= 1000),
    row('2', 'largest gap between starts', 'ms', runs.map((r) => r.maxGapMs)),
  ] };
}

/** Case 4: Meta's default tier, 80/s: the pace must be exact, not just capped. */
export async function fidelityCase(ctx) {
  const n = ctx.quick ? 800 : 2400;
  const runs = await measure(ctx, 'case 4', { latency: '5-50', n, warmupN: 200,
    flags: ['--rate', '80', '--workers', '10'] });
  const what = `--rate 80, ${n.toLocaleString('en')} msgs, 5–50 ms`;
  return { raw: runs, rows: [
    row('4', `achieved rate (${what})`, 'msg/s', runs.map((r) => r.rate), '79.2 – 80.8',
      (m) => m >= 79.2 && m <= 80.8),
    row('4', 'most starts in any 1 s window', 'starts', runs.map((r) => r.maxWindow), '≤ 80',
      (m) => m <= 80),
    row('4', 'largest gap between starts', 'ms', runs.map((r) => r.maxGapMs)),
  ] };
}

/** Case 5: latency-bound; 20 workers at 200 ms can do at most 100/s. */
export async function latencyBoundCase(ctx) {
  const n = ctx.quick ? 1000 : 2000;
  const runs = await measure(ctx, 'case 5', { latency: '200', n, warmupN: 200,
    flags: ['--rate', 'unlimited', '--workers', '20'] });
  return { raw: runs, rows: [
    row('5', `achieved rate (20 workers, 200 ms, ${n.toLocaleString('en')} msgs)`, 'msg/s',
      runs.map((r) => r.rate), '≥ 95 (of 100)', (m) => m >= 95),
  ] };
}
