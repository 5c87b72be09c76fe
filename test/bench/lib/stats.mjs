/**
 * Arithmetic over request start times and repeated runs. Pure: everything comes in as numbers,
 * so the figures in the table can be checked by hand from the JSON.
 */

/** Median, min and max of the finite values; null when there are none. */
export function summarize(values) {
  const v = values.filter((x) => typeof x === 'number' && Number.isFinite(x)).sort((a, b) => a - b);
  if (v.length === 0) return null;
  const mid = v.length >> 1;
  const median = v.length % 2 === 1 ? v[mid] : (v[mid - 1] + v[mid]) / 2;
  return { median, min: v[0], max: v[v.length - 1], n: v.length };
}

/** Starts sorted ascending, as epoch milliseconds. */
function sorted(starts) {
  return Float64Array.from(starts).sort();
}

/**
 * The definition: (n − 1) / (last start − first start), in requests per second.
 * The first start opens the measured span, so it is not counted as a request inside it.
 */
export function achievedRate(starts) {
  if (starts.length < 2) return null;
  const s = sorted(starts);
  const spanMs = s[s.length - 1] - s[0];
  return spanMs > 0 ? ((s.length - 1) * 1000) / spanMs : Infinity;
}

/** Most starts in any window [t, t + windowMs) where t is itself a start (that is the worst t). */
export function maxInWindow(starts, windowMs = 1000) {
  const s = sorted(starts);
  let best = 0;
  let j = 0;
  for (let i = 0; i < s.length; i++) {
    if (j < i) j = i;
    while (j < s.length && s[j] < s[i] + windowMs) j++;
    best = Math.max(best, j - i);
  }
  return best;
}

/** Largest time between two consecutive starts, ms. */
export function largestGap(starts) {
  const s = sorted(starts);
  let gap = 0;
  for (let i = 1; i < s.length; i++) gap = Math.max(gap, s[i] - s[i - 1]);
  return gap;
}

/** The figures every sending case reports about its trace. */
export function traceFigures(starts) {
  return {
    requests: starts.length,
    rate: achievedRate(starts),
    maxWindow: maxInWindow(starts),
    maxGapMs: largestGap(starts),
  };
}

/** Starts in each whole second after the first start: where a shortfall happened. */
export function perSecond(starts) {
  const s = sorted(starts);
  const counts = [];
  for (const t of s) {
    const k = Math.floor((t - s[0]) / 1000);
    counts[k] = (counts[k] ?? 0) + 1;
  }
  return Array.from(counts, (c) => c ?? 0);
}
