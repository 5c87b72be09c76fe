/** `npm run bench -- [--only 1b,3] [--quick] [--runs N]`, checked before anything starts. */

export const CASE_IDS = ['1', '1a', '1b', '1c', '1d', '2', '3', '4', '5', '6', '7', '8'];

export const USAGE = `usage: npm run bench -- [options]
  --only <ids>   comma-separated cases: ${CASE_IDS.join(', ')} (default: all)
  --quick        smaller campaigns (case 6 uses 100,000 instead of 1,000,000) and 1 run
  --runs <n>     measured runs per case after the warm-up (default 3; 1 with --quick)
  --help         this text
Environment: DATABASE_URL (default: an embedded PostgreSQL in $TMPDIR/wacamp-bench-home);
  WACAMP_BENCH_BIN=<copy>/bin/wacamp.js measures another build of wacamp (e.g. a patched copy).`;

/** A bad command line: printed as one line with the usage, exit 2. */
export class UsageError extends Error {}

export function parseOptions(argv) {
  const o = { only: null, quick: false, runs: null, help: false };
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    const value = () => {
      const v = argv[++i];
      if (v === undefined) throw new UsageError(`${arg} needs a value`);
      return v;
    };
    if (arg === '--quick') o.quick = true;
    else if (arg === '--help' || arg === '-h') o.help = true;
    else if (arg === '--only') o.only = parseOnly(value());
    else if (arg === '--runs') o.runs = parseRuns(value());
    else throw new UsageError(`unknown option ${arg}`);
  }
  return { ...o, runs: o.runs ?? (o.quick ? 1 : 3) };
}

function parseOnly(text) {
  const ids = text.split(',').map((s) => s.trim()).filter(Boolean);
  const bad = ids.filter((id) => !CASE_IDS.includes(id));
  if (ids.length === 0 || bad.length > 0) {
    throw new UsageError(`--only: unknown case ${bad.join(', ') || '(none)'}; ` +
      `choose from ${CASE_IDS.join(', ')}`);
  }
  return new Set(ids);
}

function parseRuns(text) {
  const n = Number(text);
  if (!Number.isInteger(n) || n < 1 || n > 50) {
    throw new UsageError(`--runs: "${text}" must be a whole number from 1 to 50`);
  }
  return n;
}
