/**
 * Case 8: ten requests in flight at 1 s latency, then SIGINT. wacamp must stop starting
 * requests, wait for the ten answers and exit within the drain time (until the last answer is
 * due) plus 0.5 s, with all ten recorded as sent and nothing left claimed or sending.
 */
import { performance } from 'node:perf_hooks';
import { repeat, row, sendOnce } from '../lib/harness.mjs';
import { startSandbox } from '../lib/processes.mjs';

const LATENCY_MS = 1000;
const IN_FLIGHT = 10;

/** Waits until the sandbox has seen the ten requests, lets them get under way, then signals. */
async function interruptWhenBusy(sandbox, child, mark) {
  const deadline = performance.now() + 20_000;
  // The sandbox counts every request since it started, earlier runs' too.
  const before = (await sandbox.stats()).requests;
  while ((await sandbox.stats()).requests < before + IN_FLIGHT) {
    if (performance.now() > deadline) throw new Error('case 8: requests never reached 10');
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
  await new Promise((resolve) => setTimeout(resolve, 200));
  mark.sigintAt = performance.timeOrigin + performance.now();
  child.kill('SIGINT');
}

export async function drainCase(ctx) {
  const sandbox = await startSandbox(LATENCY_MS);
  let runs;
  try {
    runs = await repeat(ctx, 'case 8', async () => {
      const mark = {};
      const r = await sendOnce(ctx, { sandbox, n: 100, allowFailure: true,
        flags: ['--rate', 'unlimited', '--workers', String(IN_FLIGHT)],
        watch: (proc) => interruptWhenBusy(sandbox, proc.child, mark) });
      const drainMs = Math.max(...r.starts) + LATENCY_MS - mark.sigintAt;
      const exitMs = r.exitAt - mark.sigintAt;
      const recorded = r.counts.sent ?? 0;
      const leftover = (r.counts.claimed ?? 0) + (r.counts.sending ?? 0);
      return { drainMs, exitMs, overMs: exitMs - drainMs, started: r.starts.length, recorded,
        leftover, exitCode: r.code };
    });
  } finally {
    await sandbox.stop();
  }
  const allRecorded = runs.map((r) => (r.started === IN_FLIGHT && r.recorded === IN_FLIGHT &&
    r.leftover === 0 ? 1 : 0));
  return { raw: runs, rows: [
    row('8', 'SIGINT to exit, beyond the drain time', 'ms', runs.map((r) => r.overMs), '≤ 500',
      (m) => m <= 500),
    row('8', 'SIGINT to exit', 'ms', runs.map((r) => r.exitMs)),
    row('8', 'runs with all 10 recorded sent, none left claimed/sending', 'share', allRecorded,
      '1 in every run', (_m, s) => s.min === 1),
  ] };
}
