import { spawn } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { WacampError } from '../errors.js';
import type { PgBinaries } from './binaries.js';
import type { PgIdentity } from './os-user.js';

/** Seconds pg_ctl waits for the server to accept connections, or to stop. */
const PG_CTL_WAIT_S = 60;

export interface Cluster {
  bins: PgBinaries;
  who: PgIdentity;
  dataDir: string;
}

export function serverLogPath(dataDir: string): string {
  // Inside the data folder because the postgres OS user can write there and nowhere else.
  return path.join(dataDir, 'wacamp-server.log');
}

export async function initdb(cluster: Cluster, user: string, passwordFile: string): Promise<void> {
  await runPg(cluster, cluster.bins.initdb, [
    `--pgdata=${cluster.dataDir}`,
    `--username=${user}`,
    `--pwfile=${passwordFile}`,
    '--auth=scram-sha-256',
    '--encoding=UTF8',
    // No OS locale: the server then starts the same on any machine, with or without locales.
    '--no-locale',
    '--no-instructions',
  ], 'embedded_initdb');
}

/**
 * `pg_ctl start -w` returns once the server accepts connections. pg_ctl puts the postmaster in
 * a session of its own, and pg_ctl itself runs detached too, so a Ctrl-C meant for wacamp never
 * reaches the server: it lives until `wacamp db stop`.
 */
export async function pgCtlStart(cluster: Cluster, port: number): Promise<void> {
  const log = serverLogPath(cluster.dataDir);
  try {
    await runPg(cluster, cluster.bins.pgCtl, [
      'start', '-D', cluster.dataDir, '-l', log, '-w', '-t', String(PG_CTL_WAIT_S),
      '-o', `-p ${port}`,
    ], 'embedded_start');
  } catch (err) {
    const last = await lastLogLine(log);
    throw new WacampError(
      'embedded_start',
      `embedded PostgreSQL did not start${last ? ` (${last})` : ''}; see ${log}`,
      { cause: err },
    );
  }
}

/** `mode` fast ends sessions and rolls back; immediate is for a half-initialised folder. */
export async function pgCtlStop(cluster: Cluster, mode: 'fast' | 'immediate'): Promise<void> {
  await runPg(cluster, cluster.bins.pgCtl, [
    'stop', '-D', cluster.dataDir, '-m', mode, '-w', '-t', String(PG_CTL_WAIT_S),
  ], 'embedded_stop');
}

function runPg(cluster: Cluster, bin: string, args: string[], code: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn(bin, args, {
      ...cluster.who,
      // The data folder's parent: reachable by the postgres user, unlike the caller's cwd.
      cwd: path.dirname(cluster.dataDir),
      env: pgEnv(),
      detached: true,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let output = '';
    child.stdout.on('data', (chunk: Buffer) => (output += chunk.toString('utf8')));
    child.stderr.on('data', (chunk: Buffer) => (output += chunk.toString('utf8')));
    child.on('error', (cause) =>
      reject(new WacampError(code, `could not run ${path.basename(bin)}`, { cause })));
    child.on('close', (exit, signal) => {
      if (exit === 0) return resolve();
      const detail = firstErrorLine(output) ?? `exit ${exit ?? signal}`;
      reject(new WacampError(code, `${path.basename(bin)} failed: ${detail}`));
    });
  });
}

/** The caller's environment minus PG* variables, which would redirect pg_ctl and initdb. */
function pgEnv(): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [key, value] of Object.entries(process.env)) {
    if (!key.startsWith('PG')) env[key] = value;
  }
  env.LC_ALL = 'C';
  return env;
}

function firstErrorLine(output: string): string | undefined {
  const lines = output.split('\n').map((l) => l.trim()).filter(Boolean);
  return lines.find((l) => /error|fatal|could not|cannot/i.test(l)) ?? lines.at(-1);
}

async function lastLogLine(file: string): Promise<string | undefined> {
  try {
    const text = await readFile(file, 'utf8');
    return text.split('\n').map((l) => l.trim()).filter(Boolean).at(-1);
  } catch {
    return undefined; // no log yet: the server never got as far as writing one
  }
}
