/**
 * Preloaded into the measured wacamp process with `node --import` (case 6). At exit it writes
 * the process's peak resident set size (getrusage ru_maxrss, the same figure as VmHWM) to the
 * file named by WACAMP_BENCH_RSS, with the peaks of V8's heap and of memory held outside it,
 * sampled every 100 ms by an unref'd timer, to say where the memory went.
 */
import { writeFileSync } from 'node:fs';

const file = process.env.WACAMP_BENCH_RSS;
if (file) {
  const peak = { heapTotal: 0, heapUsed: 0, external: 0, arrayBuffers: 0 };
  const sample = () => {
    const m = process.memoryUsage();
    for (const k of Object.keys(peak)) peak[k] = Math.max(peak[k], m[k]);
  };
  setInterval(sample, 100).unref();
  process.on('exit', () => {
    sample();
    const maxRssBytes = process.resourceUsage().maxRSS * 1024;
    writeFileSync(file, JSON.stringify({ maxRssBytes, peak }));
  });
}
