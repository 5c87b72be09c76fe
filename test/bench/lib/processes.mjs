/**
 * Child processes the benchmark runs: the sandbox, `wacamp send` as a user runs it, and the
 * baseline scripts. Every process gets a minimal environment, so nothing of the caller's own
 * database or WhatsApp settings leaks in.
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';

export const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
// WACAMP_BENCH_BIN measures another build (a patched copy, say) against the same baselines.
export const BIN = path.resolve(process.env.WACAMP_BENCH_BIN ?? path.join(ROOT, 'bin/wacamp.js'));
/** The checkout or copy whose dist/ the measured CLI runs. */
export const BUILD_ROOT = path.dirname(path.dirname(BIN));
const RSS_PROBE = fileURLToPath(new URL('../rss-probe.mjs', import.meta.url));

export const tmpDir = (prefix) => mkdtempSync(path.join(os.tmpdir(), prefix));

const now = () => performance.timeOrigin + performance.now();

function baseEnv(extra) {
  return { PATH: process.env.PATH, HOME: process.env.HOME, NO_COLOR: '1', ...extra };
}

/** Spawns node with args; resolves with exit code, output and the spawn/exit epoch times. */
export function runNode(args, env = {}) {
  const spawnAt = now();
  const child = spawn(process.execPath, args, {
    cwd: ROOT, env: baseEnv(env), stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (b) => { stdout += b; });
  child.stderr.on('data', (b) => { stderr += b; });
  const exited = new Promise((resolve, reject) => {
    child.on('error', reject);
    child.on('exit', (code, signal) => {
      resolve({ code, signal, stdout, stderr, spawnAt, exitAt: now() });
    });
  });
  return { child, spawnAt, exited, stdout: () => stdout };
}

/** `wacamp sandbox` in its own process; resolves once it prints its URL. */
export async function startSandbox(latency) {
  const p = runNode([BIN, 'sandbox', '--port', '0', '--json', '--latency', String(latency)]);
  const url = await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('sandbox did not start in 10 s')), 10_000);
    const check = () => {
      const line = p.stdout().split('\n')[0];
      if (!line || !p.stdout().includes('\n')) return;
      clearTimeout(timer);
      resolve(JSON.parse(line).url);
    };
    p.child.stdout.on('data', check);
    p.exited.then((r) => reject(new Error(`sandbox exited early: ${r.stderr}`)));
  });
  return {
    url,
    pid: p.child.pid,
    async stats() {
      const res = await fetch(`${url}/_sandbox/stats`);
      return res.json();
    },
    async stop() {
      p.child.kill('SIGTERM');
      await p.exited;
    },
  };
}

/**
 * `wacamp send <id> --json --trace-starts <file>` with the given flags. `finished` resolves
 * with its exit, its JSON summary, its request start times (epoch ms) and, with `probeRss`,
 * what rss-probe.mjs wrote (peak RSS in bytes and heap peaks).
 */
export function spawnSend({ campaignId, dbUrl, apiUrl, flags, probeRss = false }) {
  const dir = tmpDir('wacamp-bench-run-');
  const trace = path.join(dir, 'starts.json');
  const rssFile = path.join(dir, 'rss.json');
  const pre = probeRss ? ['--import', RSS_PROBE] : [];
  const env = {
    DATABASE_URL: dbUrl, WHATSAPP_API_URL: apiUrl, WHATSAPP_ACCESS_TOKEN: 'sandbox-token',
    WACAMP_HOME: path.join(dir, 'home'), ...(probeRss ? { WACAMP_BENCH_RSS: rssFile } : {}),
  };
  const args = [...pre, BIN, 'send', campaignId, '--json', '--trace-starts', trace, ...flags];
  const p = runNode(args, env);
  const finished = p.exited.then((r) => {
    const result = {
      ...r,
      summary: parseLastJson(r.stdout),
      starts: readJson(trace) ?? [],
      memory: probeRss ? readJson(rssFile) : null,
    };
    rmSync(dir, { recursive: true, force: true });
    return result;
  });
  return { child: p.child, spawnAt: p.spawnAt, finished };
}

/** A baseline script in its own process; it prints one JSON line and writes its starts. */
export async function runBaseline(script, config) {
  const dir = tmpDir('wacamp-bench-base-');
  const trace = path.join(dir, 'starts.json');
  const file = fileURLToPath(new URL(`../baselines/${script}`, import.meta.url));
  const r = await runNode([file, JSON.stringify({ ...config, trace })]).exited;
  const starts = readJson(trace) ?? [];
  rmSync(dir, { recursive: true, force: true });
  if (r.code !== 0) throw new Error(`${script} exited ${r.code}: ${r.stderr.slice(-2000)}`);
  return { ...r, summary: parseLastJson(r.stdout), starts };
}

/** null when the file is missing or half-written: a process killed early leaves no trace. */
function readJson(file) {
  try {
    return JSON.parse(readFileSync(file, 'utf8'));
  } catch {
    return null;
  }
}

function parseLastJson(text) {
  const line = text.trim().split('\n').filter(Boolean).pop();
  try {
    return line ? JSON.parse(line) : null;
  } catch {
    return null;
  }
}
