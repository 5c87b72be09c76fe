/**
 * Case 6: peak resident set size of the wacamp process (getrusage ru_maxrss at exit, through a
 * preloaded probe) sending 10,000 and then 1,000,000 recipients at zero latency. Memory that
 * grows with the campaign shows up as the ratio between the two.
 *
 * The large run is given a deadline so the benchmark ends in bounded time whatever wacamp's
 * speed: past it the run is interrupted with SIGINT (a drain) and its peak so far is reported,
 * marked with how far it got.
 */
import { repeat, row, sendOnce } from '../lib/harness.mjs';
import { startSandbox } from '../lib/processes.mjs';
import { achievedRate } from '../lib/stats.mjs';

const MB = 1024 * 1024;
const FLAGS = ['--rate', 'unlimited', '--workers', '50'];

export async function memoryCase(ctx) {
  const large = ctx.quick ? 100_000 : 1_000_000;
  const deadlineMs = (ctx.quick ? 3 : 8) * 60_000;
  const sandbox = await startSandbox(0);
  try {
    const small = await repeat(ctx, 'case 6 (10,000)', ({ warmup }) =>
      peak(ctx, sandbox, warmup ? 2000 : 10_000));
    // The large run takes minutes, so it runs once; the small runs serve as its warm-up.
    ctx.log(`case 6 (${large.toLocaleString('en')}): one run, at most ${deadlineMs / 60_000} min`);
    const big = await peak(ctx, sandbox, large, deadlineMs);
    return { raw: { small, big }, rows: rowsFor(ctx, small, big, large, deadlineMs) };
  } finally {
    await sandbox.stop();
  }
}

function rowsFor(ctx, small, big, large, deadlineMs) {
  const smallMedian = [...small.map((s) => s.rss)].sort((a, b) => a - b)[small.length >> 1];
  const label = `${large.toLocaleString('en')} recipients`;
  const notes = [ctx.quick ? 'quick: 100,000 stands in for 1,000,000' : 'one run'];
  if (big.sent < large) {
    notes.push(`stopped at the ${deadlineMs / 60_000} min deadline after ` +
      `${big.sent.toLocaleString('en')} sent`);
  }
  const note = notes.join('; ');
  return [
    row('6', 'peak RSS, 10,000 recipients', 'MB', small.map((s) => s.rss / MB)),
    row('6', `peak RSS, ${label}`, 'MB', [big.rss / MB], '< 150', (m) => m < 150, note),
    row('6', `peak RSS ratio ${label} / 10,000`, '×', [big.rss / smallMedian], '≤ 1.2',
      (m) => m <= 1.2, note),
    row('6', 'peak V8 heap used, 10,000 recipients', 'MB',
      small.map((s) => s.peak.heapUsed / MB)),
    row('6', `peak V8 heap used, ${label}`, 'MB', [big.peak.heapUsed / MB]),
    // Not a memory figure, but it says how long the large run took and why it may have stopped.
    row('6', `send rate over the ${label} run`, 'msg/s', [big.rate]),
  ];
}

async function peak(ctx, sandbox, n, deadlineMs = null) {
  const r = await sendOnce(ctx, {
    sandbox, n, flags: FLAGS, probeRss: true, allowFailure: deadlineMs !== null,
    watch: deadlineMs === null ? null : (proc) => interruptAfter(proc, deadlineMs),
  });
  const sent = r.counts.sent ?? 0;
  if (deadlineMs === null && sent !== n) throw new Error(`case 6: sent ${sent} of ${n}`);
  if (!r.memory) throw new Error('case 6: the RSS probe wrote nothing');
  return { n, sent, rss: r.memory.maxRssBytes, peak: r.memory.peak, wallMs: r.exitAt - r.spawnAt,
    rate: achievedRate(r.starts), exitCode: r.code };
}

/** SIGINT once the deadline passes, unless the process has exited by then. */
function interruptAfter(proc, ms) {
  const timer = setTimeout(() => proc.child.kill('SIGINT'), ms);
  return proc.finished.finally(() => clearTimeout(timer));
}
