/**
 * Case 7: how long `wacamp --help` takes from spawn to exit, and how long `wacamp send` takes
 * from spawn to its first request on a 10,000-recipient campaign (the database already running,
 * preflight included). Beside them, for the reader who wants to know where the time goes: a
 * bare `node -e ''`, node importing the send command's modules, and the first-request time
 * split at the phases wacamp logs (`--log-format json`).
 */
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { repeat, row, sendOnce } from '../lib/harness.mjs';
import { BIN, BUILD_ROOT, runNode, startSandbox } from '../lib/processes.mjs';
import { summarize } from '../lib/stats.mjs';

const HELP_SAMPLES = 10;
const SEND_MODULE = pathToFileURL(path.join(BUILD_ROOT, 'dist/commands/send.js')).href;

async function wallOf(args, samples) {
  const walls = [];
  for (let i = 0; i < samples; i++) {
    const r = await runNode(args).exited;
    if (r.code !== 0) throw new Error(`${args.join(' ')} exited ${r.code}: ${r.stderr}`);
    walls.push(r.exitAt - r.spawnAt);
  }
  return walls;
}

/** Each run is the median of several spawns: one spawn is too noisy to judge by. */
function spawnTimes(ctx, label, args) {
  return repeat(ctx, label, async () => summarize(await wallOf(args, HELP_SAMPLES)).median);
}

/** Epoch ms of the first log event matching `test`, from wacamp's NDJSON stderr. */
function eventAt(stderr, test) {
  for (const line of stderr.split('\n')) {
    try {
      const e = JSON.parse(line);
      if (test(e)) return Date.parse(e.time);
    } catch {
      // Not an NDJSON line (a warning from node itself, say): not a phase mark.
    }
  }
  return null;
}

async function firstRequest(ctx, sandbox) {
  const r = await sendOnce(ctx, { sandbox, n: 10_000,
    flags: ['--rate', 'unlimited', '--workers', '50', '--log-format', 'json'] });
  const first = Math.min(...r.starts);
  const connecting = eventAt(r.stderr, (e) => e.msg === 'connecting');
  const checking = eventAt(r.stderr, (e) => e.msg === 'checking recipients');
  const started = eventAt(r.stderr, (e) => e.event === 'run_started');
  const span = (a, b) => (a === null || b === null ? null : b - a);
  return { total: first - r.spawnAt, boot: span(r.spawnAt, connecting),
    open: span(connecting, checking), preflight: span(checking, started),
    toFirst: span(started, first) };
}

export async function startupCase(ctx) {
  const help = await spawnTimes(ctx, 'case 7 (--help)', [BIN, '--help']);
  const bare = await spawnTimes(ctx, 'case 7 (node -e)', ['-e', '']);
  const imports = await spawnTimes(ctx, 'case 7 (send imports)',
    ['--input-type=module', '-e', `await import(${JSON.stringify(SEND_MODULE)})`]);

  const sandbox = await startSandbox(0);
  let first;
  try {
    first = await repeat(ctx, 'case 7 (first request)', () => firstRequest(ctx, sandbox));
  } finally {
    await sandbox.stop();
  }
  const part = (k) => first.map((f) => f[k]);
  return { raw: { help, bare, imports, first }, rows: [
    row('7', `wacamp --help, spawn to exit (median of ${HELP_SAMPLES})`, 'ms', help, '≤ 150',
      (m) => m <= 150),
    row('7', "node -e '' alone, for reference", 'ms', bare),
    row('7', 'node importing dist/commands/send.js, for reference', 'ms', imports),
    row('7', 'send: spawn to first request, 10,000 recipients', 'ms', part('total'), '≤ 500',
      (m) => m <= 500),
    row('7', '  of which spawn to "connecting" (node, imports)', 'ms', part('boot')),
    row('7', '  of which connect, recovery, campaign load', 'ms', part('open')),
    row('7', '  of which preflight of 10,000 rows', 'ms', part('preflight')),
    row('7', '  of which run registered to first request', 'ms', part('toFirst')),
  ] };
}
