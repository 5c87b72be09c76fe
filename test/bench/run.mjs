/**
 * `npm run bench`: issue 6's cases, each against its own sandbox process and a fresh scratch
 * database per run, then one table (stdout) and the figures as JSON in test/bench/results/.
 * Progress goes to stderr, so stdout carries only the table.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import { fileURLToPath } from 'node:url';
import { ceilingCase, fidelityCase, latencyBoundCase } from './cases/rates.mjs';
import { drainCase } from './cases/drain.mjs';
import { memoryCase } from './cases/memory.mjs';
import { overheadCases } from './cases/overhead.mjs';
import { startupCase } from './cases/startup.mjs';
import { distDigest, gitState } from './lib/build.mjs';
import { parseOptions, USAGE, UsageError } from './lib/options.mjs';
import { makeTemplate, openServer, serverFacts } from './lib/postgres.mjs';
import { renderMarkdown, renderTable } from './lib/table.mjs';

const RESULTS = fileURLToPath(new URL('./results/', import.meta.url));

// Which case ids each group answers, in the order they run.
const GROUPS = [
  { ids: ['1', '1a', '1b', '1c', '1d', '3'], run: overheadCases },
  { ids: ['2'], run: ceilingCase },
  { ids: ['4'], run: fidelityCase },
  { ids: ['5'], run: latencyBoundCase },
  { ids: ['6'], run: memoryCase },
  { ids: ['7'], run: startupCase },
  { ids: ['8'], run: drainCase },
];

function machine(pg) {
  const cpus = os.cpus();
  return {
    nproc: os.availableParallelism(), cpu: cpus[0]?.model ?? 'unknown',
    memoryGb: Math.round(os.totalmem() / 2 ** 30), os: `${os.type()} ${os.release()}`,
    node: process.version, postgres: pg.version,
  };
}

/** The 1-minute load average: other work on a shared machine shows here first. */
function load() {
  return Number(os.loadavg()[0].toFixed(2));
}

async function main() {
  const options = parseOptions(process.argv.slice(2));
  if (options.help) return void process.stdout.write(`${USAGE}\n`);
  const began = Date.now();
  const build = { ...gitState(), distAtStart: distDigest() };
  const loadAtStart = load();
  const log = (line) => process.stderr.write(`[bench ${((Date.now() - began) / 1000)
    .toFixed(0).padStart(4)} s] ${line}\n`);

  const server = await openServer();
  const facts = await serverFacts(server.url);
  const template = await makeTemplate(server.url, facts.pgStatStatements);
  const ctx = {
    ...options, log, adminUrl: server.url, template, statements: facts.pgStatStatements,
    postmasterPid: facts.postmasterPid,
    // The replaced design's own pool; 10 is postgres.js's default.
    replacedDbPool: 10,
  };
  const results = [];
  try {
    for (const g of GROUPS) {
      if (options.only && !g.ids.some((id) => options.only.has(id))) continue;
      results.push(await g.run(ctx));
    }
  } finally {
    await template.drop();
    await server.stop();
  }

  build.distAtEnd = distDigest();
  if (build.distAtEnd !== build.distAtStart) log('WARNING: dist/ changed during the run');
  const rows = results.flatMap((r) => r.rows);
  const report = {
    at: new Date(began).toISOString(), durationS: Math.round((Date.now() - began) / 1000),
    options: { only: options.only ? [...options.only] : null, quick: options.quick,
      runs: options.runs }, build, machine: { ...machine(facts), loadAtStart,
      loadAtEnd: load() }, database: server.embedded ? 'embedded' :
      'DATABASE_URL', rows, raw: results.map((r) => r.raw),
  };
  mkdirSync(RESULTS, { recursive: true });
  const stamp = report.at.replace(/[:.]/g, '-');
  writeFileSync(`${RESULTS}bench-${stamp}.json`, JSON.stringify(report, null, 2));
  writeFileSync(`${RESULTS}latest.md`, `${describe(report)}\n\n${renderMarkdown(rows)}\n`);
  process.stdout.write(`${describe(report)}\n\n${renderTable(rows)}\n`);
  log(`done in ${report.durationS} s; figures in ${RESULTS}bench-${stamp}.json`);
}

function describe(r) {
  const m = r.machine;
  const b = r.build;
  const tree = b.uncommittedSourceFiles ? ` + ${b.uncommittedSourceFiles} uncommitted src/sql ` +
    'file(s)' : '';
  const drift = b.distAtEnd === b.distAtStart ? '' : ` — CHANGED to ${b.distAtEnd} during the run`;
  const other = b.measuredBuild ? ` (wacamp measured from ${b.measuredBuild})` : '';
  return `wacamp bench ${r.at}${r.options.quick ? ' (--quick)' : ''}, ${r.options.runs} run(s) ` +
    `per case after a warm-up\nbuild: commit ${b.commit ?? '?'}${tree}, dist ${b.distAtStart}` +
    `${drift}${other}\nmachine: ${m.nproc} CPUs (${m.cpu}), ${m.memoryGb} GB, ${m.os}; ` +
    `Node ${m.node}; PostgreSQL ${m.postgres} (${r.database}); 1-min load average ` +
    `${m.loadAtStart} at start, ${m.loadAtEnd} at end`;
}

main().catch((err) => {
  if (err instanceof UsageError) {
    process.stderr.write(`bench: ${err.message}\n${USAGE}\n`);
    process.exitCode = 2;
    return;
  }
  process.stderr.write(`bench failed: ${err.stack ?? err}\n`);
  process.exitCode = 1;
});
